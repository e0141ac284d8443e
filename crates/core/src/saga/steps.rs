//! The five steps of Microsoft's "Close your account" procedure, forward: keep-list check and inventory,
//! delete users, cancel subscriptions, delete subscriptions (the pivot),
//! disable MFA, delete the directory.

use super::action::{Action, Call, Read};
use super::closure::{self, MfaScope};
use super::decide::{
    drive, ids_where, intend, is_keep, keep_ids, resolve_doubt, status_of, wait, window,
};
use super::event::{Change, Event, Gate, SECURITY_DEFAULTS};
use super::stake::{self, BackupMode};
use super::state::{State, Target};
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
    let header = &state.header;
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

/// The tenant's identity confirmed with its own token, then the inventory,
/// then the keep-list check, before anything is changed.
fn start(state: &State) -> Vec<Action> {
    let Some(org) = &state.organization_guid else {
        return read(Read::Organization);
    };
    if let Some(guid) = &state.tenant_guid {
        let header = &state.header;
        if guid != org {
            return record(vec![Event::SagaFailed {
                reason: format!(
                    "tenant {}: its discovery document names tenant {guid} but its token's organization is {org}: nothing was changed",
                    header.spec.tenant_id
                ),
            }]);
        }
    }
    let header = &state.header;
    let Some(inv) = &state.inventory else {
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
    if let Some(a) = resolve_doubt(state, Change::DeleteUser) {
        return a;
    }
    let pending = ids_where(state, Change::DeleteUser, |t| *t == Target::Pending);
    if !pending.is_empty() {
        return intend_deletes(state, pending, Vec::new());
    }
    if state.table(Change::DeleteUser).is_none() {
        // Before the first delete, in this order: the preflight judges every
        // user to be deleted (not only the first window), so that a gate
        // opens before anyone is deleted, never half-way through the step;
        // the schedule may wait for a term's end; last, the backup gate, so
        // that the attestation is given close to the deletions it covers.
        let all: Vec<(String, String)> = state
            .inventory
            .iter()
            .flat_map(|i| i.users.iter())
            .filter(|u| !is_keep(state, &u.id, &u.user_principal_name))
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .collect();
        // Also with no one to delete: the app's permissions are checked
        // before step 1 ends, before anything changes.
        let first = match preflight(state, now, &all) {
            Ok(first) => first,
            Err(actions) => return actions,
        };
        if !all.is_empty() {
            if let Some(actions) = schedule(state, now, first.clone()) {
                return actions;
            }
        }
        // The backup gate closes a preflight gate itself when it opens.
        if let Some(actions) = backup_gate(state, now) {
            return actions;
        }
        if !all.is_empty() {
            let ids = all
                .into_iter()
                .map(|(id, _)| id)
                .take(window(state))
                .collect();
            return intend_deletes(state, ids, first);
        }
    }
    // The inventory's users are intended a window at a time, in inventory
    // order; the next window is those without an intent yet. Those intended
    // so far are the first of the inventory, so the scan starts after them
    // (less the keep accounts among them): a step of N users costs N
    // lookups, not N per window. A user skipped wrongly (a table filled
    // otherwise) is still found by the read of the users below.
    let intended = state
        .table(Change::DeleteUser)
        .map_or(0, std::collections::BTreeMap::len);
    let keeps = state
        .keep_ids
        .as_ref()
        .map_or(0, std::collections::BTreeSet::len)
        + state.header.spec.keep.len();
    let targets: Vec<String> = state
        .inventory
        .iter()
        .flat_map(|i| i.users.iter())
        .skip(intended.saturating_sub(keeps))
        .filter(|u| !is_keep(state, &u.id, &u.user_principal_name))
        .filter(|u| status_of(state, Change::DeleteUser, &u.id).is_none())
        .map(|u| u.id.clone())
        .take(window(state))
        .collect();
    if !targets.is_empty() {
        return intend_deletes(state, targets, Vec::new());
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
        return intend_deletes(state, new, Vec::new());
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
            return intend_deletes(state, back, Vec::new());
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

/// Before the first delete, in partner-center mode: when subscriptions must
/// run to the end of their term, their auto-renew goes off first (reversible)
/// and step 1 waits until `users_before_term_end` before the last term ends
/// (see [`subscriptions::users_schedule`]), so that the users' 30-day restore
/// window still runs when the subscriptions end. The classification is read
/// afresh here, and again after the wait: terms may have changed meanwhile.
/// It comes after the preflight, so that a gate a person must clear is
/// asked for now, not when the wait ends (the preflight is read again
/// then). `first`: events to record before anything this records. `None`
/// once the users may be deleted now.
fn schedule(state: &State, now: Timestamp, mut first: Vec<Event>) -> Option<Vec<Action>> {
    let header = &state.header;
    if header.spec.subscriptions != SubscriptionMode::PartnerCenter {
        return None;
    }
    if let Some(a) = drive(state, RENEW_OFF) {
        return Some(a);
    }
    let Some(classes) = &state.observed.classes else {
        return Some(read(Read::ClassifySubscriptions));
    };
    let lead = state
        .users_before_term_end
        .unwrap_or(subscriptions::DEFAULT_USERS_BEFORE_TERM_END);
    if let Some(actions) = suspended_gate(state, now, classes, lead) {
        return Some(actions);
    }
    let plan = subscriptions::users_schedule(classes, now, lead)?;
    let renew: Vec<String> = plan
        .renew_off
        .iter()
        .filter(|id| status_of(state, RENEW_OFF, id).is_none())
        .cloned()
        .collect();
    if !renew.is_empty() {
        return Some(intend(state, vec![(RENEW_OFF, renew)], first));
    }
    if now >= plan.start {
        return None;
    }
    let reason = format!(
        "step 1 is scheduled for {}, {} before the last subscription term ends ({}, auto-renew \
         off): deleted users can be restored for 30 days, so they are deleted close to the \
         term's end",
        plan.start.to_rfc3339(),
        humantime::format_duration(lead),
        plan.last_term_end.to_rfc3339()
    );
    first.push(Event::WaitStarted {
        until: plan.start,
        reason,
    });
    Some(vec![Action::Record(first), Action::WakeAt(plan.start)])
}

/// The events that make `gate` the open one: none when it already is;
/// else the gate open now (another) closed, and `gate` opened with what
/// `instructions` words.
fn open_gate(state: &State, gate: Gate, instructions: impl FnOnce() -> String) -> Vec<Event> {
    let open = state.gate.as_ref().map(|(g, _)| *g);
    if open == Some(gate) {
        return Vec::new();
    }
    let mut events: Vec<Event> = open
        .map(|g| Event::GateClosed { gate: g })
        .into_iter()
        .collect();
    events.push(Event::GateOpened {
        gate,
        instructions: instructions(),
    });
    events
}

/// Before the first delete: the partner's new-commerce subscriptions found
/// suspended past their window ([`subscriptions::Place::SuspendedPastWindow`])
/// go on billing to the end of their term, and only a person may reactivate
/// them (with auto-renew off, so that they end with their term). That
/// reversible step is asked for now, before anyone is deleted; the users
/// then wait for those terms like the others ([`subscriptions::users_schedule`])
/// instead of being deleted months before them, past their 30-day restore
/// window. `None` once none is left to handle (a gate this opened is closed
/// by the preflight's events, which close any open gate).
fn suspended_gate(
    state: &State,
    now: Timestamp,
    classes: &[subscriptions::SubscriptionClass],
    lead: std::time::Duration,
) -> Option<Vec<Action>> {
    let left: Vec<String> = classes
        .iter()
        .filter(|c| {
            subscriptions::plan_for(c, now)
                == subscriptions::Plan::Operator(subscriptions::Place::SuspendedPastWindow)
                && !subscriptions::suspended_handled(c)
        })
        .map(|c| format!("{} ({})", c.sku, c.id))
        .collect();
    if left.is_empty() {
        return None;
    }
    let events = open_gate(state, Gate::EndSubscriptionsElsewhere, || {
        format!(
            "Tenant {} has new-commerce subscriptions suspended after their cancellation \
                 window: {}. Suspended, each goes on billing to the end of its term, and only a \
                 person may reactivate it. Before anyone is deleted: in Partner Center > \
                 Customers > this customer > Subscriptions, reactivate each and turn its \
                 auto-renew off so that it ends with its term (or ask Microsoft support to end \
                 it). closeout re-reads them periodically, deletes no one until then, and then \
                 deletes the users {} before the last term ends, so that they can still be \
                 restored until the subscriptions end.",
            state.header.spec.tenant_id,
            left.join(", "),
            humantime::format_duration(lead)
        )
    });
    Some(wait(
        now,
        policy(state).gate_poll,
        format!(
            "an operator to reactivate {} suspended subscriptions with auto-renew off",
            left.len()
        ),
        events,
    ))
}

/// Before the first delete: the data at stake is read and recorded; then,
/// under `backup = "attest"` (and for a saga recorded before the setting
/// existed, which reaches this point only while it has deleted no one),
/// the backup gate holds until an operator attests a backup outside the
/// tenant. `None` once nothing holds step 1 here.
fn backup_gate(state: &State, now: Timestamp) -> Option<Vec<Action>> {
    let Some(stake) = &state.stake else {
        return Some(read(Read::DataAtStake));
    };
    let mode = state.backup.unwrap_or(BackupMode::Attest);
    let open = state.gate.as_ref().map(|(g, _)| *g);
    if mode == BackupMode::Off || state.backup_attested.is_some() {
        return (open == Some(Gate::AttestBackup)).then(|| {
            record(vec![Event::GateClosed {
                gate: Gate::AttestBackup,
            }])
        });
    }
    let first = open_gate(state, Gate::AttestBackup, || {
        let (tenant, saga) = (
            state.header.spec.tenant_id.as_str(),
            state.header.saga_id.0.as_str(),
        );
        let upns = users_to_delete(state);
        let summary = stake::summarize(stake, &upns);
        stake::gate_instructions(tenant, saga, stake, &summary)
    });
    Some(wait(
        now,
        policy(state).gate_poll,
        "an operator to attest a backup outside the tenant".to_string(),
        first,
    ))
}

/// The UPNs of the inventory's users that step 1 deletes.
pub(crate) fn users_to_delete(state: &State) -> Vec<&str> {
    state
        .inventory
        .iter()
        .flat_map(|i| i.users.iter())
        .filter(|u| !is_keep(state, &u.id, &u.user_principal_name))
        .map(|u| u.user_principal_name.as_str())
        .collect()
}

/// The Microsoft Graph application permissions this closure needs that the
/// app lacks, by name, as last read (`None`: not read since the last reset).
/// Per-user MFA changes are counted as needed: step 4 reads per-user MFA
/// only when it runs.
pub(super) fn missing_permissions(state: &State) -> Option<Vec<String>> {
    let granted = state.observed.app_permissions.as_ref()?;
    let header = &state.header;
    let Some(inv) = state.inventory.as_ref() else {
        return Some(Vec::new());
    };
    let plan = super::plan(&header.spec, inv);
    Some(super::permissions::missing(
        &super::permissions::required(&plan, true),
        granted,
    ))
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
    let Some(missing) = missing_permissions(state) else {
        return Err(read(Read::AppPermissions));
    };
    let tenant = state.header.spec.tenant_id.as_str();
    let mut findings = Vec::new();
    if !missing.is_empty() {
        findings.push(super::preflight::Finding {
            gate: Gate::GrantPermissions,
            instructions: super::permissions::instructions(tenant, &missing),
            users: Vec::new(),
        });
    } else if !targets.is_empty() {
        let Some(pf) = &state.observed.preflight else {
            return Err(read(Read::Preflight));
        };
        findings = super::preflight::findings(tenant, pf, targets);
    }
    let open = state.gate.as_ref().map(|(g, _)| *g);
    let Some(finding) = findings.into_iter().next() else {
        return Ok(open
            .map(|gate| vec![Event::GateClosed { gate }])
            .unwrap_or_default());
    };
    let first = open_gate(state, finding.gate, || finding.instructions.clone());
    let reason = match finding.gate {
        Gate::AssignAppRole => "an operator to assign closeout's app a role",
        Gate::GrantPermissions => "an operator to grant closeout's app Microsoft Graph permissions",
        _ => "directory synchronization to be turned off",
    };
    Err(wait(
        now,
        policy(state).gate_poll,
        reason.to_string(),
        first,
    ))
}

/// Intents to delete `targets` (keep accounts never among them). A target
/// any read has shown holding the Global Administrator role is deleted only
/// right after a fresh read of the role found a keep account enabled and
/// holding it ([`Read::KeepAdmins`], recorded as `KeepAdminVerified`); a
/// failed read pauses the saga (see `decide`). `first`: events to record
/// before the intents.
fn intend_deletes(state: &State, targets: Vec<String>, first: Vec<Event>) -> Vec<Action> {
    let admin = |id: &String| {
        state.admins_seen.contains(id)
            || state
                .observed
                .keep_admins
                .as_ref()
                .is_some_and(|a| a.contains(id))
    };
    if targets.iter().any(admin) && state.observed.keep_admins.is_none() {
        return read(Read::KeepAdmins {
            keep_ids: keep_ids(state),
        });
    }
    intend(state, vec![(Change::DeleteUser, targets)], first)
}

const RENEW_OFF: Change = Change::SetAutoRenew { enabled: false };

/// The point of no return, once passed: Partner Center accepted a change it
/// will not undo (the cancel of a new-commerce subscription, the delete of a
/// legacy one), or the deleted users' 30-day restore window ran out while
/// the saga waited (after that, a rollback could not restore them).
fn pivot_now(state: &State, now: Timestamp) -> Option<Event> {
    if state.pivot() {
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
    let tenant = state.header.spec.tenant_id.as_str();
    let first = open_gate(state, Gate::EndSubscriptionsElsewhere, || {
        // What a person needs to know beside where: when the term ends,
        // when closeout can tell (a subscription whose recurring billing is
        // off ends then, and closeout waits for it).
        let list: Vec<String> = left
            .iter()
            .map(|(c, place)| {
                let term = c.term_end.map_or(String::new(), |t| {
                    format!(
                        " (its term ends {}; with recurring billing off it ends then, and \
                         closeout waits for that)",
                        t.to_rfc3339()
                    )
                });
                format!("{} ({}): {place}{term}", c.sku, c.id)
            })
            .collect();
        format!(
            "Tenant {tenant} has subscriptions closeout may not end (not sold by this \
             partner, trials, self-service sign-ups, or not matched in Partner Center). \
             End each where it says: {}. closeout re-reads the tenant periodically and \
             continues once it reads them {}.",
            list.join("; "),
            if step == 2 {
                "inactive (a suspended one: with auto-renew off)"
            } else {
                "deleted"
            }
        )
    });
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
        if !state.pivot() {
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
    if !state.pivot() {
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
    if step == 3 && !state.pivot() {
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
        let tenant = state.header.spec.tenant_id.as_str();
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

/// The documented Conditional Access limit: about one request per second per
/// tenant (https://learn.microsoft.com/graph/throttling-limits, "Identity and
/// access service limits"; its 429s may come without `Retry-After`).
pub const CA_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What step 4 turns off; a saga recorded without a closure policy uses the
/// article's scope, which weakens the least.
pub(crate) fn mfa_scope(state: &State) -> MfaScope {
    state
        .closure
        .as_ref()
        .map(|c| c.mfa_scope)
        .unwrap_or_default()
}

/// The object id of the Global Administrator who finishes the closure.
pub(crate) fn finishing_admin(state: &State) -> Option<String> {
    let header = &state.header;
    let inv = state.inventory.as_ref()?;
    let named = state
        .closure
        .as_ref()
        .and_then(|c| c.finish_with.as_deref());
    closure::finisher(&header.spec.keep, named, inv)
}

/// Step 4, as "Close your account" says: per-user MFA off for every remaining
/// account except the Global Administrator who finishes the closure
/// (https://learn.microsoft.com/microsoft-365/commerce/close-your-account).
/// Security defaults and the Conditional Access policies requiring MFA only
/// with `mfa_scope = "all"`; Conditional Access writes one at a time, at
/// least [`CA_WRITE_INTERVAL`] apart. The admin portals demand MFA of the
/// finishing administrator anyway (mandatory MFA for admin portals), so its
/// per-user MFA is never touched.
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
    let Some(finisher) = finishing_admin(state) else {
        return record(vec![Event::Paused {
            who: "closeout".to_string(),
            why: "step 4: the account that finishes the closure (the batch's finish_with, or \
                  the first keep account holding the role) is not a keep Global Administrator; \
                  per-user MFA is left as it is"
                .to_string(),
        }]);
    };
    let Some(mfa) = &state.observed.mfa else {
        return read(Read::Mfa {
            user_ids: keep_ids(state),
        });
    };
    let all = mfa_scope(state) == MfaScope::All;
    let mut on: Vec<(Change, Vec<String>)> = Vec::new();
    if all && mfa.security_defaults {
        on.push((
            Change::DisableSecurityDefaults,
            vec![SECURITY_DEFAULTS.to_string()],
        ));
    }
    let ca: Vec<String> = if all {
        mfa.ca_policies
            .iter()
            .filter(|p| p.enforces_mfa())
            .map(|p| p.id.clone())
            .collect()
    } else {
        Vec::new()
    };
    on.push((Change::DisableCaPolicy, ca));
    let per_user: Vec<String> = mfa
        .per_user
        .iter()
        .filter(|(id, s)| *s != PerUserMfaState::Disabled && *id != finisher)
        .map(|(id, _)| id.clone())
        .collect();
    on.push((Change::DisableUserMfa, per_user));
    let mut lagging = 0;
    let mut new = Vec::new();
    let mut ca_due: Option<Timestamp> = None;
    for (change, ids) in on {
        let (mut fresh, seen): (Vec<String>, Vec<String>) = ids
            .into_iter()
            .partition(|id| status_of(state, change, id).is_none());
        lagging += seen.len();
        if change == Change::DisableCaPolicy && !fresh.is_empty() {
            // One policy per write, the next a full interval after the last
            // one finished.
            let due = state
                .last_ca_write
                .map(|t| t.plus(CA_WRITE_INTERVAL))
                .unwrap_or(now);
            if now < due {
                ca_due = Some(due);
                fresh.clear();
            } else {
                fresh.truncate(1);
            }
        }
        if !fresh.is_empty() {
            new.push((change, fresh));
        }
    }
    if !new.is_empty() {
        return intend(state, new, Vec::new());
    }
    if let Some(due) = ca_due {
        return vec![Action::WakeAt(due)];
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

/// Step 5, as "Delete a tenant in Microsoft Entra ID" says
/// (https://learn.microsoft.com/entra/identity/users/directory-delete-howto):
/// read what the portal checks (as far as Graph shows it), record the
/// tenant's credential-free discovery answers as a baseline, open the gate
/// with what a person must do, in order, ending with removing closeout's own
/// enterprise app; then watch the discovery document. Microsoft documents no
/// signal that a tenant is deleted: the tenant is "observed gone" when every
/// name the baseline found answers "not found", twice, a poll apart.
fn delete_tenant(state: &State, now: Timestamp) -> Vec<Action> {
    let poll = policy(state).tenant_gone_poll;
    let credentials = state.own_app_removed.is_none();
    let mut reads = Vec::new();
    if credentials && state.observed.deletion.is_none() {
        reads.push(Read::DeletionCheck);
    }
    let domain = state
        .discovery_baseline
        .as_ref()
        .map(|b| b.domain_name.clone())
        .or_else(|| (state.observed.deletion.as_ref()).map(|d| d.initial_domain.clone()));
    if let Some(domain) = &domain {
        if state.observed.discovery.is_none() {
            reads.push(Read::Discovery {
                domain: domain.clone(),
            });
        }
    } else if !credentials && state.observed.discovery.is_none() {
        reads.push(Read::Discovery { domain: None });
    }
    if !reads.is_empty() {
        return reads
            .into_iter()
            .map(|r| Action::Perform(Call::Read(r)))
            .collect();
    }
    let Some(observation) = state.observed.discovery.clone() else {
        return Vec::new();
    };
    let Some(baseline) = &state.discovery_baseline else {
        if observation.all_not_found() {
            // Nothing found before the gate opens: no answer can then show a
            // change, so nothing would ever count as evidence.
            return record(vec![Event::Paused {
                who: "closeout".to_string(),
                why: "step 5: the tenant's discovery document is already not found before \
                      the deletion; closeout cannot observe the deletion, check the tenant by hand"
                    .to_string(),
            }]);
        }
        return record(vec![Event::DiscoveryBaselineRecorded { observation }]);
    };
    let open = state
        .gate
        .as_ref()
        .filter(|(g, _)| *g == Gate::DeleteTenant);
    if open.is_some() && observation.gone_since(baseline) {
        let confirmation = state.gone_confirmations.saturating_add(1);
        let seen = Event::TenantObservedGone {
            confirmation,
            observation,
        };
        if confirmation >= 2 {
            return record(vec![
                seen,
                Event::GateClosed {
                    gate: Gate::DeleteTenant,
                },
                Event::StepCompleted { step: 5 },
                Event::SagaCompleted,
            ]);
        }
        return wait(
            now,
            poll,
            "confirming that the tenant is gone".to_string(),
            vec![seen],
        );
    }
    let mut first = Vec::new();
    if state.gone_confirmations > 0 {
        first.push(Event::TenantObservedGone {
            confirmation: 0,
            observation,
        });
    }
    let (instructions, blocked) = match &state.observed.deletion {
        Some(check) => deletion_instructions(state, check),
        None => match open {
            Some((_, text)) => (text.clone(), 0),
            None => (deletion_instructions(state, &empty_check()).0, 0),
        },
    };
    match open {
        Some((_, text)) if *text == instructions => {}
        Some(_) => first.extend([
            Event::GateClosed {
                gate: Gate::DeleteTenant,
            },
            Event::GateOpened {
                gate: Gate::DeleteTenant,
                instructions,
            },
        ]),
        None => {
            if let Some((gate, _)) = &state.gate {
                first.push(Event::GateClosed { gate: *gate });
            }
            first.push(Event::GateOpened {
                gate: Gate::DeleteTenant,
                instructions,
            });
        }
    }
    let reason = if blocked > 0 {
        format!("step 5: {blocked} things block the tenant's deletion (see the gate)")
    } else if credentials {
        "a Global Administrator to remove closeout's enterprise app and delete the tenant"
            .to_string()
    } else {
        "a Global Administrator to delete the tenant (closeout's app is removed)".to_string()
    };
    wait(now, poll, reason, first)
}

fn empty_check() -> closure::DeletionCheck {
    closure::DeletionCheck {
        users: Vec::new(),
        applications: Vec::new(),
        service_principals: Vec::new(),
        subscriptions: Vec::new(),
        initial_domain: None,
    }
}

/// The gate's text and how many blockers Graph shows: what a person does, in
/// order, before the portal deletes the tenant.
fn deletion_instructions(state: &State, check: &closure::DeletionCheck) -> (String, usize) {
    let (tenant, own_app) = (
        state.header.spec.tenant_id.as_str(),
        state.header.spec.client_id.as_str(),
    );
    let finisher = finishing_admin(state);
    let keep = |id: &str, upn: &str| is_keep(state, id, upn);
    let blockers = closure::blockers(check, finisher.as_deref(), &keep, own_app);
    let count = blockers.len();
    let admin = finisher
        .as_deref()
        .and_then(|id| {
            let inv = state.inventory.as_ref()?;
            inv.users
                .iter()
                .find(|u| u.id == id)
                .map(|u| u.user_principal_name.clone())
        })
        .unwrap_or_else(|| "the keep Global Administrator".to_string());
    let mut steps: Vec<String> = blockers;
    steps.push(closure::UNSEEN_CHECKS.to_string());
    steps.push(format!(
        "last, remove closeout's own enterprise app (application id {own_app}; Entra admin \
         center > Enterprise applications > Properties > Delete): closeout then watches only \
         the tenant's public discovery document"
    ));
    let list: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}) {s}", i + 1))
        .collect();
    let head = if count > 0 {
        format!("Tenant {tenant} is not deletable yet. ")
    } else {
        String::new()
    };
    (
        format!(
            "{head}Signed in as {admin} (the one user the portal allows to remain), in this \
             order: {}. Then delete tenant {tenant} in the Entra admin center (Entra ID > \
             Overview > Manage tenants > Delete). closeout observes the deletion through the \
             tenant's OpenID discovery document, twice.",
            list.join("; ")
        ),
        count,
    )
}

fn policy(state: &State) -> super::policy::SagaPolicy {
    state.header.policy.clone()
}
