//! The shape of one saga over time, folded from its entries: a bar per step
//! run, the retries and throttles on them, waits, gates and operator actions.
//! The HTML report draws it as SVG; the text timeline prints each bar's
//! counts when its step ends.
//!
//! Bounded: counts are exact, but at most [`MAX_MARKS`] individual retry or
//! operator marks and [`MAX_SPANS`] waits or gates are kept per saga.

use super::{Entry, Fact, OutcomeResult};
use crate::model::Timestamp;

/// Most retry/throttle/operator marks kept per saga for drawing.
pub const MAX_MARKS: usize = 400;
/// Most waits or gates kept per saga for drawing.
pub const MAX_SPANS: usize = 100;

/// One run of one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bar {
    /// The step run, 1 to 5 (a step run again gets a bar of its own).
    pub step: u8,
    /// When its `StepStarted` was recorded.
    pub start: Timestamp,
    /// When it completed or was left (`None`: still open at the end of the log).
    pub end: Option<Timestamp>,
    /// Whether it completed successfully.
    pub completed: bool,
    /// Changes the service made during the run (already-done ones not counted).
    pub applied: u32,
    /// Changes found already done.
    pub already_done: u32,
    /// Per-object change failures during the run, whatever their class.
    pub failed: u32,
    /// Retries scheduled during the run, throttled ones included.
    pub retries: u32,
    /// Of which after throttling.
    pub throttles: u32,
}

/// A point in time worth marking.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// When it was recorded.
    pub at: Timestamp,
    /// The step lane it belongs to, if any.
    pub step: Option<u8>,
    /// What kind of mark.
    pub kind: MarkKind,
    /// The tooltip text: the retry's reason, or `ACTION by WHO: WHY` for an operator.
    pub label: String,
}

/// What a [`Mark`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// A retry after a failure.
    Retry,
    /// A retry after throttling.
    Throttle,
    /// An operator action (pause, resume, abort, confirm, attest).
    Operator,
}

/// A wait or a gate: an interval where the saga did not act.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// When the wait started or the gate opened.
    pub start: Timestamp,
    /// When it ended (`None`: still waiting at the end of the log).
    pub end: Option<Timestamp>,
    /// Whether it is an operator gate (else a timer wait).
    pub gate: bool,
    /// The wait's reason or the gate's instructions, as recorded.
    pub label: String,
}

/// One saga's timeline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// The first event's time.
    pub first: Option<Timestamp>,
    /// The last event's time.
    pub last: Option<Timestamp>,
    /// One bar per step run, in start order.
    pub bars: Vec<Bar>,
    /// Waits and gates in start order, at most [`MAX_SPANS`].
    pub spans: Vec<Span>,
    /// Retries, throttles and operator actions.
    pub marks: Vec<Mark>,
    /// Retries in total (also those not kept as marks).
    pub retries: u64,
    /// Throttled retries in total.
    pub throttles: u64,
    /// The last state recorded.
    pub state: Option<String>,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// The bar of the step currently running, if any.
    fn open_bar(&mut self, step: Option<u8>) -> Option<&mut Bar> {
        self.bars
            .iter_mut()
            .rev()
            .find(|b| b.end.is_none() && step.is_none_or(|s| s == b.step))
    }

    /// Folds the next entry of the saga in.
    pub fn push(&mut self, e: &Entry) {
        self.first.get_or_insert(e.at);
        self.last = Some(e.at);
        match &e.fact {
            Fact::StepStarted { step } => {
                let at = e.at;
                for b in self.bars.iter_mut().filter(|b| b.end.is_none()) {
                    b.end = Some(at);
                }
                self.bars.push(Bar {
                    step: *step,
                    start: at,
                    ..Bar::default()
                });
            }
            Fact::StepCompleted { step } => {
                let at = e.at;
                if let Some(b) = self.open_bar(Some(*step)) {
                    b.end = Some(at);
                    b.completed = true;
                }
                for s in self.spans.iter_mut().filter(|s| s.end.is_none()) {
                    s.end = Some(at);
                }
            }
            Fact::Outcome { result, .. } => {
                if let Some(b) = self.open_bar(e.step) {
                    match result {
                        OutcomeResult::Applied => b.applied += 1,
                        OutcomeResult::AlreadyDone => b.already_done += 1,
                        OutcomeResult::Resolved { .. } => {}
                        OutcomeResult::Failed { .. } => b.failed += 1,
                    }
                }
            }
            Fact::Retry {
                throttled, reason, ..
            } => {
                self.retries += 1;
                if *throttled {
                    self.throttles += 1;
                }
                if let Some(b) = self.open_bar(e.step) {
                    b.retries += 1;
                    if *throttled {
                        b.throttles += 1;
                    }
                }
                let kind = if *throttled {
                    MarkKind::Throttle
                } else {
                    MarkKind::Retry
                };
                self.mark(e, kind, reason.clone());
            }
            Fact::WaitStarted { reason, until } => {
                let at = e.at;
                for s in self.spans.iter_mut().filter(|s| s.end.is_none() && !s.gate) {
                    s.end = Some(at);
                }
                self.span(e, false, reason);
                if let (Some(u), Some(s)) = (until, self.spans.last_mut()) {
                    if !s.gate && s.start == at {
                        s.end = Some((*u).max(at));
                    }
                }
            }
            Fact::GateOpened { instructions } => self.span(e, true, instructions),
            Fact::WaitEnded { .. } => {
                let at = e.at;
                let open_gate = self.spans.iter().rposition(|s| s.end.is_none() && s.gate);
                let open_any = self.spans.iter().rposition(|s| s.end.is_none());
                if let Some(s) = open_gate.or(open_any).and_then(|i| self.spans.get_mut(i)) {
                    s.end = Some(at);
                }
            }
            Fact::Operator { action, who, why } => {
                self.mark(e, MarkKind::Operator, format!("{action} by {who}: {why}"));
            }
            Fact::State { state, .. } => {
                self.state = Some(state.clone());
                if is_final(state) {
                    let at = e.at;
                    for b in self.bars.iter_mut().filter(|b| b.end.is_none()) {
                        b.end = Some(at);
                    }
                    for s in self.spans.iter_mut().filter(|s| s.end.is_none()) {
                        s.end = Some(at);
                    }
                }
            }
            _ => {}
        }
    }

    fn mark(&mut self, e: &Entry, kind: MarkKind, label: String) {
        if self.marks.len() < MAX_MARKS {
            self.marks.push(Mark {
                at: e.at,
                step: e.step,
                kind,
                label,
            });
        }
    }

    fn span(&mut self, e: &Entry, gate: bool, label: &str) {
        if self.spans.len() < MAX_SPANS {
            self.spans.push(Span {
                start: e.at,
                end: None,
                gate,
                label: label.to_string(),
            });
        }
    }
}

/// Whether a saga state is final (nothing more will happen).
pub fn is_final(state: &str) -> bool {
    matches!(state, "completed" | "rolled_back" | "failed" | "aborted")
}
