//! Operator commands (pause, resume, abort, confirm a gate), turned into
//! events by the pure [`handle`], or refused with a reason.

use super::event::Event;
use super::state::State;
use crate::model::Timestamp;
use serde::{Deserialize, Serialize};

/// What an operator asked for, with who and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Stop taking actions (in-flight calls finish and are recorded).
    Pause {
        /// Who asked: the control socket peer's user name.
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// Carry on; permanently failed objects are tried again.
    Resume {
        /// Who asked: the control socket peer's user name.
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// Undo everything and stop (refused after the pivot).
    Abort {
        /// Who asked: the control socket peer's user name.
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// The gate's work is done: re-check now (the check decides, not the operator).
    ConfirmGate {
        /// Who asked: the control socket peer's user name.
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// The tenant's data is backed up outside the tenant: closes the
    /// backup gate on this person's word (recorded as such).
    AttestBackup {
        /// Who attests (the socket peer).
        who: String,
        /// Why: where the copy is.
        why: String,
    },
}

/// A refused command.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// Why, for the operator.
    pub reason: String,
    /// Events to record anyway (an `AbortRefused` for the audit trail).
    pub record: Vec<Event>,
}

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal {
        reason: reason.into(),
        record: Vec::new(),
    }
}

/// Turns a command into the events to record, or refuses it. `now` tells
/// whether the deleted users' restore window has closed (the store stamps
/// records itself).
pub fn handle(state: &State, command: Command, now: Timestamp) -> Result<Vec<Event>, Refusal> {
    if let Some(ending) = &state.ending() {
        return Err(refuse(format!("the saga has ended ({ending:?})")));
    }
    match command {
        Command::Pause { who, why } => {
            if state.paused.is_some() {
                return Err(refuse("the saga is already paused"));
            }
            Ok(vec![Event::Paused { who, why }])
        }
        Command::Resume { who, why } => {
            if state.paused.is_none() {
                return Err(refuse("the saga is not paused"));
            }
            Ok(vec![Event::Resumed { who, why }])
        }
        Command::Abort { who, why } => {
            // Past the pivot, or past the deleted users' restore window (the
            // saga records that as its pivot when it next wakes, see
            // `steps::pivot_now`; an abort must not get there first).
            let restore_closed = state
                .users_deleted_at
                .map(|d| d.plus(super::subscriptions::RESTORE_WINDOW))
                .filter(|closes| now >= *closes);
            let past = if state.pivot() {
                Some("subscriptions are being deleted), nothing can be rolled back".to_string())
            } else {
                restore_closed.map(|closes| {
                    format!(
                        "the deleted users' 30-day restore window closed at {}), so they \
                         cannot be restored",
                        closes.to_rfc3339()
                    )
                })
            };
            if let Some(past) = past {
                let reason = format!(
                    "abort refused: the point of no return has passed ({past}; pause instead"
                );
                return Err(Refusal {
                    record: vec![Event::AbortRefused {
                        who,
                        why,
                        reason: reason.clone(),
                    }],
                    reason,
                });
            }
            if state.compensating().is_some() {
                return Err(refuse("the saga is already rolling back"));
            }
            Ok(vec![Event::AbortRequested { who, why }])
        }
        Command::ConfirmGate { who, why } => {
            if state.gate.is_none() {
                return Err(refuse("no operator gate is open"));
            }
            if matches!(state.gate, Some((super::event::Gate::AttestBackup, _))) {
                return Err(refuse(
                    "the open gate is the backup gate: attest with `closeout confirm SAGA --backup --reason TEXT`",
                ));
            }
            Ok(vec![Event::GateConfirmed { who, why }])
        }
        Command::AttestBackup { who, why } => {
            if !matches!(state.gate, Some((super::event::Gate::AttestBackup, _))) {
                return Err(refuse(
                    "no backup gate is open: the saga asks for a backup attestation before \
                     step 1 deletes anyone, under [saga] backup = \"attest\"",
                ));
            }
            if why.trim().is_empty() {
                return Err(refuse(
                    "a backup attestation needs --reason: say where the copy outside the tenant is",
                ));
            }
            let in_tenant_policies = state.stake.as_ref().map_or(0, |s| {
                u32::try_from(s.protection_policies.len()).unwrap_or(u32::MAX)
            });
            Ok(vec![Event::BackupAttested {
                who,
                why,
                in_tenant_policies,
            }])
        }
    }
}
