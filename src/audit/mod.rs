//! Audit log review: answers "what exactly was changed, when, why and on whose
//! order?" from the event log alone.
//!
//! The log is read as a stream of [`Entry`] values (the audit view of one
//! recorded event, or of one item of an event that carries several per-object
//! outcomes), through a [`Log`] opened from a [`Source`]. Renderers turn the
//! stream into a text timeline, jsonl, csv or a self-contained HTML report;
//! none of them holds more than one saga's summary and its changes still
//! waiting for an outcome, so exporting a log of any length uses bounded memory.
//! [`verify`] checks the chain, the sequences and the intent/outcome pairing of
//! a log, and an exported jsonl copy against it.

pub mod adapter;
pub mod changes;
pub mod csv;
pub mod entry;
pub mod export;
pub mod filter;
pub mod html;
pub mod jsonl;
pub mod output;
pub mod source;
pub mod store_log;
pub mod svg;
pub mod text;
pub mod timeline;
pub mod verify;

pub use entry::{Entry, Fact, Item, OutcomeResult};
pub use export::{export, Format, Stats};
pub use filter::Filter;
pub use source::{Log, SagaInfo, Source};

/// A failed audit or verification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory is held by a running daemon (sled allows one
    /// process); the audit must go through the daemon's control socket.
    #[error("data dir {0} is locked by a running daemon; stop it, or read the log through its control socket (not available in this build)")]
    Locked(String),
    /// Reading the event log failed.
    #[error("event log {path}: {message}")]
    Log {
        /// The data directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A record could not be decoded into a saga event.
    #[error("record {seq} of saga {saga_id}: {message}")]
    Decode {
        /// The record's global sequence number.
        seq: u64,
        /// The saga it belongs to.
        saga_id: String,
        /// Why it could not be decoded.
        message: String,
    },
    /// The saga asked for is not in the log.
    #[error("saga {0} is not in the log")]
    UnknownSaga(String),
    /// A filter argument could not be understood.
    #[error("{0}")]
    Filter(String),
    /// Writing the output failed.
    #[error("output {path}: {source}")]
    Io {
        /// The file written to (`-` for stdout).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output file exists and `--force` was not given.
    #[error("output {0} exists; pass --force to replace it")]
    Exists(String),
    /// A jsonl export could not be read.
    #[error("export {path} line {line}: {message}")]
    Export {
        /// The export file.
        path: String,
        /// The 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The remote source (the daemon's control socket) is not wired yet.
    #[error("reading the log through the control socket {0} is not available in this build")]
    RemoteUnavailable(String),
}

impl Error {
    /// Wraps an output I/O error with the file it concerns.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
#[cfg(test)]
mod tests;
