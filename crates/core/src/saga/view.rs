//! What the saga records of the tenant's reads: the inventory before any
//! change, and the narrower views later reads are reduced to.

use crate::model::{
    Application, CaPolicy, PerUserMfaState, Subscription, SubscriptionStatus, User,
};
use serde::{Deserialize, Serialize};

/// The tenant as read before step 1: the backup the procedure asks for, the
/// basis for rollback and the evidence for audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Every user, all pages.
    pub users: Vec<User>,
    /// Object ids of the Global Administrator role's members.
    pub global_admins: Vec<String>,
    /// Every subscription with its status.
    pub subscriptions: Vec<Subscription>,
    /// Whether security defaults were enabled.
    pub security_defaults: bool,
    /// Every Conditional Access policy with its state.
    pub ca_policies: Vec<CaPolicy>,
    /// App registrations (the portal refuses to delete a tenant that has any).
    pub applications: Vec<Application>,
}

/// A user as the saga needs it after the inventory: enough to tell keep
/// accounts apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// The user's object id: the saga's key for the user.
    pub id: String,
    /// User principal name (keep entries may name it).
    pub upn: String,
}

/// A subscription as the saga needs it after the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRef {
    /// The commerce subscription id (what Partner Center calls it, and the
    /// saga's key for it).
    pub id: String,
    /// The SKU, for operator instructions.
    pub sku: String,
    /// Its status as read.
    pub status: SubscriptionStatus,
}

/// The MFA settings step 4 changes, as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaView {
    /// Whether security defaults are enabled.
    pub security_defaults: bool,
    /// Conditional Access policies (step 4 disables the enabled MFA ones).
    pub ca_policies: Vec<CaPolicy>,
    /// Per-user MFA of the remaining (keep) accounts.
    pub per_user: Vec<(String, PerUserMfaState)>,
}

/// What the step 5 preflight reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantView {
    /// Users still present, keep accounts included.
    pub users: Vec<UserRef>,
    /// Subscriptions and their status.
    pub subscriptions: Vec<SubscriptionRef>,
    /// Security defaults, Conditional Access policies and the keep accounts' per-user MFA.
    pub mfa: MfaView,
    /// App registrations left (a Global Administrator removes them in the portal).
    pub applications: Vec<Application>,
}

impl TenantView {
    /// Subscriptions not yet deprovisioned (anything but `Deleted`).
    pub fn undeleted_subscriptions(&self) -> impl Iterator<Item = &SubscriptionRef> {
        self.subscriptions
            .iter()
            .filter(|s| s.status != SubscriptionStatus::Deleted)
    }

    /// Conditional Access policies still enforcing MFA.
    pub fn mfa_policies_on(&self) -> impl Iterator<Item = &CaPolicy> {
        self.mfa.ca_policies.iter().filter(|p| p.enforces_mfa())
    }

    /// The display names of the app registrations left.
    pub fn application_names(&self) -> Vec<&str> {
        self.applications
            .iter()
            .map(|a| a.display_name.as_str())
            .collect()
    }
}
