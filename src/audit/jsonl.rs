//! The jsonl export (a contract: README, "Using it"): one JSON object per line, in log order.
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
    /// The id of the saga the record belongs to.
    pub saga_id: String,
    /// The tenant the saga closes, as the batch named it.
    pub tenant_id: String,
    /// Its GUID, absent before the saga recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_guid: Option<String>,
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
    /// The step (1-5) last started in the saga; absent before step 1 and during
    /// compensation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u8>,
    /// The event (or item) itself.
    pub event: Value,
}

/// `item` of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The item's position in the event, from 0.
    pub index: u32,
    /// Items in the event.
    pub count: u32,
}

/// Writes one entry as one line (with its newline).
pub fn write_entry(out: &mut dyn Write, e: &Entry) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    encode(&mut buf, e)?;
    out.write_all(&buf)
}

/// Appends one entry's line (with its newline) to `buf`: the fields, then
/// the event's JSON text as is.
///
/// Written by hand, byte for byte what `serde_json` makes of [`Line`] (field
/// order, no spaces, absent optional fields left out): numbers, the time and
/// the hex hashes cannot need escaping, so only the strings go through
/// `serde_json`'s escaping. `tests::hand_written_line_is_serde_json_s` holds
/// the two equal.
pub fn encode(buf: &mut Vec<u8>, e: &Entry) -> std::io::Result<()> {
    let mut hex = [0u8; 64];
    buf.extend_from_slice(b"{\"seq\":");
    write_u64(buf, e.seq);
    buf.extend_from_slice(b",\"saga_seq\":");
    write_u64(buf, e.saga_seq);
    buf.extend_from_slice(b",\"at\":\"");
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at.0);
    write!(buf, "{}", humantime::format_rfc3339_millis(t))?;
    buf.extend_from_slice(b"\",\"saga_id\":");
    write_str(buf, &e.saga_id)?;
    buf.extend_from_slice(b",\"tenant_id\":");
    write_str(buf, &e.tenant_id)?;
    if !e.tenant_guid.is_empty() {
        buf.extend_from_slice(b",\"tenant_guid\":");
        write_str(buf, &e.tenant_guid)?;
    }
    buf.extend_from_slice(b",\"kind\":");
    write_str(buf, &e.kind)?;
    buf.extend_from_slice(b",\"hash\":\"");
    hex_into(&e.hash, &mut hex);
    buf.extend_from_slice(&hex);
    buf.extend_from_slice(b"\",\"prev_hash\":\"");
    hex_into(&e.prev_hash, &mut hex);
    buf.extend_from_slice(&hex);
    buf.push(b'"');
    if let Some(i) = e.item {
        buf.extend_from_slice(b",\"item\":{\"index\":");
        write_u64(buf, u64::from(i.index));
        buf.extend_from_slice(b",\"count\":");
        write_u64(buf, u64::from(i.count));
        buf.push(b'}');
    }
    if let Some(h) = &e.http {
        buf.extend_from_slice(b",\"http\":{\"method\":");
        write_str(buf, &h.method)?;
        buf.extend_from_slice(b",\"path\":");
        write_str(buf, &h.path)?;
        buf.extend_from_slice(b",\"status\":");
        write_u64(buf, u64::from(h.status));
        buf.extend_from_slice(b",\"request_id\":");
        write_str(buf, &h.request_id)?;
        buf.push(b'}');
    }
    if let Some(o) = &e.object {
        buf.extend_from_slice(b",\"object\":");
        write_str(buf, o)?;
    }
    if let Some(step) = e.step {
        buf.extend_from_slice(b",\"step\":");
        write_u64(buf, u64::from(step));
    }
    buf.extend_from_slice(b",\"event\":");
    buf.extend_from_slice(e.details.as_bytes());
    buf.extend_from_slice(b"}\n");
    Ok(())
}

/// A number in decimal, as `serde_json` writes it.
fn write_u64(buf: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// A JSON string: as is between quotes when nothing in it needs escaping
/// (the common case: ids, paths, names), else through `serde_json`.
fn write_str(buf: &mut Vec<u8>, s: &str) -> std::io::Result<()> {
    // A branch-free fold (the compiler vectorises it), not a short-circuit.
    let escape = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !escape {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *buf, s).map_err(std::io::Error::other)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Fact, Item};
    use serde::Serialize;
    use std::borrow::Cow;

    /// The fields as `serde_json` writes them: the reference the hand-written
    /// [`encode`] must match byte for byte.
    #[derive(Serialize)]
    struct Reference<'a> {
        seq: u64,
        saga_seq: u64,
        at: String,
        saga_id: &'a str,
        tenant_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_guid: Option<&'a str>,
        kind: &'a str,
        hash: String,
        prev_hash: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        item: Option<LineItem>,
        #[serde(skip_serializing_if = "Option::is_none")]
        http: Option<&'a HttpInfo>,
        #[serde(skip_serializing_if = "Option::is_none")]
        object: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<u8>,
    }

    fn reference(e: &Entry) -> Vec<u8> {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at.0);
        let r = Reference {
            seq: e.seq,
            saga_seq: e.saga_seq,
            at: humantime::format_rfc3339_millis(t).to_string(),
            saga_id: &e.saga_id,
            tenant_id: &e.tenant_id,
            tenant_guid: (!e.tenant_guid.is_empty()).then_some(e.tenant_guid.as_str()),
            kind: &e.kind,
            hash: crate::audit::entry::hex(&e.hash),
            prev_hash: crate::audit::entry::hex(&e.prev_hash),
            item: e.item.map(|i| LineItem {
                index: i.index,
                count: i.count,
            }),
            http: e.http.as_ref(),
            object: e.object.as_deref(),
            step: e.step,
        };
        let mut out = serde_json::to_vec(&r).unwrap();
        out.pop();
        out.extend_from_slice(b",\"event\":");
        out.extend_from_slice(e.details.as_bytes());
        out.extend_from_slice(b"}\n");
        out
    }

    fn plain() -> Entry {
        Entry {
            seq: 0,
            saga_seq: 18_446_744_073_709_551_615,
            at: crate::model::Timestamp(1_764_000_000_123),
            saga_id: "saga-1".into(),
            tenant_id: "contoso.onmicrosoft.com".into(),
            tenant_guid: String::new(),
            kind: Cow::Borrowed("change_applied"),
            hash: [0xab; 32],
            prev_hash: [0x01; 32],
            item: None,
            http: None,
            object: None,
            step: None,
            fact: Fact::Other {
                summary: String::new(),
            },
            details: "{\"a\":1}".into(),
        }
    }

    #[test]
    fn hand_written_line_is_serde_json_s() {
        let mut full = plain();
        full.seq = 1_234_567;
        full.item = Some(Item {
            index: 3,
            count: 10,
        });
        full.http = Some(HttpInfo {
            method: "DELETE".into(),
            path: "/v1.0/users/u\"1\\x\u{1}\tÿ€".into(),
            status: 204,
            request_id: "r-\n9".into(),
        });
        full.object = Some("ob\"j\u{7f}é".into());
        full.step = Some(5);
        full.saga_id = "s\\a\"g\u{1f}a".into();
        full.tenant_id = String::new();
        full.tenant_guid = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490".into();
        for e in [plain(), full] {
            let mut got = Vec::new();
            encode(&mut got, &e).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(reference(&e)).unwrap()
            );
        }
    }
}
