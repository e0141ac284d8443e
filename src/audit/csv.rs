//! The csv export: one row per external change, its intent joined with its
//! outcome ([`Change`]). A change with no outcome is `in_doubt`; a failed
//! attempt that was tried again gives one row per outcome. Every cell goes
//! through [`crate::escape::csv_cell`] (formula prefixes quoted, control
//! characters escaped), so a row is one line. `object_name` (the last
//! column) names the object as the saga's inventory did.

use super::changes::Change;
use super::names::Names;
use crate::model::Timestamp;
use std::io::Write;

/// The header row, in column order.
pub const COLUMNS: [&str; 18] = [
    "saga_id",
    "tenant_id",
    "tenant_guid",
    "step",
    "change_id",
    "action",
    "target",
    "object",
    "method",
    "path",
    "status",
    "request_id",
    "result",
    "intent_seq",
    "intent_at",
    "outcome_seq",
    "outcome_at",
    "object_name",
];

/// Writes rows of changes as csv.
pub struct CsvWriter<W: Write> {
    /// The csv encoder over the output.
    inner: ::csv::Writer<W>,
}

impl<W: Write> CsvWriter<W> {
    /// Starts the export with its header row.
    pub fn new(out: W) -> std::io::Result<CsvWriter<W>> {
        let mut inner = ::csv::Writer::from_writer(out);
        inner.write_record(COLUMNS).map_err(to_io)?;
        Ok(CsvWriter { inner })
    }

    /// Writes one change.
    pub fn write(&mut self, c: &Change, names: &Names) -> std::io::Result<()> {
        let opt_num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let opt_at = |t: Option<Timestamp>| t.map(Timestamp::to_rfc3339).unwrap_or_default();
        let http = c.http.as_ref();
        let status = match (http, &c.result) {
            (Some(h), Some(_)) => h.status.to_string(),
            _ => String::new(),
        };
        let cells = [
            c.saga_id.as_str(),
            c.tenant_id.as_str(),
            c.tenant_guid.as_str(),
            &c.step.map(|s| s.to_string()).unwrap_or_default(),
            &c.change_id,
            &c.action,
            &c.target,
            c.object.as_deref().unwrap_or(""),
            http.map_or("", |h| h.method.as_str()),
            http.map_or("", |h| h.path.as_str()),
            &status,
            http.map_or("", |h| h.request_id.as_str()),
            &c.result_label(),
            &opt_num(c.intent_seq),
            &opt_at(c.intent_at),
            &opt_num(c.outcome_seq),
            &opt_at(c.outcome_at),
            c.object.as_deref().and_then(|o| names.of(o)).unwrap_or(""),
        ];
        // Names and targets come from the tenant: no formulas, no line breaks.
        self.inner
            .write_record(
                cells
                    .iter()
                    .map(|c| crate::escape::csv_cell(c).into_owned()),
            )
            .map_err(to_io)
    }

    /// Flushes and returns the output.
    pub fn finish(self) -> std::io::Result<W> {
        self.inner
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

fn to_io(e: ::csv::Error) -> std::io::Error {
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}
