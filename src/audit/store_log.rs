//! The [`Log`] of a stopped daemon's data directory, read through the real
//! [`Store`]: records stream lazily from sled and become [`Entry`] values
//! through [`super::adapter`], so memory does not grow with the log (only a
//! [`Context`] per saga is kept).

use super::adapter::{self, Context};
use super::source::Entries;
use super::verify::Bad;
use super::{Entry, Error, Log, SagaInfo};
use crate::model::SagaId;
use crate::saga::Event;
use crate::store::{self, Record, Store, FIRST_SEQ};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// A data directory's event log, opened for reading.
pub struct StoreLog {
    /// The open store (holds the data dir's lock while the audit runs).
    store: Store,
    /// The data directory, for messages.
    dir: PathBuf,
}

impl StoreLog {
    /// Opens the log of `dir`. A directory without a log is an error (it is
    /// never created); one held by a running daemon is [`Error::Locked`].
    pub fn open(dir: &Path) -> Result<StoreLog, Error> {
        let shown = dir.display().to_string();
        if !dir.join(store::FORMAT_FILE).is_file() {
            return Err(Error::Log {
                path: shown,
                message: format!("no closeout event log here ({} missing)", store::FORMAT_FILE),
            });
        }
        let store = Store::open(dir).map_err(|e| match e {
            store::Error::Locked { pid, .. } => Error::Locked(format!("{shown} (pid {pid})")),
            other => Error::Log {
                path: shown.clone(),
                message: other.to_string(),
            },
        })?;
        Ok(StoreLog {
            store,
            dir: dir.to_path_buf(),
        })
    }

    fn log_err(&self, e: store::Error) -> Error {
        Error::Log {
            path: self.dir.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Decodes a record's event.
    fn event(&self, r: &Record) -> Result<Event, Error> {
        adapter::decode_event(&r.payload).map_err(|message| Error::Decode {
            seq: r.global_seq,
            saga_id: r.saga_id.0.clone(),
            message,
        })
    }

    fn adapt<'a>(
        &'a self,
        records: impl Iterator<Item = Result<Record, store::Error>> + 'a,
        details: bool,
    ) -> Entries<'a> {
        Box::new(Adapt {
            log: self,
            records,
            contexts: HashMap::new(),
            buf: VecDeque::new(),
            scratch: Vec::new(),
            details,
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
    /// Whether entries carry their JSON details.
    details: bool,
    /// Set after an error: the stream ends.
    failed: bool,
}

impl<I: Iterator<Item = Result<Record, store::Error>>> Iterator for Adapt<'_, I> {
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
                    return Some(Err(self.log.log_err(e)));
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
            adapter::entries(&record, &event, ctx, self.details, &mut self.scratch);
            if let [_] = self.scratch.as_slice() {
                return self.scratch.pop().map(Ok);
            }
            self.buf.extend(self.scratch.drain(..));
        }
    }
}

impl Log for StoreLog {
    fn sagas(&self) -> Result<Vec<SagaInfo>, Error> {
        let metas = self.store.list_sagas().map_err(|e| self.log_err(e))?;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            let first = self.store.saga_records(&m.saga_id, FIRST_SEQ).next();
            let (tenant_id, started) = match first {
                Some(Ok(r)) => match self.event(&r)? {
                    Event::SagaStarted { spec, .. } => (spec.tenant_id, r.global_seq),
                    _ => (String::new(), r.global_seq),
                },
                Some(Err(e)) => return Err(self.log_err(e)),
                None => continue,
            };
            let last_seq = m.next_seq.saturating_sub(1).max(FIRST_SEQ);
            let state = match self.store.saga_records(&m.saga_id, last_seq).next() {
                Some(Ok(r)) => adapter::state_after(&self.event(&r)?).unwrap_or("running"),
                Some(Err(e)) => return Err(self.log_err(e)),
                None => "running",
            };
            out.push((
                started,
                SagaInfo {
                    saga_id: m.saga_id.0,
                    tenant_id,
                    state: Some(state.to_string()),
                },
            ));
        }
        out.sort_by_key(|(started, _)| *started);
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    fn entries(&self) -> Entries<'_> {
        self.adapt(self.store.records_from(FIRST_SEQ), true)
    }

    fn saga_entries(&self, saga_id: &str) -> Entries<'_> {
        let id = SagaId(saga_id.to_string());
        match self.store.saga(&id) {
            Ok(Some(_)) => self.adapt(self.store.saga_records(&id, FIRST_SEQ), true),
            Ok(None) => Box::new(std::iter::once(Err(Error::UnknownSaga(saga_id.to_string())))),
            Err(e) => Box::new(std::iter::once(Err(self.log_err(e)))),
        }
    }

    fn inventory(&self, saga_id: &str) -> Result<Option<Value>, Error> {
        let id = SagaId(saga_id.to_string());
        if self.store.saga(&id).map_err(|e| self.log_err(e))?.is_none() {
            return Err(Error::UnknownSaga(saga_id.to_string()));
        }
        for r in self.store.saga_records(&id, FIRST_SEQ) {
            let r = r.map_err(|e| self.log_err(e))?;
            match self.event(&r)? {
                Event::InventoryRecorded { inventory } => {
                    return serde_json::to_value(&inventory).map(Some).map_err(|e| Error::Decode {
                        seq: r.global_seq,
                        saga_id: saga_id.to_string(),
                        message: format!("inventory not representable as JSON: {e}"),
                    })
                }
                // The inventory is recorded before any change: stop looking
                // once the saga has moved past it.
                Event::StepStarted { .. } | Event::ChangeIntended { .. } => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    fn entries_for_check(&self) -> Entries<'_> {
        self.adapt(self.store.records_from(FIRST_SEQ), false)
    }

    fn check_chain(&self) -> Result<(u64, Option<Bad>), Error> {
        let report = self.store.verify().map_err(|e| self.log_err(e))?;
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

    fn first_saga_seq(&self) -> u64 {
        FIRST_SEQ
    }
}
