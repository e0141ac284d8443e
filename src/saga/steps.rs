//! The five steps of design.md §1, forward: keep-list check and inventory,
//! delete users, cancel subscriptions, delete subscriptions (the pivot),
//! disable MFA, delete the directory.

use super::action::{Action, Call, Read};
use super::decide::{drive, ids_where, intend, is_keep, keep_ids, other_users, status_of, wait};
use super::event::{Change, Event, Gate, SECURITY_DEFAULTS};
use super::state::State;
use super::state::Target;
use super::subscriptions;
use crate::model::{
    PartnerStatus, PerUserMfaState, SubscriptionMode, SubscriptionStatus, Timestamp,
};

const SUSPEND: Change = Change::SetSubscription {
    status: PartnerStatus::Suspended,
};
const DELETE_SUB: Change = Change::SetSubscription {
    status: PartnerStatus::Deleted,
};

/// The next forward actions.
pub fn decide(state: &State, now: Timestamp) -> Vec<Action> {
    let Some(header) = &state.header else {
        return Vec::new();
    };
    let manual = header.spec.subscriptions == SubscriptionMode::Manual;
    match state.step {
        0 => start(state),
        1 => delete_users(state, now),
        2 if manual => gated_subscriptions(state, now, Gate::CancelSubscriptions),
        2 => cancel_subscriptions(state, now),
        3 if manual => gated_subscriptions(state, now, Gate::DeleteSubscriptions),
        3 => delete_subscriptions(state, now),
        4 => disable_mfa(state, now),
        5 => delete_tenant(state, now),
        _ => Vec::new(),
    }
}

fn read(r: Read) -> Vec<Action> {
    vec![Action::Perform(Call::Read(r))]
}

fn record(events: Vec<Event>) -> Vec<Action> {
    vec![Action::Record(events)]
}

fn next_step(state: &State, step: u8, mut first: Vec<Event>) -> Vec<Action> {
    if state.gate.is_some() {
        if let Some((gate, _)) = &state.gate {
            first.push(Event::GateClosed { gate: *gate });
        }
    }
    first.push(Event::StepCompleted { step });
    first.push(Event::StepStarted { step: step + 1 });
    record(first)
}

/// Inventory, then the keep-list check, before anything is changed.
fn start(state: &State) -> Vec<Action> {
    let (Some(header), Some(inv)) = (&state.header, &state.inventory) else {
        return read(Read::Inventory);
    };
    if state.keep_ids.is_some() {
        return record(vec![Event::StepStarted { step: 1 }]);
    }
    let ids = match super::plan::check_keep(&header.spec, inv) {
        Ok(ids) => ids,
        Err(reason) => return record(vec![Event::SagaFailed { reason }]),
    };
    record(vec![
        Event::KeepListChecked { keep_ids: ids },
        Event::StepStarted { step: 1 },
    ])
}

/// Step 1: delete every user not on the keep list; done when only keep accounts remain.
fn delete_users(state: &State, now: Timestamp) -> Vec<Action> {
    if let Some(a) = drive(state, Change::DeleteUser) {
        return a;
    }
    if state.table(Change::DeleteUser).is_none() {
        let targets: Vec<(String, String)> = state
            .inventory
            .iter()
            .flat_map(|i| i.users.iter())
            .filter(|u| !is_keep(state, &u.id, &u.user_principal_name))
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .collect();
        if !targets.is_empty() {
            let first = match preflight(state, now, &targets) {
                Ok(first) => first,
                Err(actions) => return actions,
            };
            let ids = targets.into_iter().map(|(id, _)| id).collect();
            return intend(state, vec![(Change::DeleteUser, ids)], first);
        }
    }
    let Some(users) = &state.observed.users else {
        return read(Read::Users);
    };
    let mut new = Vec::new();
    let mut lagging = Vec::new();
    for u in users.iter().filter(|u| !is_keep(state, &u.id, &u.upn)) {
        match status_of(state, Change::DeleteUser, &u.id) {
            None => new.push(u.id.clone()),
            Some(_) => lagging.push(u.id.clone()),
        }
    }
    if !new.is_empty() {
        return intend(state, vec![(Change::DeleteUser, new)], Vec::new());
    }
    // Deleted users still listed: the list may lag (replication). After one
    // wait, ask for each by id; gone by id counts as gone.
    let gone_by_id = |id: &String| {
        state
            .observed
            .checked
            .as_ref()
            .is_some_and(|(_, absent)| absent.contains(id))
    };
    lagging.retain(|id| !gone_by_id(id));
    if !lagging.is_empty() {
        if state.wait.is_some() && state.observed.checked.is_none() {
            return read(Read::CheckUsers { ids: lagging });
        }
        // Still there by id after the replication wait: the user is back
        // (restored by someone, or recreated), so it is deleted again, as a
        // new recorded intent. A delete that finds it gone after all
        // answers 404, recorded as already done.
        let back: Vec<String> = state
            .observed
            .checked
            .iter()
            .flat_map(|(present, _)| present.iter())
            .filter(|id| lagging.contains(id))
            .cloned()
            .collect();
        if !back.is_empty() {
            return intend(state, vec![(Change::DeleteUser, back)], Vec::new());
        }
        return wait(
            now,
            policy(state).replication_wait,
            format!(
                "{} deleted users still listed (replication delay)",
                lagging.len()
            ),
            Vec::new(),
        );
    }
    next_step(state, 1, Vec::new())
}

/// Before the first delete: read the preflight, and while it finds something
/// only a person can fix, hold a gate open and re-read it periodically.
/// `Ok` with the events to record before the deletions (closing the gate) once
/// nothing stands in the way; `Err` with what to do meanwhile.
fn preflight(
    state: &State,
    now: Timestamp,
    targets: &[(String, String)],
) -> Result<Vec<Event>, Vec<Action>> {
    let Some(pf) = &state.observed.preflight else {
        return Err(read(Read::Preflight));
    };
    let tenant = state
        .header
        .as_ref()
        .map(|h| h.spec.tenant_id.as_str())
        .unwrap_or_default();
    let open = state.gate.as_ref().map(|(g, _)| *g);
    let Some(finding) = super::preflight::findings(tenant, pf, targets)
        .into_iter()
        .next()
    else {
        return Ok(open
            .map(|gate| vec![Event::GateClosed { gate }])
            .unwrap_or_default());
    };
    let mut first = Vec::new();
    if open != Some(finding.gate) {
        if let Some(gate) = open {
            first.push(Event::GateClosed { gate });
        }
        first.push(Event::GateOpened {
            gate: finding.gate,
            instructions: finding.instructions.clone(),
        });
    }
    let reason = match finding.gate {
        Gate::AssignAppRole => "an operator to assign closeout's app a role",
        _ => "directory synchronization to be turned off",
    };
    Err(wait(
        now,
        policy(state).gate_poll,
        reason.to_string(),
        first,
    ))
}

const RENEW_OFF: Change = Change::SetAutoRenew { enabled: false };

/// The point of no return, once passed: Partner Center accepted a change it
/// will not undo (the cancel of a new-commerce subscription, the delete of a
/// legacy one), or the deleted users' 30-day restore window ran out while
/// the saga waited (after that, a rollback could not restore them).
fn pivot_now(state: &State, now: Timestamp) -> Option<Event> {
    if state.pivot {
        return None;
    }
    if let Some(id) = ids_where(state, DELETE_SUB, |t| *t == Target::Done)
        .into_iter()
        .next()
    {
        return Some(Event::PivotPassed {
            reason: format!(
                "Partner Center accepted the cancellation of subscription {id}, which is not undone"
            ),
        });
    }
    let closes = state.users_deleted_at?.plus(subscriptions::RESTORE_WINDOW);
    (now >= closes).then(|| Event::PivotPassed {
        reason: format!(
            "the deleted users' 30-day restore window closed at {}",
            closes.to_rfc3339()
        ),
    })
}

/// The Partner Center ids of the subscriptions whose plan is `want`.
fn planned(state: &State, now: Timestamp, want: &subscriptions::Plan) -> Vec<String> {
    state
        .classes
        .iter()
        .flatten()
        .filter(|c| &subscriptions::plan_for(c, now) == want)
        .filter_map(|c| c.partner_id.clone())
        .collect()
}

/// The operator gate for what closeout may not end: open (or kept open)
/// while a fresh read shows some left; `None` once none is.
fn elsewhere_gate(state: &State, now: Timestamp, step: u8) -> Option<Vec<Action>> {
    let left = state.elsewhere();
    if left.is_empty() {
        return None;
    }
    if state.observed.classes.is_none() {
        return Some(read(Read::ClassifySubscriptions));
    }
    let tenant = state
        .header
        .as_ref()
        .map(|h| h.spec.tenant_id.as_str())
        .unwrap_or_default();
    let mut first = Vec::new();
    let open = state.gate.as_ref().map(|(g, _)| *g);
    if open != Some(Gate::EndSubscriptionsElsewhere) {
        if let Some(g) = open {
            first.push(Event::GateClosed { gate: g });
        }
        let list: Vec<String> = left
            .iter()
            .map(|(c, place)| format!("{} ({}): {place}", c.sku, c.id))
            .collect();
        first.push(Event::GateOpened {
            gate: Gate::EndSubscriptionsElsewhere,
            instructions: format!(
                "Tenant {tenant} has subscriptions closeout may not end (not sold by this \
                 partner, trials, self-service sign-ups, or not matched in Partner Center). \
                 End each where it says: {}. closeout re-reads the tenant periodically and \
                 continues once it reads them {}.",
                list.join("; "),
                if step == 2 { "inactive" } else { "deleted" }
            ),
        });
    }
    let poll = if step == 3 {
        policy(state).deprovision_poll
    } else {
        policy(state).gate_poll
    };
    Some(wait(
        now,
        poll,
        format!("an operator to end {} subscriptions elsewhere", left.len()),
        first,
    ))
}

/// Step 2, partner-center mode: per subscription, what Microsoft documents
/// for its kind (see `saga::subscriptions`): cancel a new-commerce one inside
/// its window, turn auto-renew off past it, suspend a legacy one, and ask a
/// person for anything else.
fn cancel_subscriptions(state: &State, now: Timestamp) -> Vec<Action> {
    if let Some(e) = pivot_now(state, now) {
        return record(vec![e]);
    }
    // An old saga that never classified reads it before acting.
    if state.classes.is_none() {
        return read(Read::ClassifySubscriptions);
    }
    for change in [DELETE_SUB, RENEW_OFF, SUSPEND] {
        if let Some(a) = drive(state, change) {
            return a;
        }
    }
    // What each subscription's plan asks, for those not yet intended (a
    // crash may have recorded only some of the intents).
    let work: Vec<(Change, Vec<String>)> = [
        (DELETE_SUB, subscriptions::Plan::Cancel),
        (RENEW_OFF, subscriptions::Plan::AutoRenewOff),
        (SUSPEND, subscriptions::Plan::SuspendThenDelete),
    ]
    .into_iter()
    .map(|(c, p)| {
        let ids = planned(state, now, &p)
            .into_iter()
            // One change per subscription, whatever the clock says later
            // (a window that closed after its cancel was intended).
            .filter(|id| {
                [DELETE_SUB, RENEW_OFF, SUSPEND]
                    .iter()
                    .all(|c| status_of(state, *c, id).is_none())
            })
            .collect::<Vec<_>>();
        (c, ids)
    })
    .filter(|(_, ids)| !ids.is_empty())
    .collect();
    if !work.is_empty() {
        return intend(state, work, Vec::new());
    }
    if let Some(a) = elsewhere_gate(state, now, 2) {
        return a;
    }
    // Cancelled and suspended ones read inactive in Graph; those with
    // auto-renew off stay active until their term ends (step 3 waits).
    let Some(subs) = &state.observed.subscriptions else {
        return read(Read::Subscriptions);
    };
    let stopped: Vec<String> = [DELETE_SUB, SUSPEND]
        .iter()
        .flat_map(|c| ids_where(state, *c, |t| *t == Target::Done))
        .collect();
    let active = subs
        .iter()
        .filter(|s| s.status.is_active() && stopped.contains(&s.id))
        .count();
    if active > 0 {
        return wait(
            now,
            policy(state).replication_wait,
            format!("{active} cancelled subscriptions still read as active"),
            Vec::new(),
        );
    }
    next_step(state, 2, Vec::new())
}

/// Step 3, partner-center mode: delete what was suspended (legacy), wait
/// for the end of the terms that run out (auto-renew off), and wait until
/// every subscription reads `Deleted`. The pivot is recorded when Partner
/// Center accepts the first change it will not undo, not before.
fn delete_subscriptions(state: &State, now: Timestamp) -> Vec<Action> {
    if let Some(e) = pivot_now(state, now) {
        return record(vec![e]);
    }
    if let Some(a) = drive(state, DELETE_SUB) {
        return a;
    }
    // Suspended in step 2, or found already inactive: a legacy subscription
    // of the partner is deleted; an inactive new-commerce one is cancelled
    // while its window is open (suspended, it would go on billing).
    let mut legacy: Vec<String> = ids_where(state, SUSPEND, |t| *t == Target::Done);
    legacy.extend(state.classes.iter().flatten().filter_map(|c| {
        let inactive = subscriptions::plan_for(c, now) == subscriptions::Plan::Nothing
            && c.status != SubscriptionStatus::Deleted;
        let deletable = match c.kind {
            subscriptions::Kind::Legacy => true,
            subscriptions::Kind::Nce => c.window_end.is_some_and(|w| now < w),
            _ => false,
        };
        (c.seller == subscriptions::Seller::Partner && inactive && deletable)
            .then(|| c.partner_id.clone())
            .flatten()
    }));
    legacy.sort();
    legacy.dedup();
    legacy.retain(|id| status_of(state, DELETE_SUB, id).is_none());
    if !legacy.is_empty() {
        return intend(state, vec![(DELETE_SUB, legacy)], Vec::new());
    }
    // Terms that run out: a durable wait until the last one ends, woken
    // early when the deleted users' restore window would close first (to
    // record that as the point of no return).
    let ending: Vec<Timestamp> = state
        .classes
        .iter()
        .flatten()
        .filter(|c| {
            c.partner_id
                .as_ref()
                .is_some_and(|id| status_of(state, RENEW_OFF, id) == Some(&Target::Done))
        })
        .filter_map(|c| c.term_end)
        .collect();
    if let Some(last) = ending.iter().copied().max().filter(|t| now < *t) {
        let mut until = last;
        if !state.pivot {
            if let Some(d) = state.users_deleted_at {
                until = until.min(d.plus(subscriptions::RESTORE_WINDOW));
            }
        }
        let reason = format!(
            "{} subscriptions run to the end of their term (auto-renew off); the last ends {}",
            ending.len(),
            last.to_rfc3339()
        );
        if state.wait.as_ref().map(|w| (w.until, &w.reason)) != Some((until, &reason)) {
            return vec![
                Action::Record(vec![Event::WaitStarted { until, reason }]),
                Action::WakeAt(until),
            ];
        }
    }
    if let Some(a) = elsewhere_gate(state, now, 3) {
        return a;
    }
    let Some(subs) = &state.observed.subscriptions else {
        return read(Read::Subscriptions);
    };
    let left = subs
        .iter()
        .filter(|s| s.status != SubscriptionStatus::Deleted)
        .count();
    if left > 0 {
        return wait(
            now,
            policy(state).deprovision_poll,
            format!("{left} subscriptions deprovisioning"),
            Vec::new(),
        );
    }
    let mut first = Vec::new();
    if !state.pivot {
        first.push(Event::PivotPassed {
            reason: "every subscription reads Deleted, which is not undone".to_string(),
        });
    }
    next_step(state, 3, first)
}

/// Steps 2 and 3 in manual mode: an operator gate, verified by reading.
fn gated_subscriptions(state: &State, now: Timestamp, gate: Gate) -> Vec<Action> {
    let Some(subs) = &state.observed.subscriptions else {
        return read(Read::Subscriptions);
    };
    let (step, left): (u8, Vec<_>) = match gate {
        Gate::CancelSubscriptions => (2, subs.iter().filter(|s| s.status.is_active()).collect()),
        _ => (
            3,
            subs.iter()
                .filter(|s| s.status != SubscriptionStatus::Deleted)
                .collect(),
        ),
    };
    let mut first = Vec::new();
    // A deletion in the admin center shows only once deprovisioned, days
    // later: the pivot is passed as soon as a person is asked to delete.
    if step == 3 && !state.pivot {
        first.push(Event::PivotPassed {
            reason: "an operator is asked to delete the subscriptions".to_string(),
        });
    }
    if left.is_empty() {
        return next_step(state, step, first);
    }
    let what = if step == 2 { "cancel" } else { "delete" };
    let list: Vec<String> = left
        .iter()
        .map(|s| format!("{} ({})", s.sku, s.id))
        .collect();
    let reason = format!(
        "an operator to {what} {} subscriptions in the Microsoft 365 admin center",
        left.len()
    );
    if state.gate.is_none() {
        let tenant = state
            .header
            .as_ref()
            .map(|h| h.spec.tenant_id.as_str())
            .unwrap_or_default();
        // A direct (MCA) customer may not be able to cancel at once: past
        // the cancellation window the admin center offers to turn off
        // recurring billing, and the subscription ends with its term
        // (https://learn.microsoft.com/microsoft-365/commerce/subscriptions/cancel-your-subscription).
        let past_window = if step == 2 {
            " Where the admin center no longer offers to cancel one (its cancellation window \
             has passed), turn off its recurring billing instead: it then ends with its term, \
             and closeout waits for that."
        } else {
            ""
        };
        first.push(Event::GateOpened {
            gate,
            instructions: format!(
                "In the Microsoft 365 admin center of tenant {tenant} (Billing > Your products), \
                 {what} these subscriptions: {}.{past_window} closeout re-reads the tenant \
                 periodically and continues once it sees them done.",
                list.join(", ")
            ),
        });
    }
    let poll = if step == 3 {
        policy(state).deprovision_poll
    } else {
        policy(state).gate_poll
    };
    wait(now, poll, reason, first)
}

/// Step 4: security defaults, MFA Conditional Access policies and per-user MFA off.
fn disable_mfa(state: &State, now: Timestamp) -> Vec<Action> {
    let kinds = [
        Change::DisableSecurityDefaults,
        Change::DisableCaPolicy,
        Change::DisableUserMfa,
    ];
    for change in kinds {
        if let Some(a) = drive(state, change) {
            return a;
        }
    }
    let Some(mfa) = &state.observed.mfa else {
        return read(Read::Mfa {
            user_ids: keep_ids(state),
        });
    };
    let mut on: Vec<(Change, Vec<String>)> = Vec::new();
    if mfa.security_defaults {
        on.push((
            Change::DisableSecurityDefaults,
            vec![SECURITY_DEFAULTS.to_string()],
        ));
    }
    let ca: Vec<String> = mfa
        .ca_policies
        .iter()
        .filter(|p| p.enforces_mfa())
        .map(|p| p.id.clone())
        .collect();
    on.push((Change::DisableCaPolicy, ca));
    let per_user: Vec<String> = mfa
        .per_user
        .iter()
        .filter(|(_, s)| *s != PerUserMfaState::Disabled)
        .map(|(id, _)| id.clone())
        .collect();
    on.push((Change::DisableUserMfa, per_user));
    let mut lagging = 0;
    let mut new = Vec::new();
    for (change, ids) in on {
        let (fresh, seen): (Vec<String>, Vec<String>) = ids
            .into_iter()
            .partition(|id| status_of(state, change, id).is_none());
        lagging += seen.len();
        if !fresh.is_empty() {
            new.push((change, fresh));
        }
    }
    if !new.is_empty() {
        return intend(state, new, Vec::new());
    }
    if lagging > 0 {
        return wait(
            now,
            policy(state).replication_wait,
            format!("{lagging} disabled MFA settings still read as enabled"),
            Vec::new(),
        );
    }
    next_step(state, 4, Vec::new())
}

/// Step 5: preflight, then the operator gate, then wait for the tenant to vanish.
fn delete_tenant(state: &State, now: Timestamp) -> Vec<Action> {
    let poll = policy(state).tenant_gone_poll;
    if state.gate.is_some() {
        return match state.observed.tenant_exists {
            None => read(Read::TenantExists),
            Some(true) => wait(
                now,
                poll,
                state
                    .gate
                    .as_ref()
                    .map(|(_, i)| i.clone())
                    .unwrap_or_default(),
                Vec::new(),
            ),
            Some(false) => record(vec![
                Event::GateClosed {
                    gate: Gate::DeleteTenant,
                },
                Event::StepCompleted { step: 5 },
                Event::SagaCompleted,
            ]),
        };
    }
    let Some(view) = &state.observed.tenant else {
        return read(Read::Tenant {
            user_ids: keep_ids(state),
        });
    };
    let mut blockers = Vec::new();
    let users = other_users(state, view).count();
    if users > 0 {
        blockers.push(format!("{users} users besides the keep accounts"));
    }
    let subs = view.undeleted_subscriptions().count();
    if subs > 0 {
        blockers.push(format!("{subs} subscriptions not deprovisioned"));
    }
    if view.mfa.security_defaults {
        blockers.push("security defaults enabled".to_string());
    }
    let ca = view.mfa_policies_on().count();
    if ca > 0 {
        blockers.push(format!("{ca} MFA conditional access policies on"));
    }
    if !blockers.is_empty() {
        return record(vec![Event::Paused {
            who: "closeout".to_string(),
            why: format!("step 5 preflight failed: {}", blockers.join(", ")),
        }]);
    }
    let tenant = state
        .header
        .as_ref()
        .map(|h| h.spec.tenant_id.as_str())
        .unwrap_or_default();
    let mut instructions = format!(
        "A Global Administrator deletes tenant {tenant} in the Entra admin center \
         (Identity > Overview > Manage tenants > Delete)"
    );
    if !view.applications.is_empty() {
        instructions.push_str(&format!(
            ", after removing the app registrations {}",
            view.application_names().join(", ")
        ));
    }
    if view.users.len() > 1 {
        let others: Vec<&str> = view.users.iter().skip(1).map(|u| u.upn.as_str()).collect();
        instructions.push_str(&format!(
            " (the portal requires a single remaining user: the Global Administrator removes \
             the other keep accounts {} first)",
            others.join(", ")
        ));
    }
    instructions.push_str("; closeout verifies that the tenant is gone");
    wait(
        now,
        poll,
        "a Global Administrator to delete the tenant".to_string(),
        vec![Event::GateOpened {
            gate: Gate::DeleteTenant,
            instructions,
        }],
    )
}

fn policy(state: &State) -> super::policy::SagaPolicy {
    state
        .header
        .as_ref()
        .map(|h| h.policy.clone())
        .unwrap_or_default()
}
