//! The text timeline: per saga, first a summary (what happened, to which
//! tenant, on whose order, how long each step and wait took, what was
//! changed, every operator action, step 5's evidence, retries in one line),
//! then one line per selected event — steps with their counts, each change
//! on one line (its outcome with its call, the object by name and id),
//! retries and throttling, waits and gates, operator actions with who and
//! why — and the changes left in doubt at the end. An intent is shown on
//! its own line only when it is all the filter selects (its outcome's line
//! tells it otherwise). Each line goes through [`crate::escape::text`]: a
//! name cannot add a line or drive the terminal.

use super::changes::Joiner;
use super::entry::step_name;
use super::summary::{human, Summary};
use super::timeline::Timeline;
use super::{Error, Fact, Filter, Log, SagaInfo};
use crate::escape;
use std::io::Write;

/// Writes one saga's summary and timeline; returns how many entries it
/// selected.
pub fn write_saga(
    out: &mut dyn Write,
    log: &dyn Log,
    saga: &SagaInfo,
    filter: &Filter,
) -> Result<u64, Error> {
    let io = |e| Error::io("-", e);
    let (names, inventory) = super::summary::names_of(log, &saga.saga_id)?;
    let summary = Summary::build(log, saga, &names, inventory.as_ref())?;
    drop(inventory);
    let head = format!(
        "saga {}  tenant {}  state {}",
        saga.saga_id, saga.tenant_id, summary.state
    );
    writeln!(out, "{}", escape::text(&head)).map_err(io)?;
    for line in summary_lines(&summary) {
        writeln!(out, "  {}", escape::text(&line)).map_err(io)?;
    }
    writeln!(out, "  detail:").map_err(io)?;
    let intents_only = !filter.kinds.is_empty()
        && filter.kinds.iter().any(|k| k == "change_intended")
        && !filter
            .kinds
            .iter()
            .any(|k| k == "change_applied" || k == "change_failed");
    let mut timeline = Timeline::new();
    let mut joiner = Joiner::new();
    let mut selected = 0u64;
    for e in log.saga_entries(&saga.saga_id) {
        let e = e?;
        timeline.push(&e);
        let joined = joiner.push(&e, filter);
        if !filter.matches(&e) {
            continue;
        }
        selected += 1;
        let step = e.step.map(|s| format!("[{s}] ")).unwrap_or_default();
        let line = match &e.fact {
            Fact::SagaStarted {
                keep,
                subscriptions,
                submitted_by,
            } => format!(
                "saga started by {submitted_by}: keep {}; subscriptions {subscriptions}",
                keep.join(", ")
            ),
            Fact::Inventory { summary } => format!("inventory recorded: {summary}"),
            Fact::StepStarted { step } => format!("step {step} ({}) started", step_name(*step)),
            Fact::StepCompleted { step } => {
                let counts = timeline
                    .bars
                    .iter()
                    .rev()
                    .find(|b| b.step == *step)
                    .map(|b| {
                        format!(
                            ": {} applied, {} already done, {} failed, {} retries ({} throttled)",
                            b.applied, b.already_done, b.failed, b.retries, b.throttles
                        )
                    })
                    .unwrap_or_default();
                format!("step {step} ({}) completed{counts}", step_name(*step))
            }
            Fact::Intent {
                change_id,
                action,
                target,
            } if intents_only => format!(
                "  intends to {action} {} (change {change_id})",
                names.label_change(e.object.as_deref(), target)
            ),
            Fact::Intent { .. } => continue,
            Fact::Outcome { change_id, result } => {
                let what = joined
                    .as_ref()
                    .map(|c| {
                        format!(
                            "{} {}",
                            c.action,
                            names.label_change(c.object.as_deref(), &c.target)
                        )
                        .trim()
                        .to_string()
                    })
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format!("change {change_id}"));
                match &e.http {
                    Some(h) => format!(
                        "  {what}: {} ({} {} -> {}, request {})",
                        result.label(),
                        h.method,
                        h.path,
                        h.status,
                        if h.request_id.is_empty() {
                            "-"
                        } else {
                            &h.request_id
                        }
                    ),
                    None => format!("  {what}: {}", result.label()),
                }
            }
            Fact::Retry {
                delay,
                throttled,
                reason,
            } => format!(
                "  {} retry in {}: {reason}",
                if *throttled { "throttled," } else { "failed," },
                humantime::format_duration(*delay)
            ),
            Fact::WaitStarted { reason, until } => match until {
                Some(u) => format!("waiting until {u}: {reason}"),
                None => format!("waiting: {reason}"),
            },
            Fact::Resolved { action, applied } => format!(
                "  in-doubt {action} {} resolved by reading: {}",
                names.label(e.object.as_deref().unwrap_or("?")),
                if *applied {
                    "it was applied"
                } else {
                    "not applied, to be made again"
                }
            ),
            Fact::WaitEnded { reason } => format!("wait over: {reason}"),
            Fact::GateOpened { instructions } => format!("operator gate: {instructions}"),
            Fact::Operator { action, who, why } => {
                format!("operator {who}: {action} (reason: {why})")
            }
            Fact::State { state, reason } if reason.is_empty() => format!("state {state}"),
            Fact::State { state, reason } => format!("state {state}: {reason}"),
            Fact::Other { .. } if e.kind == "keep_list_checked" => format!(
                "keep list checked: {} never to be deleted",
                super::summary::ids_in(&e.details, "/keep_ids")
                    .iter()
                    .map(|id| names.label(id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Fact::Other { summary } => summary.clone(),
        };
        writeln!(out, "  {}  {step}{}", e.at, escape::text(&line)).map_err(io)?;
    }
    for c in joiner.finish_saga() {
        let line = format!(
            "  in doubt: {} {} (change {}, intent #{}, no outcome recorded)",
            c.action,
            names.label_change(c.object.as_deref(), &c.target),
            c.change_id,
            c.intent_seq.unwrap_or_default()
        );
        writeln!(out, "{}", escape::text(&line)).map_err(io)?;
    }
    writeln!(out).map_err(io)?;
    Ok(selected)
}

/// The summary block's lines (without indentation or escaping).
pub fn summary_lines(s: &Summary) -> Vec<String> {
    let mut lines = Vec::new();
    let outcome = if s.reason.is_empty() {
        s.state.clone()
    } else {
        format!("{}: {}", s.state, s.reason)
    };
    lines.push(format!("outcome: {outcome}"));
    lines.push(format!("tenant: {}", s.tenant_line()));
    let (who, when) = s.submitted_line();
    lines.push(format!("submitted by {who} at {when}"));
    for b in &s.timeline.bars {
        let (how, took) = match (b.completed, b.end) {
            (true, Some(end)) => ("completed in", human(end.since(b.start))),
            (false, Some(end)) => ("left after", human(end.since(b.start))),
            (_, None) => ("running since", b.start.to_string()),
        };
        lines.push(format!(
            "step {} ({}): {how} {took}; {} applied, {} already done, {} failed",
            b.step,
            step_name(b.step),
            b.applied,
            b.already_done,
            b.failed
        ));
    }
    for w in s.waits() {
        lines.push(format!(
            "{}: {}",
            if w.gate { "operator gate" } else { "wait" },
            wait_text(&w)
        ));
    }
    lines.push(format!("changed: {}", s.counts_line()));
    if let Some(k) = s.kept_line() {
        lines.push(format!("kept: {k}"));
    }
    if let Some(d) = s.data_line() {
        lines.push(format!("data and backup: {d}"));
    }
    for m in &s.mfa {
        lines.push(format!(
            "  {} {}: {} -> {} ({})",
            m.action,
            m.name,
            m.before.as_deref().unwrap_or("unknown"),
            if m.result.starts_with("failed") {
                "unchanged"
            } else {
                "disabled"
            },
            m.result
        ));
    }
    for c in &s.subscriptions {
        lines.push(format!(
            "  {} {} [{}]: {}",
            c.action, c.name, c.id, c.result
        ));
    }
    if s.operators.is_empty() {
        lines.push("operator actions: none".into());
    }
    for o in &s.operators {
        let gate = o
            .gate
            .as_deref()
            .map(|g| format!(" (gate: {g})"))
            .unwrap_or_default();
        lines.push(format!(
            "operator {} {} at {}{gate}; reason: {}",
            o.who, o.action, o.at, o.why
        ));
    }
    if s.verification_seen == 0 {
        lines.push("step 5 verification: none recorded".into());
    } else {
        lines.push(format!(
            "step 5 verification ({} signals):",
            s.verification_seen
        ));
        for v in &s.verification {
            lines.push(format!("  {} {}", v.at, v.text));
        }
        if let Some(d) = s.discovery_line() {
            lines.push(format!("  {d}"));
        }
    }
    lines.push(format!("retries: {}", s.retries_line()));
    lines
}

/// A run of waits in words: how long, since when, why, how many.
pub fn wait_text(w: &super::summary::Wait) -> String {
    let mut out = format!("{} from {}", human(w.total), w.start);
    if w.count > 1 {
        out.push_str(&format!(" ({} in a row)", w.count));
    }
    if w.open {
        out.push_str(", still waiting");
    }
    out.push_str(": ");
    out.push_str(&w.label);
    out
}
