//! Where the audit reads the log from: a [`Source`] opens a [`Log`], the
//! streaming view of the events as [`Entry`] values.
//!
//! `Source::Store` reads a stopped daemon's data directory directly (sled
//! allows one process). A running daemon's log is not opened here: the CLI
//! asks the daemon over its control socket (`Request::Audit`), and the
//! daemon renders the same export from the store it holds.

use super::verify::Bad;
use super::{Entry, Error};
use serde_json::Value;
use std::path::PathBuf;

/// A stream of entries in log order.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<Entry, Error>> + 'a>;

/// Which parts of an [`Entry`] a reader needs: building only those keeps
/// the exports and `verify` fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// Fill [`Entry::details`] (the event as JSON); else it is `null`.
    pub details: bool,
    /// Fill [`Entry::fact`]; else it is an empty [`super::Fact::Other`].
    pub facts: bool,
    /// Fill [`Entry::http`] (the call an event is about); `verify` needs no
    /// calls, and building an intent's planned call costs allocations.
    pub http: bool,
}

impl Want {
    /// Everything (the text, csv and html renderers).
    pub const ALL: Want = Want {
        details: true,
        facts: true,
        http: true,
    };
    /// What the jsonl export writes.
    pub const EXPORT: Want = Want {
        details: true,
        facts: false,
        http: true,
    };
    /// What `verify` checks.
    pub const CHECK: Want = Want {
        details: false,
        facts: true,
        http: false,
    };
}

/// One saga of the log, as listed before its events are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaInfo {
    /// The saga's id, as the log's records carry it.
    pub saga_id: String,
    /// The tenant it closes.
    pub tenant_id: String,
    /// Its state as last recorded (`running`, `completed`...), if known.
    pub state: Option<String>,
}

/// The audit's view of an event log. Every method streams: none of them
/// collects the log's events.
pub trait Log: Sync {
    /// The sagas of the log, in the order they were started.
    fn sagas(&self) -> Result<Vec<SagaInfo>, Error>;
    /// Every entry of the log, in log order.
    fn entries(&self) -> Entries<'_> {
        self.entries_with(Want::ALL)
    }
    /// Every entry of the log, in log order, with only the parts wanted.
    fn entries_with(&self, want: Want) -> Entries<'_>;
    /// One saga's entries, in order; an unknown saga yields
    /// [`Error::UnknownSaga`].
    fn saga_entries(&self, saga_id: &str) -> Entries<'_>;
    /// The inventory (the backup) a saga recorded before it changed anything,
    /// as JSON; `None` if it recorded none.
    fn inventory(&self, saga_id: &str) -> Result<Option<Value>, Error>;
    /// Checks the hash chain record by record (each record's own hash, and
    /// its link to the one before); returns the records read and the first
    /// bad one.
    fn check_chain(&self) -> Result<(u64, Option<Bad>), Error>;
    /// The sequence number of every saga's first record.
    fn first_saga_seq(&self) -> u64 {
        1
    }
    /// Verifies the chain and the entries in one pass over the records, if
    /// this log can; `None` if not ([`super::verify::verify`] then walks the
    /// chain and the entries separately).
    fn verify_one_pass(&self) -> Option<Result<super::verify::Report, Error>> {
        None
    }
    /// The log's durable head (its last record's hash, seq and time), as
    /// the store records it, if this log knows it. Reports carry it as an
    /// anchor.
    fn head(&self) -> Option<super::verify::Anchor> {
        None
    }
}

/// Where to read the log from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A stopped daemon's data directory, read directly.
    Store {
        /// The directory holding the sled database.
        data_dir: PathBuf,
    },
}

impl Source {
    /// Opens the log for reading.
    pub fn open(&self) -> Result<Box<dyn Log>, Error> {
        match self {
            Source::Store { data_dir } => Ok(Box::new(super::store_log::StoreLog::open(data_dir)?)),
        }
    }

    /// Opens the log for `verify` (its chain walk needs the real store).
    pub fn open_for_verify(&self) -> Result<Box<dyn Log>, Error> {
        match self {
            Source::Store { data_dir } => {
                Ok(Box::new(super::store_log::StoreLog::open_full(data_dir)?))
            }
        }
    }
}

/// A log held in memory: for tests of the renderers and for small inputs.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    /// The sagas, in start order.
    pub sagas: Vec<SagaInfo>,
    /// Every entry, in log order.
    pub entries: Vec<Entry>,
    /// Recorded inventories by saga id.
    pub inventories: Vec<(String, Value)>,
}

impl Log for MemoryLog {
    fn sagas(&self) -> Result<Vec<SagaInfo>, Error> {
        Ok(self.sagas.clone())
    }

    fn entries_with(&self, _want: Want) -> Entries<'_> {
        Box::new(self.entries.iter().cloned().map(Ok))
    }

    fn saga_entries(&self, saga_id: &str) -> Entries<'_> {
        if !self.sagas.iter().any(|s| s.saga_id == saga_id) {
            return Box::new(std::iter::once(Err(Error::UnknownSaga(
                saga_id.to_string(),
            ))));
        }
        let id = saga_id.to_string();
        Box::new(
            self.entries
                .iter()
                .filter(move |e| e.saga_id == id)
                .cloned()
                .map(Ok),
        )
    }

    fn inventory(&self, saga_id: &str) -> Result<Option<Value>, Error> {
        if !self.sagas.iter().any(|s| s.saga_id == saga_id) {
            return Err(Error::UnknownSaga(saga_id.to_string()));
        }
        Ok(self
            .inventories
            .iter()
            .find(|(id, _)| id == saga_id)
            .map(|(_, v)| v.clone()))
    }

    /// Only the links: a memory log has no record bytes to hash.
    fn check_chain(&self) -> Result<(u64, Option<Bad>), Error> {
        let mut prev: Option<[u8; 32]> = None;
        let mut records = 0;
        for e in self
            .entries
            .iter()
            .filter(|e| e.item.is_none_or(|i| i.index == 0))
        {
            records += 1;
            if prev.is_some_and(|p| p != e.prev_hash) {
                return Ok((
                    records,
                    Some(Bad {
                        seq: e.seq,
                        saga_id: e.saga_id.clone(),
                        saga_seq: e.saga_seq,
                        reason: "previous hash does not match the record before".into(),
                    }),
                ));
            }
            prev = Some(e.hash);
        }
        Ok((records, None))
    }

    fn first_saga_seq(&self) -> u64 {
        0
    }
}
