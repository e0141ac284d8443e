//! The HTML report: one self-contained file (inline CSS and SVG, no script,
//! no external asset). Per saga: a header, the SVG timeline of the whole saga
//! ([`super::svg`]) and the table of selected changes, each intent joined
//! with its outcome.
//!
//! Each saga is read twice (once for its timeline, once for its table) so
//! that only its summary is ever held, not its events.

use super::changes::{Change, Joiner};
use super::timeline::Timeline;
use super::{Error, Filter, Log, SagaInfo};
use std::io::Write;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f23}\
h1{font-size:22px}h2{font-size:17px;margin-top:32px}code{font-size:12px}\
.meta{color:#555}svg.timeline{display:block;background:#fafbfc;border:1px solid #d0d7de;margin:8px 0}\
.lane{font-size:12px;fill:#333}.grid{stroke:#e1e4e8}.axis{stroke:#888}.tick{font-size:11px;fill:#555}\
rect.step{fill:#2f81f7}rect.step.open{fill:#9ec5fe}rect.step.left{fill:#bf8700}\
rect.wait{fill:#d0d7de}rect.gate{fill:#f0b429}path.retry{fill:#cf222e}path.throttle{fill:#8250df}\
circle.operator{fill:#1a7f37}table{border-collapse:collapse;width:100%;font-size:12px}\
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}tr.failed td{background:#ffebe9}tr.in_doubt td{background:#fff8c5}\
.legend span{margin-right:14px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px}";

/// Escapes text for HTML and SVG content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes the document's head and legend.
pub fn write_header(out: &mut dyn Write, title: &str) -> std::io::Result<()> {
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>\
<p class=\"legend\"><span><i class=\"sw\" style=\"background:#2f81f7\"></i>step (completed)</span><span><i class=\"sw\" style=\"background:#9ec5fe\"></i>step (running)</span>\
<span><i class=\"sw\" style=\"background:#bf8700\"></i>step (left)</span><span><i class=\"sw\" style=\"background:#cf222e\"></i>retry</span>\
<span><i class=\"sw\" style=\"background:#8250df\"></i>throttled</span><span><i class=\"sw\" style=\"background:#d0d7de\"></i>wait</span>\
<span><i class=\"sw\" style=\"background:#f0b429\"></i>operator gate</span><span><i class=\"sw\" style=\"background:#1a7f37\"></i>operator action</span></p>\n",
        t = escape(title)
    )
}

/// Writes the log's head under the title: the anchor a reader of the report
/// can later hand to `closeout verify --expect-head`.
pub fn write_anchor(
    out: &mut dyn Write,
    head: Option<&super::verify::Anchor>,
) -> std::io::Result<()> {
    match head {
        Some(h) => writeln!(
            out,
            "<p class=\"meta\">Event log head: <code class=\"head\">{}</code> (record {}, {}). \
             <code>closeout verify --expect-head {}</code> fails if the log no longer holds it.</p>",
            h.hash_hex(),
            h.seq,
            escape(&h.at.to_rfc3339()),
            h.hash_hex()
        ),
        None => Ok(()),
    }
}

/// Writes the document's end.
pub fn write_footer(out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(b"</body></html>\n")
}

/// Writes one saga's section; returns how many changes its table lists.
pub fn write_saga(
    out: &mut dyn Write,
    log: &dyn Log,
    saga: &SagaInfo,
    filter: &Filter,
) -> Result<u64, Error> {
    let io = |e| Error::io("-", e);
    let mut timeline = Timeline::new();
    for e in log.saga_entries(&saga.saga_id) {
        timeline.push(&e?);
    }
    let state = saga
        .state
        .clone()
        .or_else(|| timeline.state.clone())
        .unwrap_or_else(|| "unknown".into());
    writeln!(
        out,
        "<section class=\"saga\" id=\"saga-{id}\"><h2>Saga <code>{id}</code> — tenant <code>{tenant}</code></h2>\
<p class=\"meta\">state {state}; {bars} step runs; {retries} retries, {throttles} after throttling; from {first} to {last}</p>",
        id = escape(&saga.saga_id),
        tenant = escape(&saga.tenant_id),
        state = escape(&state),
        bars = timeline.bars.len(),
        retries = timeline.retries,
        throttles = timeline.throttles,
        first = timeline.first.map(|t| t.to_string()).unwrap_or_default(),
        last = timeline.last.map(|t| t.to_string()).unwrap_or_default(),
    )
    .map_err(io)?;
    out.write_all(super::svg::render(&timeline).as_bytes())
        .map_err(io)?;
    out.write_all(
        b"\n<table class=\"changes\"><thead><tr><th>step</th><th>action</th><th>target</th><th>object</th>\
<th>call</th><th>status</th><th>result</th><th>request id</th><th>intent</th><th>outcome</th></tr></thead><tbody>\n",
    )
    .map_err(io)?;
    let mut joiner = Joiner::new();
    let mut rows = 0u64;
    for e in log.saga_entries(&saga.saga_id) {
        if let Some(c) = joiner.push(&e?, filter) {
            write_row(out, &c).map_err(io)?;
            rows += 1;
        }
    }
    for c in joiner.finish_saga() {
        write_row(out, &c).map_err(io)?;
        rows += 1;
    }
    out.write_all(b"</tbody></table></section>\n").map_err(io)?;
    Ok(rows)
}

fn write_row(out: &mut dyn Write, c: &Change) -> std::io::Result<()> {
    let class = match &c.result {
        None => "in_doubt",
        Some(r) if r.succeeded() => "ok",
        Some(_) => "failed",
    };
    let call = c
        .http
        .as_ref()
        .map(|h| format!("{} {}", h.method, h.path))
        .unwrap_or_default();
    let status = match (&c.http, &c.result) {
        (Some(h), Some(_)) => h.status.to_string(),
        _ => String::new(),
    };
    let seq_at = |seq: Option<u64>, at: Option<crate::model::Timestamp>| match (seq, at) {
        (Some(s), Some(a)) => format!("#{s} {a}"),
        _ => String::new(),
    };
    writeln!(
        out,
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
        c.step.map(|s| s.to_string()).unwrap_or_default(),
        escape(&c.action),
        escape(&c.target),
        escape(c.object.as_deref().unwrap_or("")),
        escape(&call),
        status,
        escape(&c.result_label()),
        escape(c.http.as_ref().map_or("", |h| h.request_id.as_str())),
        seq_at(c.intent_seq, c.intent_at),
        seq_at(c.outcome_seq, c.outcome_at),
    )
}
