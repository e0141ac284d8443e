//! The [`Log`] of a stopped daemon's data directory: records stream lazily
//! from sled and become [`Entry`] values through [`super::adapter`], so
//! memory does not grow with the log (only a [`Context`] per saga is kept).
//!
//! Exports read through [`store::ReadOnly`] (a small sled cache, no
//! writer); `verify` opens the real [`Store`] for its chain walk.

use super::adapter::{self, Context};
use super::source::{Entries, Want};
use super::verify::{check_stream, combine, Bad, Report};
use super::{Entry, Error, Log, SagaInfo};
use crate::model::SagaId;
use crate::saga::Event;
use crate::store::{self, Record, Store, FIRST_SEQ};
use rustc_hash::FxHashMap as HashMap;
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// sled's page cache for `verify`'s one pass over the log (bytes), as small
/// as the exports': the walk reads the records by point lookups of their
/// blocks ([`crate::store::record_bytes`]), which keeps few pages resident,
/// and visits each page once, so a bigger cache only holds pages never read
/// again.
const VERIFY_CACHE: u64 = 4 << 20;

/// How the data dir is read.
enum Backend {
    /// Through the real store (for `verify`: its chain walk).
    Full(Store),
    /// Read-only (for the exports: bounded memory).
    ReadOnly(store::ReadOnly),
}

/// Records, lazily.
type Records<'a> = Box<dyn Iterator<Item = Result<Record, Error>> + 'a>;

/// A data directory's event log, opened for reading.
pub struct StoreLog {
    /// The reader (holds the data dir's lock while the audit runs).
    backend: Backend,
    /// The data directory, for messages.
    dir: PathBuf,
}

impl StoreLog {
    /// Opens the log of `dir` for the exports. A directory without a log is
    /// an error (it is never created); one held by a running daemon is
    /// [`Error::Locked`].
    pub fn open(dir: &Path) -> Result<StoreLog, Error> {
        let shown = Self::exists(dir)?;
        let log = Store::open_read_only(dir).map_err(|e| match e {
            store::Error::Locked { pid, .. } => Error::Locked(format!("{shown} (pid {pid})")),
            other => Error::Log {
                path: shown.clone(),
                message: other.to_string(),
            },
        })?;
        Ok(StoreLog {
            backend: Backend::ReadOnly(log),
            dir: dir.to_path_buf(),
        })
    }

    /// The log of a store this process already holds open (the running
    /// daemon's, serving an audit over its control socket).
    pub fn from_store(store: Store, dir: &Path) -> StoreLog {
        StoreLog {
            backend: Backend::Full(store),
            dir: dir.to_path_buf(),
        }
    }

    /// Opens the log of `dir` through the real store, for `verify`.
    pub fn open_full(dir: &Path) -> Result<StoreLog, Error> {
        let shown = Self::exists(dir)?;
        // A private copy: verifying must never change what it verifies.
        let store = Store::open_copy(dir, Some(VERIFY_CACHE)).map_err(|e| match e {
            store::Error::Locked { pid, .. } => Error::Locked(format!("{shown} (pid {pid})")),
            other => Error::Log {
                path: shown.clone(),
                message: other.to_string(),
            },
        })?;
        Ok(StoreLog {
            backend: Backend::Full(store),
            dir: dir.to_path_buf(),
        })
    }

    fn exists(dir: &Path) -> Result<String, Error> {
        let shown = dir.display().to_string();
        if !dir.join(store::FORMAT_FILE).is_file() {
            return Err(Error::Log {
                path: shown,
                message: format!(
                    "no closeout event log here ({} missing)",
                    store::FORMAT_FILE
                ),
            });
        }
        // Opening would create an empty database and report a sound, empty
        // log where the records were removed (tests/bad_input.rs).
        if !dir.join(store::SLED_DIR).is_dir() {
            return Err(Error::Log {
                path: shown,
                message: format!(
                    "the event log's database ({}/) is missing: removed, or never initialised",
                    store::SLED_DIR
                ),
            });
        }
        Ok(shown)
    }

    fn log_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Log {
            path: self.dir.display().to_string(),
            message: e.to_string(),
        }
    }

    fn records(&self) -> Records<'_> {
        match &self.backend {
            Backend::Full(s) => Box::new(
                s.records_from(FIRST_SEQ)
                    .map(|r| r.map_err(|e| self.log_err(e))),
            ),
            Backend::ReadOnly(l) => Box::new(l.records().map(|r| r.map_err(|e| self.log_err(e)))),
        }
    }

    fn saga_records(&self, saga: &SagaId) -> Records<'_> {
        match &self.backend {
            Backend::Full(s) => Box::new(
                s.saga_records(saga, FIRST_SEQ)
                    .map(|r| r.map_err(|e| self.log_err(e))),
            ),
            Backend::ReadOnly(l) => Box::new(
                l.saga_records(saga, FIRST_SEQ)
                    .map(|r| r.map_err(|e| self.log_err(e))),
            ),
        }
    }

    fn has_saga(&self, saga: &SagaId) -> Result<bool, Error> {
        match &self.backend {
            Backend::Full(s) => s
                .saga(saga)
                .map(|m| m.is_some())
                .map_err(|e| self.log_err(e)),
            Backend::ReadOnly(l) => l.has_saga(saga).map_err(|e| self.log_err(e)),
        }
    }

    fn saga_list(&self) -> Result<Vec<(SagaId, u64)>, Error> {
        match &self.backend {
            Backend::Full(s) => s
                .list_sagas()
                .map(|v| v.into_iter().map(|m| (m.saga_id, m.next_seq)).collect())
                .map_err(|e| self.log_err(e)),
            Backend::ReadOnly(l) => l.sagas().map_err(|e| self.log_err(e)),
        }
    }

    fn saga_record(&self, saga: &SagaId, seq: u64) -> Result<Option<Record>, Error> {
        match &self.backend {
            Backend::Full(s) => s
                .saga_records(saga, seq)
                .next()
                .transpose()
                .map_err(|e| self.log_err(e)),
            Backend::ReadOnly(l) => l.saga_record(saga, seq).map_err(|e| self.log_err(e)),
        }
    }

    /// The store's chain walk as the records read and the first bad one.
    fn chain_report(
        &self,
        report: Result<store::VerifyReport, store::Error>,
    ) -> Result<(u64, Option<Bad>), Error> {
        let report = report.map_err(|e| self.log_err(e))?;
        Ok((
            report.records,
            report.first_bad.map(|b| Bad {
                seq: b.global_seq,
                saga_id: b.saga_id.map(|s| s.0).unwrap_or_default(),
                saga_seq: b.saga_seq.unwrap_or_default(),
                reason: b.reason,
            }),
        ))
    }

    /// Decodes a record's event.
    fn event(&self, r: &Record) -> Result<Event, Error> {
        adapter::decode_event(&r.payload).map_err(|message| Error::Decode {
            seq: r.global_seq,
            saga_id: r.saga_id.0.clone(),
            message,
        })
    }

    fn adapt<'a>(&'a self, records: Records<'a>, want: Want) -> Entries<'a> {
        Box::new(Adapt {
            log: self,
            records,
            contexts: HashMap::default(),
            buf: VecDeque::new(),
            scratch: Vec::new(),
            want,
            failed: false,
        })
    }
}

/// Streams records as entries.
struct Adapt<'a, I> {
    /// For decoding and messages.
    log: &'a StoreLog,
    /// The records, in order.
    records: I,
    /// One context per saga seen.
    contexts: HashMap<String, Context>,
    /// Entries of the current record not yet handed out.
    buf: VecDeque<Entry>,
    /// Reused for each record's entries.
    scratch: Vec<Entry>,
    /// Which parts of the entries to build.
    want: Want,
    /// Set after an error: the stream ends.
    failed: bool,
}

impl<I: Iterator<Item = Result<Record, Error>>> Iterator for Adapt<'_, I> {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Some(Ok(e));
            }
            if self.failed {
                return None;
            }
            let record = match self.records.next()? {
                Ok(r) => r,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            let event = match self.log.event(&record) {
                Ok(ev) => ev,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            let ctx = match self.contexts.get_mut(&record.saga_id.0) {
                Some(c) => c,
                None => self.contexts.entry(record.saga_id.0.clone()).or_default(),
            };
            adapter::entries(&record, &event, ctx, self.want, &mut self.scratch);
            if let [_] = self.scratch.as_slice() {
                return self.scratch.pop().map(Ok);
            }
            self.buf.extend(self.scratch.drain(..));
        }
    }
}

impl Log for StoreLog {
    fn sagas(&self) -> Result<Vec<SagaInfo>, Error> {
        let mut out = Vec::new();
        for (saga, next_seq) in self.saga_list()? {
            let (tenant_id, started) = match self.saga_record(&saga, FIRST_SEQ)? {
                Some(r) => match self.event(&r)? {
                    Event::SagaStarted { spec, .. } => (spec.tenant_id, r.global_seq),
                    _ => (String::new(), r.global_seq),
                },
                None => continue,
            };
            // The state its last event left, passing over the bookkeeping
            // recorded after a saga ends (notifications, the batch's end).
            let mut state = "running";
            let mut seq = next_seq.saturating_sub(1).max(FIRST_SEQ);
            while let Some(r) = self.saga_record(&saga, seq)? {
                let event = self.event(&r)?;
                if let Some(s) = adapter::state_after(&event) {
                    state = s;
                    break;
                }
                if !adapter::is_bookkeeping(&event) || seq == FIRST_SEQ {
                    break;
                }
                seq -= 1;
            }
            out.push((
                started,
                SagaInfo {
                    saga_id: saga.0,
                    tenant_id,
                    state: Some(state.to_string()),
                },
            ));
        }
        out.sort_by_key(|(started, _)| *started);
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    fn entries_with(&self, want: Want) -> Entries<'_> {
        self.adapt(self.records(), want)
    }

    fn saga_entries(&self, saga_id: &str) -> Entries<'_> {
        let id = SagaId(saga_id.to_string());
        match self.has_saga(&id) {
            Ok(true) => self.adapt(self.saga_records(&id), Want::ALL),
            Ok(false) => Box::new(std::iter::once(Err(Error::UnknownSaga(
                saga_id.to_string(),
            )))),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn inventory(&self, saga_id: &str) -> Result<Option<Value>, Error> {
        let id = SagaId(saga_id.to_string());
        if !self.has_saga(&id)? {
            return Err(Error::UnknownSaga(saga_id.to_string()));
        }
        let mut parts = crate::saga::InventoryParts::default();
        for r in self.saga_records(&id) {
            let r = r?;
            let event = self.event(&r)?;
            if let Some(inventory) = parts.take(&event) {
                return serde_json::to_value(&inventory)
                    .map(Some)
                    .map_err(|e| Error::Decode {
                        seq: r.global_seq,
                        saga_id: saga_id.to_string(),
                        message: format!("inventory not representable as JSON: {e}"),
                    });
            }
            match event {
                // The inventory is recorded before any change: stop looking
                // once the saga has moved past it.
                Event::StepStarted { .. } | Event::ChangeIntended { .. } => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    fn check_chain(&self) -> Result<(u64, Option<Bad>), Error> {
        let Backend::Full(store) = &self.backend else {
            return Err(self.log_err("the chain walk needs the log opened for verify"));
        };
        self.chain_report(store.verify())
    }

    fn first_saga_seq(&self) -> u64 {
        FIRST_SEQ
    }

    fn head(&self) -> Option<super::verify::Anchor> {
        let head = match &self.backend {
            Backend::Full(store) => store.head().ok()?,
            Backend::ReadOnly(log) => log.head().ok()?,
        };
        (head.last_seq > 0).then(|| super::verify::Anchor::of(&head))
    }

    /// The store's chain walk hands each sound record, in batches, to this
    /// thread, which checks its entries: the log is read and hashed once,
    /// and the two checks run on two cores.
    fn verify_one_pass(&self) -> Option<Result<Report, Error>> {
        let Backend::Full(store) = &self.backend else {
            return None;
        };
        const BATCH: usize = 256;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(4);
        Some(std::thread::scope(|scope| {
            let chain = scope.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                // A send fails only once the entry check has stopped at a
                // bad record; the walk goes on, since a broken chain is
                // reported before it.
                let mut sink = |r: Record| {
                    batch.push(r);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        let _ = tx.send(full);
                    }
                };
                let report = store.verify_each(&mut sink);
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                report
            });
            let records: Records<'_> = Box::new(rx.into_iter().flatten().map(Ok));
            let checked = check_stream(self.adapt(records, Want::CHECK), FIRST_SEQ);
            combine(chain.join().map(|r| self.chain_report(r)), checked)
        }))
    }
}
