//! The durable event log: an append-only, hash-chained record of every saga's
//! events on sled, with group commit, per-saga snapshots and `verify`.
//!
//! # Data dir
//!
//! ```text
//! <dir>/FORMAT          "closeout-store 3": the layout version, read before anything is touched
//! <dir>/closeout.lock   flock'ed while a Store is open; holds the owner's pid for the error message
//! <dir>/sled/           the sled database (one tree, the default one)
//! ```
//!
//! # Layout of the sled tree (see [`layout`])
//!
//! | key | value |
//! |---|---|
//! | `v` | the layout version, `u16` big-endian (the same as `FORMAT`) |
//! | `h` | the head: last global seq, last hash, last time (48 bytes) |
//! | `b` + global seq (u64 BE) | a block: consecutive records from that seq on, each behind its length (u32 LE), see [`blocks`]; a record is 68 bytes + saga id + payload, see [`record`] |
//! | `i` + saga key + saga seq (u64 BE) | an index run: the global seqs (u64 BE each) of the saga's consecutive events up to that seq |
//! | `e` + saga key | the saga's index end (u64 BE): one after the saga seq of its last run |
//! | `x` | the index mark (u64 BE): every record up to it is in a run, none after it |
//! | `s` + saga key | the saga's latest snapshot: `codec::encode_versioned(1, (last saga seq, Snapshot))` |
//!
//! A saga key is the saga id's length (one byte) followed by its bytes, so one
//! saga's keys never prefix another's. Big-endian seqs make sled's order the
//! log's order. The index is written lazily (see [`index`]): one run per
//! saga per window of events, and records are packed into blocks of about
//! 6 KiB (one commit's records, cut), so that an event costs a fraction of a
//! sled insert instead of two (sled's per-insert CPU cost, not fsync, bounds
//! the group-commit rate). The records after the mark, the unindexed tail (at
//! most a window and a commit), are found by reading their headers. A
//! saga's next seq is one after its snapshot's seq, its index end (written
//! with its runs only where the snapshot falls short of them) or one after
//! its last event in the tail, whichever is largest; the sagas are listed
//! by one scan of the snapshots and the index ends, and the tail.
//!
//! # Invariants
//!
//! - Global and saga seqs start at [`FIRST_SEQ`] (1) and have no gaps. An
//!   append states the saga seq it expects; a mismatch is
//!   [`Error::SeqConflict`], so two writers for one saga are caught.
//! - One chain over the whole log in global order: each record holds the
//!   previous record's hash and `blake3(prev hash ‖ header ‖ payload)`.
//! - Everything of one commit (the records of all appends in the group,
//!   snapshots, and the new head) is one atomic
//!   `sled::Batch`, followed by one `flush` (fsync). Callers are answered only
//!   after that flush, so an acknowledged event survives a crash, and the head
//!   always names the last record: a cut tail is detectable.
//! - A snapshot is stored in the same batch as the events it follows, with the
//!   saga seq of the last of them: recovery scans the `s` entries (and the
//!   few `e` entries) once and replays only events after each snapshot.
//!   Opening reads the format, the head, the last record and the unindexed
//!   tail: its cost does not grow with history.
//! - Index runs, index ends and the mark are written in one atomic batch,
//!   after the commit of their records; runs are never rewritten. A crash
//!   loses at most runs not yet flushed, together with their mark: the tail
//!   grows, nothing is wrong. A saga's end is the larger of its index end and
//!   one after its snapshot's seq (or its last event in the tail): the
//!   writer writes an index end only when the snapshot does not name the
//!   last event of the saga's run, and `verify` checks that these agree with
//!   the records.
//! - Records are never rewritten or deleted; a block holds the records of
//!   one commit (cut at about 6 KiB), so the head and the mark fall on a
//!   block's end.
//! - Only the writer thread writes; blocking sled calls stay off async
//!   workers (reads are short point lookups and lazy iterators).
//!
//! # What `open` and `verify` check
//!
//! `open` refuses an unknown `FORMAT` before touching anything (the `v` key
//! inside sled is checked too, but sled may rewrite its own snapshot file
//! when opened, so only the `FORMAT` check leaves every byte as it was), a data dir
//! locked by another process, and a head that does not match the last record
//! (a cut tail, a damaged last record). `verify` walks the whole chain and
//! names the first record that does not match: a changed byte (hash), a
//! removed record (gap), swapped records (a record stored under another
//! global seq, or a broken link), a cut tail (the head is ahead of the last
//! record), per-saga seq gaps, a broken block frame, index entries missing,
//! wrong, or naming no record up to the mark, and index ends or snapshots
//! that do not agree with where a saga's records end.
#![forbid(unsafe_code)]

use closeout_core::{codec, model};

// The on-disk format's parts are the store's own: readers go through
// `Store` and `ReadOnly`. The `internals` feature opens them to the
// workspace's own tests only (tampering with a record, fuzzing the decoder);
// no production build turns it on.
#[cfg(feature = "internals")]
pub mod blocks;
#[cfg(not(feature = "internals"))]
mod blocks;
mod dir;
mod error;
mod guard;
#[cfg(feature = "internals")]
pub mod index;
#[cfg(not(feature = "internals"))]
mod index;
#[cfg(feature = "internals")]
pub mod layout;
#[cfg(not(feature = "internals"))]
mod layout;
mod read_only;
mod reader;
#[cfg(feature = "internals")]
pub mod record;
#[cfg(not(feature = "internals"))]
mod record;
mod verify;
mod writer;

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::model::{SagaId, Timestamp};

pub use blocks::record_bytes;
pub use dir::{FORMAT_FILE, LOCK_FILE, SLED_DIR};
pub use error::Error;
pub use layout::Head;
pub use read_only::{Prefetch, ReadOnly};
pub use record::{Record, MAX_PAYLOAD, RECORD_VERSION};

use index::{Pending, Tail};
use writer::{AppendReq, Cmd, Writer};

/// The data dir layout version this build reads and writes.
/// Version 3 packs records into blocks (version 2 had one sled entry per
/// record, version 1 also one index entry per event); an older data dir is
/// refused as of another format.
pub const FORMAT_VERSION: u16 = 3;
/// The version of the encoded snapshot entries.
pub const SNAPSHOT_VERSION: u16 = 1;
/// The first global seq and the first saga seq.
pub const FIRST_SEQ: u64 = 1;

/// A saga's state after some of its events, opaque to the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The saga's encoded state.
    #[serde(with = "crate::codec::bytes")]
    pub state: Vec<u8>,
    /// The saga has ended: recovery need not resume it.
    pub terminal: bool,
    /// A short label for listings without decoding `state` (e.g. the tenant id).
    pub label: String,
}

/// The saga seq a snapshot entry's bytes name (the last event it follows),
/// read without decoding the snapshot itself (a saga's state can be large).
pub fn snapshot_seq(bytes: &[u8]) -> Result<u64, crate::codec::Error> {
    crate::codec::decode_versioned_prefix::<u64>(SNAPSHOT_VERSION, bytes)
}

/// A snapshot entry's bytes: the saga seq of the last event it follows, and
/// the snapshot.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, Snapshot), crate::codec::Error> {
    crate::codec::decode_versioned::<(u64, Snapshot)>(SNAPSHOT_VERSION, bytes)
}

/// What the store knows of a saga without reading its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaMeta {
    /// The saga's id; its records are keyed by it.
    pub saga_id: SagaId,
    /// The seq its next event must state.
    pub next_seq: u64,
    /// Its latest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The saga seq of the last event the snapshot includes.
    pub snapshot_seq: Option<u64>,
}

/// Where an acknowledged append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The global seq of its first event (the others follow without gaps).
    pub first_global_seq: u64,
    /// The saga seq of its first event.
    pub first_saga_seq: u64,
    /// The time stamped on all its events.
    pub at: Timestamp,
    /// How many appends were answered by the same flush (group commit), this
    /// one included: the metrics' batch-size histogram.
    pub group_size: usize,
}

/// The first record that does not match the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// Its global seq (for a removed record: the seq that is missing).
    pub global_seq: u64,
    /// Its saga, when the record could be read.
    pub saga_id: Option<SagaId>,
    /// Its saga seq, when the record could be read.
    pub saga_seq: Option<u64>,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.global_seq)?;
        if let (Some(s), Some(n)) = (&self.saga_id, self.saga_seq) {
            write!(f, " (saga {s} seq {n})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The outcome of [`Store::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many records matched the chain (before the first bad one).
    pub records: u64,
    /// The first record that does not match, if any.
    pub first_bad: Option<BadRecord>,
}

/// Opens the sled database in `sled_dir` (its page cache `cache_bytes`, or
/// sled's default), waiting out sled's own file lock while it is held by
/// this process: a `Store` just dropped, or a child that has not exec'd yet
/// holding a copy of its descriptor (see `dir::lock`), lets go within
/// milliseconds. The data dir's lock is the caller's to hold.
pub fn open_sled(sled_dir: &Path, cache_bytes: Option<u64>) -> sled::Result<sled::Db> {
    let mut tries = 0;
    loop {
        let mut config = sled::Config::new().path(sled_dir);
        if let Some(bytes) = cache_bytes {
            config = config.cache_capacity(bytes);
        }
        match open_catching(&config) {
            Err(sled::Error::Io(e))
                if tries < dir::SELF_LOCK_TRIES && e.to_string().contains("lock") =>
            {
                tries += 1;
                std::thread::sleep(dir::SELF_LOCK_PAUSE);
            }
            other => return other,
        }
    }
}

/// `config.open()`, with a panic of sled's turned into an error: sled 0.34
/// panics (rather than erring) on some damaged files while it recovers them
/// (`serialization.rs`, reading its snapshot), and a damaged log is input
/// closeout must refuse with a message, not die on. The panic's own message
/// is kept off stderr for this thread only (the hook is swapped under a
/// lock, and other threads' panics still reach the previous hook).
fn open_catching(config: &sled::Config) -> sled::Result<sled::Db> {
    static HOOK: Mutex<()> = Mutex::new(());
    let _held = HOOK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let me = std::thread::current().id();
    let previous: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        Arc::from(std::panic::take_hook());
    let passed = Arc::clone(&previous);
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            passed(info);
        }
    }));
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    drop(std::panic::take_hook());
    std::panic::set_hook(Box::new(move |info| previous(info)));
    opened.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(sled::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("sled could not read its files, which are damaged (it stopped: {why})"),
        )))
    })
}

/// The event log. Cheap to clone (all clones share one writer); `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    /// The shared state; the writer stops when the last clone is dropped.
    inner: Arc<Inner>,
}

struct Inner {
    /// The queue to the writer thread (taken on drop to stop it).
    tx: Option<mpsc::Sender<Cmd>>,
    /// The writer thread, joined on drop.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The sled tree, for reads.
    tree: sled::Tree,
    /// The sled directory, for error messages.
    sled_dir: PathBuf,
    /// The readers' view of the unindexed tail, caught up on each read.
    tail: Mutex<Tail>,
    /// What the writer has applied: a read finds the tail view current
    /// without touching sled when nothing was appended since.
    published: Arc<index::Published>,
    /// Writes the store state of a clean stop once `tree` is dropped (it is
    /// declared after it, so it drops after it).
    mark: MarkOnDrop,
    /// The private copy a reader's store works on (see `guard`), removed
    /// after sled let go of it.
    _copy: Option<guard::SledCopy>,
    /// Holds the data dir (a reader's copy: shared, or none where no daemon
    /// ever ran, see `dir::lock_for_reading`); dropped last.
    _lock: Option<dir::DirLock>,
}

/// The store state a clean stop writes, once sled let go of its files.
struct MarkOnDrop {
    /// The data dir; `None` for a reader's private copy, which leaves no
    /// mark.
    data_dir: Option<PathBuf>,
    /// sled's directory.
    sled_dir: PathBuf,
    /// The head at the stop; `None` until the writer stopped cleanly.
    head: Option<Head>,
}

impl Drop for MarkOnDrop {
    fn drop(&mut self) {
        // sled's files as the last handle left them (when a reader still
        // holds a tree they may change yet: the mark then will not match
        // them, and the next open checks a copy first, which is only
        // slower).
        let (Some(head), Some(data_dir)) = (self.head, &self.data_dir) else {
            return;
        };
        if let Ok(files) = guard::file_stats(&self.sled_dir) {
            let _ = guard::write(
                data_dir,
                &guard::Mark {
                    clean: true,
                    head,
                    files,
                },
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        let joined = match self.thread.lock() {
            Ok(mut t) => t.take().is_none_or(|t| t.join().is_ok()),
            Err(_) => false,
        };
        // A clean stop: the head, once everything is flushed; the mark is
        // written when `tree` is dropped (see `MarkOnDrop`).
        if joined && self.mark.data_dir.is_some() && self.tree.flush().is_ok() {
            self.mark.head = reader::head(&self.tree, &self.sled_dir).ok();
        }
    }
}

impl Store {
    /// Opens (or creates) the log in `dir`. Blocking. Refuses, changing
    /// nothing, a data dir of another format version or held by another
    /// process, and one whose head does not match its last record.
    ///
    /// Dropping the last clone stops the writer and joins its thread (a
    /// short block); call [`Store::close`] first from async code.
    pub fn open(dir: &Path) -> Result<Store, Error> {
        Store::open_with_cache(dir, None)
    }

    /// Opens `dir` for reading only, holding its lock, with a small page
    /// cache (see [`ReadOnly`]): for the exports of a stopped daemon's log.
    pub fn open_read_only(dir: &Path) -> Result<ReadOnly, Error> {
        ReadOnly::open(dir)
    }

    /// [`Store::open`] with sled's page cache set to `cache_bytes` (sled's
    /// default, 1 GiB, when `None`), for a process that only walks the log
    /// once, like `closeout verify`.
    pub fn open_with_cache(dir: &Path, cache_bytes: Option<u64>) -> Result<Store, Error> {
        Store::open_tuned(dir, cache_bytes, index::WINDOW)
    }

    /// [`Store::open_with_cache`] with the index written every `index_window`
    /// events instead of [`index::WINDOW`] (for tests of the tail).
    #[doc(hidden)]
    pub fn open_tuned(
        dir: &Path,
        cache_bytes: Option<u64>,
        index_window: usize,
    ) -> Result<Store, Error> {
        let formatted = dir.exists() && dir::check_format(dir)?;
        dir::create_private(dir).map_err(|e| Error::io(dir, e))?;
        let mut lock = dir::lock(dir)?;
        let sled_dir = dir.join(SLED_DIR);
        let sled_err = |source| Error::Sled {
            dir: sled_dir.clone(),
            source,
        };
        if !formatted && sled_dir.exists() {
            return Err(Error::UnknownFormat {
                dir: dir.to_path_buf(),
                found: format!("none ({FORMAT_FILE} missing beside {SLED_DIR}/)"),
                known: FORMAT_VERSION,
            });
        }
        if !formatted {
            // An empty mark, then FORMAT: a crash before sled is initialised
            // leaves a formatted dir with an empty mark and no database,
            // initialised on the next open; a formatted dir without its
            // database and without that empty mark held a log once.
            guard::write(
                dir,
                &guard::Mark {
                    clean: false,
                    head: Head::EMPTY,
                    files: Vec::new(),
                },
            )?;
            dir::write_format(dir)?;
        }
        // sled's recovery may erase what it cannot read: open the files
        // themselves only as a clean stop left them, else a copy first
        // (see `guard`).
        let mark = guard::read(dir)?;
        if sled_dir.exists() {
            if !guard::left_clean(mark.as_ref(), &sled_dir) {
                guard::dry_open(dir, &sled_dir, mark.as_ref())?;
            }
        } else if mark.as_ref().is_none_or(|m| m.head.last_seq > 0) {
            return Err(Error::SledMissing { dir: sled_dir });
        }
        let db = open_sled(&sled_dir, cache_bytes).map_err(sled_err)?;
        let tree: sled::Tree = (*db).clone();
        lock.record_pid(dir)?;
        let store = Store::start(dir, tree, sled_dir.clone(), Some(lock), None, index_window)?;
        // Written at every open: a crash then leaves a mark that is not
        // clean, and a removed sled directory is known to have held a log.
        guard::write(
            dir,
            &guard::Mark {
                clean: false,
                head: store.head()?,
                files: Vec::new(),
            },
        )?;
        Ok(store)
    }

    /// Opens a private copy of the log in `dir` (see `guard`) for reading
    /// and verifying it: whatever sled's recovery does, it does to the
    /// copy, and the data dir keeps every byte. A log that ends before the
    /// head the store recorded outside sled, or holds another record there,
    /// is refused ([`Error::HistoryLost`], [`Error::NotThisLog`]). Takes the data dir's lock
    /// while it copies and works (none on a read-only file system, which
    /// nobody can write). Messages name the data dir's own files.
    pub fn open_copy(dir: &Path, cache_bytes: Option<u64>) -> Result<Store, Error> {
        if !dir::check_format(dir)? {
            return Err(Error::UnknownFormat {
                dir: dir.to_path_buf(),
                found: format!("none ({FORMAT_FILE} missing)"),
                known: FORMAT_VERSION,
            });
        }
        let (lock, sled_dir, db, copy) = guard::open_for_reading(dir, cache_bytes)?;
        let tree: sled::Tree = (*db).clone();
        // What the store recorded outside sled: a log that ends before it,
        // or holds another record there, is not the log it acknowledged.
        if let Some(mark) = guard::read(dir)? {
            let head = if tree.is_empty() {
                Head::EMPTY
            } else {
                reader::head(&tree, &sled_dir)?
            };
            guard::check_against(&tree, &sled_dir, &head, &mark.head, false)?;
        }
        Store::start(dir, tree, sled_dir, lock, Some(copy), index::WINDOW)
    }

    /// The writer and readers over an opened tree.
    fn start(
        dir: &Path,
        tree: sled::Tree,
        sled_dir: PathBuf,
        lock: Option<dir::DirLock>,
        copy: Option<guard::SledCopy>,
        index_window: usize,
    ) -> Result<Store, Error> {
        let sled_err = |source| Error::Sled {
            dir: sled_dir.clone(),
            source,
        };
        let head = if tree.is_empty() {
            let mut b = sled::Batch::default();
            b.insert(layout::VERSION, &FORMAT_VERSION.to_be_bytes());
            b.insert(layout::HEAD, &Head::EMPTY.to_bytes()[..]);
            b.insert(index::INDEXED, &0u64.to_be_bytes());
            tree.apply_batch(b).map_err(sled_err)?;
            tree.flush().map_err(sled_err)?;
            Head::EMPTY
        } else {
            reader::check_open(&tree, dir, &sled_dir)?
        };
        let tail = Tail::read(&tree).map_err(reader::fault(&sled_dir))?;
        let published = Arc::new(index::Published {
            last_seq: head.last_seq.into(),
            mark: tail.mark().into(),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            tree: tree.clone(),
            dir: sled_dir.clone(),
            head,
            next: HashMap::default(),
            snapshot_seq: HashMap::default(),
            pending: Pending::from_tail(&tail),
            index_window: index_window.max(1),
            published: Arc::clone(&published),
            appended: false,
            failed: Default::default(),
            mark_dir: copy.is_none().then(|| dir.to_path_buf()),
        };
        let mark = MarkOnDrop {
            data_dir: writer.mark_dir.clone(),
            sled_dir: sled_dir.clone(),
            head: None,
        };
        let thread = writer::spawn(writer, rx).map_err(|e| Error::io(dir, e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Mutex::new(Some(thread)),
                tree,
                mark,
                sled_dir,
                tail: Mutex::new(tail),
                published,
                _copy: copy,
                _lock: lock,
            }),
        })
    }

    /// Verifies the log in `dir` without opening it for appends: works on a
    /// log that [`Store::open`] refuses (a cut tail, a damaged last record),
    /// for `closeout verify`. Takes the data dir's lock; works on a private
    /// copy, so it writes nothing there, whatever sled's recovery does.
    pub fn verify_dir(dir: &Path) -> Result<VerifyReport, Error> {
        if !dir::check_format(dir)? {
            return Err(Error::UnknownFormat {
                dir: dir.to_path_buf(),
                found: format!("none ({FORMAT_FILE} missing)"),
                known: FORMAT_VERSION,
            });
        }
        let (_lock, sled_dir, db, _copy) = guard::open_for_reading(dir, None)?;
        reader::check_version(&db, dir, &sled_dir)?;
        verify::verify(&db, &sled_dir)
    }

    fn send(&self, cmd: Cmd) -> Result<(), Error> {
        let stopped = || Error::WriterStopped("the store was closed".into());
        let tx = self.inner.tx.as_ref().ok_or_else(stopped)?;
        tx.send(cmd).map_err(|_| stopped())
    }

    /// Appends `payloads` as the next events of `saga`, the first with saga
    /// seq `expected_seq` (else [`Error::SeqConflict`]), with an optional
    /// snapshot of the saga's state after them in the same commit. Returns
    /// once the group commit that covers them has been flushed to disk.
    pub async fn append(
        &self,
        saga: &SagaId,
        expected_seq: u64,
        payloads: Vec<Vec<u8>>,
        snapshot: Option<Snapshot>,
    ) -> Result<Appended, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Append(AppendReq {
            saga: saga.clone(),
            expected_seq,
            payloads,
            snapshot,
            reply,
        }))?;
        rx.await
            .map_err(|_| Error::WriterStopped("the writer thread ended".into()))?
    }

    /// Makes everything appended so far durable (appends already are when
    /// acknowledged; this is for shutdown paths).
    pub async fn flush(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Flush(reply))?;
        rx.await
            .map_err(|_| Error::WriterStopped("the writer thread ended".into()))?
    }

    /// Flushes and stops the writer: later appends through any clone fail
    /// with [`Error::WriterStopped`]. The data dir is released when the last
    /// clone is dropped.
    pub async fn close(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Shutdown(reply))?;
        rx.await
            .map_err(|_| Error::WriterStopped("the writer thread ended".into()))?
    }

    /// The readers' tail view, caught up with the log.
    fn tail(&self) -> Result<MutexGuard<'_, Tail>, Error> {
        let mut tail = self
            .inner
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let published = &self.inner.published;
        let last = published
            .last_seq
            .load(std::sync::atomic::Ordering::Acquire);
        let mark = published.mark.load(std::sync::atomic::Ordering::Acquire);
        if !tail.covers(last, mark) {
            tail.refresh(&self.inner.tree)
                .map_err(reader::fault(&self.inner.sled_dir))?;
        }
        Ok(tail)
    }

    /// The saga's next seq and latest snapshot; `None` for a saga never
    /// appended to.
    pub fn saga(&self, saga: &SagaId) -> Result<Option<SagaMeta>, Error> {
        let tail = self.tail()?;
        reader::saga(&self.inner.tree, &self.inner.sled_dir, &tail, saga)
    }

    /// Every saga with its next seq and latest snapshot, in saga key order
    /// (id length, then id), without reading any event.
    pub fn list_sagas(&self) -> Result<Vec<SagaMeta>, Error> {
        let tail = self.tail()?;
        reader::list_sagas(&self.inner.tree, &self.inner.sled_dir, &tail)
    }

    /// The saga's events from saga seq `from_seq` on, in order, read lazily.
    pub fn saga_records(
        &self,
        saga: &SagaId,
        from_seq: u64,
    ) -> Box<dyn Iterator<Item = Result<Record, Error>> + Send> {
        let tail = match self.tail() {
            Ok(t) => t,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(reader::saga_records(
            self.inner.tree.clone(),
            self.inner.sled_dir.clone(),
            &tail,
            saga.clone(),
            from_seq,
        ))
    }

    /// Every record from global seq `global_seq` on, in order, read lazily
    /// (memory does not grow with the log).
    pub fn records_from(&self, global_seq: u64) -> impl Iterator<Item = Result<Record, Error>> {
        reader::records_from(
            self.inner.tree.clone(),
            self.inner.sled_dir.clone(),
            global_seq,
        )
    }

    /// The durable head: the last record's global seq, hash and time.
    pub fn head(&self) -> Result<layout::Head, Error> {
        reader::head(&self.inner.tree, &self.inner.sled_dir)
    }

    /// The global seq of the last durable record (0 for an empty log).
    pub fn last_global_seq(&self) -> Result<u64, Error> {
        Ok(reader::head(&self.inner.tree, &self.inner.sled_dir)?.last_seq)
    }

    /// The index mark: the global seq through which records are in index
    /// runs (the rest, the tail, is found by reading their headers).
    pub fn indexed_through(&self) -> Result<u64, Error> {
        index::indexed(&self.inner.tree).map_err(reader::fault(&self.inner.sled_dir))
    }

    /// Walks the whole chain and names the first record that does not match.
    /// Blocking, and as long as the log: run it off async workers.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        verify::verify(&self.inner.tree, &self.inner.sled_dir)
    }

    /// [`Store::verify`], handing every record that passed its checks to
    /// `sink` in global order: one pass for the chain and whatever the
    /// caller checks of the events.
    pub fn verify_each(&self, sink: &mut dyn FnMut(Record)) -> Result<VerifyReport, Error> {
        verify::verify_each(&self.inner.tree, &self.inner.sled_dir, sink)
    }
}
