//! The admin-center actions a person takes, through `POST
//! /_sim/tenants/{id}/operator/...`, by the auto-operator, and the sim's own
//! clock (deprovisioning). Every change is recorded in the ledger under a
//! `/_sim/...` path:
//! - `/_sim/tenants/{t}/operator/subscriptions/{commerce id}/cancel`
//! - `/_sim/tenants/{t}/operator/subscriptions/{commerce id}/delete`
//! - `/_sim/tenants/{t}/operator/delete`  (delete the tenant)
//! - `/_sim/tenants/{t}/operator/app-role`  (assign closeout's app Privileged
//!   Authentication Administrator)
//! - `/_sim/tenants/{t}/operator/dir-sync/off`  (turn off directory sync)
//! - `/_sim/tenants/{t}/operator/users/{id}/roles/{role}/remove`  (take a
//!   directory role away from a user, as an admin does in the portal)
//! - `/_sim/tenants/{t}/clock/subscriptions/{commerce id}/deprovision`
//!
//! Subscriptions of partner-billed tenants are managed by the partner: the
//! admin center refuses them (409), as it does for new-commerce subscriptions
//! outside their cancellation window. Deleting the tenant is refused (409)
//! unless the portal's preconditions hold (`Tenant::deletion_blockers`).

use super::partner::transition;
use super::state::{Billing, Tenant, World};
use super::Config;
use tokio::time::Instant;

/// An operator action that was refused: status and reason.
pub type Refusal = (u16, String);

/// The tenant an operator acts on: 404 when it is unknown or deleted, as
/// the admin center has nothing to show for it.
pub(super) fn live<'w>(world: &'w mut World, tenant: &str) -> Result<&'w mut Tenant, Refusal> {
    world
        .tenants
        .get_mut(tenant)
        .filter(|t| !t.deleted)
        .ok_or((404, format!("tenant {tenant} not found")))
}

/// Cancels (`cancel`) or deletes (`delete`) a subscription in the admin center.
pub fn subscription(
    world: &mut World,
    tenant: &str,
    sub: &str,
    action: &str,
    now: Instant,
    cfg: &Config,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let partner_billed = t.billing == Billing::Partner;
    let s = t
        .subscriptions
        .iter_mut()
        .find(|s| s.commerce_subscription_id == sub || s.id == sub)
        .ok_or((
            404,
            format!("subscription {sub} not found in tenant {tenant}"),
        ))?;
    // The partner's own subscriptions are managed in Partner Center; what
    // the customer bought directly, trials, self-service sign-ups and what
    // another partner sold are ended by their own admin (the latter played
    // by the same operator here, standing in for that partner).
    if partner_billed && s.sold_by_partner() {
        return Err((
            409,
            format!("subscription {sub} of tenant {tenant} is managed by the partner"),
        ));
    }
    let status = match action {
        "cancel" => "suspended",
        "delete" => "deleted",
        // "turn off recurring billing to cancel the subscription at the end
        // of its term" (what-if-my-subscription-expires).
        "renew-off" => {
            let path = format!(
                "/_sim/tenants/{tenant}/operator/subscriptions/{}/renew-off",
                s.commerce_subscription_id
            );
            if !s.auto_renew || s.partner_status != "active" {
                return Ok(false);
            }
            s.auto_renew = false;
            s.etag += 1;
            world.ledger.record(at, tenant, "POST", &path, 200);
            return Ok(true);
        }
        other => return Err((404, format!("unknown operator action {other}"))),
    };
    // The admin center cancels only inside the cancellation window; past it,
    // recurring billing is turned off instead (cancel-your-subscription).
    if action == "cancel" && !s.cancellable() {
        return Err((
            409,
            format!(
                "subscription {sub}: the cancellation window has passed; turn off recurring billing"
            ),
        ));
    }
    let path = format!(
        "/_sim/tenants/{tenant}/operator/subscriptions/{}/{action}",
        s.commerce_subscription_id
    );
    let changed = transition(s, status, now, cfg).map_err(|r| {
        let why = r
            .body
            .as_ref()
            .and_then(|b| b.get("description"))
            .and_then(|d| d.as_str())
            .unwrap_or("refused")
            .to_string();
        (409, format!("subscription {sub}: {why}"))
    })?;
    if changed {
        world.ledger.record(at, tenant, "POST", &path, 200);
    }
    Ok(changed)
}

/// The partner's person in Partner Center: reactivates a suspended
/// subscription and turns its auto-renew off, recorded in the ledger as
/// `/_sim/tenants/{t}/operator/partner-center/subscriptions/{commerce id}/resume-renew-off`.
pub fn partner_resume(
    world: &mut World,
    tenant: &str,
    sub: &str,
    now: Instant,
    cfg: &Config,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let s = t
        .subscriptions
        .iter_mut()
        .find(|s| s.commerce_subscription_id == sub)
        .ok_or((
            404,
            format!("subscription {sub} not found in tenant {tenant}"),
        ))?;
    let path = format!(
        "/_sim/tenants/{tenant}/operator/partner-center/subscriptions/{}/resume-renew-off",
        s.commerce_subscription_id
    );
    let changed = transition(s, "active", now, cfg)
        .map_err(|_| (409, format!("subscription {sub} cannot be reactivated")))?;
    s.auto_renew = false;
    s.etag += 1;
    world.ledger.record(at, tenant, "POST", &path, 200);
    Ok(changed)
}

/// Removes a directory role (template id, or `global_administrator`) from a
/// user; `Ok(false)` when the user did not hold it.
pub fn remove_role(
    world: &mut World,
    tenant: &str,
    user: &str,
    role: &str,
    now: Instant,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let u = t
        .users
        .values_mut()
        .find(|u| u.id == user || u.user_principal_name.eq_ignore_ascii_case(user))
        .ok_or((404, format!("user {user} not found in tenant {tenant}")))?;
    let template = super::fixture::role_id(role);
    let before = u.roles.len();
    u.roles.retain(|r| *r != template);
    let changed = u.roles.len() != before;
    if changed {
        let path = format!(
            "/_sim/tenants/{tenant}/operator/users/{}/roles/{template}/remove",
            u.id
        );
        world.ledger.record(at, tenant, "POST", &path, 200);
    }
    Ok(changed)
}

/// Deletes the tenant if the portal's preconditions hold.
pub fn delete_tenant(world: &mut World, tenant: &str, now: Instant) -> Result<(), Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let blockers = t.deletion_blockers();
    if !blockers.is_empty() {
        return Err((
            409,
            format!("tenant {tenant} cannot be deleted: {}", blockers.join("; ")),
        ));
    }
    t.deleted = true;
    world.tokens.retain(|_, tok| tok.tenant_id != tenant);
    world.ledger.record(
        at,
        tenant,
        "POST",
        &format!("/_sim/tenants/{tenant}/operator/delete"),
        200,
    );
    Ok(())
}

/// Assigns closeout's app the Privileged Authentication Administrator role,
/// as a Privileged Role Administrator does in the Entra admin center
/// (https://learn.microsoft.com/entra/identity/role-based-access-control/manage-roles-portal).
/// `Ok(false)` when it already holds it.
pub fn grant_app_role(
    world: &mut World,
    tenant: &str,
    now: Instant,
    lag: std::time::Duration,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let all_permissions: Vec<String> = crate::saga::permissions::ALL
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    if t.app_privileged && t.app_permissions == all_permissions {
        return Ok(false);
    }
    // The person who assigns the role also grants admin consent to the
    // app's Graph permissions in the same visit.
    t.app_permissions = all_permissions;
    if !t.app_privileged {
        t.lag.app_role(false, now, lag);
    }
    t.app_privileged = true;
    let path = format!("/_sim/tenants/{tenant}/operator/app-role");
    world.ledger.record(at, tenant, "POST", &path, 200);
    Ok(true)
}

/// Turns off directory synchronization: the organization's
/// `onPremisesSyncEnabled` goes off and synced users become cloud-managed
/// (https://learn.microsoft.com/microsoft-365/enterprise/turn-off-directory-synchronization).
/// Microsoft says the conversion can take up to 72 hours; the simulator makes
/// it at once (replication lag, when on, still delays what reads show).
/// `Ok(false)` when sync was already off.
pub fn dir_sync_off(
    world: &mut World,
    tenant: &str,
    now: Instant,
    lag: std::time::Duration,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let synced = t.users.values().any(|u| u.on_premises_sync_enabled);
    if !t.dir_sync && !synced {
        return Ok(false);
    }
    let synced_ids = t
        .users
        .values()
        .filter(|u| u.on_premises_sync_enabled)
        .map(|u| u.id.clone())
        .collect();
    t.lag.dir_sync((t.dir_sync, synced_ids), now, lag);
    t.dir_sync = false;
    for u in t.users.values_mut() {
        u.on_premises_sync_enabled = false;
    }
    let path = format!("/_sim/tenants/{tenant}/operator/dir-sync/off");
    world.ledger.record(at, tenant, "POST", &path, 200);
    Ok(true)
}

/// The clock's work: deprovisions deleted subscriptions whose time has come,
/// then lets the auto-operator act.
pub fn tick(world: &mut World, now: Instant, cfg: &Config) {
    let at = world.clock.rfc3339(now);
    let mut due = Vec::new();
    let mut lifecycle = Vec::new();
    for id in &world.order {
        let Some(t) = world.tenants.get_mut(id) else {
            continue;
        };
        for s in &mut t.subscriptions {
            if super::partner::apply_pending(s, now, cfg) == Some(true) {
                lifecycle.push((id.clone(), s.commerce_subscription_id.clone(), "accepted"));
            }
            if let Some(what) = super::partner::lifecycle(s, now, cfg) {
                lifecycle.push((id.clone(), s.commerce_subscription_id.clone(), what));
            }
            if s.deprovision_at.is_some_and(|d| d <= now) {
                s.deprovision_at = None;
                let before = std::mem::replace(&mut s.status, "Deleted".into());
                super::lag::Lag::sub(&mut s.lag_status, before, now, cfg.replication_lag);
                due.push((id.clone(), s.commerce_subscription_id.clone()));
            }
        }
    }
    for (t, s, what) in lifecycle {
        world.ledger.record(
            at.clone(),
            &t,
            "POST",
            &format!("/_sim/tenants/{t}/clock/subscriptions/{s}/{what}"),
            200,
        );
    }
    for (t, s) in due {
        world.ledger.record(
            at.clone(),
            &t,
            "POST",
            &format!("/_sim/tenants/{t}/clock/subscriptions/{s}/deprovision"),
            200,
        );
    }
    if let Some(delay) = cfg.auto_operator {
        auto_operator(world, now, delay, cfg);
    }
}

/// Plays the diligent person: `delay` after an action becomes possible, takes it.
fn auto_operator(world: &mut World, now: Instant, delay: std::time::Duration, cfg: &Config) {
    let mut possible: Vec<(String, String)> = Vec::new();
    for id in &world.order {
        let Some(t) = world.tenants.get(id).filter(|t| !t.deleted) else {
            continue;
        };
        if t.only_keep_remain() {
            let partner_billed = t.billing == Billing::Partner;
            for s in t
                .subscriptions
                .iter()
                .filter(|s| !(partner_billed && s.sold_by_partner()))
            {
                let c = &s.commerce_subscription_id;
                if s.partner_status == "active" && s.cancellable() && s.status != "Deleted" {
                    possible.push((id.clone(), format!("cancel/{c}")));
                } else if s.partner_status == "active" && s.auto_renew {
                    possible.push((id.clone(), format!("renew-off/{c}")));
                } else if s.partner_status == "suspended" && s.status != "Deleted" {
                    possible.push((id.clone(), format!("delete/{c}")));
                }
            }
        }
        // The partner's own person, in Partner Center: a new-commerce
        // subscription suspended past its window is reactivated with
        // auto-renew off, so that it ends with its term (what closeout's
        // gate asks; reactivation: partner-center/developer/reactivate-a-suspended-a-subscription,
        // auto-renew: partner-center/developer/update-autorenew-for-an-azure-marketplace-subscription).
        // closeout asks before it deletes anyone: once it has read the
        // role assignments (its preflight), the person may act.
        if t.billing == Billing::Partner && (t.preflight_read || t.only_keep_remain()) {
            for s in t.subscriptions.iter().filter(|s| {
                s.sold_by_partner()
                    && s.new_commerce
                    && !s.cancellable()
                    && s.partner_status == "suspended"
            }) {
                possible.push((
                    id.clone(),
                    format!("partner-resume/{}", s.commerce_subscription_id),
                ));
            }
        }
        let consented = t.app_permissions.len() >= crate::saga::permissions::ALL.len();
        if t.preflight_read && (!t.app_privileged || !consented) {
            possible.push((id.clone(), "app-role".into()));
        }
        if t.preflight_read && (t.dir_sync || t.users.values().any(|u| u.on_premises_sync_enabled))
        {
            possible.push((id.clone(), "dir-sync-off".into()));
        }
        if let Some(action) = super::discovery::next_step5_action(t) {
            possible.push((id.clone(), format!("step5:{action}")));
        }
    }
    world.possible_since.retain(|k, _| possible.contains(k));
    for key in possible {
        let since = *world.possible_since.entry(key.clone()).or_insert(now);
        if now.saturating_duration_since(since) < delay {
            continue;
        }
        world.possible_since.remove(&key);
        let (tenant, action) = key;
        if let Some(step5) = action.strip_prefix("step5:") {
            let _ = match step5.split_once('/') {
                Some(("user", u)) => {
                    super::discovery::delete_user(world, &tenant, u, now).map(|_| ())
                }
                Some(("app", a)) => {
                    super::discovery::delete_application(world, &tenant, a, now).map(|_| ())
                }
                Some(("sp", s)) => {
                    super::discovery::delete_principal(world, &tenant, s, now).map(|_| ())
                }
                _ => delete_tenant(world, &tenant, now),
            };
            continue;
        }
        let _ = match (action.as_str(), action.split_once('/')) {
            ("app-role", _) => grant_app_role(world, &tenant, now, cfg.replication_lag).map(|_| ()),
            ("dir-sync-off", _) => {
                dir_sync_off(world, &tenant, now, cfg.replication_lag).map(|_| ())
            }
            (_, Some(("partner-resume", sub))) => {
                partner_resume(world, &tenant, sub, now, cfg).map(|_| ())
            }
            (_, Some((act, sub))) => subscription(world, &tenant, sub, act, now, cfg).map(|_| ()),
            (_, None) => delete_tenant(world, &tenant, now),
        };
    }
}
