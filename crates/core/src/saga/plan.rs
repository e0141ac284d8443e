//! The dry run behind `closeout plan`: from a tenant's inventory, what the
//! saga would do, changing nothing. Shares the keep-list check with step 0.

use super::view::{Inventory, SubscriptionRef, UserRef};
use crate::model::{SubscriptionMode, SubscriptionStatus, TenantSpec};
use serde::{Deserialize, Serialize};

/// What closing a tenant would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The keep accounts' object ids, or why the saga would fail before any change.
    pub keep: Result<Vec<String>, String>,
    /// Step 1: users to delete.
    pub delete_users: Vec<UserRef>,
    /// Step 2: active subscriptions to cancel.
    pub cancel_subscriptions: Vec<SubscriptionRef>,
    /// Step 3: subscriptions to delete (the point of no return).
    pub delete_subscriptions: Vec<SubscriptionRef>,
    /// How subscriptions are handled (Partner Center or an operator gate).
    pub subscriptions: SubscriptionMode,
    /// Step 4: whether security defaults are to be disabled.
    pub disable_security_defaults: bool,
    /// Step 4: Conditional Access policies to disable.
    pub disable_ca_policies: Vec<String>,
    /// Step 5: app registrations a Global Administrator must remove in the portal.
    pub applications: Vec<String>,
    /// Things an operator should know first (synced users come back, ...).
    pub warnings: Vec<String>,
}

/// Resolves the keep list against the inventory: every entry must name a user
/// (by object id or UPN, case-insensitive) and one of them must hold the
/// Global Administrator role and be enabled. Returns the keep accounts' ids or the reason.
pub fn check_keep(spec: &TenantSpec, inv: &Inventory) -> Result<Vec<String>, String> {
    let tenant = &spec.tenant_id;
    if spec.keep.is_empty() {
        return Err(format!("tenant {tenant}: the keep list is empty"));
    }
    let mut ids = Vec::new();
    for entry in &spec.keep {
        match inv.users.iter().find(|u| {
            u.id.eq_ignore_ascii_case(entry) || u.user_principal_name.eq_ignore_ascii_case(entry)
        }) {
            Some(u) => ids.push(u.id.clone()),
            None => {
                return Err(format!(
                    "tenant {tenant}: keep account {entry} is not a user of the tenant"
                ))
            }
        }
    }
    ids.sort();
    ids.dedup();
    let admins: Vec<&crate::model::User> = inv
        .users
        .iter()
        .filter(|u| ids.contains(&u.id) && inv.global_admins.contains(&u.id))
        .collect();
    if admins.is_empty() {
        return Err(format!(
            "tenant {tenant}: no keep account holds the Global Administrator role"
        ));
    }
    // A disabled Global Administrator cannot sign in to finish the closure.
    if !admins.iter().any(|u| u.account_enabled) {
        let names: Vec<&str> = admins
            .iter()
            .map(|u| u.user_principal_name.as_str())
            .collect();
        return Err(format!(
            "tenant {tenant}: the keep Global Administrator {} is disabled (accountEnabled = false): no keep account is an enabled Global Administrator",
            names.join(", ")
        ));
    }
    Ok(ids)
}

/// What the saga would do to this tenant.
pub fn plan(spec: &TenantSpec, inv: &Inventory) -> Plan {
    let keep = check_keep(spec, inv);
    let kept: &[String] = keep.as_deref().unwrap_or(&[]);
    let sub_ref = |s: &crate::model::Subscription| SubscriptionRef {
        id: s.commerce_subscription_id.clone(),
        sku: s.sku_part_number.clone(),
        status: s.status,
    };
    let delete_users: Vec<UserRef> = inv
        .users
        .iter()
        .filter(|u| !kept.contains(&u.id))
        .map(|u| UserRef {
            id: u.id.clone(),
            upn: u.user_principal_name.clone(),
        })
        .collect();
    let mut warnings = Vec::new();
    let synced = inv
        .users
        .iter()
        .filter(|u| u.on_premises_sync_enabled && !kept.contains(&u.id))
        .count();
    if synced > 0 {
        warnings.push(format!(
            "{synced} users are synced from on-premises and come back unless sync is turned off first"
        ));
    }
    Plan {
        keep,
        delete_users,
        cancel_subscriptions: inv
            .subscriptions
            .iter()
            .filter(|s| s.status.is_active())
            .map(sub_ref)
            .collect(),
        delete_subscriptions: inv
            .subscriptions
            .iter()
            .filter(|s| s.status != SubscriptionStatus::Deleted)
            .map(sub_ref)
            .collect(),
        subscriptions: spec.subscriptions,
        disable_security_defaults: inv.security_defaults,
        disable_ca_policies: inv
            .ca_policies
            .iter()
            .filter(|p| p.enforces_mfa())
            .map(|p| p.id.clone())
            .collect(),
        applications: inv
            .applications
            .iter()
            .map(|a| a.display_name.clone())
            .collect(),
        warnings,
    }
}
