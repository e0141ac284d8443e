//! [`decide`]: what to do next, from the state and the time alone. Failure
//! handling, retry schedules and the generic driver of a table of changes live
//! here; the five steps are in `steps`, the undo in `compensate`.

use super::action::{Action, Call, Decision, Read};
use super::event::{Change, Event};
use super::policy::FailurePolicy;
use super::state::SYSTEM;
use super::state::{State, Target};
use super::{compensate, steps};
use crate::model::{PartnerStatus, SubscriptionStatus, Timestamp, RETRY_AFTER_TOO_LONG};

/// What to do next, as the runtime executes it. Pure: the same state and
/// time always give the same decision.
pub fn decide(state: &State, now: Timestamp) -> Decision {
    Decision::from_actions(actions(state, now))
}

/// What to do next, action by action in the order the rules decide them
/// (what the table tests read; [`decide`] is the runtime's form). Pure.
pub fn actions(state: &State, now: Timestamp) -> Vec<Action> {
    let header = &state.header;
    if state.ending().is_some() || state.paused.is_some() {
        return Vec::new();
    }
    // The keep invariant: a fresh read found no keep account that is an
    // enabled Global Administrator. Nothing more is deleted until a person
    // restores one and resumes (the next admin delete reads again first).
    if let (Some(reason), None) = (&state.keep_admin_missing, &state.compensating()) {
        return vec![Action::Record(vec![Event::Paused {
            who: super::state::SYSTEM.to_string(),
            why: format!(
                "{reason}: no Global Administrator is deleted until a keep account is an enabled Global Administrator again"
            ),
        }])];
    }
    // Step 5 learns of the deletion through credential-free reads only.
    if state.tenant_unknown && state.pivot() && state.step < 5 {
        return tenant_gone(state);
    }
    if let Some(reason) = &state.failure {
        return on_failure(state, reason.clone());
    }
    if let Some(error) = &state.pending_error {
        if error.code == RETRY_AFTER_TOO_LONG {
            // Sleeping that long would look like progress to nobody: the
            // operator decides (resume retries, abort undoes).
            return vec![Action::Record(vec![Event::Paused {
                who: SYSTEM.to_string(),
                why: error.to_string(),
            }])];
        }
        let (attempt, since) = match state.streak {
            Some((attempt, since)) => (attempt.saturating_add(1), since),
            None => (1, now),
        };
        let policy = &header.policy.retry;
        if policy.gives_up(now.since(since)) {
            let reason = format!(
                "gave up after {} of transient failures: {error}",
                humantime::format_duration(now.since(since))
            );
            return on_failure(state, reason);
        }
        let unit = jitter_unit(&header.saga_id.0, attempt);
        let at = now.plus(policy.delay(attempt, unit, error.retry_after));
        return vec![
            Action::Record(vec![Event::RetryScheduled {
                at,
                attempt,
                reason: error.to_string(),
                since,
            }]),
            Action::WakeAt(at),
        ];
    }
    if let Some(at) = state.retry_at {
        if now < at {
            return vec![Action::WakeAt(at)];
        }
    }
    // A durable wait (deprovisioning, a gate's re-check, replication) holds
    // the forward steps and the compensation alike.
    if let Some(w) = &state.wait {
        if now < w.until {
            return vec![Action::WakeAt(w.until)];
        }
    }
    if state.compensating().is_some() {
        compensate::decide(state, now)
    } else if state.step >= 1 && state.tenant_guid.is_none() {
        // Recorded before sagas learnt their tenant's GUID: learn it before
        // acting (its token's organization names it).
        vec![Action::Perform(Call::Read(Read::Organization))]
    } else {
        steps::decide(state, now)
    }
}

/// After the pivot a call found the tenant unknown: the operator may have
/// deleted it ahead of step 5. Ask the token endpoint; if it confirms, the
/// closure is complete (the design's "done when: tenant unknown").
fn tenant_gone(state: &State) -> Vec<Action> {
    match state.observed.tenant_exists {
        Some(false) => vec![Action::Record(vec![
            Event::TenantFoundGone { step: state.step },
            Event::SagaCompleted,
        ])],
        _ => vec![Action::Perform(Call::Read(Read::TenantExists))],
    }
}

/// The failure policy applied to a permanent failure.
fn on_failure(state: &State, reason: String) -> Vec<Action> {
    let policy = state.header.policy.failure;
    // A cancellation Partner Center accepted (or may have) is past the point
    // of no return even before `PivotPassed` is recorded: never compensate.
    let irreversible = !ids_where(
        state,
        Change::SetSubscription {
            status: PartnerStatus::Deleted,
        },
        |t| *t == Target::Done || t.is_doubtful(),
    )
    .is_empty();
    let event = if state.pivot()
        || irreversible
        || state.compensating().is_some()
        || policy == FailurePolicy::Pause
    {
        Event::Paused {
            who: "closeout".to_string(),
            why: reason,
        }
    } else if state.intents.is_empty() {
        Event::SagaFailed { reason }
    } else {
        Event::CompensationStarted { reason }
    };
    vec![Action::Record(vec![event])]
}

/// A uniform number in `[0, 1)` derived from the saga id and the attempt
/// (FNV-1a), so that jitter is spread across sagas yet replayable.
pub fn jitter_unit(saga_id: &str, attempt: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in saga_id.bytes().chain(attempt.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Ids in a table with the given status predicate.
pub(crate) fn ids_where(state: &State, change: Change, f: impl Fn(&Target) -> bool) -> Vec<String> {
    state
        .table(change)
        .map(|t| {
            t.iter()
                .filter(|(_, v)| f(v))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The status of an object in a change's table, if it has one.
pub(crate) fn status_of<'a>(state: &'a State, change: Change, id: &str) -> Option<&'a Target> {
    state.table(change).and_then(|t| t.get(id))
}

/// Resolves the in-doubt objects of a table: from a fresh read if there is one,
/// else by asking for that read. `None` when nothing is in doubt.
pub(crate) fn resolve_doubt(state: &State, change: Change) -> Option<Vec<Action>> {
    let doubtful = ids_where(state, change, Target::is_doubtful);
    if doubtful.is_empty() {
        return None;
    }
    if let Some((applied, not_applied)) = judge(state, change, &doubtful) {
        return Some(vec![Action::Record(vec![Event::InDoubtResolved {
            change,
            applied,
            not_applied,
        }])]);
    }
    let read = match change {
        Change::DeleteUser => Read::CheckUsers { ids: doubtful },
        Change::RestoreUser => Read::CheckUsers { ids: doubtful },
        Change::SetSubscription { .. } => Read::Subscriptions,
        Change::SetAutoRenew { .. } => Read::ClassifySubscriptions,
        Change::DisableSecurityDefaults | Change::DisableCaPolicy | Change::DisableUserMfa => {
            Read::Mfa {
                user_ids: keep_ids(state),
            }
        }
    };
    Some(vec![Action::Perform(Call::Read(read))])
}

/// Splits `ids` into (applied, not applied) by the latest read, if the read
/// that tells is at hand and covers them all.
fn judge(state: &State, change: Change, ids: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    let o = &state.observed;
    let mut applied = Vec::new();
    let mut not = Vec::new();
    for id in ids {
        let done = match change {
            Change::DeleteUser => {
                let (present, absent) = o.checked.as_ref()?;
                if absent.contains(id) {
                    true
                } else if present.contains(id) {
                    false
                } else {
                    return None;
                }
            }
            // Restored when the user reads back by id (the recycle bin is no
            // proof: a purged user is missing from it too).
            Change::RestoreUser => {
                let (present, absent) = o.checked.as_ref()?;
                if present.contains(id) {
                    true
                } else if absent.contains(id) {
                    false
                } else {
                    return None;
                }
            }
            Change::SetSubscription { status } => {
                let subs = o.subscriptions.as_ref()?;
                match (subs.iter().find(|s| &s.id == id), status) {
                    (None, PartnerStatus::Active) => false,
                    (None, _) => true,
                    (Some(s), PartnerStatus::Active) => s.status.is_active(),
                    (Some(s), PartnerStatus::Suspended) => !s.status.is_active(),
                    (Some(s), PartnerStatus::Deleted) => s.status == SubscriptionStatus::Deleted,
                }
            }
            // Graph cannot show auto-renew: Partner Center's list can.
            Change::SetAutoRenew { enabled } => o
                .classes
                .as_ref()?
                .iter()
                .find(|c| c.partner_id.as_deref() == Some(id.as_str()))
                .is_some_and(|c| c.auto_renew == Some(enabled)),
            Change::DisableSecurityDefaults => !o.mfa.as_ref()?.security_defaults,
            Change::DisableCaPolicy => o
                .mfa
                .as_ref()?
                .ca_policies
                .iter()
                .all(|p| &p.id != id || p.state == crate::model::CaPolicyState::Disabled),
            Change::DisableUserMfa => o
                .mfa
                .as_ref()?
                .per_user
                .iter()
                .all(|(u, st)| u != id || *st == crate::model::PerUserMfaState::Disabled),
        };
        if done {
            applied.push(id.clone());
        } else {
            not.push(id.clone());
        }
    }
    Some((applied, not))
}

/// How many intent groups one decision records at most: the window of
/// changes about to be sent. A stop or crash can leave at most this many
/// groups in doubt, whatever the size of the step; the rest stays pending
/// (or not yet intended) for the next decision.
pub const INTENT_WINDOW: usize = 4;

/// The policy's intent size (objects per intent group).
pub(crate) fn intent_size(state: &State) -> usize {
    state.header.policy.intent_size.max(1)
}

/// How many objects one decision intends at most ([`INTENT_WINDOW`] groups).
pub fn window(state: &State) -> usize {
    intent_size(state).saturating_mul(INTENT_WINDOW)
}

/// Records intents for the first window of objects of the changes (in
/// groups of the policy's intent size, at most [`INTENT_WINDOW`] groups)
/// and, after them in the same list, the calls that carry them out. Objects
/// beyond the window are left to later decisions: callers derive their work
/// from what has no intent yet, so nothing is lost. Keep accounts are never
/// made targets of a delete, whatever the caller.
pub(crate) fn intend(
    state: &State,
    work: Vec<(Change, Vec<String>)>,
    mut first: Vec<Event>,
) -> Vec<Action> {
    let size = intent_size(state);
    let mut calls = Vec::new();
    let mut id = state.next_change_id;
    'window: for (change, mut ids) in work {
        if change == Change::DeleteUser {
            ids.retain(|t| !state.keep_ids.as_ref().is_some_and(|k| k.contains(t)));
        }
        for chunk in ids.chunks(size) {
            if calls.len() == INTENT_WINDOW {
                break 'window;
            }
            first.push(Event::ChangeIntended {
                change_id: id,
                change,
                targets: chunk.to_vec(),
            });
            calls.push(Action::Perform(Call::Change {
                change_id: id,
                change,
                targets: chunk.to_vec(),
            }));
            id = id.saturating_add(1);
        }
    }
    if first.is_empty() {
        return Vec::new();
    }
    let mut out = vec![Action::Record(first)];
    out.extend(calls);
    out
}

/// Resolves doubt, then issues intents for the pending objects of a table.
/// `None` when every object is done (or failed: the failure is handled above).
pub(crate) fn drive(state: &State, change: Change) -> Option<Vec<Action>> {
    if let Some(a) = resolve_doubt(state, change) {
        return Some(a);
    }
    let pending = ids_where(state, change, |t| *t == Target::Pending);
    if pending.is_empty() {
        return None;
    }
    // The pivot is recorded once Partner Center accepts an irreversible
    // change (`steps::pivot_now`), not when it is asked.
    Some(intend(state, vec![(change, pending)], Vec::new()))
}

/// The keep accounts' object ids.
pub(crate) fn keep_ids(state: &State) -> Vec<String> {
    state
        .keep_ids
        .as_ref()
        .map(|k| k.iter().cloned().collect())
        .unwrap_or_default()
}

/// The users of `view` that are not keep accounts (the portal's tenant
/// deletion wants none left).
pub(crate) fn other_users<'a>(
    state: &'a State,
    view: &'a super::view::TenantView,
) -> impl Iterator<Item = &'a super::view::UserRef> {
    view.users
        .iter()
        .filter(move |u| !is_keep(state, &u.id, &u.upn))
}

/// Whether a user is a keep account (by checked id, or by a keep entry naming
/// its id or UPN).
pub(crate) fn is_keep(state: &State, id: &str, upn: &str) -> bool {
    if state.keep_ids.as_ref().is_some_and(|k| k.contains(id)) {
        return true;
    }
    (state.header.spec.keep)
        .iter()
        .any(|k| k.eq_ignore_ascii_case(id) || k.eq_ignore_ascii_case(upn))
}

/// The actions that start a durable wait.
pub(crate) fn wait(
    now: Timestamp,
    d: std::time::Duration,
    reason: String,
    mut first: Vec<Event>,
) -> Vec<Action> {
    let until = now.plus(d);
    first.push(Event::WaitStarted { until, reason });
    vec![Action::Record(first), Action::WakeAt(until)]
}

impl Change {
    /// Whether making this change passes the point of no return.
    pub fn is_destructive_past_pivot(self) -> bool {
        self == Change::SetSubscription {
            status: PartnerStatus::Deleted,
        }
    }
}
