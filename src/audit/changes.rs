//! Joins each external change's intent with its outcome, one saga at a time:
//! the rows of the csv export, the change table of the HTML report and the
//! change lines of the text timeline.
//!
//! Each intent names one object (an event naming several becomes one entry
//! per object) and gets at most one outcome; an in-doubt one is settled later
//! by a read ([`Fact::Resolved`]), matched by action and object. Memory is
//! bounded by the changes of one saga still waiting for their outcome: an
//! intent is forgotten once answered, and [`Joiner::finish_saga`] flushes the
//! rest (in doubt).

use super::{Entry, Fact, Filter, OutcomeResult};
use crate::model::{HttpInfo, Timestamp};
use std::collections::HashMap;

/// One external change: an intent joined with an outcome (a row of the
/// change table).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The saga that made it.
    pub saga_id: String,
    /// The tenant changed, as the batch named it.
    pub tenant_id: String,
    /// Its GUID, empty when the saga recorded none.
    pub tenant_guid: String,
    /// The step (1-5) it belongs to.
    pub step: Option<u8>,
    /// Links intent and outcome.
    pub change_id: String,
    /// What was done (`delete user`).
    pub action: String,
    /// What it was done to, as the intent named it.
    pub target: String,
    /// The object id changed.
    pub object: Option<String>,
    /// The call as made (from the outcome, else as the intent planned it).
    pub http: Option<HttpInfo>,
    /// How it ended; `None` when no outcome was recorded (in doubt).
    pub result: Option<OutcomeResult>,
    /// The intent's record, if one was seen.
    pub intent_seq: Option<u64>,
    /// When the intent was recorded.
    pub intent_at: Option<Timestamp>,
    /// The outcome's record, if any.
    pub outcome_seq: Option<u64>,
    /// When the outcome was recorded.
    pub outcome_at: Option<Timestamp>,
}

impl Change {
    /// `applied`, `already_done`, `failed (...)` or `in_doubt`.
    pub fn result_label(&self) -> String {
        self.result
            .as_ref()
            .map_or_else(|| "in_doubt".to_string(), OutcomeResult::label)
    }
}

/// An intent still waiting for a successful outcome.
#[derive(Clone, Debug)]
struct Pending {
    /// The row as far as the intent tells it.
    change: Change,
    /// Whether the intent itself was selected by the filter.
    selected: bool,
    /// Whether an outcome (a failure) was already reported for it.
    answered: bool,
}

/// Pairs intents with outcomes within one saga.
#[derive(Debug, Default)]
pub struct Joiner {
    /// Intents by change id.
    pending: HashMap<String, Pending>,
}

impl Joiner {
    /// A joiner with nothing pending.
    pub fn new() -> Joiner {
        Joiner::default()
    }

    /// Feeds the next entry of the saga; returns the joined row when it is an
    /// outcome and the filter selects its intent or itself.
    pub fn push(&mut self, e: &Entry, filter: &Filter) -> Option<Change> {
        match &e.fact {
            Fact::Intent {
                change_id,
                action,
                target,
            } => {
                let change = Change {
                    saga_id: e.saga_id.clone(),
                    tenant_id: e.tenant_id.clone(),
                    tenant_guid: e.tenant_guid.clone(),
                    step: e.step,
                    change_id: change_id.clone(),
                    action: action.clone(),
                    target: target.clone(),
                    object: e.object.clone(),
                    http: e.http.clone(),
                    result: None,
                    intent_seq: Some(e.seq),
                    intent_at: Some(e.at),
                    outcome_seq: None,
                    outcome_at: None,
                };
                let selected = filter.matches(e);
                self.pending.insert(
                    change_id.clone(),
                    Pending {
                        change,
                        selected,
                        answered: false,
                    },
                );
                None
            }
            Fact::Outcome { change_id, result } => {
                let selected = filter.matches(e);
                let (mut change, intent_selected) = match self.pending.get_mut(change_id) {
                    Some(p) => {
                        p.answered = true;
                        (p.change.clone(), p.selected)
                    }
                    None => (
                        Change {
                            saga_id: e.saga_id.clone(),
                            tenant_id: e.tenant_id.clone(),
                            tenant_guid: e.tenant_guid.clone(),
                            step: e.step,
                            change_id: change_id.clone(),
                            action: String::new(),
                            target: String::new(),
                            object: None,
                            http: None,
                            result: None,
                            intent_seq: None,
                            intent_at: None,
                            outcome_seq: None,
                            outcome_at: None,
                        },
                        false,
                    ),
                };
                if !result.leaves_open() {
                    self.pending.remove(change_id);
                }
                if e.http.is_some() {
                    change.http = e.http.clone();
                }
                if e.object.is_some() {
                    change.object = e.object.clone();
                }
                change.step = change.step.or(e.step);
                change.result = Some(result.clone());
                change.outcome_seq = Some(e.seq);
                change.outcome_at = Some(e.at);
                (selected || intent_selected).then_some(change)
            }
            Fact::Resolved { action, applied } => {
                let key = self
                    .pending
                    .iter()
                    .find(|(_, p)| &p.change.action == action && p.change.object == e.object)
                    .map(|(k, _)| k.clone())?;
                let p = self.pending.remove(&key)?;
                let mut change = p.change;
                change.result = Some(OutcomeResult::Resolved { applied: *applied });
                change.outcome_seq = Some(e.seq);
                change.outcome_at = Some(e.at);
                (p.selected || filter.matches(e)).then_some(change)
            }
            _ => None,
        }
    }

    /// Ends the saga: returns its selected intents that never got an outcome
    /// (in doubt), in log order, and forgets everything pending.
    pub fn finish_saga(&mut self) -> Vec<Change> {
        let mut open: Vec<Change> = self
            .pending
            .drain()
            .filter(|(_, p)| p.selected && !p.answered)
            .map(|(_, p)| p.change)
            .collect();
        open.sort_by_key(|c| c.intent_seq);
        open
    }

    /// How many intents are waiting (for tests of the memory bound).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
