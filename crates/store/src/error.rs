//! The store's errors: what callers match on (a sequence conflict, a locked
//! or unreadable data dir, a damaged record) and what they report.

use std::path::PathBuf;

use crate::model::SagaId;

use super::BadRecord;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process (or another `Store` in this one) holds the data dir.
    #[error("data dir {} is in use by another closeout process (pid {pid})", dir.display())]
    Locked {
        /// The data directory whose lock file is held.
        dir: PathBuf,
        /// The holder's pid as written in its lock file (`unknown` if unreadable).
        pid: String,
    },
    /// A file of the data dir could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// sled failed (I/O error or corruption it detected itself).
    #[error("sled database {}: {source}", dir.display())]
    Sled {
        /// The sled database's directory inside the data dir.
        dir: PathBuf,
        /// The error sled returned.
        source: sled::Error,
    },
    /// The data dir was written by a closeout with another on-disk format.
    #[error("data dir {} has format version {found}; this closeout reads version {known} only, refusing to start", dir.display())]
    UnknownFormat {
        /// The data directory whose format file names another version.
        dir: PathBuf,
        /// The version found (as text: it may not even be a number).
        found: String,
        /// The version this build reads.
        known: u16,
    },
    /// sled's recovery would leave the log behind what the store recorded
    /// of it at its last open or stop: acknowledged records would be lost.
    /// Nothing was changed.
    #[error("sled database {}: the log would end at record {found}, but record {recorded} was acknowledged before (a damaged, cut or swapped file); the data dir is left as it was (restore it from a backup)", dir.display())]
    HistoryLost {
        /// The sled database's directory.
        dir: PathBuf,
        /// The last record sled's recovery would leave.
        found: u64,
        /// The last record the store recorded as acknowledged.
        recorded: u64,
    },
    /// The log does not hold the record the store recorded as acknowledged
    /// at that seq: another log's database, or a rewritten one. Nothing was
    /// changed.
    #[error("sled database {}: record {seq} is not the one this data dir acknowledged (another data dir's database, or a rewritten one); the data dir is left as it was", dir.display())]
    NotThisLog {
        /// The sled database's directory.
        dir: PathBuf,
        /// The acknowledged record's seq.
        seq: u64,
    },
    /// The data dir was initialised (its store state says so) but its sled
    /// directory is gone.
    #[error("the event log's database {} is missing, though this data dir held a log: refusing to start an empty one in its place", dir.display())]
    SledMissing {
        /// The missing sled directory.
        dir: PathBuf,
    },
    /// A record or a piece of store metadata does not match the chain.
    #[error("damaged log: {0}")]
    Damaged(BadRecord),
    /// An append stated a saga seq other than the saga's next one: another
    /// writer appended to this saga in between.
    #[error("saga {saga}: append expected seq {expected} but the saga's next seq is {actual}")]
    SeqConflict {
        /// The saga appended to.
        saga: SagaId,
        /// The seq the caller stated.
        expected: u64,
        /// The saga's actual next seq.
        actual: u64,
    },
    /// An append that the store refuses whatever the log holds.
    #[error("saga {saga}: invalid append: {reason}")]
    InvalidAppend {
        /// The saga appended to.
        saga: SagaId,
        /// Why (no events, a payload too large, an over-long saga id).
        reason: String,
    },
    /// The writer has been shut down (`Store::close`) or has stopped after a
    /// failed write; nothing more can be appended through this `Store`.
    #[error("event log writer has stopped: {0}")]
    WriterStopped(String),
    /// The thread reading the log ahead of its reader could not run.
    #[error("event log reader: {0}")]
    ReadThread(String),
    /// Store metadata (a snapshot) could not be encoded or decoded.
    #[error("saga {saga}: {source}")]
    Codec {
        /// The saga the value belongs to.
        saga: SagaId,
        /// The codec's error: bincode's refusal, a missing version prefix, or an unknown version.
        source: crate::codec::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
