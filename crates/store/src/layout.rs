//! The keys of the store's sled tree. Public so that tools and tests (tamper
//! tests, `closeout verify` diagnostics) can address records directly; the
//! layout is described in the module docs of [`crate`].

use crate::model::SagaId;

/// Prefix of a block of records, followed by the global seq of its first
/// record (big-endian u64); see [`super::blocks`].
pub const BLOCK: u8 = b'b';
/// Prefix of a per-saga index run: saga key, then the saga seq of its last
/// event (big-endian u64); the value is the global seqs of the saga's
/// consecutive events up to it (big-endian u64 each). See [`super::index`].
pub const INDEX: u8 = b'i';
/// Prefix of a saga's index end: saga key; the value is the saga seq after
/// its last run (u64 BE), written with a run whose last event the saga's
/// snapshot does not name. See [`super::index`].
pub const ENDS: u8 = b'e';
/// Prefix of a saga's latest snapshot: saga key; the value codec-encoded.
pub const SNAPSHOT: u8 = b's';
/// The key of the durable head: last global seq, last hash, last time.
pub const HEAD: &[u8] = b"h";
/// The key of the layout version inside sled (also kept in the `FORMAT` file).
pub const VERSION: &[u8] = b"v";

/// The longest saga id the layout takes (its length is one byte of the key).
pub const MAX_SAGA_ID: usize = 255;

/// The key of the block whose first record has this global seq.
pub fn block_key(first_seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = BLOCK;
    k[1..].copy_from_slice(&first_seq.to_be_bytes());
    k
}

/// The first global seq of a block key, if it is one.
pub fn block_seq(key: &[u8]) -> Option<u64> {
    match key {
        [BLOCK, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// `prefix`, the saga id's length (one byte) and the saga id. The caller has
/// checked the length against [`MAX_SAGA_ID`].
pub fn saga_key(prefix: u8, saga: &SagaId) -> Vec<u8> {
    let id = saga.0.as_bytes();
    let mut k = Vec::with_capacity(2 + id.len() + 8);
    k.push(prefix);
    k.push(id.len().min(MAX_SAGA_ID) as u8);
    k.extend_from_slice(&id[..id.len().min(MAX_SAGA_ID)]);
    k
}

/// The key of a saga's index run ending at `saga_seq`.
pub fn index_key(saga: &SagaId, saga_seq: u64) -> Vec<u8> {
    let mut k = saga_key(INDEX, saga);
    k.extend_from_slice(&saga_seq.to_be_bytes());
    k
}

/// The saga id of a `SNAPSHOT` key (prefix, length, id).
pub fn saga_of(key: &[u8]) -> Option<SagaId> {
    let (&len, rest) = key.get(1..)?.split_first()?;
    let id = rest.get(..len as usize)?;
    if rest.len() != len as usize {
        return None;
    }
    String::from_utf8(id.to_vec()).ok().map(SagaId)
}

/// A big-endian u64 value.
pub fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// The durable head of the chain, rewritten in every commit with the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The global seq of the last record (0 when the log is empty).
    pub last_seq: u64,
    /// The hash of the last record (zeros when the log is empty).
    pub last_hash: [u8; 32],
    /// The time of the last record, so that times never go backwards.
    pub last_at: u64,
}

impl Head {
    /// The head of an empty log.
    pub const EMPTY: Head = Head {
        last_seq: 0,
        last_hash: [0; 32],
        last_at: 0,
    };

    /// The head's 48 bytes.
    pub fn to_bytes(self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[..8].copy_from_slice(&self.last_seq.to_be_bytes());
        b[8..40].copy_from_slice(&self.last_hash);
        b[40..].copy_from_slice(&self.last_at.to_be_bytes());
        b
    }

    /// Parses the head's bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Head> {
        if b.len() != 48 {
            return None;
        }
        Some(Head {
            last_seq: u64_value(&b[..8])?,
            last_hash: b[8..40].try_into().ok()?,
            last_at: u64_value(&b[40..])?,
        })
    }
}

/// The saga id of an `INDEX` key and the saga seq it ends with.
pub fn index_parts(key: &[u8]) -> Option<(SagaId, u64)> {
    let split = key.len().checked_sub(8)?;
    let saga = saga_of(key.get(..split)?)?;
    Some((saga, u64_value(key.get(split..)?)?))
}
