//! `verify`: walks the whole chain in global order and names the first record
//! that does not match. Memory grows with the number of sagas (one next seq
//! each), not with the number of records.

use std::collections::HashMap;
use std::path::Path;

use crate::model::SagaId;

use super::layout;
use super::reader::{decode_at, head};
use super::{BadRecord, Error, VerifyReport, FIRST_SEQ};

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
    let mut expected = FIRST_SEQ;
    let mut prev = [0u8; 32];
    let mut next_of: HashMap<SagaId, u64> = HashMap::new();
    let report = |records: u64, first_bad| Ok(VerifyReport { records, first_bad });
    for item in tree.range(layout::record_key(0)..=layout::record_key(u64::MAX)) {
        let (k, v) = item.map_err(sled_err)?;
        let records = expected - FIRST_SEQ;
        let Some(seq) = layout::record_seq(&k) else {
            return report(records, bad(expected, "a record key is malformed"));
        };
        if seq != expected {
            let reason = format!("record {expected} is missing (the next one stored is {seq})");
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
        let saga_next = next_of.get(&r.saga_id).copied().unwrap_or(FIRST_SEQ);
        if r.saga_seq != saga_next {
            let reason = format!("saga seq {} where {saga_next} was due", r.saga_seq);
            return report(records, named(reason));
        }
        let index = tree
            .get(layout::index_key(&r.saga_id, r.saga_seq))
            .map_err(sled_err)?;
        if index.as_deref().and_then(layout::u64_value) != Some(seq) {
            return report(records, named("its index entry is missing or wrong".into()));
        }
        prev = r.hash;
        next_of.insert(r.saga_id, saga_next + 1);
        expected += 1;
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
    for (saga, next) in next_of {
        let stored = layout::next_seq(tree, &saga).map_err(sled_err)?;
        if stored != Some(next) {
            let reason = format!(
                "saga {saga}: its index ends after seq {stored:?}, not {}",
                next - 1
            );
            return report(records, bad(last, reason));
        }
    }
    report(records, None)
}
