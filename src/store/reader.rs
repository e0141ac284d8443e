//! Reading the log: the open-time consistency check, saga metadata and
//! snapshots, and lazy record iterators.

use std::path::{Path, PathBuf};

use crate::model::SagaId;

use super::layout::{self, Head};
use super::{record, BadRecord, Error, Record, SagaMeta, Snapshot, FORMAT_VERSION};
use super::{FIRST_SEQ, SNAPSHOT_VERSION};

fn sled_err(dir: &Path) -> impl Fn(sled::Error) -> Error + '_ {
    move |source| Error::Sled {
        dir: dir.to_path_buf(),
        source,
    }
}

fn damaged(global_seq: u64, reason: impl Into<String>) -> Error {
    Error::Damaged(BadRecord {
        global_seq,
        saga_id: None,
        saga_seq: None,
        reason: reason.into(),
    })
}

/// The durable head.
pub fn head(tree: &sled::Tree, dir: &Path) -> Result<Head, Error> {
    let bytes = tree.get(layout::HEAD).map_err(sled_err(dir))?;
    bytes
        .as_deref()
        .and_then(Head::from_bytes)
        .ok_or_else(|| damaged(0, "the log's head entry is missing or not 48 bytes"))
}

/// Checks the layout version stored inside sled.
pub fn check_version(tree: &sled::Tree, data_dir: &Path, dir: &Path) -> Result<(), Error> {
    let version = tree.get(layout::VERSION).map_err(sled_err(dir))?;
    let v = version
        .as_deref()
        .and_then(|v| <[u8; 2]>::try_from(v).ok())
        .map(u16::from_be_bytes);
    if v != Some(FORMAT_VERSION) {
        return Err(Error::UnknownFormat {
            dir: data_dir.to_path_buf(),
            found: v.map_or("missing".into(), |v| v.to_string()),
            known: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Checks an existing log at open: its version, and that the head names the
/// last record and its hash. Reads only.
pub fn check_open(tree: &sled::Tree, data_dir: &Path, dir: &Path) -> Result<Head, Error> {
    check_version(tree, data_dir, dir)?;
    let head = head(tree, dir)?;
    let last = tree
        .range(layout::record_key(0)..=layout::record_key(u64::MAX))
        .next_back()
        .transpose()
        .map_err(sled_err(dir))?;
    match last {
        None if head.last_seq == 0 => Ok(head),
        None => Err(damaged(
            1,
            format!(
                "the log holds no record but its head says {}",
                head.last_seq
            ),
        )),
        Some((k, v)) => {
            let seq = layout::record_seq(&k).unwrap_or(0);
            if seq < head.last_seq {
                return Err(damaged(
                    seq + 1,
                    format!(
                        "the log ends at record {seq} but its head says {}: the tail was cut",
                        head.last_seq
                    ),
                ));
            }
            if seq > head.last_seq {
                return Err(damaged(
                    seq,
                    format!("record beyond the head ({})", head.last_seq),
                ));
            }
            let r = record::decode(&v).map_err(|reason| damaged(seq, reason))?;
            if r.global_seq != seq || r.hash != head.last_hash {
                return Err(Error::Damaged(BadRecord {
                    global_seq: seq,
                    saga_id: Some(r.saga_id),
                    saga_seq: Some(r.saga_seq),
                    reason: "the last record does not match the log's head".into(),
                }));
            }
            Ok(head)
        }
    }
}

fn snapshot_of(
    tree: &sled::Tree,
    dir: &Path,
    saga: &SagaId,
) -> Result<Option<(u64, Snapshot)>, Error> {
    let Some(bytes) = tree
        .get(layout::saga_key(layout::SNAPSHOT, saga))
        .map_err(sled_err(dir))?
    else {
        return Ok(None);
    };
    crate::codec::decode_versioned::<(u64, Snapshot)>(SNAPSHOT_VERSION, &bytes)
        .map(Some)
        .map_err(|source| Error::Codec {
            saga: saga.clone(),
            source,
        })
}

fn meta(tree: &sled::Tree, dir: &Path, saga: SagaId, next_seq: u64) -> Result<SagaMeta, Error> {
    let snap = snapshot_of(tree, dir, &saga)?;
    Ok(SagaMeta {
        saga_id: saga,
        next_seq,
        snapshot_seq: snap.as_ref().map(|(s, _)| *s),
        snapshot: snap.map(|(_, s)| s),
    })
}

/// One saga's metadata.
pub fn saga(tree: &sled::Tree, dir: &Path, saga: &SagaId) -> Result<Option<SagaMeta>, Error> {
    match layout::next_seq(tree, saga).map_err(sled_err(dir))? {
        None => Ok(None),
        Some(next) => meta(tree, dir, saga.clone(), next).map(Some),
    }
}

/// Every saga's metadata.
pub fn list_sagas(tree: &sled::Tree, dir: &Path) -> Result<Vec<SagaMeta>, Error> {
    let mut out = Vec::new();
    for item in layout::sagas(tree) {
        let (saga, next) = item.map_err(sled_err(dir))?;
        out.push(meta(tree, dir, saga, next)?);
    }
    Ok(out)
}

/// Decodes the record stored under `key_seq`, checking it says so.
pub fn decode_at(key_seq: u64, bytes: &[u8]) -> Result<Record, Error> {
    let r = record::decode(bytes).map_err(|reason| damaged(key_seq, reason))?;
    if r.global_seq != key_seq {
        return Err(Error::Damaged(BadRecord {
            global_seq: key_seq,
            saga_id: Some(r.saga_id),
            saga_seq: Some(r.saga_seq),
            reason: format!(
                "record stored at global seq {key_seq} says it is {}",
                r.global_seq
            ),
        }));
    }
    Ok(r)
}

/// Records from `from` on, lazily.
pub fn records_from(
    tree: sled::Tree,
    dir: PathBuf,
    from: u64,
) -> impl Iterator<Item = Result<Record, Error>> {
    tree.range(layout::record_key(from)..=layout::record_key(u64::MAX))
        .map(move |item| {
            let (k, v) = item.map_err(sled_err(&dir))?;
            let seq = layout::record_seq(&k).unwrap_or(0);
            decode_at(seq, &v)
        })
}

/// A saga's records from saga seq `from` on, lazily, through its index.
pub fn saga_records(
    tree: sled::Tree,
    dir: PathBuf,
    saga: SagaId,
    from: u64,
) -> impl Iterator<Item = Result<Record, Error>> {
    let start = layout::index_key(&saga, from.max(FIRST_SEQ));
    let end = layout::index_key(&saga, u64::MAX);
    let index = tree.range(start..=end);
    index.map(move |item| {
        let (k, v) = item.map_err(sled_err(&dir))?;
        let saga_seq = k
            .len()
            .checked_sub(8)
            .and_then(|i| layout::u64_value(k.get(i..)?))
            .unwrap_or(0);
        let bad = |global_seq, reason: String| {
            Error::Damaged(BadRecord {
                global_seq,
                saga_id: Some(saga.clone()),
                saga_seq: Some(saga_seq),
                reason,
            })
        };
        let global =
            layout::u64_value(&v).ok_or_else(|| bad(0, "its index entry is not 8 bytes".into()))?;
        let bytes = tree
            .get(layout::record_key(global))
            .map_err(sled_err(&dir))?
            .ok_or_else(|| bad(global, "the record its index names is missing".into()))?;
        let r = decode_at(global, &bytes)?;
        if r.saga_id != saga || r.saga_seq != saga_seq {
            return Err(bad(
                global,
                format!(
                    "index names this record but it is saga {} seq {}",
                    r.saga_id, r.saga_seq
                ),
            ));
        }
        Ok(r)
    })
}
