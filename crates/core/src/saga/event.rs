//! The saga's events: everything that happened to one closure, past tense,
//! versioned for upcasting. The log stores them as [`Event::encode`] bytes
//! (a version, then bincode through `crate::codec`); [`super::apply`] folds
//! them into a [`super::State`].

use super::action::Read;
use super::closure::{DeletionCheck, MfaScope, Observation};
use super::notice::NoticeKind;
use super::policy::SagaPolicy;
use super::view::{Inventory, MfaView, SubscriptionRef, TenantView, UserRef};
use crate::model::{
    Applied, CallError, HttpInfo, PartnerStatus, Preflight, SagaId, TenantSpec, Timestamp,
};
use serde::{Deserialize, Serialize};

/// The schema version written before every encoded event.
pub const EVENT_VERSION: u16 = 1;

impl Event {
    /// The bytes the log stores: [`EVENT_VERSION`], then the event (through
    /// `crate::codec`).
    pub fn encode(&self) -> Result<Vec<u8>, crate::codec::Error> {
        crate::codec::encode_versioned(EVENT_VERSION, self)
    }

    /// Decodes stored bytes, upcasting older versions (none yet); an unknown
    /// version is an error, never a guess.
    pub fn decode(bytes: &[u8]) -> Result<Event, crate::codec::Error> {
        let (version, body) = crate::codec::split_version(bytes)?;
        match version {
            EVENT_VERSION => crate::codec::decode(body),
            found => Err(crate::codec::Error::UnknownVersion {
                found,
                known: EVENT_VERSION,
            }),
        }
    }
}

/// Which external change an intent announces. Each names its targets
/// separately (in [`Event::ChangeIntended`]) so that one event covers a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// `DELETE /v1.0/users/{id}` (step 1); targets are user object ids.
    DeleteUser,
    /// `POST /v1.0/directory/deletedItems/{id}/restore` (undo of step 1).
    RestoreUser,
    /// Partner Center PATCH of a subscription's status (steps 2, 3 and the
    /// undo of 2); targets are commerce subscription ids.
    SetSubscription {
        /// The status asked for.
        status: PartnerStatus,
    },
    /// Security defaults off (step 4); the target is `securityDefaults`.
    DisableSecurityDefaults,
    /// A Conditional Access policy to `disabled` (step 4); targets are policy ids.
    DisableCaPolicy,
    /// Per-user MFA to `disabled` (step 4); targets are user object ids.
    DisableUserMfa,
    /// Partner Center PATCH of a subscription's `autoRenewEnabled` (step 2
    /// for a new-commerce subscription past its cancellation window, and its
    /// undo); targets are Partner Center subscription ids.
    SetAutoRenew {
        /// The value asked for.
        enabled: bool,
    },
}

impl Change {
    /// Whether this change can remove something (the invariant tests watch these).
    pub fn is_destructive(self) -> bool {
        matches!(
            self,
            Change::DeleteUser
                | Change::SetSubscription {
                    status: PartnerStatus::Deleted | PartnerStatus::Suspended
                }
        )
    }
}

/// The target name of the security defaults policy (there is one per tenant).
pub const SECURITY_DEFAULTS: &str = "securityDefaults";

/// The operator gates: things only a person can do, verified by reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Step 2, manual mode: cancel the active subscriptions in the admin center.
    CancelSubscriptions,
    /// Step 3, manual mode: delete the cancelled subscriptions.
    DeleteSubscriptions,
    /// Undo of step 2, manual mode: reactivate what was cancelled.
    ReactivateSubscriptions,
    /// Step 5: delete the tenant in the Entra admin center.
    DeleteTenant,
    /// Step 1 preflight: give closeout's app the role that deleting the
    /// tenant's administrators needs.
    AssignAppRole,
    /// Step 1 preflight: turn off directory synchronization.
    TurnOffDirectorySync,
    /// Steps 2 and 3: subscriptions closeout may not end (sold directly or by
    /// another partner, trials, self-service sign-ups, unmatched ones) are
    /// ended by a person where the instructions say.
    EndSubscriptionsElsewhere,
    /// Before step 1 deletes anyone (`[saga] backup = "attest"`): an
    /// operator attests that the tenant's data is backed up outside the
    /// tenant. The one gate closed on a person's word, not by a read.
    AttestBackup,
    /// Before step 1: grant closeout's app the Microsoft Graph application
    /// permissions this closure needs (admin consent).
    GrantPermissions,
}

/// Everything that can happen to a closure saga.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The tenant was submitted; its spec and policy are fixed from here on.
    SagaStarted {
        /// The id the daemon chose on submission (a UUID v4); the log's key for this saga.
        saga_id: SagaId,
        /// The tenant to close (no secret, only where to find it).
        spec: TenantSpec,
        /// Failure, retry and polling policy.
        policy: SagaPolicy,
        /// When it was submitted.
        at: Timestamp,
        /// Who submitted it: the control socket peer's user name.
        submitted_by: String,
    },
    /// The tenant was read before any change.
    InventoryRecorded {
        /// Users, roles, subscriptions, MFA settings, app registrations.
        inventory: Inventory,
    },
    /// The keep list names existing accounts, one of them a Global Administrator.
    KeepListChecked {
        /// Object ids of the keep accounts: never deleted.
        keep_ids: Vec<String>,
    },
    /// A step of the closure began; `StepCompleted` follows once a read verifies it.
    StepStarted {
        /// 1 delete users, 2 cancel subscriptions, 3 delete subscriptions, 4 turn off
        /// MFA, 5 delete the tenant.
        step: u8,
    },
    /// A step's result was verified by reading.
    StepCompleted {
        /// The step verified, 1 to 5 (numbered as in `StepStarted`).
        step: u8,
    },
    /// The saga is about to make a change to these objects (durable before the call).
    ChangeIntended {
        /// Identifies the intent; outcomes refer to it.
        change_id: u32,
        /// The kind of change made to every target.
        change: Change,
        /// The ids of the objects to change, each settled later by its own
        /// `ChangeApplied` or `ChangeFailed`.
        targets: Vec<String>,
    },
    /// One object's change succeeded.
    ChangeApplied {
        /// The `change_id` of the `ChangeIntended` this outcome settles.
        change_id: u32,
        /// The id of the object changed, one of the intent's targets.
        target: String,
        /// The call as made.
        http: HttpInfo,
        /// Done now, or already done (404 on a delete).
        applied: Applied,
    },
    /// One object's change failed.
    ChangeFailed {
        /// The `change_id` of the `ChangeIntended` this outcome settles.
        change_id: u32,
        /// The id of the object not changed, one of the intent's targets.
        target: String,
        /// The call as made.
        http: HttpInfo,
        /// The failure as the client classified it: transient, in doubt, or permanent.
        error: CallError,
    },
    /// A read settled in-doubt changes: which were applied and which were not.
    InDoubtResolved {
        /// The change whose in-doubt targets the read settled.
        change: Change,
        /// Ids the read shows changed: recorded as applied.
        applied: Vec<String>,
        /// Objects found unchanged (the change will be made again).
        not_applied: Vec<String>,
    },
    /// `GET /v1.0/users` answered.
    UsersRead {
        /// Every user the read returned, keep accounts included.
        users: Vec<UserRef>,
    },
    /// Users were looked up one by one (resolving in-doubt deletes).
    UsersChecked {
        /// Ids that still exist.
        present: Vec<String>,
        /// Ids that answered 404.
        absent: Vec<String>,
    },
    /// The recycle bin was read (resolving in-doubt restores).
    DeletedUsersRead {
        /// Ids of deleted users.
        ids: Vec<String>,
    },
    /// `GET /v1.0/directory/subscriptions` answered.
    SubscriptionsRead {
        /// Subscriptions and their status.
        subscriptions: Vec<SubscriptionRef>,
    },
    /// The MFA settings were read.
    MfaRead {
        /// Security defaults, Conditional Access policies, and the per-user MFA of the
        /// accounts asked about.
        mfa: MfaView,
    },
    /// The step 5 preflight read the tenant.
    TenantRead {
        /// Users, subscriptions, MFA settings and app registrations left.
        view: TenantView,
    },
    /// The token endpoint was asked whether the tenant exists.
    TenantChecked {
        /// False once the tenant is deleted.
        exists: bool,
    },
    /// A read failed; what follows depends on the error's class.
    ReadFailed {
        /// The read that failed, as it was asked for.
        read: Read,
        /// The failure as the client classified it: transient, in doubt, or permanent.
        error: CallError,
    },
    /// A transient failure will be retried at `at`.
    RetryScheduled {
        /// When to try again.
        at: Timestamp,
        /// 1 for the first retry.
        attempt: u32,
        /// The failure retried, as its `CallError` displays (code, class, message).
        reason: String,
        /// When this run of failures began (give-up time counts from here).
        since: Timestamp,
    },
    /// A durable timer: nothing to do until `until`, then re-read.
    WaitStarted {
        /// When the wait ends and the saga decides again.
        until: Timestamp,
        /// Why the saga waits, in words; `status` shows it while the wait lasts.
        reason: String,
    },
    /// A person must act; the saga re-reads periodically to see it done.
    GateOpened {
        /// The operator gate now open; one gate is open at a time.
        gate: Gate,
        /// What the person must do.
        instructions: String,
    },
    /// An operator said the gate's work is done: re-check now.
    GateConfirmed {
        /// Who: the control socket peer's user name (`closeout` when closeout acted on its own).
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// A read showed the gate's work done.
    GateClosed {
        /// The gate the read found done.
        gate: Gate,
    },
    /// The point of no return: from here on nothing is compensated.
    PivotPassed {
        /// What made it so.
        reason: String,
    },
    /// The saga stopped (operator command, or a failure under the pause policy).
    Paused {
        /// Who (`closeout` for a failure).
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// An operator resumed the saga; failed objects are tried again.
    Resumed {
        /// Who: the control socket peer's user name (`closeout` when closeout acted on its own).
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// An operator asked to abort before the pivot: compensation follows.
    AbortRequested {
        /// Who: the control socket peer's user name (`closeout` when closeout acted on its own).
        who: String,
        /// The reason the operator gave, as written.
        why: String,
    },
    /// An abort was refused (after the pivot, or when nothing can be aborted).
    AbortRefused {
        /// Who asked: the control socket peer's user name.
        who: String,
        /// The reason the operator gave, as written.
        why: String,
        /// Why it was refused.
        reason: String,
    },
    /// Undoing completed work began (reverse order).
    CompensationStarted {
        /// The failure or abort that caused it.
        reason: String,
    },
    /// The tenant is gone: done.
    SagaCompleted,
    /// Everything changed was undone.
    SagaRolledBack,
    /// The saga ended without changing anything it could not undo.
    SagaFailed {
        /// Why, in words, for the audit and `status`.
        reason: String,
    },
    /// After the pivot, a call was answered "tenant not found" (`AADSTS90002`)
    /// and the token endpoint confirmed it: the tenant was deleted (by the
    /// operator in the admin center) while this step was still running.
    TenantFoundGone {
        /// The step that was running.
        step: u8,
    },
    /// A notice was delivered to a webhook (it answered 2xx).
    NotificationSent {
        /// The notice's number in this saga (see `saga::notice`).
        notice: u32,
        /// The kind of notice delivered.
        kind: NoticeKind,
        /// The webhook's index in the configured list (never its URL, which
        /// may carry a token).
        webhook: u16,
        /// The webhook's host, for the audit.
        host: String,
        /// POSTs made, the accepted one included (1 when the first was accepted).
        attempts: u32,
        /// The HTTP status of the accepting answer.
        status: u16,
    },
    /// Delivering a notice to a webhook was given up.
    NotificationAbandoned {
        /// The notice's number in this saga.
        notice: u32,
        /// What it would have told.
        kind: NoticeKind,
        /// The webhook's index in the configured list.
        webhook: u16,
        /// The webhook's host, for the audit.
        host: String,
        /// POSTs made before giving up (0 when the webhook index is unknown).
        attempts: u32,
        /// The last failure, in words: the status answered, or the connection error's class
        /// (never its text, which may hold the URL).
        reason: String,
    },
    /// The saga was submitted as one of a batch (recorded with `SagaStarted`).
    BatchJoined {
        /// The batch's id, shared by its sagas.
        batch_id: String,
        /// How many tenants the batch has.
        size: u32,
    },
    /// Every saga of the batch has ended; recorded once, by the saga that saw
    /// the last one end.
    BatchFinished {
        /// The batch's id, as in the sagas' `BatchJoined`.
        batch_id: String,
        /// Sagas that closed their tenant.
        completed: u32,
        /// Sagas that undid their changes.
        rolled_back: u32,
        /// Sagas that ended failed, without closing their tenant.
        failed: u32,
    },
    /// Part of a large inventory's users, recorded just before the
    /// `InventoryRecorded` that completes the inventory, so that no record
    /// nears the store's size limit whatever the tenant's size. Part 0
    /// starts a new inventory: a read repeated after a crash starts over.
    InventoryUsersRecorded {
        /// 0 for the first part of an inventory.
        part: u32,
        /// The users of this part, in the order read.
        users: Vec<crate::model::User>,
    },
    /// Step 1's preflight read: directory roles, on-premises sync, and
    /// closeout's own roles (read before the first delete, and again while
    /// its gate is open).
    PreflightRead {
        /// Role assignments, on-premises sync, and closeout's own roles, as read.
        preflight: Preflight,
    },
    /// The tenant's identity: its GUID, whatever spelling the batch used. The
    /// daemon records it with `SagaStarted` (from the discovery document) and
    /// the saga again once it has a token (from `GET /v1.0/organization`);
    /// one saga per tenant is enforced on this GUID.
    TenantResolved {
        /// The tenant's GUID, lowercase.
        tenant_guid: String,
        /// Where it was read.
        source: IdentitySource,
    },
    /// A fresh read of the Global Administrator role, just before deleting
    /// Global Administrators, found a keep account enabled and holding it.
    KeepAdminVerified {
        /// The keep accounts that are enabled Global Administrators.
        keep_admin_ids: Vec<String>,
        /// Every member of the role as read (the deletes it guards).
        admin_ids: Vec<String>,
        /// When it was read.
        at: Timestamp,
    },
    /// A fresh read of the Global Administrator role found no keep account
    /// that is enabled and holds it: no Global Administrator is deleted.
    KeepAdminMissing {
        /// What the read showed.
        reason: String,
        /// Every member of the role as read.
        admin_ids: Vec<String>,
        /// When it was read.
        at: Timestamp,
    },
    /// The saga's task ended while the saga had not (a panic, a refused
    /// append, a record that could not be encoded); recorded by the
    /// executor's supervisor. The saga waits paused for the operator, who
    /// sees the reason, so a restart never loops on the same fault unseen.
    TaskStopped {
        /// What ended the task, in words.
        reason: String,
    },
    /// The choices about steps 4 and 5, recorded with `SagaStarted`. A saga
    /// recorded without it closes as [`MfaScope::Article`] with the first keep
    /// Global Administrator finishing (the safe reading, from step 4 on).
    ClosurePolicyRecorded {
        /// What step 4 turns off.
        mfa_scope: MfaScope,
        /// The keep account who deletes the tenant, if the batch names one.
        finish_with: Option<String>,
    },
    /// The step 5 preflight read (the portal's deletion check, as far as
    /// Graph shows it).
    DeletionChecked {
        /// What the read shows of the portal's deletion check.
        check: DeletionCheck,
    },
    /// During step 5, closeout's own token request was refused: its app or
    /// service principal is gone from the tenant (`AADSTS700016` /
    /// `AADSTS7000229`, the operator cleaning up as the deletion page asks)
    /// or the tenant is unknown (`AADSTS90002`, no proof of deletion). The
    /// saga stops reading with its credentials and waits on the
    /// credential-free signal.
    CredentialsRefused {
        /// The AADSTS code of the refusal (`AADSTS700016`, `AADSTS7000229` or `AADSTS90002`).
        code: String,
    },
    /// The tenant's OpenID discovery document was read for its id and its
    /// initial domain, without credentials.
    DiscoveryRead {
        /// The answers for the tenant id and, when known, the initial domain.
        observation: Observation,
    },
    /// The discovery answers before the operator deletes the tenant: later
    /// answers count as evidence only if they differ from these.
    DiscoveryBaselineRecorded {
        /// The answers later reads are compared to (see [`Observation::gone_since`]).
        observation: Observation,
    },
    /// The discovery answers changed from the baseline to "not found"
    /// (`confirmation` 1, then 2 after a durable wait): observed gone, not
    /// proven (Microsoft documents no signal).
    TenantObservedGone {
        /// 1 for the first observation, 2 for the confirming one.
        confirmation: u8,
        /// The answers that showed the tenant gone.
        observation: Observation,
    },
    /// What each subscription is (seller, kind, term, window), from Graph's
    /// subscriptions and the partner's Partner Center list; read before step
    /// 2 acts and again to settle in-doubt auto-renew changes.
    SubscriptionsClassified {
        /// One per Graph subscription.
        subscriptions: Vec<super::subscriptions::SubscriptionClass>,
    },
    /// When step 1 starts in a closure that waits for subscription terms to
    /// run out (`[saga] users_before_term_end`), recorded with `SagaStarted`.
    /// A saga recorded without it uses
    /// [`super::subscriptions::DEFAULT_USERS_BEFORE_TERM_END`].
    SchedulePolicyRecorded {
        /// How long before the last such term ends the first user is deleted.
        users_before_term_end: std::time::Duration,
    },
    /// The backup policy (`[saga] backup`), recorded with `SagaStarted`. A
    /// saga recorded without it gets the backup gate while it has deleted
    /// no one (the safe reading), and none once step 1 has begun deleting.
    BackupPolicyRecorded {
        /// `attest` (step 1 waits for an operator's attestation) or `off`
        /// (the operator's deliberate choice).
        mode: super::stake::BackupMode,
    },
    /// The usage reports and the Microsoft 365 Backup protection policies
    /// were read before step 1: what the closure destroys.
    DataAtStakeRecorded {
        /// The mailbox, OneDrive and SharePoint usage reports and the Microsoft 365
        /// Backup protection policies, as read.
        stake: super::stake::DataAtStake,
    },
    /// An operator attested, through the control socket, that the tenant's
    /// data is backed up outside the tenant (`closeout confirm SAGA
    /// --backup`): a person's word, which nothing closeout reads can check.
    /// When: the record's timestamp.
    BackupAttested {
        /// Who: the control socket peer's user name.
        who: String,
        /// Why: the operator's reason (where the copy is).
        why: String,
        /// The tenant's Microsoft 365 Backup protection policies when the
        /// operator attested (their copies are inside the tenant).
        in_tenant_policies: u32,
    },
    /// The Microsoft Graph application permissions closeout's app holds,
    /// read before step 1 changes anything.
    PermissionsRead {
        /// App role ids of Microsoft Graph granted to closeout's service
        /// principal.
        granted: Vec<String>,
    },
    /// The saga signed in with a certificate (recorded with its first
    /// token): which one, by thumbprint, for the audit. Never the key.
    CertificateUsed {
        /// The certificate's SHA-256 thumbprint, upper-case hex.
        thumbprint: String,
    },
}

/// Where a tenant's GUID was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// `GET {login}/{tenant}/v2.0/.well-known/openid-configuration`, without credentials.
    Discovery,
    /// `GET /v1.0/organization` with the tenant's own token.
    Organization,
}

/// Users per inventory record: a user of the longest names Graph allows
/// (a 113-character UPN, a 256-character display name) encodes in under
/// 450 bytes, so a part stays under 5 MB, far below the store's limit.
pub const INVENTORY_PART_USERS: usize = 10_000;

/// Reassembles an inventory from the events [`Event::inventory`] made of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InventoryParts {
    /// The users of the parts taken so far.
    users: Vec<crate::model::User>,
}

impl InventoryParts {
    /// Takes the users of an inventory part (part 0 starts over); at an
    /// `InventoryRecorded`, returns the whole inventory. Other events are
    /// passed over.
    pub fn take(&mut self, event: &Event) -> Option<Inventory> {
        match event {
            Event::InventoryUsersRecorded { part, users } => {
                if *part == 0 {
                    self.users.clear();
                }
                self.users.extend(users.iter().cloned());
                None
            }
            Event::InventoryRecorded { inventory } => {
                let mut users = std::mem::take(&mut self.users);
                users.extend(inventory.users.iter().cloned());
                Some(Inventory {
                    users,
                    ..inventory.clone()
                })
            }
            _ => None,
        }
    }
}

impl Event {
    /// The events that record an inventory: its users beyond the last
    /// [`INVENTORY_PART_USERS`] in [`Event::InventoryUsersRecorded`] parts,
    /// then [`Event::InventoryRecorded`] with the rest. Applied in order,
    /// they give the inventory read.
    pub fn inventory(mut inventory: Inventory) -> Vec<Event> {
        let mut events = Vec::new();
        if inventory.users.len() > INVENTORY_PART_USERS {
            let last = inventory.users.split_off(
                (inventory.users.len() - 1) / INVENTORY_PART_USERS * INVENTORY_PART_USERS,
            );
            let mut users = std::mem::replace(&mut inventory.users, last).into_iter();
            let mut part = 0;
            loop {
                let chunk: Vec<_> = users.by_ref().take(INVENTORY_PART_USERS).collect();
                if chunk.is_empty() {
                    break;
                }
                events.push(Event::InventoryUsersRecorded { part, users: chunk });
                part += 1;
            }
        }
        events.push(Event::InventoryRecorded { inventory });
        events
    }

    /// The snake_case name of the event, for the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SagaStarted { .. } => "saga_started",
            Event::InventoryRecorded { .. } => "inventory_recorded",
            Event::KeepListChecked { .. } => "keep_list_checked",
            Event::StepStarted { .. } => "step_started",
            Event::StepCompleted { .. } => "step_completed",
            Event::ChangeIntended { .. } => "change_intended",
            Event::ChangeApplied { .. } => "change_applied",
            Event::ChangeFailed { .. } => "change_failed",
            Event::InDoubtResolved { .. } => "in_doubt_resolved",
            Event::UsersRead { .. } => "users_read",
            Event::UsersChecked { .. } => "users_checked",
            Event::DeletedUsersRead { .. } => "deleted_users_read",
            Event::SubscriptionsRead { .. } => "subscriptions_read",
            Event::MfaRead { .. } => "mfa_read",
            Event::TenantRead { .. } => "tenant_read",
            Event::TenantChecked { .. } => "tenant_checked",
            Event::ReadFailed { .. } => "read_failed",
            Event::RetryScheduled { .. } => "retry_scheduled",
            Event::WaitStarted { .. } => "wait_started",
            Event::GateOpened { .. } => "gate_opened",
            Event::GateConfirmed { .. } => "gate_confirmed",
            Event::GateClosed { .. } => "gate_closed",
            Event::PivotPassed { .. } => "pivot_passed",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::AbortRequested { .. } => "abort_requested",
            Event::AbortRefused { .. } => "abort_refused",
            Event::CompensationStarted { .. } => "compensation_started",
            Event::SagaCompleted => "saga_completed",
            Event::TenantFoundGone { .. } => "tenant_found_gone",
            Event::SagaRolledBack => "saga_rolled_back",
            Event::SagaFailed { .. } => "saga_failed",
            Event::NotificationSent { .. } => "notification_sent",
            Event::NotificationAbandoned { .. } => "notification_abandoned",
            Event::BatchJoined { .. } => "batch_joined",
            Event::BatchFinished { .. } => "batch_finished",
            Event::InventoryUsersRecorded { .. } => "inventory_users_recorded",
            Event::PreflightRead { .. } => "preflight_read",
            Event::TenantResolved { .. } => "tenant_resolved",
            Event::KeepAdminVerified { .. } => "keep_admin_verified",
            Event::KeepAdminMissing { .. } => "keep_admin_missing",
            Event::TaskStopped { .. } => "task_stopped",
            Event::ClosurePolicyRecorded { .. } => "closure_policy_recorded",
            Event::DeletionChecked { .. } => "deletion_checked",
            Event::CredentialsRefused { .. } => "credentials_refused",
            Event::DiscoveryRead { .. } => "discovery_read",
            Event::DiscoveryBaselineRecorded { .. } => "discovery_baseline_recorded",
            Event::TenantObservedGone { .. } => "tenant_observed_gone",
            Event::SubscriptionsClassified { .. } => "subscriptions_classified",
            Event::SchedulePolicyRecorded { .. } => "schedule_policy_recorded",
            Event::BackupPolicyRecorded { .. } => "backup_policy_recorded",
            Event::DataAtStakeRecorded { .. } => "data_at_stake_recorded",
            Event::BackupAttested { .. } => "backup_attested",
            Event::PermissionsRead { .. } => "permissions_read",
            Event::CertificateUsed { .. } => "certificate_used",
        }
    }

    /// The external call this event records, if it records one.
    pub fn http(&self) -> Option<&HttpInfo> {
        match self {
            Event::ChangeApplied { http, .. } | Event::ChangeFailed { http, .. } => Some(http),
            _ => None,
        }
    }

    /// The object ids this event is about (targets of intents and outcomes).
    pub fn objects(&self) -> Vec<&str> {
        match self {
            Event::ChangeIntended { targets, .. } => targets.iter().map(String::as_str).collect(),
            Event::ChangeApplied { target, .. } | Event::ChangeFailed { target, .. } => {
                vec![target.as_str()]
            }
            Event::InDoubtResolved {
                applied,
                not_applied,
                ..
            } => applied
                .iter()
                .chain(not_applied.iter())
                .map(String::as_str)
                .collect(),
            Event::KeepListChecked { keep_ids } => keep_ids.iter().map(String::as_str).collect(),
            Event::KeepAdminVerified { keep_admin_ids, .. } => {
                keep_admin_ids.iter().map(String::as_str).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether this event ends the saga.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::SagaCompleted | Event::SagaRolledBack | Event::SagaFailed { .. }
        )
    }
}
