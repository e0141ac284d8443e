//! What [`super::decide`] asks the runtime to do: plain data, performed by
//! `runtime::perform`, never by the core.

use super::event::{Change, Event};
use crate::model::Timestamp;
use serde::{Deserialize, Serialize};

/// One thing to do next, as the saga's rules decide it ([`super::actions`],
/// in order); [`super::decide`] hands them to the runtime as one
/// [`Decision`].
///
/// A change call always follows, in the same list, the `Record` holding its
/// intent: it may be made only once that record is durable. No change call
/// is decided for an intent already in the state: an intent found without
/// outcome means the process stopped in between, and is resolved by a read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Append these events (decisions: intents, step starts, schedules).
    Record(Vec<Event>),
    /// Make this external call.
    Perform(Call),
    /// Nothing to do before this time unless an operator command arrives.
    WakeAt(Timestamp),
}

/// A read the saga needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    /// Users, Global Administrators, subscriptions, MFA policies, app registrations.
    Inventory,
    /// `GET /v1.0/users`.
    Users,
    /// `GET /v1.0/users/{id}` for each id (resolving in-doubt deletes).
    CheckUsers {
        /// The ids to look up.
        ids: Vec<String>,
    },
    /// The recycle bin. Only sagas recorded by earlier versions decided it (to
    /// settle in-doubt restores); a restore is settled by reading the users by
    /// id ([`Read::CheckUsers`]), since a purged user is missing from the bin
    /// too. Kept so that their logs still replay.
    DeletedUsers,
    /// `GET /v1.0/directory/subscriptions`.
    Subscriptions,
    /// Security defaults, Conditional Access policies, per-user MFA of these users.
    Mfa {
        /// The keep accounts, whose per-user MFA is read.
        user_ids: Vec<String>,
    },
    /// The step 5 preflight: users, subscriptions, MFA, app registrations.
    Tenant {
        /// The remaining accounts (for their per-user MFA).
        user_ids: Vec<String>,
    },
    /// Whether the token endpoint still knows the tenant.
    TenantExists,
    /// Step 1's preflight: role assignments, on-premises sync of the users
    /// and the organization, closeout's own service principal.
    Preflight,
    /// `GET /v1.0/organization`: the tenant's GUID as its own token sees it.
    Organization,
    /// The Global Administrator role's members with `accountEnabled`, read
    /// just before Global Administrators are deleted.
    KeepAdmins {
        /// The keep accounts' object ids: one must be an enabled member.
        keep_ids: Vec<String>,
    },
    /// The step 5 preflight: users, app registrations, service principals,
    /// subscriptions and the initial domain.
    DeletionCheck,
    /// The tenant's OpenID discovery document for its id and this initial
    /// domain, read without credentials.
    Discovery {
        /// The initial domain, when known.
        domain: Option<String>,
    },
    /// Graph's subscriptions with their sellers, and the partner's Partner
    /// Center list of the customer's subscriptions: what each one is.
    ClassifySubscriptions,
    /// The mailbox and OneDrive usage reports, the report settings and the
    /// Microsoft 365 Backup protection policies: the data at stake.
    DataAtStake,
    /// The Microsoft Graph application permissions granted to closeout's own
    /// service principal (`appRoleAssignments`), read before step 1 changes
    /// anything.
    AppPermissions,
}

impl std::fmt::Display for Read {
    /// What the read is, for a person (`status`, failure reasons): a
    /// sentence fragment and a count, never the ids it carries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Read::Inventory => f.write_str("read the inventory"),
            Read::Users => f.write_str("list the users"),
            Read::CheckUsers { ids } => write!(f, "look up {} users by id", ids.len()),
            Read::DeletedUsers => f.write_str("read the recycle bin"),
            Read::Subscriptions => f.write_str("read the subscriptions"),
            Read::Mfa { user_ids } => write!(
                f,
                "read the MFA settings (security defaults, Conditional Access, {} accounts' per-user MFA)",
                user_ids.len()
            ),
            Read::Tenant { .. } => f.write_str("read the tenant for step 5"),
            Read::TenantExists => f.write_str("ask the token endpoint whether the tenant exists"),
            Read::Preflight => {
                f.write_str("read step 1's preflight (role assignments, directory synchronization)")
            }
            Read::Organization => f.write_str("read the organization"),
            Read::KeepAdmins { .. } => f.write_str("read the Global Administrator role's members"),
            Read::DeletionCheck => f.write_str("read step 5's deletion check"),
            Read::Discovery { .. } => f.write_str("read the tenant's discovery document"),
            Read::AppPermissions => {
                f.write_str("read closeout's app permissions (Microsoft Graph app role assignments)")
            }
            Read::ClassifySubscriptions => {
                f.write_str("classify the subscriptions (Graph and Partner Center)")
            }
            Read::DataAtStake => {
                f.write_str("read the usage reports and the backup protection policies")
            }
        }
    }
}

/// An external call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// A read; changes nothing, may be repeated freely.
    Read(Read),
    /// A change whose intent is recorded.
    Change {
        /// The `change_id` of the `ChangeIntended` recorded before the call.
        change_id: u32,
        /// The change to make to every target.
        change: Change,
        /// The ids of the objects to change, as the intent names them.
        targets: Vec<String>,
    },
}

/// What [`super::decide`] returns: exactly what the runtime executes, in
/// this order. Append `record` durably (one group commit) and apply it; then
/// make every call of `perform` (concurrently if it likes: they are
/// independent) and append and apply what each returns; then decide again.
/// With nothing to record or perform, sleep until `wake_at` (or an operator
/// command); with nothing at all, the saga is paused or ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Decisions to append before any call.
    pub record: Vec<Event>,
    /// Calls to make once `record` is durable.
    pub perform: Vec<Call>,
    /// When to decide again if nothing else happens.
    pub wake_at: Option<Timestamp>,
}

impl Decision {
    /// The decision the actions make (they list records before calls; the
    /// earliest wake-up wins).
    pub fn from_actions(actions: Vec<Action>) -> Decision {
        let mut b = Decision::default();
        for a in actions {
            match a {
                Action::Record(events) => b.record.extend(events),
                Action::Perform(call) => b.perform.push(call),
                Action::WakeAt(t) => b.wake_at = Some(b.wake_at.map_or(t, |w| w.min(t))),
            }
        }
        b
    }

    /// Whether there is nothing to do but wait (or nothing at all).
    pub fn is_idle(&self) -> bool {
        self.record.is_empty() && self.perform.is_empty()
    }
}
