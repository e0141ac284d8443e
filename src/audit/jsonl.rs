//! The jsonl export (design.md §3): one JSON object per line, in log order.
//!
//! Stable fields: `seq` (the record's global sequence number), `saga_seq`,
//! `at` (RFC 3339, UTC, milliseconds), `saga_id`, `tenant_id`, `kind`
//! (snake_case event name), `hash` and `prev_hash` (64 lowercase hex digits).
//! Where applicable: `http` (`method`, `path`, `status`, `request_id`) for an
//! event about an external call, `object` (the object id), `step` (1-5).
//! Always: `event`, the event itself.
//!
//! An event carrying several per-object outcomes (the items of a `$batch`) is
//! written as one line per item, each with its own `http`, `object` and
//! `event` (the item), and `item: {"index", "count"}`; all of them repeat the
//! record's `seq` and hashes, so that every line can be checked against the log.

use super::entry::hex_into;
use super::{Entry, Error};
use crate::model::HttpInfo;
use crate::model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;

/// One line of the export, as written and as read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The record's global sequence number.
    pub seq: u64,
    /// The record's sequence number within its saga.
    pub saga_seq: u64,
    /// When it was recorded, RFC 3339 UTC.
    pub at: String,
    /// Its saga.
    pub saga_id: String,
    /// The tenant the saga closes.
    pub tenant_id: String,
    /// The snake_case event name.
    pub kind: String,
    /// The record's hash, hex.
    pub hash: String,
    /// The previous record's hash, hex.
    pub prev_hash: String,
    /// Which item of a multi-item event this line is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<LineItem>,
    /// The external call the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpInfo>,
    /// The object the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The saga step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u8>,
    /// The event (or item) itself.
    pub event: Value,
}

/// `item` of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// 0-based.
    pub index: u32,
    /// Items in the event.
    pub count: u32,
}

/// The borrowed form written on export (no copies of the entry's strings).
#[derive(Serialize)]
struct LineRef<'a> {
    seq: u64,
    saga_seq: u64,
    at: At,
    saga_id: &'a str,
    tenant_id: &'a str,
    kind: &'a str,
    hash: Hex<'a>,
    prev_hash: Hex<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<LineItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<&'a HttpInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<u8>,
}

/// A hash written as 64 lowercase hex digits, without allocating.
struct Hex<'a>(&'a [u8; 32]);

impl Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = [0u8; 64];
        hex_into(self.0, &mut out);
        s.serialize_str(std::str::from_utf8(&out).unwrap_or_default())
    }
}

/// A time written as RFC 3339 UTC with milliseconds, without allocating.
struct At(Timestamp);

impl Serialize for At {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0 .0);
        s.collect_str(&humantime::format_rfc3339_millis(t))
    }
}

/// Writes one entry as one line (with its newline).
pub fn write_entry(out: &mut dyn Write, e: &Entry) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    encode(&mut buf, e)?;
    out.write_all(&buf)
}

/// Appends one entry's line (with its newline) to `buf`: the fields, then
/// the event's JSON text as is.
pub fn encode(buf: &mut Vec<u8>, e: &Entry) -> std::io::Result<()> {
    let line = LineRef {
        seq: e.seq,
        saga_seq: e.saga_seq,
        at: At(e.at),
        saga_id: &e.saga_id,
        tenant_id: &e.tenant_id,
        kind: &e.kind,
        hash: Hex(&e.hash),
        prev_hash: Hex(&e.prev_hash),
        item: e.item.map(|i| LineItem {
            index: i.index,
            count: i.count,
        }),
        http: e.http.as_ref(),
        object: e.object.as_deref(),
        step: e.step,
    };
    serde_json::to_writer(&mut *buf, &line)?;
    buf.pop(); // the closing brace, reopened for `event`
    buf.extend_from_slice(b",\"event\":");
    buf.extend_from_slice(e.details.as_bytes());
    buf.extend_from_slice(b"}\n");
    Ok(())
}

/// The line an entry exports as, parsed (for comparing an export with the log).
pub fn line_of(e: &Entry) -> Result<Line, Error> {
    let mut buf = Vec::with_capacity(512);
    write_entry(&mut buf, e).map_err(|source| Error::io("-", source))?;
    serde_json::from_slice(&buf).map_err(|err| Error::Decode {
        seq: e.seq,
        saga_id: e.saga_id.clone(),
        message: format!("cannot re-read its jsonl line: {err}"),
    })
}
