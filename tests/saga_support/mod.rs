//! Shared fixtures for the saga's table-driven tests: a small tenant
//! (`a` the Global Administrator kept, `b` and `c` to delete, subscription
//! `s1`, MFA policy `p1`) and constructors for events and actions.
#![allow(dead_code)]

use closeout::model::{
    Applied, CaPolicy, CaPolicyState, CallError, FailureClass, HttpInfo, PerUserMfaState, SagaId,
    SecretSource, Subscription, SubscriptionMode, SubscriptionStatus, TenantSpec, Timestamp, User,
};
use closeout::saga::{
    actions, decide, handle, Action, Call, Change, Command, Decision, Event, Gate, IdentitySource,
    Inventory, MfaView, Read, Refusal, SagaPolicy, State, SubscriptionRef, TenantView, UserRef,
};
use std::time::Duration;

pub const T0: u64 = 1_800_000_000_000;

pub fn ts(ms: u64) -> Timestamp {
    Timestamp(ms)
}

/// A history, ready for `when`.
pub struct Given(pub State);

/// Folds the history (every record stamped `T0`). A history that starts a
/// saga without a backup policy gets `backup = "off"` recorded right after
/// `SagaStarted`, as the daemon records it, and the data at stake as read: these tables are about the
/// steps; the backup gate, and sagas recorded before the setting existed,
/// have their own (`tests/saga_backup.rs`, through [`given_as_recorded`]).
pub fn given(mut events: Vec<Event>) -> Given {
    let has_policy = events
        .iter()
        .any(|e| matches!(e, Event::BackupPolicyRecorded { .. }));
    if let (false, Some(at)) = (
        has_policy,
        events
            .iter()
            .position(|e| matches!(e, Event::SagaStarted { .. })),
    ) {
        events.insert(
            at + 1,
            Event::BackupPolicyRecorded {
                mode: closeout::saga::stake::BackupMode::Off,
            },
        );
        events.insert(at + 2, stake_not_read());
    }
    given_as_recorded(events)
}

/// The data at stake, recorded as unread (the step tables do not look at it).
pub fn stake_not_read() -> Event {
    Event::DataAtStakeRecorded {
        stake: closeout::saga::stake::DataAtStake::unavailable("not read in these tables"),
    }
}

/// Folds the history exactly as given (every record stamped `T0`).
pub fn given_as_recorded(events: Vec<Event>) -> Given {
    Given(closeout::saga::fold_at(&events, ts(T0)).expect("the history begins with saga_started"))
}

impl Given {
    /// What the saga decides at `now`, action by action.
    pub fn when(&self, now: u64) -> Vec<Action> {
        let first = actions(&self.0, ts(now));
        assert_eq!(first, actions(&self.0, ts(now)), "decide is deterministic");
        assert_eq!(
            decide(&self.0, ts(now)),
            Decision::from_actions(first.clone()),
            "the runtime executes what was decided"
        );
        first
    }

    /// What an operator command turns into.
    pub fn command(&self, c: Command) -> Result<Vec<Event>, Refusal> {
        self.command_at(c, T0)
    }

    /// The command, handled at `now`.
    pub fn command_at(&self, c: Command, now: u64) -> Result<Vec<Event>, Refusal> {
        handle(&self.0, c, ts(now))
    }
}

pub fn policy() -> SagaPolicy {
    SagaPolicy::default()
}

pub fn spec(mode: SubscriptionMode, keep: Vec<String>) -> TenantSpec {
    TenantSpec {
        tenant_id: "t1".into(),
        client_id: "client".into(),
        secret: SecretSource::Credential("t1-secret".into()),
        keep,
        subscriptions: mode,
    }
}

pub fn started_with(mode: SubscriptionMode, keep: Vec<String>, policy: SagaPolicy) -> Event {
    Event::SagaStarted {
        saga_id: SagaId("saga-1".into()),
        spec: spec(mode, keep),
        policy,
        at: ts(T0),
        submitted_by: "operator".into(),
    }
}

pub fn started(mode: SubscriptionMode) -> Event {
    started_with(mode, vec!["a".into()], policy())
}

pub fn user(id: &str) -> User {
    User {
        id: id.into(),
        user_principal_name: format!("{id}@t1"),
        display_name: id.to_uppercase(),
        account_enabled: true,
        on_premises_sync_enabled: false,
        user_type: "Member".into(),
    }
}

/// [`inventory`] with the keep Global Administrator `a` disabled.
pub fn inventory_with_a_disabled() -> Event {
    let Event::InventoryRecorded { mut inventory } = inventory() else {
        unreachable!()
    };
    inventory.users[0].account_enabled = false;
    Event::InventoryRecorded { inventory }
}

pub fn inventory() -> Event {
    Event::InventoryRecorded {
        inventory: Inventory {
            users: vec![user("a"), user("b"), user("c")],
            global_admins: vec!["a".into(), "b".into()],
            subscriptions: vec![Subscription {
                id: "g1".into(),
                commerce_subscription_id: "s1".into(),
                sku_id: "sku".into(),
                sku_part_number: "E3".into(),
                status: SubscriptionStatus::Enabled,
                is_trial: false,
                total_licenses: 5,
            }],
            security_defaults: true,
            ca_policies: vec![ca(true)],
            applications: vec![],
        },
    }
}

fn ca(on: bool) -> CaPolicy {
    CaPolicy {
        id: "p1".into(),
        display_name: "Require MFA".into(),
        state: if on {
            CaPolicyState::Enabled
        } else {
            CaPolicyState::Disabled
        },
        requires_mfa: true,
    }
}

pub fn keep_checked() -> Event {
    Event::KeepListChecked {
        keep_ids: vec!["a".into()],
    }
}

/// The tenant's GUID in these histories.
pub const GUID: &str = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";

/// The tenant resolved from its discovery document, then by its organization.
pub fn resolved() -> Vec<Event> {
    vec![
        Event::TenantResolved {
            tenant_guid: GUID.into(),
            source: IdentitySource::Discovery,
        },
        Event::TenantResolved {
            tenant_guid: GUID.into(),
            source: IdentitySource::Organization,
        },
    ]
}

/// A fresh read of the Global Administrator role that found `a` (the keep
/// account) enabled; `a` and `b` hold the role.
pub fn keep_admin_verified() -> Event {
    Event::KeepAdminVerified {
        keep_admin_ids: vec!["a".into()],
        admin_ids: vec!["a".into(), "b".into()],
        at: ts(T0),
    }
}

/// A saga that has just started step 1 and read a preflight that stops
/// nothing.
pub fn at_step_1(mode: SubscriptionMode) -> Vec<Event> {
    vec![
        started(mode),
        resolved()[0].clone(),
        resolved()[1].clone(),
        inventory(),
        keep_checked(),
        Event::StepStarted { step: 1 },
        permissions_granted(),
        preflight(true, false),
    ]
}

/// closeout's app read to hold every Graph application permission it uses.
pub fn permissions_granted() -> Event {
    Event::PermissionsRead {
        granted: closeout::saga::permissions::ALL
            .iter()
            .map(|p| p.id.to_string())
            .collect(),
    }
}

/// Step 1's preflight read: `a` and `b` are Global Administrators;
/// closeout's app holds Privileged Authentication Administrator when
/// `privileged`; `c` is synced and sync on when `synced`.
pub fn preflight(privileged: bool, synced: bool) -> Event {
    let ga = closeout::model::GLOBAL_ADMIN_ROLE_TEMPLATE.to_string();
    let mut role_assignments = vec![("a".to_string(), ga.clone()), ("b".to_string(), ga)];
    if privileged {
        role_assignments.push((
            "sp".to_string(),
            closeout::saga::preflight::PRIVILEGED_AUTH_ADMIN.to_string(),
        ));
    }
    Event::PreflightRead {
        preflight: closeout::model::Preflight {
            role_assignments,
            synced_users: if synced { vec!["c".into()] } else { vec![] },
            directory_sync: synced,
            app_principal: "sp".into(),
        },
    }
}

/// A saga that has just started step `n` (past the pivot from step 4 on).
pub fn at_step(mode: SubscriptionMode, n: u8) -> Vec<Event> {
    let mut events = at_step_1(mode);
    if n >= 4 {
        events.push(Event::PivotPassed {
            reason: "subscriptions are being deleted".into(),
        });
    }
    if n > 1 {
        events.push(Event::StepStarted { step: n });
    }
    events
}

pub fn intent(id: u32, change: Change, targets: &[&str]) -> Event {
    Event::ChangeIntended {
        change_id: id,
        change,
        targets: targets
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
    }
}

pub fn change(id: u32, change: Change, targets: &[&str]) -> Action {
    Action::Perform(Call::Change {
        change_id: id,
        change,
        targets: targets
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
    })
}

fn http(status: u16) -> HttpInfo {
    HttpInfo {
        method: "DELETE".into(),
        path: "/v1.0/users/x".into(),
        status,
        request_id: "r".into(),
    }
}

pub fn applied(id: u32, target: &str) -> Event {
    Event::ChangeApplied {
        change_id: id,
        target: target.into(),
        http: http(204),
        applied: Applied::Done,
    }
}

pub fn error(class: FailureClass, retry_after_secs: Option<u64>) -> CallError {
    CallError {
        class,
        code: "code".into(),
        message: "message".into(),
        retry_after: retry_after_secs.map(Duration::from_secs),
    }
}

pub fn failed(id: u32, target: &str, class: FailureClass, retry_after: Option<u64>) -> Event {
    Event::ChangeFailed {
        change_id: id,
        target: target.into(),
        http: http(503),
        error: error(class, retry_after),
    }
}

pub fn retry(at: u64, attempt: u32, since: u64) -> Event {
    Event::RetryScheduled {
        at: ts(at),
        attempt,
        reason: "r".into(),
        since: ts(since),
    }
}

pub fn read(r: Read) -> Action {
    Action::Perform(Call::Read(r))
}

pub fn record(events: Vec<Event>) -> Action {
    Action::Record(events)
}

pub fn users_read(ids: &[&str]) -> Event {
    Event::UsersRead {
        users: ids
            .iter()
            .map(|id| UserRef {
                id: id.to_string(),
                upn: format!("{id}@t1"),
            })
            .collect(),
    }
}

pub fn subs_read(subs: &[(&str, SubscriptionStatus)]) -> Event {
    Event::SubscriptionsRead {
        subscriptions: subs
            .iter()
            .map(|(id, status)| SubscriptionRef {
                id: id.to_string(),
                sku: "E3".into(),
                status: *status,
            })
            .collect(),
    }
}

fn mfa(sd: bool, ca_on: bool, user_on: bool) -> MfaView {
    MfaView {
        security_defaults: sd,
        ca_policies: vec![ca(ca_on)],
        per_user: vec![(
            "a".into(),
            if user_on {
                PerUserMfaState::Enforced
            } else {
                PerUserMfaState::Disabled
            },
        )],
    }
}

pub fn mfa_read(sd: bool, ca_on: bool, user_on: bool) -> Event {
    Event::MfaRead {
        mfa: mfa(sd, ca_on, user_on),
    }
}

pub fn tenant_read(users: &[&str], sd: bool) -> Event {
    let Event::UsersRead { users } = users_read(users) else {
        unreachable!()
    };
    Event::TenantRead {
        view: TenantView {
            users,
            subscriptions: vec![SubscriptionRef {
                id: "s1".into(),
                sku: "E3".into(),
                status: SubscriptionStatus::Deleted,
            }],
            mfa: mfa(sd, false, false),
            applications: vec![],
        },
    }
}

/// An open gate with its periodic re-read scheduled at `T0 + 5 min`.
pub fn gate_waiting(gate: Gate) -> Vec<Event> {
    vec![
        Event::GateOpened {
            gate,
            instructions: "do it".into(),
        },
        Event::WaitStarted {
            until: ts(T0 + 300_000),
            reason: "a person".into(),
        },
    ]
}
