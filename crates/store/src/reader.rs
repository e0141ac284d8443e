//! Reading the log: the open-time consistency check, saga metadata and
//! snapshots, and lazy record iterators.

use std::path::{Path, PathBuf};

use crate::model::SagaId;

use super::blocks;
use super::index::{self, Entries, Fault, Tail};
use super::layout::{self, Head};
use super::{record, BadRecord, Error, Record, SagaMeta, Snapshot, FORMAT_VERSION};

fn sled_err(dir: &Path) -> impl Fn(sled::Error) -> Error + '_ {
    move |source| Error::Sled {
        dir: dir.to_path_buf(),
        source,
    }
}

/// The store error for an index fault.
pub fn fault(dir: &Path) -> impl Fn(Fault) -> Error + '_ {
    move |f| match f {
        Fault::Sled(source) => Error::Sled {
            dir: dir.to_path_buf(),
            source,
        },
        Fault::Bad(b) => Error::Damaged(b),
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
    let mark = index::indexed(tree).map_err(fault(dir))?;
    if mark > head.last_seq {
        return Err(damaged(
            head.last_seq + 1,
            format!(
                "the index claims records up to {mark} but the log's head says {}",
                head.last_seq
            ),
        ));
    }
    let last = super::blocks::last_record(tree).map_err(fault(dir))?;
    match last {
        None if head.last_seq == 0 => Ok(head),
        None => Err(damaged(
            1,
            format!(
                "the log holds no record but its head says {}",
                head.last_seq
            ),
        )),
        Some((seq, v)) => {
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
    let bytes = tree
        .get(layout::saga_key(layout::SNAPSHOT, saga))
        .map_err(sled_err(dir))?;
    bytes.map(|b| decode_snapshot(saga, &b)).transpose()
}

fn decode_snapshot(saga: &SagaId, bytes: &[u8]) -> Result<(u64, Snapshot), Error> {
    super::decode_snapshot(bytes).map_err(|source| Error::Codec {
        saga: saga.clone(),
        source,
    })
}

fn meta(saga: SagaId, next_seq: u64, snap: Option<(u64, Snapshot)>) -> SagaMeta {
    SagaMeta {
        saga_id: saga,
        next_seq,
        snapshot_seq: snap.as_ref().map(|(s, _)| *s),
        snapshot: snap.map(|(_, s)| s),
    }
}

/// One saga's metadata.
pub fn saga(
    tree: &sled::Tree,
    dir: &Path,
    tail: &Tail,
    saga: &SagaId,
) -> Result<Option<SagaMeta>, Error> {
    match index::next_seq(tree, tail, saga).map_err(fault(dir))? {
        None => Ok(None),
        Some(next) => Ok(Some(meta(
            saga.clone(),
            next,
            snapshot_of(tree, dir, saga)?,
        ))),
    }
}

/// Every saga's metadata: one scan of the snapshots and index ends.
pub fn list_sagas(tree: &sled::Tree, dir: &Path, tail: &Tail) -> Result<Vec<SagaMeta>, Error> {
    let decode =
        |saga: &SagaId, bytes: &[u8]| decode_snapshot(saga, bytes).map_err(Listing::Decode);
    let scanned = index::scan(tree, tail, decode).map_err(|e| match e {
        Listing::Read(f) => fault(dir)(f),
        Listing::Decode(e) => e,
    })?;
    Ok(scanned
        .into_iter()
        .map(|(saga, next, snap)| meta(saga, next, snap))
        .collect())
}

/// Why listing the sagas failed: reading the index and snapshots, or
/// decoding a snapshot.
enum Listing {
    Read(Fault),
    Decode(Error),
}

impl From<Fault> for Listing {
    fn from(f: Fault) -> Listing {
        Listing::Read(f)
    }
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

/// Records from `from` on, lazily (see [`blocks::record_bytes`]).
pub fn records_from(
    tree: sled::Tree,
    dir: PathBuf,
    from: u64,
) -> impl Iterator<Item = Result<Record, Error>> {
    blocks::record_bytes(tree, from).map(move |item| {
        let (seq, v) = item.map_err(fault(&dir))?;
        decode_at(seq, &v)
    })
}

/// A saga's records from saga seq `from` on, lazily, through its index.
pub fn saga_records(
    tree: sled::Tree,
    dir: PathBuf,
    tail: &Tail,
    saga: SagaId,
    from: u64,
) -> impl Iterator<Item = Result<Record, Error>> {
    let mut cursor = blocks::Cursor::default();
    Entries::new(&tree, tail, &saga, from).map(move |entry| {
        let (saga_seq, global) = entry.map_err(fault(&dir))?;
        let bad = |reason: String| {
            Error::Damaged(BadRecord {
                global_seq: global,
                saga_id: Some(saga.clone()),
                saga_seq: Some(saga_seq),
                reason,
            })
        };
        let bytes = cursor
            .get(&tree, global)
            .map_err(fault(&dir))?
            .ok_or_else(|| bad("the record its index names is missing".into()))?;
        let r = decode_at(global, &bytes)?;
        if r.saga_id != saga || r.saga_seq != saga_seq {
            return Err(bad(format!(
                "index names this record but it is saga {} seq {}",
                r.saga_id, r.saga_seq
            )));
        }
        Ok(r)
    })
}
