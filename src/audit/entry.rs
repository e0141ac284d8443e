//! The audit view of the log: one [`Entry`] per recorded event, or per item of
//! an event that carries several per-object outcomes (a `$batch` of deletions),
//! with what the renderers need to tell the story ([`Fact`]) and the event
//! itself as JSON for the exports.

use crate::model::{HttpInfo, Timestamp};
use std::borrow::Cow;
use std::time::Duration;

/// One event of the log (or one item of it), as the audit renderers see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The record's position in the whole log: the order of the log and the key
    /// an export is checked against. Exported as `seq`.
    pub seq: u64,
    /// The record's position within its saga (gap-free from the first event).
    pub saga_seq: u64,
    /// When the event was recorded.
    pub at: Timestamp,
    /// The saga the event belongs to.
    pub saga_id: String,
    /// The tenant the saga closes (from its first event), as the batch named it.
    pub tenant_id: String,
    /// The tenant's GUID (from the saga's `TenantResolved`); empty before it
    /// and for sagas recorded before tenants were resolved.
    pub tenant_guid: String,
    /// The snake_case event name.
    pub kind: Cow<'static, str>,
    /// The record's hash (over the previous hash and its own bytes).
    pub hash: [u8; 32],
    /// The previous record's hash.
    pub prev_hash: [u8; 32],
    /// Set when the event carries several per-object items: which one this is.
    /// Every item of a record repeats its `seq` and hashes.
    pub item: Option<Item>,
    /// The external call this event is about (the jsonl contract in the README), with the item's
    /// own method and path for a call made inside a `$batch`.
    pub http: Option<HttpInfo>,
    /// The object (user, subscription, policy id) the event is about, if one:
    /// the key of `--object`.
    pub object: Option<String>,
    /// The saga step (1-5) the event belongs to, if any.
    pub step: Option<u8>,
    /// What happened, in the terms the timeline and the joins need.
    pub fact: Fact,
    /// The event (or the item) itself, as JSON text, for the exports
    /// (`null` when not asked for). Kept as text: it is written as is.
    pub details: String,
}

/// Which item of a multi-item event an [`Entry`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    /// 0-based position of the item in the event.
    pub index: u32,
    /// How many items the event carries.
    pub count: u32,
}

/// What an event means for the audit: the story told by the timeline, the
/// pairs joined by the change table, the checks made by `verify`.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    /// The saga was submitted.
    SagaStarted {
        /// Accounts that must survive.
        keep: Vec<String>,
        /// How subscriptions are handled.
        subscriptions: String,
        /// Who submitted it (the control socket peer's user).
        submitted_by: String,
    },
    /// The tenant's inventory (the backup) was recorded.
    Inventory {
        /// A one-line count of what it holds.
        summary: String,
    },
    /// A step began (the saga's `StepStarted`).
    StepStarted {
        /// The step: 1 delete users, 2 cancel subscriptions, 3 delete subscriptions,
        /// 4 turn off MFA, 5 delete the tenant.
        step: u8,
    },
    /// A step finished successfully (verified by reading).
    StepCompleted {
        /// The step verified, 1 to 5 (numbered as in `StepStarted`).
        step: u8,
    },
    /// An external change is about to be made (durable before it is made).
    Intent {
        /// Links the intent to its outcome.
        change_id: String,
        /// What is done, e.g. `delete user`.
        action: String,
        /// What it is done to (UPN, subscription name, policy id).
        target: String,
    },
    /// The result of an external change.
    Outcome {
        /// The intent this answers.
        change_id: String,
        /// How the change ended for this object.
        result: OutcomeResult,
    },
    /// A read settled an in-doubt change of one object (after a crash or a
    /// timeout): whether it had been applied.
    Resolved {
        /// What the change was (`delete user`), matching its intent's action.
        action: String,
        /// Found applied (else it will be made again, under a new intent).
        applied: bool,
    },
    /// A failed call will be tried again.
    Retry {
        /// How long the saga waits first.
        delay: Duration,
        /// Whether the service throttled the call (429, `Retry-After`).
        throttled: bool,
        /// `attempt N after ...`: the retry's number, then the failure as displayed.
        reason: String,
    },
    /// The saga waits (a durable timer, e.g. subscription deprovisioning).
    WaitStarted {
        /// Why the saga waits, in the saga's words.
        reason: String,
        /// Until when, if the wait has a set end.
        until: Option<Timestamp>,
    },
    /// A wait or gate is over.
    WaitEnded {
        /// Which gate passed and how it was known: by reading, or on an operator's word.
        reason: String,
    },
    /// An operator gate opened: a person must act in an admin center.
    GateOpened {
        /// What the person is asked to do.
        instructions: String,
    },
    /// An operator acted (pause, resume, abort, confirm a gate).
    Operator {
        /// What they did, in words (`paused`, `resumed`, `asked to abort`, ...).
        action: String,
        /// The control socket peer's user name, as recorded.
        who: String,
        /// Why, as they said.
        why: String,
    },
    /// The saga changed state (paused, compensating, failed, completed...).
    State {
        /// The new state, snake_case.
        state: String,
        /// Why, in words; empty when the event gives no reason (`completed`, `rolled_back`).
        reason: String,
    },
    /// Any other event, reduced to one line.
    Other {
        /// One line for the timeline.
        summary: String,
    },
}

/// How an external change ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeResult {
    /// The service made the change.
    Applied,
    /// It had already been made (404 on a delete).
    AlreadyDone,
    /// It was in doubt, and a read showed whether it had been applied.
    Resolved {
        /// Whether the read found the change applied (if not, it is made again).
        applied: bool,
    },
    /// It failed for this object.
    Failed {
        /// The failure's class, snake_case: `transient`, `in_doubt` or `permanent`.
        class: String,
        /// The service's (or closeout's) error code.
        code: String,
    },
}

impl OutcomeResult {
    /// A short word for tables: `applied`, `already_done`, `failed:CODE`.
    pub fn label(&self) -> String {
        match self {
            OutcomeResult::Applied => "applied".into(),
            OutcomeResult::AlreadyDone => "already_done".into(),
            OutcomeResult::Resolved { applied: true } => "applied (found by reading)".into(),
            OutcomeResult::Resolved { applied: false } => {
                "not applied (found by reading; made again)".into()
            }
            OutcomeResult::Failed { class, code } => format!("failed ({class}): {code}"),
        }
    }

    /// Whether the change is in place.
    pub fn succeeded(&self) -> bool {
        match self {
            OutcomeResult::Applied | OutcomeResult::AlreadyDone => true,
            OutcomeResult::Resolved { applied } => *applied,
            OutcomeResult::Failed { .. } => false,
        }
    }

    /// Whether the intent stays open after this result: only an in-doubt
    /// failure does (a read will settle it).
    pub fn leaves_open(&self) -> bool {
        matches!(self, OutcomeResult::Failed { class, .. } if class == "in_doubt")
    }
}

/// Lowercase hex of a hash, as exported.
pub fn hex(hash: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    hex_into(hash, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Lowercase hex of a hash into a buffer.
pub fn hex_into(hash: &[u8; 32], out: &mut [u8; 64]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(hash) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The name of step `n` as the seed calls it.
pub fn step_name(n: u8) -> &'static str {
    match n {
        1 => "delete users",
        2 => "cancel active subscriptions",
        3 => "delete disabled subscriptions",
        4 => "disable multi-factor authentication",
        5 => "delete the directory",
        _ => "step",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_complete() {
        let mut h = [0u8; 32];
        h[0] = 0xab;
        h[31] = 0x0f;
        let s = hex(&h);
        assert_eq!(s.len(), 64);
        assert!(s.starts_with("ab00"));
        assert!(s.ends_with("000f"));
    }
}
