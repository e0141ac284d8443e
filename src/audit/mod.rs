//! Audit log review: answers "what exactly was changed, when, why and on whose
//! order?" from the event log alone.
//!
//! The log is read as a stream of [`Entry`] values (the audit view of one
//! recorded event, or of one item of an event that names several objects),
//! through a [`Log`] opened from a [`Source`]. Renderers turn the stream into
//! a text timeline, jsonl, csv or a self-contained HTML report; none of them
//! holds more than one saga's summary and its changes still waiting for an
//! outcome, so exporting a log of any length uses bounded memory. [`verify`]
//! checks the chain, the sequences and the intent/outcome pairing of a log,
//! and an exported jsonl copy against it.
//!
//! # Decisions (the contract of `closeout audit` and `closeout verify`)
//!
//! - jsonl `seq` is the record's global sequence number (the log's order);
//!   `saga_seq` is its number within its saga. An event naming several
//!   objects (an intent for a group of users, an in-doubt resolution) is one
//!   line per object with `item: {index, count}`; the lines repeat the
//!   record's `seq` and hashes. Outcomes are one event per object already.
//! - `http` is on every line about an external call: outcomes carry the call
//!   as made (a `$batch` item's own method and path); an intent carries the
//!   call it announces, with `status` 0 and an empty `request_id` (no
//!   response yet, as `model::HttpInfo` defines 0).
//! - csv and the HTML table have one row per change: an intent joined with its
//!   outcome on (change id, object), or with the read that settled it when it
//!   was in doubt; a change with neither is `in_doubt`. A transient failure
//!   is its own row; the retry is a new intent and a new row.
//! - text, csv and html go saga by saga (in start order); jsonl follows the
//!   log. The HTML timeline and each saga's summary always cover the whole
//!   saga; filters select the rows of its table and the lines of the other
//!   formats.
//! - A person reads names: text, csv and html name each object beside its
//!   id ([`names`]: users by UPN and display name, subscriptions by SKU,
//!   policies by display name, from the saga's recorded inventory). jsonl
//!   keeps ids only (its lines are checked byte for byte against the log by
//!   `verify --export`); the names are in its `inventory_recorded` line.
//! - text and html start each saga with its [`summary`]; html adds a batch
//!   overview for more than one saga; `--format receipt --saga ID` is one
//!   saga's printable [`receipt`] with the hash `verify --expect-head` checks.
//! - `--output FILE` writes a temporary file beside FILE, syncs it and links
//!   it into place, so a reader never sees half a report; an existing FILE
//!   is never replaced unless `--force` (exit 2 otherwise).
//! - `closeout verify --export FILE.jsonl` checks a copy: each line must be
//!   exactly the line the log exports for that record today (a filtered
//!   export is fine; a changed, added or reordered line is named).
//! - The daemon holds the data dir (sled allows one process): the CLI asks
//!   it over the control socket (`Request::Audit`) and it renders the same
//!   export from the store it holds; with no daemon answering, a locked data
//!   dir is reported as such (exit 1).

pub mod adapter;
pub mod changes;
pub mod csv;
pub mod entry;
pub mod export;
pub mod filter;
pub mod html;
pub mod jsonl;
pub mod names;
pub mod output;
pub mod receipt;
pub mod source;
pub mod store_log;
pub mod summary;
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
    #[error("data dir {0} is locked by a running daemon; stop it first (an audit can instead be read through the daemon's control socket: give `--config` with the daemon's config, not `--data-dir`)")]
    Locked(String),
    /// Reading the event log failed.
    #[error("event log {path}: {message}")]
    Log {
        /// The data directory given, as shown to the user.
        path: String,
        /// What went wrong: the store's error, or a missing log format file.
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
        /// The error the write returned.
        source: std::io::Error,
    },
    /// The output file exists and `--force` was not given.
    #[error("output {0} exists; pass --force to replace it")]
    Exists(String),
    /// A jsonl export could not be read.
    #[error("export {path} line {line}: {message}")]
    Export {
        /// The export file's path, as given.
        path: String,
        /// The 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
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
