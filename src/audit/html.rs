//! The HTML report: one self-contained file (inline CSS, SVG and one
//! constant script; no external asset, no network). For more than one saga,
//! first an overview (one row per tenant, filtered by state and text);
//! then per saga: its summary ([`Summary`]), the SVG timeline of the whole
//! saga ([`super::svg`]), and the table of selected changes, each intent
//! joined with its outcome, collapsed under `<details>`. Objects are named
//! beside their ids ([`Names`]).
//!
//! Each saga is read twice (once for its summary, once for its table) so
//! that only its summary is ever held, not its events.

use super::changes::{Change, Joiner};
use super::entry::step_name;
use super::names::Names;
use super::summary::{human, Summary};
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
.legend span{margin-right:14px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px}\
.summary{background:#e7f0fd;border:1px solid #9ec5fe;border-radius:4px;padding:6px 10px;margin:8px 0}\
table.facts{font-size:13px}table.facts th,table.facts td{border:none;background:none;padding:2px 8px 2px 0}\
table.facts th{width:150px;white-space:nowrap}table.facts ul{margin:0;padding-left:18px}\
.state-completed{color:#1a7f37}.state-failed,.state-keep_admin_missing{color:#cf222e}.state-rolled_back,.state-compensating{color:#9a6700}\
table.overview thead th{background:#ddf4e4;position:sticky;top:0}.controls{margin:6px 0}\
details.calls{margin:8px 0}details.calls>summary{cursor:pointer;color:#0969da}";

/// How the report prints (to paper or PDF): no controls, a page per saga,
/// colours kept, collapsed detail left out.
const PRINT: &str = "@media print{body{margin:0;font-size:11px}.controls,.legend{display:none}\
section.saga{break-before:page}a{color:inherit;text-decoration:none}tr,li{break-inside:avoid}\
table.overview thead th{position:static}details:not([open]){display:none}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

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

/// Writes the document's head and title.
pub fn write_header(out: &mut dyn Write, title: &str) -> std::io::Result<()> {
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{t}</title><style>{STYLE}{PRINT}</style></head><body><h1>{t}</h1>\n",
        t = escape(title)
    )
}

/// Writes the legend of the timelines' colours.
pub fn write_legend(out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(
        b"<p class=\"legend\"><span><i class=\"sw\" style=\"background:#2f81f7\"></i>step (completed)</span><span><i class=\"sw\" style=\"background:#9ec5fe\"></i>step (running)</span>\
<span><i class=\"sw\" style=\"background:#bf8700\"></i>step (left)</span><span><i class=\"sw\" style=\"background:#cf222e\"></i>retry</span>\
<span><i class=\"sw\" style=\"background:#8250df\"></i>throttled</span><span><i class=\"sw\" style=\"background:#d0d7de\"></i>wait</span>\
<span><i class=\"sw\" style=\"background:#f0b429\"></i>operator gate</span><span><i class=\"sw\" style=\"background:#1a7f37\"></i>operator action</span></p>\n",
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

/// Writes one saga's section — its summary, its timeline, and its changes
/// collapsed under `<details>` — from its `summary`; returns how many
/// changes its table lists.
pub fn write_saga(
    out: &mut dyn Write,
    log: &dyn Log,
    saga: &SagaInfo,
    summary: &Summary,
    filter: &Filter,
) -> Result<u64, Error> {
    let io = |e| Error::io("-", e);
    let (names, _) = super::summary::names_of(log, &saga.saga_id)?;
    writeln!(
        out,
        "<section class=\"saga\" id=\"saga-{id}\"><h2>{tenant} <span class=\"meta\">{domain}saga <code>{id}</code></span></h2>",
        id = escape(&saga.saga_id),
        tenant = escape(&saga.tenant_id),
        domain = summary
            .initial_domain
            .as_deref()
            .filter(|d| *d != saga.tenant_id)
            .map(|d| format!("{} · ", escape(d)))
            .unwrap_or_default(),
    )
    .map_err(io)?;
    write_summary(out, summary).map_err(io)?;
    out.write_all(super::svg::render(&summary.timeline).as_bytes())
        .map_err(io)?;
    // Streamed: the count follows the rows (a saga's changes are not held).
    out.write_all(
        b"\n<details class=\"calls\"><summary>Per-call detail: every change, its intent joined with its outcome</summary>\
<table class=\"changes\"><thead><tr><th>step</th><th>action</th><th>target</th><th>object id</th>\
<th>call</th><th>status</th><th>result</th><th>request id</th><th>intent</th><th>outcome</th></tr></thead><tbody>\n",
    )
    .map_err(io)?;
    let mut rows = 0u64;
    let mut joiner = Joiner::new();
    for e in log.saga_entries(&saga.saga_id) {
        if let Some(c) = joiner.push(&e?, filter) {
            write_row(out, &c, &names).map_err(io)?;
            rows += 1;
        }
    }
    for c in joiner.finish_saga() {
        write_row(out, &c, &names).map_err(io)?;
        rows += 1;
    }
    writeln!(
        out,
        "</tbody></table><p class=\"meta\">{rows} changes listed.</p></details></section>"
    )
    .map_err(io)?;
    Ok(rows)
}

/// Writes a saga's summary block: the answers a reviewer asks first.
pub fn write_summary(out: &mut dyn Write, s: &Summary) -> std::io::Result<()> {
    let row = |out: &mut dyn Write, th: &str, td: &str| {
        writeln!(out, "<tr><th>{th}</th><td>{td}</td></tr>")
    };
    out.write_all(b"<div class=\"summary\"><table class=\"facts\"><tbody>\n")?;
    let outcome = if s.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", escape(&s.reason))
    };
    row(
        out,
        "Outcome",
        &format!(
            "<b class=\"state state-{st}\">{st}</b>{outcome}",
            st = escape(&s.state)
        ),
    )?;
    row(out, "Tenant", &escape(&s.tenant_line()))?;
    let (who, when) = s.submitted_line();
    row(
        out,
        "Submitted",
        &format!("by <b>{}</b> at {when}", escape(who)),
    )?;
    let mut steps = String::from("<ul>");
    for b in &s.timeline.bars {
        let (how, took) = match (b.completed, b.end) {
            (true, Some(end)) => ("completed in", human(end.since(b.start))),
            (false, Some(end)) => ("left after", human(end.since(b.start))),
            (_, None) => ("running for", String::from("(still open)")),
        };
        steps.push_str(&format!(
            "<li>{} {}: {how} {took} <span class=\"meta\">({} applied, {} already done, {} failed)</span></li>",
            b.step,
            escape(step_name(b.step)),
            b.applied,
            b.already_done,
            b.failed
        ));
    }
    steps.push_str("</ul>");
    row(out, "Steps", &steps)?;
    let waits = s.waits();
    if !waits.is_empty() {
        let mut list = String::from("<ul>");
        for w in &waits {
            list.push_str(&format!(
                "<li>{}: {}</li>",
                if w.gate {
                    "<b>operator gate</b>"
                } else {
                    "wait"
                },
                escape(&super::text::wait_text(w))
            ));
        }
        list.push_str("</ul>");
        row(out, "Waits", &list)?;
    }
    let mut changed = escape(&s.counts_line());
    if !s.mfa.is_empty() || !s.subscriptions.is_empty() {
        changed.push_str("<ul>");
        for m in &s.mfa {
            changed.push_str(&format!(
                "<li>{} <b title=\"{}\">{}</b>: was {}, {}</li>",
                escape(&m.action),
                escape(&m.id),
                escape(&m.name),
                escape(m.before.as_deref().unwrap_or("unknown")),
                escape(&m.result)
            ));
        }
        for c in &s.subscriptions {
            changed.push_str(&format!(
                "<li>{} <b title=\"{}\">{}</b> <code>{}</code>: {}</li>",
                escape(&c.action),
                escape(&c.id),
                escape(&c.name),
                escape(&c.id),
                escape(&c.result)
            ));
        }
        changed.push_str("</ul>");
    }
    row(out, "Changed", &changed)?;
    if let Some(k) = s.kept_line() {
        row(out, "Kept", &escape(&k))?;
    }
    if let Some(d) = s.data_line() {
        row(out, "Data and backup", &escape(&d))?;
    }
    let mut ops = String::new();
    if s.operators.is_empty() {
        ops.push_str("none");
    } else {
        ops.push_str("<ul>");
        for o in &s.operators {
            ops.push_str(&format!(
                "<li>{} <b>{}</b> {}{} — reason: “{}”</li>",
                o.at,
                escape(&o.who),
                escape(&o.action),
                o.gate
                    .as_deref()
                    .map(|g| format!(
                        " <span class=\"meta\">(the gate asked: {})</span>",
                        escape(g)
                    ))
                    .unwrap_or_default(),
                escape(&o.why)
            ));
        }
        ops.push_str("</ul>");
    }
    row(out, "Operator actions", &ops)?;
    let mut ver = String::new();
    if s.verification_seen == 0 {
        ver.push_str("none recorded");
    } else {
        ver.push_str(&format!("{} signals<ul>", s.verification_seen));
        for v in &s.verification {
            ver.push_str(&format!("<li>{} {}</li>", v.at, escape(&v.text)));
        }
        if let Some(d) = s.discovery_line() {
            ver.push_str(&format!("<li>{}</li>", escape(&d)));
        }
        ver.push_str("</ul>");
    }
    row(out, "Step 5 verification", &ver)?;
    row(out, "Retries", &escape(&s.retries_line()))?;
    out.write_all(b"</tbody></table></div>\n")
}

/// Writes the batch overview: one row per saga (state, step, duration,
/// counts, a link to its section), a state filter and a text search. The
/// script is a constant: what the tenants named reaches it only through
/// the rows' `data-` attributes, escaped for an attribute.
pub fn write_overview(out: &mut dyn Write, summaries: &[Summary]) -> std::io::Result<()> {
    let mut states: Vec<&str> = summaries.iter().map(|s| s.state.as_str()).collect();
    states.sort_unstable();
    states.dedup();
    write!(
        out,
        "<section id=\"overview\"><h2>Overview: {} tenants</h2><p class=\"controls\"><label>State \
<select id=\"f-state\"><option value=\"\">all</option>",
        summaries.len()
    )?;
    for st in &states {
        let n = summaries.iter().filter(|s| s.state == *st).count();
        write!(
            out,
            "<option value=\"{v}\">{v} ({n})</option>",
            v = escape(st)
        )?;
    }
    out.write_all(
        b"</select></label> <label>Search <input id=\"f-q\" type=\"search\" placeholder=\"tenant, id, domain, saga, submitter\"/></label> \
<span id=\"f-count\" class=\"meta\"></span></p>\n<table class=\"overview\"><thead><tr><th>tenant</th><th>state</th><th>step</th>\
<th>duration</th><th>users deleted</th><th>subscriptions cancelled / deleted</th><th>MFA settings disabled</th>\
<th>operator actions</th><th>retries (throttled)</th></tr></thead><tbody>\n",
    )?;
    for s in summaries {
        let search = format!(
            "{} {} {} {} {}",
            s.tenant_id,
            s.tenant_guid,
            s.initial_domain.as_deref().unwrap_or(""),
            s.saga_id,
            s.submitted_by
        )
        .to_lowercase();
        writeln!(
            out,
            "<tr data-state=\"{st}\" data-text=\"{text}\" data-section=\"saga-{id}\"><td><a href=\"#saga-{id}\" title=\"{title}\">{tenant}</a>{domain}</td>\
<td class=\"state state-{st}\">{st}</td><td>{step}</td><td>{dur}</td><td>{ud}</td><td>{sc} / {sd}</td><td>{mfa}</td><td>{ops}</td><td>{r} ({t})</td></tr>",
            st = escape(&s.state),
            text = escape(&search),
            id = escape(&s.saga_id),
            title = escape(&format!("saga {}; {}", s.saga_id, s.tenant_line())),
            tenant = escape(&s.tenant_id),
            domain = s
                .initial_domain
                .as_deref()
                .filter(|d| *d != s.tenant_id)
                .map(|d| format!("<br/><span class=\"meta\">{}</span>", escape(d)))
                .unwrap_or_default(),
            step = escape(&s.step()),
            dur = s.duration().map(human).unwrap_or_default(),
            ud = s.counts.users_deleted,
            sc = s.counts.subscriptions_cancelled,
            sd = s.counts.subscriptions_deleted,
            mfa = s.counts.mfa_changed,
            ops = s.operators.len(),
            r = s.timeline.retries,
            t = s.timeline.throttles,
        )?;
    }
    out.write_all(b"</tbody></table></section>\n")
}

/// Writes the overview's filter script (after the sections it hides).
pub fn write_script(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "<script>{SCRIPT}</script>")
}

/// Filters the overview's rows (and hides the sections of the rows it
/// hides) by state and text. Preset by the query or the fragment, e.g.
/// `report.html?state=failed&q=contoso` or `#state=failed`. Written
/// without `<` and `&` so that the document stays well-formed XML.
const SCRIPT: &str = "(function(){\
var rows=Array.prototype.slice.call(document.querySelectorAll('#overview tbody tr'));\
var st=document.getElementById('f-state'),q=document.getElementById('f-q'),n=document.getElementById('f-count');\
if(!st){return;}\
function apply(){var s=st.value,t=q.value.trim().toLowerCase(),shown=0;\
rows.forEach(function(r){var ok=(s===''||r.getAttribute('data-state')===s)?(t===''||r.getAttribute('data-text').indexOf(t)!==-1):false;\
r.hidden=!ok;var sec=document.getElementById(r.getAttribute('data-section'));if(sec){sec.hidden=!ok;}if(ok){shown+=1;}});\
n.textContent=shown+' of '+rows.length+' tenants shown';}\
var preset=location.search.slice(1);if(location.hash.indexOf('=')!==-1){preset=location.hash.slice(1);}\
var p=new URLSearchParams(preset);if(p.get('state')!==null){st.value=p.get('state');}if(p.get('q')!==null){q.value=p.get('q');}\
st.addEventListener('change',apply);q.addEventListener('input',apply);apply();})();";

fn write_row(out: &mut dyn Write, c: &Change, names: &Names) -> std::io::Result<()> {
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
    let object = c.object.as_deref().unwrap_or(&c.target);
    let seq_at = |seq: Option<u64>, at: Option<crate::model::Timestamp>| match (seq, at) {
        (Some(s), Some(a)) => format!("#{s} {a}"),
        _ => String::new(),
    };
    writeln!(
        out,
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td title=\"{}\">{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
        c.step.map(|s| s.to_string()).unwrap_or_default(),
        escape(&c.action),
        escape(object),
        escape(names.of(object).unwrap_or(&c.target)),
        escape(object),
        escape(&call),
        status,
        escape(&c.result_label()),
        escape(c.http.as_ref().map_or("", |h| h.request_id.as_str())),
        seq_at(c.intent_seq, c.intent_at),
        seq_at(c.outcome_seq, c.outcome_at),
    )
}
