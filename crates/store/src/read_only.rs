//! A data dir opened for reading only ([`super::Store::open_read_only`]):
//! the same lock, format check and layout as a [`super::Store`], but no
//! writer, and sled opened on a private copy of its files (see `guard`)
//! with a small page cache, so that streaming a log of millions of records
//! keeps memory bounded (a writing `Store` uses a
//! cache sized for a daemon's working set). A full scan
//! ([`ReadOnly::records`]) reads and decodes on its own thread, a few
//! batches ahead, while the caller builds and writes its output.

use super::dir::{self, DirLock};
use super::index::{self, Tail};
use super::layout::Head;
use super::reader;
use super::{Error, Record, SagaMeta, FIRST_SEQ};
use crate::model::SagaId;
use std::path::{Path, PathBuf};

/// sled's page cache for a read-only open (bytes). A bigger cache does not
/// speed a single forward scan up; what remains of the process's memory is
/// sled's own page table, loaded at open and proportional to the
/// database's size.
const CACHE: u64 = 4 << 20;

/// Records decoded per batch handed from the reader thread.
const BATCH: usize = 256;
/// Batches the reader thread may be ahead of the caller (bounds memory).
const AHEAD: usize = 4;

/// A data dir opened for reading, holding its lock: no daemon may start
/// meanwhile.
pub struct ReadOnly {
    /// sled's default tree, which holds every key of the log's layout.
    tree: sled::Tree,
    /// The records after the index's mark (none after a clean stop).
    tail: Tail,
    /// The sled directory, for messages.
    sled_dir: PathBuf,
    /// The database (kept open for the tree).
    _db: sled::Db,
    /// The private copy sled works on (see `guard`), removed after it.
    _copy: super::guard::SledCopy,
    /// The data dir's lock (see `dir::lock_for_reading`).
    _lock: Option<DirLock>,
}

impl ReadOnly {
    /// Takes the lock, checks the format and the layout version, opens sled
    /// with a small cache. A dir without a log is an error, never created.
    pub(super) fn open(data_dir: &Path) -> Result<ReadOnly, Error> {
        if !dir::check_format(data_dir)? {
            return Err(Error::io(
                data_dir.join(super::FORMAT_FILE),
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a closeout data dir"),
            ));
        }
        // sled's recovery may erase what it cannot read: it works on a
        // private copy, and the data dir keeps every byte.
        let (lock, sled_dir, db, copy) = super::guard::open_for_reading(data_dir, Some(CACHE))?;
        let tree: sled::Tree = (*db).clone();
        reader::check_version(&tree, data_dir, &sled_dir)?;
        let tail = Tail::read(&tree).map_err(reader::fault(&sled_dir))?;
        Ok(ReadOnly {
            tree,
            tail,
            sled_dir,
            _db: db,
            _copy: copy,
            _lock: lock,
        })
    }

    /// The log's durable head.
    pub fn head(&self) -> Result<Head, Error> {
        reader::head(&self.tree, &self.sled_dir)
    }

    /// Every record from the first, each checked against its own hash and
    /// its position. A reader thread reads them from sled (point lookups of
    /// their blocks, not sled's range iterator: see [`super::record_bytes`]
    /// for why) and decodes a few batches ahead of the caller; it stops at
    /// the first error, or when the iterator is dropped.
    pub fn records(&self) -> Prefetch {
        let tree = self.tree.clone();
        let dir = self.sled_dir.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<Record, Error>>>(AHEAD);
        let reader = std::thread::Builder::new()
            .name("closeout-log-read".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                for r in reader::records_from(tree, dir, FIRST_SEQ) {
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
                current: vec![Err(Error::ReadThread(format!("cannot start: {e}")))].into_iter(),
            },
        }
    }

    /// A saga's records in order from saga seq `from`, through its index.
    pub fn saga_records(
        &self,
        saga: &SagaId,
        from: u64,
    ) -> impl Iterator<Item = Result<Record, Error>> + '_ {
        reader::saga_records(
            self.tree.clone(),
            self.sled_dir.clone(),
            &self.tail,
            saga.clone(),
            from,
        )
    }

    /// Every saga with its next seq, in saga key order (id length, then id).
    pub fn sagas(&self) -> Result<Vec<(SagaId, u64)>, Error> {
        index::sagas(&self.tree, &self.tail).map_err(reader::fault(&self.sled_dir))
    }

    /// Every saga with its latest snapshot, as [`super::Store::list_sagas`].
    pub fn list_sagas(&self) -> Result<Vec<SagaMeta>, Error> {
        reader::list_sagas(&self.tree, &self.sled_dir, &self.tail)
    }

    /// Whether the saga is in the log.
    pub fn has_saga(&self, saga: &SagaId) -> Result<bool, Error> {
        index::next_seq(&self.tree, &self.tail, saga)
            .map(|n| n.is_some())
            .map_err(reader::fault(&self.sled_dir))
    }

    /// One record of a saga by its saga seq.
    pub fn saga_record(&self, saga: &SagaId, saga_seq: u64) -> Result<Option<Record>, Error> {
        self.saga_records(saga, saga_seq)
            .next()
            .transpose()
            .map(|r| r.filter(|r| r.saga_seq == saga_seq))
    }
}

/// The records of [`ReadOnly::records`], read ahead on another thread.
pub struct Prefetch {
    /// Batches from the reader (none once it is done).
    rx: Option<std::sync::mpsc::Receiver<Vec<Result<Record, Error>>>>,
    /// The reader thread, joined when the iterator is dropped.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The batch being handed out.
    current: std::vec::IntoIter<Result<Record, Error>>,
}

impl Iterator for Prefetch {
    type Item = Result<Record, Error>;

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
                        return Some(Err(Error::ReadThread("it panicked".into())));
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
