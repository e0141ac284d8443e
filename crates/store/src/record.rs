//! One record of the log: its compact byte layout and its place in the hash
//! chain.
//!
//! Layout (version 1, little-endian), 68 bytes plus saga id and payload:
//!
//! ```text
//! version u16 | saga id length u16 | saga id (UTF-8) | saga seq u64 | global seq u64
//! | at u64 (ms since the epoch) | payload length u32 | payload | prev hash [32] | hash [32]
//! ```
//!
//! `hash = blake3(prev hash ‖ header ‖ payload)` where the header is every
//! byte before the payload. The first record's `prev hash` is all zeros.
// What only the tamper and fuzz tests call is unused without `internals`.
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

use crate::model::{SagaId, Timestamp};

/// The record layout this build writes and reads.
pub const RECORD_VERSION: u16 = 1;
/// The largest payload accepted (16 MiB).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// One event as stored: the caller's opaque payload, where it sits in its saga
/// and in the whole log, and its link in the hash chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record layout version it was written with.
    pub version: u16,
    /// The saga the event belongs to.
    pub saga_id: SagaId,
    /// Its position in the saga: 1, 2, 3, ... without gaps.
    pub saga_seq: u64,
    /// Its position in the whole log: 1, 2, 3, ... without gaps.
    pub global_seq: u64,
    /// When the store appended it (all events of one append share it).
    pub at: Timestamp,
    /// The event itself, opaque to the store.
    pub payload: Vec<u8>,
    /// The hash of the record before it in global order (zeros for the first).
    pub prev_hash: [u8; 32],
    /// blake3 over `prev_hash`, the header and the payload.
    pub hash: [u8; 32],
}

/// Appends the header bytes (everything before the payload) to `h`.
fn header_into(
    h: &mut Vec<u8>,
    saga_id: &SagaId,
    saga_seq: u64,
    global_seq: u64,
    at: Timestamp,
    len: u32,
) {
    let id = saga_id.0.as_bytes();
    h.extend_from_slice(&RECORD_VERSION.to_le_bytes());
    h.extend_from_slice(&(id.len() as u16).to_le_bytes());
    h.extend_from_slice(id);
    h.extend_from_slice(&saga_seq.to_le_bytes());
    h.extend_from_slice(&global_seq.to_le_bytes());
    h.extend_from_slice(&at.0.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
}

fn chain_hash(prev: &[u8; 32], header: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(header);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// Builds and encodes a new record; returns its bytes and its hash. The
/// caller has checked the saga id (≤ 255 bytes) and payload (≤ [`MAX_PAYLOAD`]).
pub fn encode(
    saga_id: &SagaId,
    saga_seq: u64,
    global_seq: u64,
    at: Timestamp,
    payload: &[u8],
    prev_hash: &[u8; 32],
) -> (Vec<u8>, [u8; 32]) {
    let mut out = Vec::with_capacity(encoded_len(saga_id, payload));
    let hash = encode_into(
        &mut out, saga_id, saga_seq, global_seq, at, payload, prev_hash,
    );
    (out, hash)
}

/// The length of a record of this saga and payload.
pub fn encoded_len(saga_id: &SagaId, payload: &[u8]) -> usize {
    HEADER_FIXED + saga_id.0.len() + payload.len() + 64
}

/// The header's bytes besides the saga id.
const HEADER_FIXED: usize = 2 + 2 + 8 + 8 + 8 + 4;

/// [`encode`], appending the record to `out` (a block being built).
pub fn encode_into(
    out: &mut Vec<u8>,
    saga_id: &SagaId,
    saga_seq: u64,
    global_seq: u64,
    at: Timestamp,
    payload: &[u8],
    prev_hash: &[u8; 32],
) -> [u8; 32] {
    let start = out.len();
    header_into(out, saga_id, saga_seq, global_seq, at, payload.len() as u32);
    let hash = chain_hash(prev_hash, &out[start..], payload);
    out.extend_from_slice(payload);
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&hash);
    hash
}

/// Reads `n` bytes off the front of `b`.
fn take<'a>(b: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err(format!("record truncated in its {what}"));
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn take_u64(b: &mut &[u8], what: &str) -> Result<u64, String> {
    let mut a = [0u8; 8];
    a.copy_from_slice(take(b, 8, what)?);
    Ok(u64::from_le_bytes(a))
}

fn take_hash(b: &mut &[u8], what: &str) -> Result<[u8; 32], String> {
    let mut a = [0u8; 32];
    a.copy_from_slice(take(b, 32, what)?);
    Ok(a)
}

/// A record's saga id, saga seq and global seq, read off its header without
/// checking its hash (the index's view of the unindexed tail, and the
/// position of a record in a block; `verify` checks the hash).
pub fn peek(bytes: &[u8]) -> Result<(&str, u64, u64), String> {
    let mut b = bytes;
    let (id, saga_seq) = saga_fields(&mut b)?;
    Ok((id, saga_seq, take_u64(&mut b, "global seq")?))
}

/// Reads the version (which must be this build's), the saga id and the saga
/// seq off the front of `b`.
fn saga_fields<'a>(b: &mut &'a [u8]) -> Result<(&'a str, u64), String> {
    let v = take(b, 2, "version")?;
    let version = u16::from_le_bytes([v[0], v[1]]);
    if version != RECORD_VERSION {
        return Err(format!(
            "unknown record version {version} (this build reads {RECORD_VERSION})"
        ));
    }
    let l = take(b, 2, "saga id length")?;
    let id = take(b, u16::from_le_bytes([l[0], l[1]]) as usize, "saga id")?;
    let id = std::str::from_utf8(id).map_err(|_| "saga id is not UTF-8".to_string())?;
    Ok((id, take_u64(b, "saga seq")?))
}

/// Decodes a record and checks it against itself: known version, exact
/// length, and `hash` recomputed. Linking to its neighbours (`prev_hash`,
/// global seq) is the caller's job. The error says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    let mut b = bytes;
    let (id, saga_seq) = saga_fields(&mut b)?;
    let saga_id = SagaId(id.to_string());
    let global_seq = take_u64(&mut b, "global seq")?;
    let at = Timestamp(take_u64(&mut b, "time")?);
    let p = take(&mut b, 4, "payload length")?;
    // The header as stored: exactly what `header` writes for these fields.
    let stored_header = &bytes[..bytes.len() - b.len()];
    let len = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
    let payload = take(&mut b, len, "payload")?.to_vec();
    let prev_hash = take_hash(&mut b, "previous hash")?;
    let hash = take_hash(&mut b, "hash")?;
    if !b.is_empty() {
        return Err(format!("{} unexpected bytes after the record", b.len()));
    }
    if chain_hash(&prev_hash, stored_header, &payload) != hash {
        return Err("hash does not match the record's bytes".to_string());
    }
    Ok(Record {
        version: RECORD_VERSION,
        saga_id,
        saga_seq,
        global_seq,
        at,
        payload,
        prev_hash,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, [u8; 32]) {
        encode(
            &SagaId("s-1".into()),
            4,
            9,
            Timestamp(1234),
            b"payload",
            &[7; 32],
        )
    }

    #[test]
    fn round_trip() {
        let (bytes, hash) = sample();
        let r = decode(&bytes).unwrap();
        assert_eq!(r.saga_id.0, "s-1");
        assert_eq!((r.saga_seq, r.global_seq, r.at), (4, 9, Timestamp(1234)));
        assert_eq!(r.payload, b"payload");
        assert_eq!(r.prev_hash, [7; 32]);
        assert_eq!(r.hash, hash);
        assert_eq!(peek(&bytes).unwrap(), ("s-1", 4, 9));
    }

    #[test]
    fn every_changed_byte_and_every_cut_is_detected() {
        let (bytes, _) = sample();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(decode(&b).is_err(), "flip at byte {i} went unnoticed");
            assert!(decode(&bytes[..i]).is_err(), "cut at {i} went unnoticed");
        }
    }
}
