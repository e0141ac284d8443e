//! The saga's status for `closeout status` (its JSON fields are a contract: README, "Using it"), derived from state.

use super::event::Change;
use super::state::{Ending, State, Target};
use crate::model::{PartnerStatus, Timestamp};
use serde::{Deserialize, Serialize};

/// The `state` field of `status --json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaState {
    /// Working: deciding, recording or calling.
    Running,
    /// A durable timer or an operator gate is pending.
    Waiting,
    /// Stopped until an operator resumes it.
    Paused,
    /// Undoing completed work after a failure or an abort before the pivot.
    Compensating,
    /// The tenant is gone.
    Completed,
    /// Every change was undone.
    RolledBack,
    /// Ended without closing the tenant.
    Failed,
    /// Its task ended without the saga ending, and the log took no record of
    /// it: shown by the running daemon only (never recorded, never terminal;
    /// the saga keeps its tenant until the next start runs it again).
    Stopped,
}

impl SagaState {
    /// Whether the saga will not move any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SagaState::Completed | SagaState::RolledBack | SagaState::Failed
        )
    }

    /// The name used in `status` output (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Running => "running",
            SagaState::Waiting => "waiting",
            SagaState::Paused => "paused",
            SagaState::Compensating => "compensating",
            SagaState::Completed => "completed",
            SagaState::RolledBack => "rolled_back",
            SagaState::Failed => "failed",
            SagaState::Stopped => "stopped",
        }
    }
}

/// Done and total objects of the current step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Objects of the step (or of the compensation) that are done.
    pub done: usize,
    /// Objects the step works on.
    pub total: usize,
}

/// Where a saga stands: what `closeout status` shows for it, one element of
/// `status --json` (a contract: README, "Using it").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaStatus {
    /// The saga's id.
    pub saga_id: String,
    /// The tenant it closes, as the batch spelled it.
    pub tenant_id: String,
    /// Its coarse state: what the operator needs to know first.
    pub state: SagaState,
    /// The step it is in (1-5), none before the first.
    pub step: Option<u8>,
    /// Work done within the step (users deleted, subscriptions cancelled,
    /// ...) or within the compensation.
    pub progress: Progress,
    /// The last failure, if the saga is retrying, paused or failed because of it.
    pub last_error: Option<String>,
    /// When its last event was recorded (RFC 3339, UTC).
    #[serde(with = "crate::model::rfc3339")]
    pub updated_at: Timestamp,
    /// What a person must do for it to go on (a gate), or what it awaits.
    pub waiting_for: Option<String>,
    /// The same item by item: which subscriptions to cancel or delete and
    /// where, which preconditions of tenant deletion still fail (see
    /// [`super::ActionRequired`]). Absent when nothing is required of a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_required: Option<super::ActionRequired>,
    /// The tenant's GUID (`tenant_id` is the spelling the batch used), once
    /// resolved; one saga per tenant is enforced on it.
    #[serde(default)]
    pub tenant_guid: Option<String>,
}

impl State {
    /// The status as `closeout status` shows it.
    pub fn status(&self) -> SagaStatus {
        let state = match (&self.ending(), &self.paused) {
            (Some(Ending::Completed), _) => SagaState::Completed,
            (Some(Ending::RolledBack), _) => SagaState::RolledBack,
            (Some(Ending::Failed(_)), _) => SagaState::Failed,
            (None, Some(_)) => SagaState::Paused,
            _ if self.compensating().is_some() => SagaState::Compensating,
            _ if self.gate.is_some() || self.wait.is_some() => SagaState::Waiting,
            _ => SagaState::Running,
        };
        let waiting_for = match (&self.paused, &self.gate, &self.wait) {
            (Some(why), _, _) => Some(format!("an operator to resume: {why}")),
            (None, Some((_, instructions)), _) => Some(instructions.clone()),
            (None, None, Some(w)) => Some(w.reason.clone()),
            _ => None,
        };
        SagaStatus {
            saga_id: self.header.saga_id.to_string(),
            tenant_id: self.header.spec.tenant_id.clone(),
            state,
            step: (self.step > 0).then_some(self.step),
            progress: self.progress(),
            // An ended saga's last error is history (the audit keeps it):
            // a completed one shows none, a rolled-back one why it rolled
            // back.
            last_error: match (&self.ending(), &self.course) {
                (Some(Ending::Completed), _) => None,
                (Some(Ending::RolledBack), super::state::Course::Ended { compensating, .. }) => {
                    compensating
                        .as_ref()
                        .map(|why| format!("rolled back: {why}"))
                }
                _ => self.last_error.clone(),
            },
            updated_at: self.updated_at,
            waiting_for,
            action_required: self.action_required(),
            tenant_guid: self.tenant_guid.clone(),
        }
    }

    fn progress(&self) -> Progress {
        let changes: Vec<Change> = if self.compensating().is_some() {
            vec![
                Change::RestoreUser,
                Change::SetSubscription {
                    status: PartnerStatus::Active,
                },
            ]
        } else {
            match self.step {
                1 => vec![Change::DeleteUser],
                2 => vec![Change::SetSubscription {
                    status: PartnerStatus::Suspended,
                }],
                3 => vec![Change::SetSubscription {
                    status: PartnerStatus::Deleted,
                }],
                4 => vec![
                    Change::DisableSecurityDefaults,
                    Change::DisableCaPolicy,
                    Change::DisableUserMfa,
                ],
                5 => {
                    let done = usize::from(self.ending() == Some(&Ending::Completed));
                    return Progress { done, total: 1 };
                }
                _ => Vec::new(),
            }
        };
        let mut p = Progress::default();
        for c in changes {
            if let Some(t) = self.table(c) {
                p.total += t.len();
                p.done += t.values().filter(|v| **v == Target::Done).count();
            }
        }
        p
    }
}
