//! The state a saga's events fold into, and [`apply`], the fold step. `apply`
//! only records what an event says; every judgement lives in `decide`.

use super::event::{Change, Event, Gate, IdentitySource};
use super::notice::{Notices, Told};
use super::policy::SagaPolicy;
use super::subscriptions::SubscriptionClass;
use super::view::{Inventory, MfaView, SubscriptionRef, TenantView, UserRef};
use crate::model::{CallError, FailureClass, PartnerStatus, SagaId, TenantSpec, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where one object stands within its change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// To be changed (first time, after a transient failure, or after a read
    /// showed an in-doubt change not applied).
    Pending,
    /// Intent recorded, no outcome yet: in doubt unless its call is running.
    Intended(u32),
    /// The outcome was unknown (timeout, reset, 5xx to a write).
    InDoubt(u32),
    /// Done (including "already done").
    Done,
    /// Failed permanently; tried again after `resume`.
    Failed(String),
}

impl Target {
    /// Whether the change may or may not have been made.
    pub fn is_doubtful(&self) -> bool {
        matches!(self, Target::Intended(_) | Target::InDoubt(_))
    }
}

/// The name of the table of objects one kind of change works on: part of
/// the seed of a Partner Center `MS-RequestId` (see [`State::request_id`]),
/// so it never changes.
pub fn table_of(change: Change) -> &'static str {
    match change {
        Change::DeleteUser => "delete_user",
        Change::RestoreUser => "restore_user",
        Change::SetSubscription {
            status: PartnerStatus::Suspended,
        } => "suspend_subscription",
        Change::SetSubscription {
            status: PartnerStatus::Active,
        } => "activate_subscription",
        Change::SetSubscription {
            status: PartnerStatus::Deleted,
        } => "delete_subscription",
        Change::DisableSecurityDefaults => "disable_security_defaults",
        Change::DisableCaPolicy => "disable_ca_policy",
        Change::DisableUserMfa => "disable_user_mfa",
        Change::SetAutoRenew { enabled: false } => "auto_renew_off",
        Change::SetAutoRenew { enabled: true } => "auto_renew_on",
    }
}

/// What the saga was started with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The saga's id (also seeds retry jitter).
    pub saga_id: SagaId,
    /// The tenant and its keep list.
    pub spec: TenantSpec,
    /// Failure, retry and polling policy.
    pub policy: SagaPolicy,
    /// When it was submitted.
    pub started_at: Timestamp,
}

/// The latest reads, cleared whenever a change or a timer may have made them stale.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// `GET /v1.0/users`: every user, as last listed.
    pub users: Option<Vec<UserRef>>,
    /// Users looked up by id: (present, absent).
    pub checked: Option<(Vec<String>, Vec<String>)>,
    /// The recycle bin's user ids (`Read::DeletedUsers`, older sagas only).
    pub deleted_users: Option<Vec<String>>,
    /// The subscriptions, as last read.
    pub subscriptions: Option<Vec<SubscriptionRef>>,
    /// Security defaults, Conditional Access policies and per-user MFA, as last read.
    pub mfa: Option<MfaView>,
    /// The step 5 preflight read.
    pub tenant: Option<TenantView>,
    /// Whether the tenant still exists.
    pub tenant_exists: Option<bool>,
    /// Step 1's preflight read.
    pub preflight: Option<crate::model::Preflight>,
    /// The Graph application permissions closeout's app holds (app role
    /// ids), as last read before step 1.
    pub app_permissions: Option<Vec<String>>,
    /// A keep account read, just now, to be an enabled Global Administrator:
    /// every member of the role then (the admin deletes this read allows).
    #[serde(default)]
    pub keep_admins: Option<Vec<String>>,
    /// The step 5 preflight read.
    pub deletion: Option<super::closure::DeletionCheck>,
    /// The latest credential-free discovery read.
    pub discovery: Option<super::closure::Observation>,
    /// What each subscription is, as last classified.
    pub classes: Option<Vec<SubscriptionClass>>,
}

/// A durable timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    /// When the timer fires and the saga reads again.
    pub until: Timestamp,
    /// What is awaited (shown to the operator).
    pub reason: String,
}

/// How the saga ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The tenant is gone.
    Completed,
    /// Every change was undone.
    RolledBack,
    /// Failed before changing anything irreversible.
    Failed(String),
}

/// Where a saga is on its course: one of three phases, each with its own
/// data, so that no state says both "compensating" and "past the point of
/// no return". Paused, waiting and open gates are not phases: a saga can be
/// paused or wait at a gate going forward and while compensating.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Course {
    /// Through the steps in order (`State::step`).
    Forward {
        /// The point of no return has passed (`PivotPassed`): the saga may
        /// only go on, an abort is refused and a failure pauses it.
        pivot: bool,
    },
    /// Undoing what was done, before the point of no return.
    Compensating {
        /// Why: the failure or the operator's abort that started it.
        why: String,
    },
    /// Ended; no event moves it on.
    Ended {
        /// Completed, rolled back or failed.
        how: Ending,
        /// Why it was compensating when it ended, if it was.
        compensating: Option<String>,
    },
}

impl Default for Course {
    fn default() -> Self {
        Course::Forward { pivot: false }
    }
}

/// One saga's state: the fold of its events, and its snapshot. It exists
/// from the saga's first record, its `SagaStarted` ([`State::begin`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// What the saga was started with (its `SagaStarted`).
    pub header: Header,
    /// The time of the latest applied record (see [`apply_at`]).
    pub updated_at: Timestamp,
    /// The inventory taken before any change.
    pub inventory: Option<Inventory>,
    /// Object ids of the keep accounts, once checked.
    pub keep_ids: Option<BTreeSet<String>>,
    /// The current step (0 before step 1).
    pub step: u8,
    /// Per kind of change, per object: where it stands.
    pub tables: BTreeMap<Change, BTreeMap<String, Target>>,
    /// Every intent's change, to route outcomes.
    pub intents: BTreeMap<u32, Change>,
    /// The id the next intent gets.
    pub next_change_id: u32,
    /// The latest reads, cleared when a change or a timer may have made them stale.
    pub observed: Observed,
    /// The durable timer, if one runs.
    pub wait: Option<Wait>,
    /// The open operator gate and its instructions.
    pub gate: Option<(Gate, String)>,
    /// Whether the manual reactivation gate of the compensation was verified.
    pub reactivated: bool,
    /// A transient failure not yet scheduled for retry.
    pub pending_error: Option<CallError>,
    /// When the scheduled retry is due.
    pub retry_at: Option<Timestamp>,
    /// The current run of failures: (attempts so far, since when).
    pub streak: Option<(u32, Timestamp)>,
    /// A permanent failure not yet handled by the failure policy.
    pub failure: Option<String>,
    /// The latest error, for `status`.
    pub last_error: Option<String>,
    /// Why the saga is paused, if it is.
    pub paused: Option<String>,
    /// Who paused it, when an operator did (`None`: closeout paused it on a
    /// failure, or it is not paused).
    pub paused_by: Option<String>,
    /// Why the saga's task last stopped without the saga ending (a
    /// `TaskStopped`), until an operator resumes or aborts it: the daemon
    /// reports itself unhealthy while any saga has one.
    pub task_stopped: Option<String>,
    /// Forward, compensating or ended (see [`Course`]).
    pub course: Course,
    /// A call was answered "tenant not found" (`AADSTS90002`) and no read has
    /// shown the tenant since.
    #[serde(default)]
    pub tenant_unknown: bool,
    /// Notifications owed to the webhooks, by number (see `saga::notice`).
    pub notices: Notices,
    /// The batch it was submitted with: (batch id, its size).
    pub batch: Option<(String, u32)>,
    /// Whether this saga recorded that its batch finished.
    pub batch_finished: bool,
    /// The latest subscriptions read, kept when reads go stale (for `status`).
    pub last_subscriptions: Option<Vec<SubscriptionRef>>,
    /// The latest step 5 preflight read, kept when reads go stale (for `status`).
    pub last_tenant_read: Option<TenantView>,
    /// The users of an inventory recorded in parts, until the
    /// `InventoryRecorded` that completes it.
    pub inventory_parts: super::event::InventoryParts,
    /// The tenant's GUID, from the first `TenantResolved` (sagas recorded
    /// before it existed learn it from `GET /v1.0/organization`).
    #[serde(default)]
    pub tenant_guid: Option<String>,
    /// The GUID `GET /v1.0/organization` named with the tenant's own token.
    #[serde(default)]
    pub organization_guid: Option<String>,
    /// Every object id any read showed holding the Global Administrator role
    /// (the inventory's and later fresh reads'): deleting one needs a fresh
    /// keep-admin check.
    #[serde(default)]
    pub admins_seen: BTreeSet<String>,
    /// The last keep-admin check failed: why (cleared by a passing check or
    /// `resume`).
    #[serde(default)]
    pub keep_admin_missing: Option<String>,
    /// The choices about steps 4 and 5; `None` for sagas recorded before
    /// they existed (read as the article's scope).
    pub closure: Option<super::closure::ClosurePolicy>,
    /// The discovery answers taken before the operator deletes the tenant.
    pub discovery_baseline: Option<super::closure::Observation>,
    /// Consecutive observations of the tenant gone (0, 1 or 2).
    pub gone_confirmations: u8,
    /// The AADSTS code with which closeout's own credentials were refused in
    /// step 5 (its app removed by the operator's cleanup, or the tenant
    /// unknown): from then on only credential-free reads are made.
    pub own_app_removed: Option<String>,
    /// The latest step 5 preflight read, kept when reads go stale (for `status`).
    pub last_deletion_check: Option<super::closure::DeletionCheck>,
    /// The time the latest Conditional Access write finished (pacing: the
    /// documented limit is one request per second per tenant).
    pub last_ca_write: Option<Timestamp>,
    /// What each subscription is, as first classified before step 2 acted
    /// (the basis of steps 2 and 3 and of their undo).
    pub classes: Option<Vec<SubscriptionClass>>,
    /// When the first user deletion was accepted: their 30-day restore
    /// window runs from here.
    pub users_deleted_at: Option<Timestamp>,
    /// Per change and target, how many definite answers (success or a failure
    /// that is not in doubt) its changes got: the generation of its Partner
    /// Center `MS-RequestId`, which a retry after a timeout keeps.
    pub answers: BTreeMap<(Change, String), u32>,
    /// How long before the last running-out term step 1 starts, as recorded
    /// at submission (`None`: recorded before it could be chosen, the default
    /// applies).
    pub users_before_term_end: Option<std::time::Duration>,
    /// The backup policy recorded with `SagaStarted`; `None` for sagas
    /// recorded before it existed (see `stake::backup_gate_due`).
    pub backup: Option<super::stake::BackupMode>,
    /// The data at stake, as read before step 1.
    pub stake: Option<super::stake::DataAtStake>,
    /// The operator's backup attestation: (who, why).
    pub backup_attested: Option<(String, String)>,
}

/// The login error code for a tenant the token endpoint does not know.
pub const TENANT_NOT_FOUND: &str = "AADSTS90002";

/// The `who` of events closeout records on its own (a pause on failure).
pub const SYSTEM: &str = "closeout";

/// The schema version written before every encoded state snapshot. A
/// snapshot of another version is not upcast: recovery replays that saga's
/// events instead, which every version can read.
pub const STATE_VERSION: u16 = 7;

impl State {
    /// The snapshot bytes: [`STATE_VERSION`], then the state (through `crate::codec`).
    pub fn encode(&self) -> Result<Vec<u8>, crate::codec::Error> {
        crate::codec::encode_versioned(STATE_VERSION, self)
    }

    /// Decodes a snapshot; an unknown version is an error (replay the events instead).
    pub fn decode(bytes: &[u8]) -> Result<State, crate::codec::Error> {
        crate::codec::decode_versioned(STATE_VERSION, bytes)
    }
}

/// A saga's records do not begin with its `SagaStarted` (a damaged or
/// tampered log): there is no saga to replay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("its first record is `{found}`, not `saga_started`")]
pub struct NotStarted {
    /// The kind of the first record (`nothing` when there is none).
    pub found: &'static str,
}

impl State {
    /// The state a saga's first record, its `SagaStarted`, begins.
    pub fn begin(first: &Event) -> Result<State, NotStarted> {
        let Event::SagaStarted {
            saga_id,
            spec,
            policy,
            at,
            ..
        } = first
        else {
            return Err(NotStarted {
                found: first.kind(),
            });
        };
        let mut s = State::blank(Header {
            saga_id: saga_id.clone(),
            spec: spec.clone(),
            policy: policy.clone(),
            started_at: *at,
        });
        s.apply(first);
        Ok(s)
    }

    /// `header` and nothing else yet.
    fn blank(header: Header) -> State {
        State {
            header,
            updated_at: Default::default(),
            inventory: Default::default(),
            keep_ids: Default::default(),
            step: Default::default(),
            tables: Default::default(),
            intents: Default::default(),
            next_change_id: Default::default(),
            observed: Default::default(),
            wait: Default::default(),
            gate: Default::default(),
            reactivated: Default::default(),
            pending_error: Default::default(),
            retry_at: Default::default(),
            streak: Default::default(),
            failure: Default::default(),
            last_error: Default::default(),
            paused: Default::default(),
            paused_by: Default::default(),
            task_stopped: Default::default(),
            course: Default::default(),
            tenant_unknown: Default::default(),
            notices: Default::default(),
            batch: Default::default(),
            batch_finished: Default::default(),
            last_subscriptions: Default::default(),
            last_tenant_read: Default::default(),
            inventory_parts: Default::default(),
            tenant_guid: Default::default(),
            organization_guid: Default::default(),
            admins_seen: Default::default(),
            keep_admin_missing: Default::default(),
            closure: Default::default(),
            discovery_baseline: Default::default(),
            gone_confirmations: Default::default(),
            own_app_removed: Default::default(),
            last_deletion_check: Default::default(),
            last_ca_write: Default::default(),
            classes: Default::default(),
            users_deleted_at: Default::default(),
            answers: Default::default(),
            users_before_term_end: Default::default(),
            backup: Default::default(),
            stake: Default::default(),
            backup_attested: Default::default(),
        }
    }

    /// Applies one event in place (see [`apply`]).
    pub fn apply(&mut self, event: &Event) {
        apply_event(self, event);
    }

    /// Applies one record in place (see [`apply_at`]).
    pub fn apply_at(&mut self, event: &Event, at: Timestamp) {
        let first_delete = s_first_delete(self, event);
        apply_event(self, event);
        if first_delete {
            self.users_deleted_at = Some(at);
        }
        self.updated_at = self.updated_at.max(at);
        if let Event::ChangeApplied { change_id, .. } | Event::ChangeFailed { change_id, .. } =
            event
        {
            if self.intents.get(change_id) == Some(&Change::DisableCaPolicy) {
                self.last_ca_write = Some(at);
            }
        }
    }
}

/// Folds a saga's events, its `SagaStarted` first, into its state (replay:
/// nothing is performed).
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<State, NotStarted> {
    let mut events = events.into_iter();
    let first = events.next().ok_or(NotStarted { found: "nothing" })?;
    Ok(events.fold(State::begin(first)?, apply))
}

/// [`fold`] of records all stamped `at` (a saga's first events, recorded
/// together).
pub fn fold_at<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    at: Timestamp,
) -> Result<State, NotStarted> {
    let mut events = events.into_iter();
    let first = events.next().ok_or(NotStarted { found: "nothing" })?;
    let mut state = State::begin(first)?;
    state.updated_at = state.updated_at.max(at);
    for event in events {
        state.apply_at(event, at);
    }
    Ok(state)
}

/// [`apply`], also noting the record's timestamp as the last update.
pub fn apply_at(mut state: State, event: &Event, at: Timestamp) -> State {
    state.apply_at(event, at);
    state
}

/// Whether `event` is the first accepted user deletion.
fn s_first_delete(s: &State, event: &Event) -> bool {
    match event {
        Event::ChangeApplied { change_id, .. } => {
            s.users_deleted_at.is_none() && s.intents.get(change_id) == Some(&Change::DeleteUser)
        }
        _ => false,
    }
}

/// Applies one event. No business logic: this only records what the event says.
pub fn apply(mut state: State, event: &Event) -> State {
    apply_event(&mut state, event);
    state
}

fn apply_event(s: &mut State, event: &Event) {
    match event {
        Event::SagaStarted {
            saga_id,
            spec,
            policy,
            at,
            ..
        } => {
            s.header = Header {
                saga_id: saga_id.clone(),
                spec: spec.clone(),
                policy: policy.clone(),
                started_at: *at,
            };
            s.updated_at = s.updated_at.max(*at);
        }
        Event::InventoryUsersRecorded { .. } | Event::InventoryRecorded { .. } => {
            if let Some(inventory) = s.inventory_parts.take(event) {
                s.admins_seen
                    .extend(inventory.global_admins.iter().cloned());
                s.inventory = Some(inventory);
            }
        }
        Event::TenantResolved {
            tenant_guid,
            source,
        } => {
            if s.tenant_guid.is_none() {
                s.tenant_guid = Some(tenant_guid.clone());
            }
            if *source == IdentitySource::Organization {
                s.organization_guid = Some(tenant_guid.clone());
                s.streak = None;
            }
        }
        Event::KeepAdminVerified { admin_ids, .. } => {
            s.admins_seen.extend(admin_ids.iter().cloned());
            s.observed.keep_admins = Some(admin_ids.clone());
            s.keep_admin_missing = None;
            s.streak = None;
        }
        Event::KeepAdminMissing {
            reason, admin_ids, ..
        } => {
            s.admins_seen.extend(admin_ids.iter().cloned());
            s.observed.keep_admins = None;
            s.keep_admin_missing = Some(reason.clone());
            s.streak = None;
        }
        Event::KeepListChecked { keep_ids } => {
            s.keep_ids = Some(keep_ids.iter().cloned().collect());
        }
        Event::StepStarted { step } => {
            s.step = *step;
            s.observed = Observed::default();
            s.wait = None;
            s.gate = None;
        }
        Event::StepCompleted { .. } => {
            s.wait = None;
            s.gate = None;
        }
        Event::ChangeIntended {
            change_id,
            change,
            targets,
        } => {
            s.intents.insert(*change_id, *change);
            s.next_change_id = s.next_change_id.max(change_id.saturating_add(1));
            let table = s.tables.entry(*change).or_default();
            for t in targets {
                table.insert(t.clone(), Target::Intended(*change_id));
            }
            s.observed = Observed::default();
        }
        Event::ChangeApplied {
            change_id, target, ..
        } => {
            s.count_answer(*change_id, target);
            s.set_target(*change_id, target, Target::Done);
            s.streak = None;
            s.observed = Observed::default();
        }
        Event::ChangeFailed {
            change_id,
            target,
            error,
            ..
        } => {
            if error.class != FailureClass::InDoubt {
                s.count_answer(*change_id, target);
            }
            let next = match error.class {
                FailureClass::Transient => Target::Pending,
                FailureClass::InDoubt => Target::InDoubt(*change_id),
                FailureClass::Permanent => Target::Failed(error.to_string()),
            };
            s.set_target(*change_id, target, next);
            s.note_error(error, &format!("{target}: {error}"));
            s.observed = Observed::default();
        }
        Event::InDoubtResolved {
            change,
            applied,
            not_applied,
        } => {
            let table = s.tables.entry(*change).or_default();
            for t in applied {
                table.insert(t.clone(), Target::Done);
            }
            for t in not_applied {
                table.insert(t.clone(), Target::Pending);
            }
        }
        Event::UsersRead { users } => {
            s.observed.users = Some(users.clone());
            s.streak = None;
        }
        Event::UsersChecked { present, absent } => {
            s.observed.checked = Some((present.clone(), absent.clone()));
            s.streak = None;
        }
        Event::DeletedUsersRead { ids } => {
            s.observed.deleted_users = Some(ids.clone());
            s.streak = None;
        }
        Event::SubscriptionsRead { subscriptions } => {
            s.observed.subscriptions = Some(subscriptions.clone());
            s.last_subscriptions = Some(subscriptions.clone());
            s.streak = None;
        }
        Event::MfaRead { mfa } => {
            s.observed.mfa = Some(mfa.clone());
            s.streak = None;
        }
        Event::TenantRead { view } => {
            s.observed.tenant = Some(view.clone());
            s.last_tenant_read = Some(view.clone());
            s.streak = None;
        }
        Event::SchedulePolicyRecorded {
            users_before_term_end,
        } => {
            s.users_before_term_end = Some(*users_before_term_end);
        }
        Event::PreflightRead { preflight } => {
            s.observed.preflight = Some(preflight.clone());
            s.streak = None;
        }
        Event::ClosurePolicyRecorded {
            mfa_scope,
            finish_with,
        } => {
            s.closure = Some(super::closure::ClosurePolicy {
                mfa_scope: *mfa_scope,
                finish_with: finish_with.clone(),
            });
        }
        Event::DeletionChecked { check } => {
            s.observed.deletion = Some(check.clone());
            s.last_deletion_check = Some(check.clone());
            s.streak = None;
        }
        Event::CredentialsRefused { code } => {
            s.own_app_removed = Some(code.clone());
            s.streak = None;
        }
        Event::DiscoveryRead { observation } => {
            s.observed.discovery = Some(observation.clone());
            s.streak = None;
        }
        Event::DiscoveryBaselineRecorded { observation } => {
            s.discovery_baseline = Some(observation.clone());
        }
        Event::TenantObservedGone { confirmation, .. } => {
            s.gone_confirmations = *confirmation;
        }
        Event::PermissionsRead { granted } => {
            s.observed.app_permissions = Some(granted.clone());
        }
        // For the audit only: nothing the saga decides depends on it.
        Event::CertificateUsed { .. } => {}
        Event::SubscriptionsClassified { subscriptions } => {
            s.observed.classes = Some(subscriptions.clone());
            if s.classes.is_none() {
                s.classes = Some(subscriptions.clone());
            }
            s.streak = None;
        }
        Event::BackupPolicyRecorded { mode } => s.backup = Some(*mode),
        Event::DataAtStakeRecorded { stake } => {
            s.stake = Some(stake.clone());
            s.streak = None;
        }
        Event::BackupAttested { who, why, .. } => {
            s.backup_attested = Some((who.clone(), why.clone()));
            s.wait = None;
        }
        Event::TenantChecked { exists } => {
            s.observed.tenant_exists = Some(*exists);
            s.tenant_unknown &= !*exists;
            s.streak = None;
        }
        Event::ReadFailed { read, error } => {
            let what = format!("{read}: {error}");
            s.note_error(error, &what);
        }
        Event::RetryScheduled {
            at, attempt, since, ..
        } => {
            s.pending_error = None;
            s.retry_at = Some(*at);
            s.streak = Some((*attempt, *since));
            s.observed = Observed::default();
        }
        Event::WaitStarted { until, reason } => {
            s.wait = Some(Wait {
                until: *until,
                reason: reason.clone(),
            });
            s.observed = Observed::default();
        }
        Event::GateOpened { gate, instructions } => {
            s.gate = Some((*gate, instructions.clone()));
            s.owe(Told::GateOpened {
                instructions: instructions.clone(),
            });
        }
        Event::GateConfirmed { .. } => {
            s.wait = None;
            s.observed = Observed::default();
        }
        Event::GateClosed { gate } => {
            s.gate = None;
            s.wait = None;
            if *gate == Gate::ReactivateSubscriptions {
                s.reactivated = true;
            }
        }
        Event::PivotPassed { .. } => {
            if let Course::Forward { pivot } = &mut s.course {
                *pivot = true;
            }
        }
        Event::Paused { who, why } => {
            if who == SYSTEM {
                s.last_error = Some(why.clone());
            }
            s.paused = Some(why.clone());
            s.paused_by = (who != SYSTEM).then(|| who.clone());
            s.clear_failures();
            s.owe(Told::Paused {
                who: who.clone(),
                why: why.clone(),
            });
        }
        Event::TaskStopped { reason } => {
            let why = format!("saga task stopped: {reason}");
            s.last_error = Some(why.clone());
            s.paused = Some(why.clone());
            s.paused_by = None;
            s.task_stopped = Some(reason.clone());
            s.clear_failures();
            s.owe(Told::SagaStopped {
                reason: reason.clone(),
            });
        }
        Event::Resumed { .. } => {
            s.paused = None;
            s.paused_by = None;
            s.keep_admin_missing = None;
            s.task_stopped = None;
            s.clear_failures();
            s.wait = None;
            s.observed = Observed::default();
            for table in s.tables.values_mut() {
                for t in table.values_mut() {
                    if matches!(t, Target::Failed(_)) {
                        *t = Target::Pending;
                    }
                }
            }
        }
        Event::AbortRequested { why, .. } => {
            s.compensate(format!("aborted: {why}"));
            s.paused = None;
            s.paused_by = None;
            s.task_stopped = None;
            s.enter_compensation();
        }
        Event::CompensationStarted { reason } => {
            s.compensate(reason.clone());
            s.enter_compensation();
        }
        Event::AbortRefused { .. } => {}
        Event::SagaCompleted => s.end(Ending::Completed),
        Event::TenantFoundGone { .. } => {
            s.clear_failures();
            s.last_error = None;
            s.gate = None;
            s.wait = None;
        }
        Event::SagaRolledBack => {
            let why = s.compensating().unwrap_or_default().to_string();
            s.end(Ending::RolledBack);
            s.owe(Told::RolledBack { why });
        }
        Event::SagaFailed { reason } => {
            s.end(Ending::Failed(reason.clone()));
            s.last_error = Some(reason.clone());
            s.owe(Told::Failed {
                reason: reason.clone(),
            });
        }
        Event::NotificationSent {
            notice, webhook, ..
        }
        | Event::NotificationAbandoned {
            notice, webhook, ..
        } => s.settle(*notice, *webhook),
        Event::BatchJoined { batch_id, size } => s.batch = Some((batch_id.clone(), *size)),
        Event::BatchFinished {
            batch_id,
            completed,
            rolled_back,
            failed,
        } => {
            s.batch_finished = true;
            s.owe(Told::BatchFinished {
                batch_id: batch_id.clone(),
                completed: *completed,
                rolled_back: *rolled_back,
                failed: *failed,
            });
        }
    }
}

impl State {
    fn count_answer(&mut self, change_id: u32, target: &str) {
        if let Some(change) = self.intents.get(&change_id) {
            *self
                .answers
                .entry((*change, target.to_string()))
                .or_insert(0) += 1;
        }
    }

    /// The `MS-RequestId` of the next Partner Center call changing `target`:
    /// derived from the saga id, the change and how many definite answers
    /// that target's changes got, so it is the same after a restart and on
    /// every retry after a timeout, and new once Partner Center answered
    /// ("upon receiving a response ... the value should be reset":
    /// <https://learn.microsoft.com/en-us/partner-center/developer/headers>).
    /// A GUID-shaped value made of the first 16 bytes of a BLAKE3 hash.
    pub fn request_id(&self, change: Change, target: &str) -> String {
        let saga = self.header.saga_id.0.as_str();
        let table = table_of(change);
        let generation = self
            .answers
            .get(&(change, target.to_string()))
            .copied()
            .unwrap_or(0);
        let mut h = blake3::Hasher::new();
        for part in [saga, table, target, &generation.to_string()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let b = h.finalize();
        let b = b.as_bytes();
        let hex: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    fn set_target(&mut self, change_id: u32, target: &str, to: Target) {
        if let Some(change) = self.intents.get(&change_id) {
            let table = self.tables.entry(*change).or_default();
            table.insert(target.to_string(), to);
        }
    }

    fn note_error(&mut self, error: &CallError, what: &str) {
        self.last_error = Some(what.to_string());
        if error.code == TENANT_NOT_FOUND {
            self.tenant_unknown = true;
        }
        match error.class {
            FailureClass::Permanent => {
                if self.failure.is_none() {
                    self.failure = Some(what.to_string());
                }
            }
            FailureClass::Transient | FailureClass::InDoubt => {
                let keep_old = self
                    .pending_error
                    .as_ref()
                    .is_some_and(|old| old.retry_after >= error.retry_after);
                if !keep_old {
                    self.pending_error = Some(error.clone());
                }
            }
        }
    }

    fn clear_failures(&mut self) {
        self.failure = None;
        self.pending_error = None;
        self.retry_at = None;
        self.streak = None;
    }

    /// Enters (or, once ended, notes) compensation for `why`.
    fn compensate(&mut self, why: String) {
        match &mut self.course {
            Course::Ended { compensating, .. } => *compensating = Some(why),
            course => *course = Course::Compensating { why },
        }
    }

    /// Ends the saga `how` (a later ending replaces an earlier one, as the
    /// log says).
    fn end(&mut self, how: Ending) {
        let compensating = self.compensating().map(str::to_string);
        self.course = Course::Ended { how, compensating };
    }

    /// Whether the point of no return has passed.
    pub fn pivot(&self) -> bool {
        matches!(
            self.course,
            Course::Forward { pivot: true }
                | Course::Ended {
                    how: Ending::Completed,
                    ..
                }
        )
    }

    /// Why compensation runs (or ran, when the saga ended compensating).
    pub fn compensating(&self) -> Option<&str> {
        match &self.course {
            Course::Compensating { why } => Some(why),
            Course::Ended { compensating, .. } => compensating.as_deref(),
            Course::Forward { .. } => None,
        }
    }

    /// How the saga ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        match &self.course {
            Course::Ended { how, .. } => Some(how),
            _ => None,
        }
    }

    fn enter_compensation(&mut self) {
        self.clear_failures();
        self.gate = None;
        self.wait = None;
        self.observed = Observed::default();
        for table in self.tables.values_mut() {
            for t in table.values_mut() {
                if matches!(t, Target::Failed(_)) {
                    *t = Target::Pending;
                }
            }
        }
    }

    /// The entries of one change's table.
    pub fn table(&self, change: Change) -> Option<&BTreeMap<String, Target>> {
        self.tables.get(&change)
    }

    /// Whether the saga has ended.
    pub fn is_terminal(&self) -> bool {
        matches!(self.course, Course::Ended { .. })
    }

    /// Changes whose outcome is unknown: (change, object id).
    pub fn in_doubt(&self) -> Vec<(Change, String)> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for change in self.intents.values() {
            if !seen.insert(*change) {
                continue;
            }
            if let Some(table) = self.table(*change) {
                for (id, t) in table {
                    if t.is_doubtful() {
                        out.push((*change, id.clone()));
                    }
                }
            }
        }
        out
    }
}
