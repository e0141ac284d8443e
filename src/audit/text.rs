//! The text timeline: per saga, one line per selected event — steps with
//! their counts, each change with target and outcome, retries and
//! throttling, waits and gates, operator actions with who and why — and the
//! changes left in doubt at the end. Each line goes through
//! [`crate::escape::text`]: a name cannot add a line or drive the terminal.

use super::changes::Joiner;
use super::entry::step_name;
use super::source::Entries;
use super::timeline::Timeline;
use super::{Error, Fact, Filter, SagaInfo};
use crate::escape;
use std::io::Write;

/// Writes one saga's timeline; returns how many entries it selected.
pub fn write_saga(
    out: &mut dyn Write,
    saga: &SagaInfo,
    entries: Entries<'_>,
    filter: &Filter,
) -> Result<u64, Error> {
    let io = |e| Error::io("-", e);
    let head = format!(
        "saga {}  tenant {}  state {}",
        saga.saga_id,
        saga.tenant_id,
        saga.state.as_deref().unwrap_or("unknown")
    );
    writeln!(out, "{}", escape::text(&head)).map_err(io)?;
    let mut timeline = Timeline::new();
    let mut joiner = Joiner::new();
    let mut selected = 0u64;
    for e in entries {
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
            } => format!("  intends to {action} {target} (change {change_id})"),
            Fact::Outcome { change_id, result } => {
                let what = joined
                    .as_ref()
                    .map(|c| format!("{} {}", c.action, c.target).trim().to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format!("change {change_id}"));
                match &e.http {
                    Some(h) => format!(
                        "  {} {} -> {} {}: {what} (request {})",
                        h.method,
                        h.path,
                        h.status,
                        result.label(),
                        if h.request_id.is_empty() {
                            "-"
                        } else {
                            &h.request_id
                        }
                    ),
                    None => format!("  {}: {what}", result.label()),
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
                e.object.as_deref().unwrap_or("?"),
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
            Fact::Other { summary } => summary.clone(),
        };
        writeln!(out, "  {}  {step}{}", e.at, escape::text(&line)).map_err(io)?;
    }
    for c in joiner.finish_saga() {
        let line = format!(
            "  in doubt: {} {} (change {}, intent #{}, no outcome recorded)",
            c.action,
            c.target,
            c.change_id,
            c.intent_seq.unwrap_or_default()
        );
        writeln!(out, "{}", escape::text(&line)).map_err(io)?;
    }
    if timeline.retries > 0 {
        writeln!(
            out,
            "  {} retries in all, {} after throttling",
            timeline.retries, timeline.throttles
        )
        .map_err(io)?;
    }
    writeln!(out).map_err(io)?;
    Ok(selected)
}
