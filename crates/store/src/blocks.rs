//! Records packed into blocks: one sled value holds consecutive records of
//! the global order, each behind its length (u32 little-endian), keyed by
//! the global seq of its first record ([`layout::block_key`]).
//!
//! The writer cuts one commit's records into blocks of about
//! [`BLOCK_BYTES`] (a block never spans two commits, so the index mark and
//! the head always fall on a block's end). sled's cost per insert, not the
//! fsync, bounds a group commit, so a 64-appender commit of ~300-byte
//! events costs a few inserts, not one per event.
//!
//! Why about 6 KiB: sled 0.34 splits a leaf past 16 entries and writes a
//! page over 128 KiB (a quarter of its 512 KiB segment) to a file of its
//! own, so 17 blocks must stay under that; and sled's cache keeps at least
//! one leaf per shard resident during a scan (see [`record_bytes`]), so
//! smaller leaves keep a scan's memory down.
//!
//! A record is found by its position in its block (the block holding global
//! seq `g` is the last whose key is at most `g`) and checked against its own
//! header by the reader ([`super::reader::decode_at`]); sequential readers
//! report each record under the global seq its header states, so that
//! `verify` names a removed or moved record as missing at its seq.
// What only the tamper and fuzz tests call is unused without `internals`.
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

use sled::IVec;

use super::index::Fault;
use super::layout::{block_key, block_seq};
use super::{record, BadRecord, FIRST_SEQ};

/// A block is closed before it would pass this many bytes (a single larger
/// record gets a block of its own).
pub const BLOCK_BYTES: usize = 6 * 1024;

fn bad(global_seq: u64, reason: String) -> Fault {
    Fault::Bad(BadRecord {
        global_seq,
        saga_id: None,
        saga_seq: None,
        reason,
    })
}

/// Appends one record to a block being built: a length placeholder, then
/// whatever `write` appends, then the length patched in. Returns `write`'s.
pub fn push_with<T>(block: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let start = block.len();
    block.extend_from_slice(&[0; 4]);
    let out = write(block);
    let len = (block.len() - start - 4) as u32;
    block[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The (offset, length) of the record whose frame starts at `off`.
fn frame_at(block: &[u8], off: usize) -> Result<(usize, usize), String> {
    let Some(len) = block
        .get(off..off + 4)
        .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
    else {
        return Err("the block ends inside a record's length".into());
    };
    let start = off + 4;
    if len == 0 || block.len() - start < len {
        return Err(format!(
            "a record's length ({len}) does not fit the block ({} bytes left)",
            block.len() - start
        ));
    }
    Ok((start, len))
}

/// The (offset, length) of each record of a block, in order; the error
/// names the 0-based position where the framing breaks.
pub fn frames(block: &[u8]) -> impl Iterator<Item = Result<(usize, usize), (usize, String)>> + '_ {
    let mut off = 0usize;
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if off >= block.len() {
            return None;
        }
        let at = pos;
        pos += 1;
        match frame_at(block, off) {
            Ok((start, len)) => {
                off = start + len;
                Some(Ok((start, len)))
            }
            Err(reason) => {
                off = block.len();
                Some(Err((at, reason)))
            }
        }
    })
}

/// The records of a block as byte slices (for tools and tests).
pub fn split(block: &[u8]) -> Result<Vec<&[u8]>, (usize, String)> {
    frames(block)
        .map(|f| f.map(|(o, l)| &block[o..o + l]))
        .collect()
}

/// A block made of these records (the inverse of [`split`]).
pub fn join<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        push_with(&mut out, |b| b.extend_from_slice(r));
    }
    out
}

/// The block that holds global seq `seq` if any does: the last block whose
/// first seq is at most `seq` (its first seq and bytes).
pub fn block_of(tree: &sled::Tree, seq: u64) -> Result<Option<(u64, IVec)>, Fault> {
    if let Some(v) = tree.get(block_key(seq))? {
        return Ok(Some((seq, v)));
    }
    sought(tree.range(block_key(0)..block_key(seq)).next_back(), seq)
}

/// The block a seek for `seq` found, with the first seq its key names.
fn sought(
    found: Option<sled::Result<(IVec, IVec)>>,
    seq: u64,
) -> Result<Option<(u64, IVec)>, Fault> {
    let Some((k, v)) = found.transpose()? else {
        return Ok(None);
    };
    let first = block_seq(&k).ok_or_else(|| bad(seq, "a block key is malformed".into()))?;
    Ok(Some((first, v)))
}

/// One block, with its records' offsets, kept by readers that look records
/// up one by one (a saga's events often share blocks).
#[derive(Default)]
pub struct Cursor {
    block: Option<Framed>,
}

/// A block's first seq, its bytes, and its records' (offset, length).
type Framed = (u64, IVec, Vec<(usize, usize)>);

impl Cursor {
    /// The bytes of the record at global seq `seq` (by its position in its
    /// block: the caller checks its header says `seq`); `None` if no block
    /// has a record at that position.
    pub fn get(&mut self, tree: &sled::Tree, seq: u64) -> Result<Option<IVec>, Fault> {
        let cached = self
            .block
            .as_ref()
            .is_some_and(|(first, _, frames)| seq >= *first && seq - first < frames.len() as u64);
        if !cached {
            self.block = None;
            let Some((first, v)) = block_of(tree, seq)? else {
                return Ok(None);
            };
            let frames = frames(&v)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|(pos, reason)| bad(first + pos as u64, reason))?;
            self.block = Some((first, v, frames));
        }
        let Some((first, v, frames)) = &self.block else {
            return Ok(None);
        };
        let Some(&(off, len)) = usize::try_from(seq - first)
            .ok()
            .and_then(|i| frames.get(i))
        else {
            return Ok(None);
        };
        Ok(Some(v.subslice(off, len)))
    }
}

/// Every record from global seq `from` on, in order, each with the global
/// seq its header states (its position's when the header cannot be read, so
/// that decoding it names that seq).
///
/// One point lookup per block: the next block's key is one past the last
/// record read (a seek past it when a block is missing, so that a gap is
/// passed over as a range scan would).
///
/// Why not sled's range iterator, and why each further record of a block
/// touches its key again: sled 0.34 accounts page accesses to its cache in
/// 256 shards, each settling (and evicting) 64 accesses at a time, and
/// keeps at least one page per shard. A forward scan touches each leaf once,
/// so up to 256 × 64 leaves stay resident whatever the cache size; one
/// lookup per block touches a leaf of up to 17 blocks a dozen times, which
/// still leaves several unsettled leaves (of up to ~100 KiB) per shard. One
/// touch per record (a few hundred per leaf) settles each leaf as it is
/// left (`benches/audit.rs` prints the peaks: `sled.scan_peak_rss_mb` for
/// sled's own iterator, `audit.jsonl_peak_rss_mb` for this reader).
pub fn record_bytes(
    tree: sled::Tree,
    from: u64,
) -> impl Iterator<Item = Result<(u64, IVec), Fault>> {
    let from = from.max(FIRST_SEQ);
    let mut started = false;
    let mut done = false;
    let mut next_key = from;
    // The current block: its first seq, bytes, the next record's offset
    // and position.
    let mut cur: Option<(u64, IVec, usize, u64)> = None;
    std::iter::from_fn(move || loop {
        if done {
            return None;
        }
        if let Some((first, block, off, pos)) = cur.as_mut() {
            if *off < block.len() {
                let seq_at = *first + *pos;
                let (start, len) = match frame_at(block, *off) {
                    Ok(f) => f,
                    Err(reason) => {
                        done = true;
                        let reason = format!("block {first}: {reason}");
                        return Some(Err(bad(seq_at, reason)));
                    }
                };
                let bytes = block.subslice(start, len);
                *off = start + len;
                *pos += 1;
                if seq_at < from {
                    continue;
                }
                if *pos > 1 {
                    // Touch the block's leaf again (see above): its cache
                    // shard settles once per leaf instead of holding dozens.
                    if let Err(e) = tree.contains_key(block_key(*first)) {
                        done = true;
                        return Some(Err(e.into()));
                    }
                }
                let seq = record::peek(&bytes).map_or(seq_at, |(_, _, g)| g);
                return Some(Ok((seq, bytes)));
            }
            if *pos == 0 {
                done = true;
                return Some(Err(bad(*first, format!("block {first} holds no record"))));
            }
            next_key = *first + *pos;
            cur = None;
        }
        let found = if started {
            block_from(&tree, next_key)
        } else {
            started = true;
            // The block holding `from`, or failing that the first after it.
            match block_of(&tree, from) {
                Ok(None) => block_from(&tree, from),
                other => other,
            }
        };
        match found {
            Ok(Some((first, v))) => cur = Some((first, v, 0, 0)),
            Ok(None) => {
                done = true;
                return None;
            }
            Err(e) => {
                done = true;
                return Some(Err(e));
            }
        }
    })
}

/// The block starting at `seq` (one point lookup), or failing that the
/// first block after it (one seek).
fn block_from(tree: &sled::Tree, seq: u64) -> Result<Option<(u64, IVec)>, Fault> {
    if let Some(v) = tree.get(block_key(seq))? {
        return Ok(Some((seq, v)));
    }
    sought(tree.range(block_key(seq)..=block_key(u64::MAX)).next(), seq)
}

/// A block's first seq, its records, and the position of the one sought.
type Located = (u64, Vec<Vec<u8>>, usize);

/// Where record `seq` is: its block's first seq, the block's records, and
/// its position among them: the record at `seq`'s position if its header
/// says `seq`, else the one whose header does, else the one at the position.
/// For tools and tamper tests.
fn locate(tree: &sled::Tree, seq: u64) -> Result<Option<Located>, Fault> {
    let Some((first, v)) = block_of(tree, seq)? else {
        return Ok(None);
    };
    let records: Vec<Vec<u8>> = split(&v)
        .map_err(|(pos, reason)| bad(first + pos as u64, reason))?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let says = |r: &Vec<u8>| record::peek(r).is_ok_and(|(_, _, g)| g == seq);
    let by_position = usize::try_from(seq - first)
        .ok()
        .filter(|&i| i < records.len());
    let found = match by_position {
        Some(i) if says(&records[i]) => Some(i),
        _ => records.iter().position(says).or(by_position),
    };
    Ok(found.map(|i| (first, records, i)))
}

/// The bytes of record `seq` (found as [`locate`] says). For tools and
/// tamper tests.
pub fn get_record(tree: &sled::Tree, seq: u64) -> Result<Option<Vec<u8>>, Fault> {
    Ok(locate(tree, seq)?.map(|(_, mut records, i)| records.swap_remove(i)))
}

/// Replaces the bytes of the record [`get_record`] finds, rewriting its
/// block; false if there is none. For tamper tests: the log never rewrites.
pub fn put_record(tree: &sled::Tree, seq: u64, bytes: &[u8]) -> Result<bool, Fault> {
    let Some((first, mut records, i)) = locate(tree, seq)? else {
        return Ok(false);
    };
    records[i] = bytes.to_vec();
    tree.insert(block_key(first), join(records.iter().map(Vec::as_slice)))?;
    Ok(true)
}

/// Removes the record [`get_record`] finds from its block (the block with
/// it when it was the only one); false if there is none. For tamper tests.
pub fn remove_record(tree: &sled::Tree, seq: u64) -> Result<bool, Fault> {
    let Some((first, mut records, i)) = locate(tree, seq)? else {
        return Ok(false);
    };
    records.remove(i);
    if records.is_empty() {
        tree.remove(block_key(first))?;
    } else {
        tree.insert(block_key(first), join(records.iter().map(Vec::as_slice)))?;
    }
    Ok(true)
}

/// The number of records in the log's blocks (for tests).
pub fn count_records(tree: &sled::Tree) -> Result<u64, Fault> {
    let mut n = 0;
    for item in tree.range(block_key(0)..=block_key(u64::MAX)) {
        let (k, v) = item?;
        let first = block_seq(&k).ok_or_else(|| bad(0, "a block key is malformed".into()))?;
        n += split(&v)
            .map_err(|(pos, reason)| bad(first + pos as u64, reason))?
            .len() as u64;
    }
    Ok(n)
}

/// The last record of the log: its position's seq and its bytes.
pub fn last_record(tree: &sled::Tree) -> Result<Option<(u64, IVec)>, Fault> {
    let Some((k, v)) = tree
        .range(block_key(0)..=block_key(u64::MAX))
        .next_back()
        .transpose()?
    else {
        return Ok(None);
    };
    let first = block_seq(&k).ok_or_else(|| bad(0, "a block key is malformed".into()))?;
    let mut last = None;
    for (pos, f) in frames(&v).enumerate() {
        let (off, len) = f.map_err(|(p, reason)| bad(first + p as u64, reason))?;
        last = Some((first + pos as u64, v.subslice(off, len)));
    }
    match last {
        Some(l) => Ok(Some(l)),
        None => Err(bad(first, format!("block {first} holds no record"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SagaId, Timestamp};

    /// A tree holding records 1..=10 in blocks starting at 1, 4 and 9
    /// (3, 5 and 2 records).
    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let saga = SagaId("s".into());
        let mut prev = [0u8; 32];
        for (first, n) in [(1u64, 3u64), (4, 5), (9, 2)] {
            let mut block = Vec::new();
            for g in first..first + n {
                prev = push_with(&mut block, |b| {
                    record::encode_into(b, &saga, g, g, Timestamp(g), &[g as u8; 7], &prev)
                });
            }
            db.insert(block_key(first), block).unwrap();
        }
        (*db).clone()
    }

    fn seqs(tree: &sled::Tree, from: u64) -> Vec<u64> {
        record_bytes(tree.clone(), from)
            .map(|r| r.unwrap().0)
            .collect()
    }

    #[test]
    fn reads_from_any_seq_across_blocks() {
        let t = tree();
        assert_eq!(seqs(&t, 0), (1..=10).collect::<Vec<_>>());
        assert_eq!(seqs(&t, 5), (5..=10).collect::<Vec<_>>());
        assert_eq!(seqs(&t, 9), [9, 10]);
        assert_eq!(seqs(&t, 11), Vec::<u64>::new());
    }

    #[test]
    fn the_cursor_finds_each_record_by_its_position() {
        let t = tree();
        let mut c = Cursor::default();
        for g in [1u64, 3, 4, 8, 6, 10, 2] {
            let bytes = c.get(&t, g).unwrap().unwrap();
            assert_eq!(record::peek(&bytes).unwrap().2, g);
        }
        assert_eq!(c.get(&t, 11).unwrap(), None);
        let fresh = |g| Cursor::default().get(&t, g).unwrap().map(|b| b.len());
        assert_eq!(fresh(7), fresh(6));
    }

    #[test]
    fn a_missing_block_is_passed_over_and_a_broken_frame_named() {
        let t = tree();
        t.remove(block_key(4)).unwrap();
        assert_eq!(seqs(&t, 1), [1, 2, 3, 9, 10]);
        let mut v = t.get(block_key(9)).unwrap().unwrap().to_vec();
        v.truncate(v.len() - 1);
        t.insert(block_key(9), v).unwrap();
        let items: Vec<_> = record_bytes(t.clone(), 1).collect();
        match items.last() {
            Some(Err(Fault::Bad(b))) => {
                assert_eq!(b.global_seq, 10);
                assert!(b.reason.contains("block 9"), "{b}");
            }
            other => panic!("expected a broken frame, got {other:?}"),
        }
    }

    #[test]
    fn split_and_join_are_inverse() {
        let records: [&[u8]; 3] = [b"a", b"bcd", b"ef"];
        let block = join(records);
        assert_eq!(split(&block).unwrap(), records);
        assert!(split(&block[..block.len() - 1]).is_err());
        assert!(split(&[0, 0, 0, 0]).is_err(), "an empty record");
    }

    #[test]
    fn the_last_record_and_the_count() {
        let t = tree();
        let (seq, bytes) = last_record(&t).unwrap().unwrap();
        assert_eq!((seq, record::peek(&bytes).unwrap().2), (10, 10));
        assert_eq!(count_records(&t).unwrap(), 10);
        assert!(remove_record(&t, 10).unwrap());
        assert!(remove_record(&t, 9).unwrap());
        assert_eq!(last_record(&t).unwrap().unwrap().0, 8);
        assert_eq!(t.get(block_key(9)).unwrap(), None, "an emptied block goes");
    }
}
