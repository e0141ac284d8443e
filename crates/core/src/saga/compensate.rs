//! Compensation: undo completed work in reverse order (reactivate suspended
//! subscriptions and turn auto-renew back on, then restore deleted users),
//! only ever before the pivot.

use super::action::{Action, Call, Read};
use super::decide::{drive, ids_where, intend, resolve_doubt, status_of, wait};
use super::event::{Change, Event, Gate};
use super::state::{State, Target};
use crate::model::{PartnerStatus, SubscriptionMode, Timestamp};

const SUSPEND: Change = Change::SetSubscription {
    status: PartnerStatus::Suspended,
};
const ACTIVATE: Change = Change::SetSubscription {
    status: PartnerStatus::Active,
};
const RENEW_OFF: Change = Change::SetAutoRenew { enabled: false };
/// Auto-renew back on: the documented undo of turning it off
/// (<https://learn.microsoft.com/en-us/partner-center/developer/update-autorenew-for-an-azure-marketplace-subscription>).
const RENEW_ON: Change = Change::SetAutoRenew { enabled: true };

/// The next compensating actions.
pub fn decide(state: &State, now: Timestamp) -> Vec<Action> {
    let header = &state.header;
    // What the forward steps may have done must be known before it is undone.
    for change in [SUSPEND, RENEW_OFF, Change::DeleteUser] {
        if let Some(a) = resolve_doubt(state, change) {
            return a;
        }
    }
    // Undo step 2.
    if header.spec.subscriptions == SubscriptionMode::PartnerCenter {
        for change in [ACTIVATE, RENEW_ON] {
            if let Some(a) = drive(state, change) {
                return a;
            }
        }
        let renew: Vec<String> = ids_where(state, RENEW_OFF, |t| *t == Target::Done)
            .into_iter()
            .filter(|id| status_of(state, RENEW_ON, id).is_none())
            .collect();
        if !renew.is_empty() {
            return intend(state, vec![(RENEW_ON, renew)], Vec::new());
        }
        let todo: Vec<String> = ids_where(state, SUSPEND, |t| *t == Target::Done)
            .into_iter()
            .filter(|id| status_of(state, ACTIVATE, id).is_none())
            .collect();
        if !todo.is_empty() {
            return intend(state, vec![(ACTIVATE, todo)], Vec::new());
        }
    } else if state.step >= 2 && !state.reactivated {
        let Some(subs) = &state.observed.subscriptions else {
            return vec![Action::Perform(Call::Read(Read::Subscriptions))];
        };
        let was_active: Vec<&str> = state
            .inventory
            .iter()
            .flat_map(|i| i.subscriptions.iter())
            .filter(|s| s.status.is_active())
            .map(|s| s.commerce_subscription_id.as_str())
            .collect();
        let left: Vec<String> = subs
            .iter()
            .filter(|s| was_active.contains(&s.id.as_str()) && !s.status.is_active())
            .map(|s| format!("{} ({})", s.sku, s.id))
            .collect();
        if left.is_empty() {
            return vec![Action::Record(vec![Event::GateClosed {
                gate: Gate::ReactivateSubscriptions,
            }])];
        }
        let mut first = Vec::new();
        if state.gate.is_none() {
            first.push(Event::GateOpened {
                gate: Gate::ReactivateSubscriptions,
                instructions: format!(
                    "In the Microsoft 365 admin center of tenant {} (Billing > Your products), \
                     reactivate these subscriptions: {}. closeout re-reads the tenant \
                     periodically and continues once it sees them active.",
                    header.spec.tenant_id,
                    left.join(", ")
                ),
            });
        }
        return wait(
            now,
            header.policy.gate_poll,
            format!(
                "an operator to reactivate {} subscriptions in the Microsoft 365 admin center",
                left.len()
            ),
            first,
        );
    }
    // Undo step 1. Restores whose outcome is unknown are read only after the
    // replication wait: right after a deletion a read may still show the
    // user present (a false "restored"), right after a restore absent.
    if state.wait.is_none()
        && !ids_where(state, Change::RestoreUser, Target::is_doubtful).is_empty()
    {
        return wait(
            now,
            header.policy.replication_wait,
            "restores to replicate before they are read back".to_string(),
            Vec::new(),
        );
    }
    if let Some(a) = drive(state, Change::RestoreUser) {
        return a;
    }
    let todo: Vec<String> = ids_where(state, Change::DeleteUser, |t| *t == Target::Done)
        .into_iter()
        .filter(|id| status_of(state, Change::RestoreUser, id).is_none())
        .collect();
    if !todo.is_empty() {
        return intend(state, vec![(Change::RestoreUser, todo)], Vec::new());
    }
    vec![Action::Record(vec![Event::SagaRolledBack])]
}
