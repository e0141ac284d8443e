//! `verify`: walks the whole chain in global order and names the first record
//! that does not match. The index (its runs, up to its mark) is checked
//! against the records by per-saga digests built in two sequential scans (see
//! [`verify_each`]), and each saga's index end and snapshot against where its
//! records end ([`check_ends`]). Memory grows with the number of sagas (a
//! few seqs and two digests each), not with the number of records.

use rustc_hash::FxHashMap as HashMap;
use std::path::Path;

use crate::model::SagaId;

use super::index;
use super::layout;
use super::reader::{decode_at, head};
use super::{BadRecord, Error, Record, VerifyReport, FIRST_SEQ};

fn bad(global_seq: u64, reason: impl Into<String>) -> Option<BadRecord> {
    Some(BadRecord {
        global_seq,
        saga_id: None,
        saga_seq: None,
        reason: reason.into(),
    })
}

/// Verifies the chain, the per-saga seqs, the index and the head.
pub fn verify(tree: &sled::Tree, dir: &Path) -> Result<VerifyReport, Error> {
    verify_each(tree, dir, &mut |_| {})
}

/// Per saga, a digest of (saga seq, global seq) in saga order.
type Digests = HashMap<SagaId, blake3::Hasher>;

fn feed(digests: &mut Digests, saga: &SagaId, saga_seq: u64, global: &[u8]) {
    let h = match digests.get_mut(saga) {
        Some(h) => h,
        None => digests.entry(saga.clone()).or_default(),
    };
    digest(h, saga_seq, global);
}

fn digest(h: &mut blake3::Hasher, saga_seq: u64, global: &[u8]) {
    h.update(&saga_seq.to_be_bytes());
    h.update(global);
}

/// What the walk knows of a saga: where its records end, and the digest of
/// its indexed records (empty while none is up to the index's mark).
struct Walked {
    ends: Ends,
    digest: blake3::Hasher,
}

/// Where a saga's records end, as the walk found them.
struct Ends {
    /// One after its last record.
    next: u64,
    /// One after its last record up to the index's mark.
    indexed_next: u64,
    /// The global seq of its last record (named when its ends are wrong).
    last_global: u64,
}

/// The digests of the index's runs, one sequential scan; `None` if a key
/// is not an index key or a value not a run (every saga is then suspect).
fn index_digests(tree: &sled::Tree) -> sled::Result<Option<Digests>> {
    let mut digests = Digests::default();
    for item in tree.range([layout::INDEX]..[layout::INDEX + 1]) {
        let (k, v) = item?;
        let (Some((saga, last)), Some(globals)) = (layout::index_parts(&k), index::decode_run(&v))
        else {
            return Ok(None);
        };
        let Some(first) = (last + 1).checked_sub((v.len() / 8) as u64) else {
            return Ok(None);
        };
        for (seq, g) in (first..).zip(globals) {
            feed(&mut digests, &saga, seq, &g.to_be_bytes());
        }
    }
    Ok(Some(digests))
}

/// [`verify`], handing every record that passed its checks to `sink`, in
/// global order (so that a caller checks their events in the same pass).
///
/// The index is checked against the records by digest: the walk digests
/// each saga's (saga seq, global seq) pairs, another thread the index's, in
/// one sequential scan each (instead of a point lookup per record). Only
/// where they differ, or once the walk found a bad record, are the records
/// looked up one by one, to name the first whose index entry is missing or
/// wrong.
pub fn verify_each(
    tree: &sled::Tree,
    dir: &Path,
    sink: &mut dyn FnMut(Record),
) -> Result<VerifyReport, Error> {
    let mut ends = HashMap::default();
    let report = verify_records(tree, dir, sink, &mut ends)?;
    if report.first_bad.is_some() {
        return Ok(report);
    }
    let first_bad = check_ends(tree, dir, &ends)?;
    Ok(VerifyReport {
        records: report.records,
        first_bad,
    })
}

/// The chain, the seqs and the index runs (see [`verify_each`]); `ends`
/// gets where each saga's records end once the chain is sound.
fn verify_records(
    tree: &sled::Tree,
    dir: &Path,
    sink: &mut dyn FnMut(Record),
    ends: &mut HashMap<SagaId, Ends>,
) -> Result<VerifyReport, Error> {
    let sled_err = |source| Error::Sled {
        dir: dir.to_path_buf(),
        source,
    };
    let mut digests = Digests::default();
    let (report, index) = std::thread::scope(|scope| {
        let index = scope.spawn(|| index_digests(tree));
        let report = walk(tree, dir, sink, &mut digests, ends);
        (report, index.join())
    });
    let report = report?;
    let index = match index {
        Ok(r) => r.map_err(sled_err)?,
        Err(_) => None,
    };
    // Which sagas need a record-by-record look: none if the walk went to
    // the end and the digests agree.
    let suspects: Option<std::collections::HashSet<SagaId>> = match (&report.first_bad, index) {
        (None, Some(index)) => {
            let mut differ = std::collections::HashSet::new();
            for (saga, h) in &digests {
                if index.get(saga).map(blake3::Hasher::finalize) != Some(h.finalize()) {
                    differ.insert(saga.clone());
                }
            }
            if differ.is_empty() && index.len() == digests.len() {
                return Ok(report);
            }
            Some(differ)
        }
        _ => None,
    };
    // Records after the index's mark are not indexed yet (the tail).
    let mark = index::indexed(tree).unwrap_or(0);
    let upto = match &report.first_bad {
        Some(b) => b.global_seq.saturating_sub(1),
        None => report.records,
    }
    .min(mark);
    match first_index_bad(tree, dir, upto, suspects.as_ref())? {
        Some(b)
            if report
                .first_bad
                .as_ref()
                .is_none_or(|f| b.global_seq < f.global_seq) =>
        {
            Ok(VerifyReport {
                records: b.global_seq - FIRST_SEQ,
                first_bad: Some(b),
            })
        }
        // Every record's entry is right, yet the digests differ: the index
        // holds more than the records (entries of no saga, or past a saga's
        // last record) or something that is not a run.
        None if report.first_bad.is_none() => Ok(VerifyReport {
            records: report.records,
            first_bad: bad(
                upto,
                "the index holds entries that no record up to its mark matches \
                 (a saga with no records, entries past a saga's last record, or a malformed run)",
            ),
        }),
        _ => Ok(report),
    }
}

/// The first record up to `upto` (of the `suspects`, or of any saga) whose
/// index entry is missing or wrong: one point lookup per record.
fn first_index_bad(
    tree: &sled::Tree,
    dir: &Path,
    upto: u64,
    suspects: Option<&std::collections::HashSet<SagaId>>,
) -> Result<Option<BadRecord>, Error> {
    let sled_err = |source| Error::Sled {
        dir: dir.to_path_buf(),
        source,
    };
    for item in super::blocks::record_bytes(tree.clone(), FIRST_SEQ) {
        let (seq, v) = match item {
            Ok(r) => r,
            Err(index::Fault::Sled(e)) => return Err(sled_err(e)),
            Err(index::Fault::Bad(_)) => return Ok(None),
        };
        if seq > upto {
            break;
        }
        let Ok(r) = decode_at(seq, &v) else {
            return Ok(None);
        };
        if suspects.is_some_and(|s| !s.contains(&r.saga_id)) {
            continue;
        }
        let index = match index::lookup_run(tree, &r.saga_id, r.saga_seq) {
            Ok(g) => g,
            Err(index::Fault::Sled(e)) => return Err(sled_err(e)),
            Err(index::Fault::Bad(_)) => None,
        };
        if index != Some(seq) {
            return Ok(Some(BadRecord {
                global_seq: seq,
                saga_id: Some(r.saga_id),
                saga_seq: Some(r.saga_seq),
                reason: "its index entry is missing or wrong".into(),
            }));
        }
    }
    Ok(None)
}

/// The chain walk: hashes, links, seqs, head; once it reaches the end
/// sound, each saga's digest of its indexed records in `digests` and where
/// its records end in `ends`.
fn walk(
    tree: &sled::Tree,
    dir: &Path,
    sink: &mut dyn FnMut(Record),
    digests: &mut Digests,
    ends: &mut HashMap<SagaId, Ends>,
) -> Result<VerifyReport, Error> {
    let head = match head(tree, dir) {
        Ok(h) => h,
        Err(Error::Damaged(b)) => {
            return Ok(VerifyReport {
                records: 0,
                first_bad: Some(b),
            })
        }
        Err(e) => return Err(e),
    };
    let sled_err = |source| Error::Sled {
        dir: dir.to_path_buf(),
        source,
    };
    let mark = match index::indexed(tree) {
        Ok(m) if m <= head.last_seq => m,
        Ok(m) => {
            let reason = format!(
                "the index claims records up to {m} but the log's head says {}",
                head.last_seq
            );
            return Ok(VerifyReport {
                records: 0,
                first_bad: bad(head.last_seq + 1, reason),
            });
        }
        Err(index::Fault::Sled(e)) => return Err(sled_err(e)),
        Err(f @ index::Fault::Bad(_)) => {
            return Ok(VerifyReport {
                records: 0,
                first_bad: bad(0, f.to_string()),
            })
        }
    };
    let mut expected = FIRST_SEQ;
    let mut prev = [0u8; 32];
    let mut sagas: HashMap<SagaId, Walked> = HashMap::default();
    let report = |records: u64, first_bad| Ok(VerifyReport { records, first_bad });
    for item in super::blocks::record_bytes(tree.clone(), FIRST_SEQ) {
        let records = expected - FIRST_SEQ;
        let (seq, v) = match item {
            Ok(r) => r,
            Err(index::Fault::Sled(e)) => return Err(sled_err(e)),
            Err(index::Fault::Bad(b)) => return report(records, Some(b)),
        };
        if seq != expected {
            let reason = if seq > expected {
                format!("record {expected} is missing (the next one stored is {seq})")
            } else {
                format!("the record stored after {} says it is {seq}", expected - 1)
            };
            return report(records, bad(expected, reason));
        }
        let r = match decode_at(seq, &v) {
            Ok(r) => r,
            Err(Error::Damaged(b)) => return report(records, Some(b)),
            Err(e) => return Err(e),
        };
        let named = |reason: String| {
            Some(BadRecord {
                global_seq: seq,
                saga_id: Some(r.saga_id.clone()),
                saga_seq: Some(r.saga_seq),
                reason,
            })
        };
        if r.prev_hash != prev {
            let reason = format!("its previous hash does not match record {}", seq - 1);
            return report(records, named(reason));
        }
        let saga = match sagas.get_mut(&r.saga_id) {
            Some(w) => w,
            None => sagas.entry(r.saga_id.clone()).or_insert(Walked {
                ends: Ends {
                    next: FIRST_SEQ,
                    indexed_next: FIRST_SEQ,
                    last_global: 0,
                },
                digest: blake3::Hasher::new(),
            }),
        };
        let due = saga.ends.next;
        if r.saga_seq != due {
            let reason = format!("saga seq {} where {due} was due", r.saga_seq);
            return report(records, named(reason));
        }
        if seq <= mark {
            digest(&mut saga.digest, r.saga_seq, &seq.to_be_bytes());
            saga.ends.indexed_next = r.saga_seq + 1;
        }
        saga.ends.next += 1;
        saga.ends.last_global = seq;
        prev = r.hash;
        expected += 1;
        sink(r);
    }
    let last = expected - 1;
    let records = expected - FIRST_SEQ;
    if last < head.last_seq {
        let reason = format!(
            "the log ends at record {last} but its head says {}: the tail was cut",
            head.last_seq
        );
        return report(records, bad(expected, reason));
    }
    if last > head.last_seq {
        let reason = format!("record beyond the log's head ({})", head.last_seq);
        return report(records, bad(head.last_seq + 1, reason));
    }
    if prev != head.last_hash {
        return report(
            records,
            bad(last, "the last record's hash differs from the head's"),
        );
    }
    for (saga, w) in sagas {
        if w.digest.count() > 0 {
            digests.insert(saga.clone(), w.digest);
        }
        ends.insert(saga, w.ends);
    }
    report(records, None)
}

/// Checks what readers take a saga's end from (see [`index::end_of`]):
/// every index end and snapshot names a saga with records and no event past
/// its last; and a saga with no event after the index's mark ends where
/// the larger of its index end and one after its snapshot's seq says. The
/// problem with the lowest global seq is named (its saga's last record).
fn check_ends(
    tree: &sled::Tree,
    dir: &Path,
    ends: &HashMap<SagaId, Ends>,
) -> Result<Option<BadRecord>, Error> {
    let sled_err = |source| Error::Sled {
        dir: dir.to_path_buf(),
        source,
    };
    let mut problems: Vec<BadRecord> = Vec::new();
    let mut named = |saga: &SagaId, reason: String| {
        let (global, seq) = ends
            .get(saga)
            .map_or((0, None), |e| (e.last_global, Some(e.next - 1)));
        problems.push(BadRecord {
            global_seq: global,
            saga_id: Some(saga.clone()),
            saga_seq: seq,
            reason,
        });
    };
    // Each saga's index end and snapshot seq, as `index::end_of` takes them.
    let mut claims: HashMap<SagaId, (Option<u64>, Option<u64>)> = HashMap::default();
    for (prefix, what) in [(layout::ENDS, "index end"), (layout::SNAPSHOT, "snapshot")] {
        for item in tree.range([prefix]..[prefix + 1]) {
            let (k, v) = item.map_err(sled_err)?;
            let Some(saga) = layout::saga_of(&k) else {
                return Ok(bad(0, format!("a {what} key is malformed")));
            };
            // The snapshot is decoded whole: recovery reads all of it.
            let value = if prefix == layout::ENDS {
                layout::u64_value(&v).ok_or_else(|| "not 8 bytes".to_string())
            } else {
                super::decode_snapshot(&v)
                    .map(|(s, _)| s)
                    .map_err(|e| e.to_string())
            };
            let value = match value {
                Ok(c) => c,
                Err(e) => {
                    named(&saga, format!("its {what} cannot be read: {e}"));
                    continue;
                }
            };
            match ends.get(&saga) {
                None => named(
                    &saga,
                    format!("a {what} names saga {saga}, which has no record"),
                ),
                Some(e) if prefix == layout::ENDS && value > e.indexed_next => named(
                    &saga,
                    format!(
                        "its index end says seq {value} follows its runs, but its indexed \
                         events end at seq {}",
                        e.indexed_next - 1
                    ),
                ),
                Some(e) if prefix == layout::SNAPSHOT && value >= e.next => named(
                    &saga,
                    format!("its snapshot names seq {value}, past its last event"),
                ),
                Some(_) => {}
            }
            let claim = claims.entry(saga).or_default();
            if prefix == layout::ENDS {
                claim.0 = Some(value);
            } else {
                claim.1 = Some(value);
            }
        }
    }
    for (saga, e) in ends {
        let (end, snapshot) = claims.get(saga).copied().unwrap_or_default();
        let claim = index::end_of(end, snapshot).unwrap_or(FIRST_SEQ);
        if e.indexed_next == e.next && e.next > FIRST_SEQ && claim != e.next {
            named(
                saga,
                format!(
                    "neither its index end nor its snapshot says its events end at seq {} \
                     (they say {})",
                    e.next - 1,
                    claim.saturating_sub(1)
                ),
            );
        }
    }
    Ok(problems.into_iter().min_by_key(|b| b.global_seq))
}
