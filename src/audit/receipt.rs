//! The closure receipt (`closeout audit --format receipt --saga ID`): one
//! printable, self-contained HTML page an MSP hands to its customer — what
//! was done to the tenant, when and on whose order, the final verification,
//! and the hash of the saga's last record in the event log with the
//! `closeout verify --expect-head` command that checks the log still holds
//! it. That record's hash covers every record before it (the chain is one
//! for the whole log), so it vouches for every record the receipt
//! summarises.

use super::html::{escape, write_summary};
use super::summary::{names_of, Summary};
use super::{Error, Log, SagaInfo};
use std::io::Write;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:32px auto;max-width:860px;color:#1b1f23}\
h1{font-size:24px;margin-bottom:4px}h2{font-size:17px;margin-top:28px}.meta{color:#555}code{font-size:12px}\
.summary{background:#e7f0fd;border:1px solid #9ec5fe;border-radius:4px;padding:6px 10px;margin:12px 0}\
table{border-collapse:collapse;width:100%}table.facts th,table.facts td{text-align:left;vertical-align:top;padding:2px 8px 2px 0}\
table.facts th{width:150px;white-space:nowrap}table.facts ul{margin:0;padding-left:18px}\
.state-completed{color:#1a7f37}.state-failed{color:#cf222e}\
pre.check{background:#f6f8fa;border:1px solid #d0d7de;padding:8px;white-space:pre-wrap;word-break:break-all}\
p.anchor{border-left:4px solid #1a7f37;padding:4px 10px;background:#f6f8fa;word-break:break-all}ol.users{columns:2;column-gap:40px;font-size:12px;list-style-position:inside;padding:0}ol.users li{break-inside:avoid}\
@media print{body{margin:0;max-width:none;font-size:11px}li{break-inside:avoid}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

/// Writes the receipt of one saga.
pub fn write(out: &mut dyn Write, log: &dyn Log, saga: &SagaInfo) -> Result<(), Error> {
    let io = |e| Error::io("-", e);
    let (names, inventory) = names_of(log, &saga.saga_id)?;
    let s = Summary::build(log, saga, &names, inventory.as_ref())?;
    drop(inventory);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>Closure receipt: {t}</title>\
<style>{STYLE}</style></head><body><h1>Closure receipt: {t}</h1>\
<p class=\"meta\">Microsoft 365 tenant closure by closeout, saga <code>{id}</code>; drawn from its {n} records in the event log.</p>\n",
        t = escape(&s.tenant_id),
        id = escape(&s.saga_id),
        n = s.records,
    )
    .map_err(io)?;
    if let Some(h) = &s.head {
        writeln!(
            out,
            "<p class=\"anchor\">Last record summarised: #{seq} of the event log, {at}, hash <code>{hash}</code>; \
checked by <code>closeout verify --expect-head {hash}</code> (below).</p>",
            seq = h.seq,
            at = escape(&h.at.to_rfc3339()),
            hash = h.hash_hex(),
        )
        .map_err(io)?;
    }
    write_summary(out, &s).map_err(io)?;
    if s.counts.users_deleted > 0 {
        write!(
            out,
            "<h2>Users deleted ({})</h2><ol class=\"users\">",
            s.counts.users_deleted
        )
        .map_err(io)?;
        for u in &s.users_deleted {
            write!(out, "<li>{}</li>", escape(u)).map_err(io)?;
        }
        out.write_all(b"</ol>").map_err(io)?;
        let more = s
            .counts
            .users_deleted
            .saturating_sub(s.users_deleted.len() as u64);
        if more > 0 {
            write!(
                out,
                "<p class=\"meta\">and {more} more; <code>closeout audit --saga {} --format csv</code> lists every one.</p>",
                escape(&s.saga_id)
            )
            .map_err(io)?;
        }
        out.write_all(b"\n").map_err(io)?;
    }
    out.write_all(b"<h2>Checking this receipt</h2>")
        .map_err(io)?;
    match &s.head {
        Some(h) => write!(
            out,
            "<p>closeout keeps every event of the closure in an append-only log in which each record's hash \
covers the record before it. The last record this receipt summarises is record {seq}, written at {at}, \
with the hash</p><pre class=\"check head\">{hash}</pre>\
<p>On the system that ran the closure, this command (with the daemon's <code>--config</code> or \
<code>--data-dir</code> where it is not the default) checks the whole chain and exits 0 with \
\"expected head found\" only if the log still holds that record, i.e. nothing this receipt \
summarises was changed or removed since:</p><pre class=\"check command\">closeout verify --expect-head {hash}</pre>",
            seq = h.seq,
            at = escape(&h.at.to_rfc3339()),
            hash = h.hash_hex(),
        )
        .map_err(io)?,
        None => out
            .write_all(b"<p>The log holds no record of this saga.</p>\n")
            .map_err(io)?,
    }
    out.write_all(b"</body></html>\n").map_err(io)
}
