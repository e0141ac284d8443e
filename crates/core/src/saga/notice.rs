//! The notifications a saga owes the operator's webhooks, derived from its
//! events alone: a gate opened, a pause, a failure, a rollback or the end of
//! its batch each add a numbered [`Notice`] (in [`super::apply`]); every
//! `NotificationSent`/`NotificationAbandoned` settles it for one webhook. What
//! is still owed after a crash is therefore whatever the log says is owed
//! ([`State::owed_notices`]): delivery is at least once, and the notice number
//! makes the message's idempotency id stable.

use super::state::State;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a person is told something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// An operator gate opened: a person must act in an admin center.
    GateOpened,
    /// The saga paused (on a failure, or by an operator).
    Paused,
    /// The saga ended without closing the tenant.
    Failed,
    /// The saga undid everything it changed.
    RolledBack,
    /// Every saga of the batch has ended.
    BatchFinished,
    /// The saga's task stopped without the saga ending (a panic, a refused
    /// append): it waits paused, or is shown stopped, for the operator.
    SagaStopped,
}

impl NoticeKind {
    /// The snake_case name (as serialized, and in messages).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::GateOpened => "gate_opened",
            NoticeKind::Paused => "paused",
            NoticeKind::Failed => "failed",
            NoticeKind::RolledBack => "rolled_back",
            NoticeKind::BatchFinished => "batch_finished",
            NoticeKind::SagaStopped => "saga_stopped",
        }
    }
}

/// What a notice tells, as its triggering event recorded it: data, not
/// sentences (the notifier words the message: `notify::message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Told {
    /// An operator gate opened.
    GateOpened {
        /// The gate's instructions, as `GateOpened` recorded them.
        instructions: String,
    },
    /// The saga paused.
    Paused {
        /// Who paused it: an operator, or `closeout` itself on a failure.
        who: String,
        /// Why, as `Paused` recorded it.
        why: String,
    },
    /// The saga's task stopped without the saga ending.
    SagaStopped {
        /// Why the task ended, as `TaskStopped` recorded it.
        reason: String,
    },
    /// The saga ended without closing the tenant.
    Failed {
        /// Why, as `SagaFailed` recorded it.
        reason: String,
    },
    /// The saga undid everything it changed.
    RolledBack {
        /// Why it compensated: the failure, or the operator's abort.
        why: String,
    },
    /// Every saga of the batch has ended.
    BatchFinished {
        /// The batch's id.
        batch_id: String,
        /// Sagas of the batch that closed their tenant.
        completed: u32,
        /// Sagas of the batch that undid their changes.
        rolled_back: u32,
        /// Sagas of the batch that ended failed.
        failed: u32,
    },
}

impl Told {
    /// Which kind of notice this is (the message's `kind`).
    pub fn kind(&self) -> NoticeKind {
        match self {
            Told::GateOpened { .. } => NoticeKind::GateOpened,
            Told::Paused { .. } => NoticeKind::Paused,
            Told::SagaStopped { .. } => NoticeKind::SagaStopped,
            Told::Failed { .. } => NoticeKind::Failed,
            Told::RolledBack { .. } => NoticeKind::RolledBack,
            Told::BatchFinished { .. } => NoticeKind::BatchFinished,
        }
    }
}

/// One notification owed, as its triggering event left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened, and so which message the webhooks get.
    pub told: Told,
    /// The step the saga was in (none before step 1 and during compensation).
    pub step: Option<u8>,
    /// Webhook indexes (into the configured list) whose delivery has an
    /// outcome recorded, sent or abandoned.
    pub settled: BTreeSet<u16>,
}

/// Notices by number (numbers count from 0 in the saga's history).
pub type Notices = BTreeMap<u32, Notice>;

impl Notice {
    /// Which kind of notice this is.
    pub fn kind(&self) -> NoticeKind {
        self.told.kind()
    }
}

impl State {
    /// Adds a notice under the next number and returns that number. `apply`
    /// adds the notices events owe; the runtime also adds one to a copy of a
    /// state whose task stopped without the log taking a record of it.
    pub fn owe(&mut self, told: Told) -> u32 {
        let number = self.notices.keys().next_back().map_or(0, |n| n + 1);
        let step = (self.step > 0 && self.compensating().is_none()).then_some(self.step);
        self.notices.insert(
            number,
            Notice {
                told,
                step,
                settled: BTreeSet::new(),
            },
        );
        number
    }

    /// Notes an outcome of one notice's delivery to one webhook.
    pub(super) fn settle(&mut self, notice: u32, webhook: u16) {
        if let Some(n) = self.notices.get_mut(&notice) {
            n.settled.insert(webhook);
        }
    }

    /// What is still owed to `webhooks` configured webhooks: (notice number,
    /// notice, webhook indexes without an outcome), oldest first.
    pub fn owed_notices(&self, webhooks: u16) -> Vec<(u32, &Notice, Vec<u16>)> {
        self.notices
            .iter()
            .filter_map(|(number, notice)| {
                let left: Vec<u16> = (0..webhooks)
                    .filter(|w| !notice.settled.contains(w))
                    .collect();
                (!left.is_empty()).then_some((*number, notice, left))
            })
            .collect()
    }
}
