//! A lean, read-mostly view of a data directory for the exports: the same
//! lock and the same layout as [`crate::store::Store`] (through its public
//! `layout` and `record` modules), but sled opened with a small page cache,
//! so that streaming a log of millions of records keeps memory bounded
//! (`Store::open` uses sled's default 1 GiB cache, which a full scan fills).
//! A full scan ([`Lean::records`]) reads and decodes on its own thread, a few
//! batches ahead, while the caller builds and writes the lines.
//! Nothing is written; `verify` uses the real `Store` (its chain walk).

use crate::model::SagaId;
use crate::store::blocks;
use crate::store::index::{self, Entries, Tail};
use crate::store::{record, Record, FIRST_SEQ, FORMAT_FILE, FORMAT_VERSION, LOCK_FILE, SLED_DIR};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// sled's page cache for an export (bytes). A bigger cache does not speed a
/// single forward scan up; what remains of the process's memory is sled's
/// own page table, loaded at open and proportional to the database's size.
const CACHE: u64 = 4 << 20;

/// A data dir opened for reading, holding its lock.
pub struct Lean {
    /// sled's default tree.
    tree: sled::Tree,
    /// The records after the index's mark (none after a clean stop).
    tail: Tail,
    /// The database (kept open for the tree).
    _db: sled::Db,
    /// The data dir's lock, as `Store` takes it: no daemon may start meanwhile.
    _lock: File,
}

impl Lean {
    /// The log's durable head, if it can be read.
    pub fn head(&self) -> Option<crate::store::layout::Head> {
        let bytes = self.tree.get(crate::store::layout::HEAD).ok()??;
        crate::store::layout::Head::from_bytes(&bytes)
    }
}

/// Why a lean open or read failed (as text; the caller names the data dir).
pub enum Failure {
    /// Another process holds the data dir: its pid as written in the lock file.
    Locked(String),
    /// Anything else.
    Other(String),
}

impl Lean {
    /// Takes the lock, checks the format, opens sled with a small cache.
    pub fn open(dir: &Path) -> Result<Lean, Failure> {
        let other = |e: &dyn std::fmt::Display| Failure::Other(e.to_string());
        let format = std::fs::read_to_string(dir.join(FORMAT_FILE)).map_err(|e| other(&e))?;
        let want = format!("closeout-store {FORMAT_VERSION}");
        if format.trim() != want {
            return Err(Failure::Other(format!(
                "{FORMAT_FILE} says {:?}; this closeout reads {want:?} only",
                format.trim()
            )));
        }
        let mut lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| other(&e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Failure::Locked(if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.chars().take(20).collect()
                }));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(other(&e)),
        }
        let db =
            crate::store::open_sled(&dir.join(SLED_DIR), Some(CACHE)).map_err(|e| other(&e))?;
        let tree: sled::Tree = (*db).clone();
        let tail = Tail::read(&tree).map_err(|e| other(&e))?;
        Ok(Lean {
            tree,
            tail,
            _db: db,
            _lock: lock,
        })
    }

    /// Every record from the first, each checked against its own hash and
    /// its position. A reader thread reads them from sled (point lookups of
    /// their blocks, not sled's range iterator: see
    /// [`crate::store::record_bytes`] for why) and decodes a few batches
    /// ahead of the caller (who turns them into entries and lines on its own
    /// core); it stops at the first error, or when the iterator is dropped.
    pub fn records(&self) -> Prefetch {
        let tree = self.tree.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<Record, String>>>(AHEAD);
        let reader = std::thread::Builder::new()
            .name("closeout-audit-read".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                for item in crate::store::record_bytes(tree, FIRST_SEQ) {
                    let r = item
                        .map_err(|e| e.to_string())
                        .and_then(|(seq, v)| decode_at(seq, &v));
                    let failed = r.is_err();
                    batch.push(r);
                    if failed || batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if tx.send(full).is_err() || failed {
                            return;
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            });
        match reader {
            Ok(handle) => Prefetch {
                rx: Some(rx),
                reader: Some(handle),
                current: Vec::new().into_iter(),
            },
            Err(e) => Prefetch {
                rx: None,
                reader: None,
                current: vec![Err(format!("cannot start the reader thread: {e}"))].into_iter(),
            },
        }
    }

    /// A saga's records in order, through its index.
    pub fn saga_records(&self, saga: &SagaId) -> impl Iterator<Item = Result<Record, String>> + '_ {
        let saga = saga.clone();
        let mut cursor = blocks::Cursor::default();
        Entries::new(&self.tree, &self.tail, &saga, FIRST_SEQ).map(move |entry| {
            let (_, global) = entry.map_err(|e| e.to_string())?;
            let r = self.record(&mut cursor, global, &saga)?;
            if r.saga_id != saga {
                return Err(format!(
                    "record {global} is not of saga {saga}, as its index says"
                ));
            }
            Ok(r)
        })
    }

    /// The record with this global seq, named by the index of `saga`.
    fn record(
        &self,
        cursor: &mut blocks::Cursor,
        global: u64,
        saga: &SagaId,
    ) -> Result<Record, String> {
        let bytes = cursor
            .get(&self.tree, global)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("record {global}, named by the index of saga {saga}, is missing")
            })?;
        decode_at(global, &bytes)
    }

    /// Every saga with its next seq, in saga key order (id length, then id).
    pub fn sagas(&self) -> Result<Vec<(SagaId, u64)>, String> {
        index::sagas(&self.tree, &self.tail).map_err(|e| e.to_string())
    }

    /// Whether the saga is in the log.
    pub fn has_saga(&self, saga: &SagaId) -> Result<bool, String> {
        index::next_seq(&self.tree, &self.tail, saga)
            .map(|n| n.is_some())
            .map_err(|e| e.to_string())
    }

    /// One record of a saga by its saga seq.
    pub fn saga_record(&self, saga: &SagaId, saga_seq: u64) -> Result<Option<Record>, String> {
        match index::lookup(&self.tree, &self.tail, saga, saga_seq).map_err(|e| e.to_string())? {
            Some(global) => self
                .record(&mut blocks::Cursor::default(), global, saga)
                .map(Some),
            None => Ok(None),
        }
    }
}

/// Records decoded per batch handed from the reader thread.
const BATCH: usize = 256;
/// Batches the reader thread may be ahead of the caller (bounds memory).
const AHEAD: usize = 4;

/// The records of [`Lean::records`], read ahead on another thread.
pub struct Prefetch {
    /// Batches from the reader (none once it is done).
    rx: Option<std::sync::mpsc::Receiver<Vec<Result<Record, String>>>>,
    /// The reader thread, joined when the iterator is dropped.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The batch being handed out.
    current: std::vec::IntoIter<Result<Record, String>>,
}

impl Iterator for Prefetch {
    type Item = Result<Record, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(r);
            }
            match self.rx.as_ref()?.recv() {
                Ok(batch) => self.current = batch.into_iter(),
                Err(_) => {
                    self.rx = None;
                    if self.reader.take().is_some_and(|h| h.join().is_err()) {
                        return Some(Err("the reader thread panicked".into()));
                    }
                    return None;
                }
            }
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel stops the reader at its next batch; waiting
        // for it means no sled handle outlives the data dir's lock.
        self.rx = None;
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

/// Decodes the record stored under `seq`, checking it says so.
fn decode_at(seq: u64, bytes: &[u8]) -> Result<Record, String> {
    let r = record::decode(bytes).map_err(|reason| format!("record {seq}: {reason}"))?;
    if r.global_seq != seq {
        return Err(format!(
            "record stored at {seq} says it is {}",
            r.global_seq
        ));
    }
    Ok(r)
}
