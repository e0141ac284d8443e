//! Step 5 in the simulator: the tenant's OpenID discovery document (read
//! without credentials), the portal's deletion check, the operator's removal
//! of a service principal or a user in the Entra admin center, and what the
//! auto-operator does of step 5's gate, in the gate's order.
//!
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`: served for an
//!   existing tenant, named by id or initial domain
//!   (https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc).
//!   For an unknown or deleted tenant the docs are silent; the simulator
//!   answers as the login service does for an unknown tenant: 400
//!   `invalid_tenant` with `AADSTS90002`
//!   (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
//! - `POST /_sim/tenants/{t}/operator/service-principals/{appId}/delete` and
//!   `POST /_sim/tenants/{t}/operator/users/{id}/delete`: an administrator
//!   deleting an enterprise app
//!   (https://learn.microsoft.com/entra/identity/enterprise-apps/delete-application-portal)
//!   or a user (https://learn.microsoft.com/entra/fundamentals/how-to-create-delete-users)
//!   in the Entra admin center.

use super::http::{login_error, Req, Resp};
use super::operator::{live, Refusal};
use super::state::{DeletedUser, Tenant, World, GLOBAL_ADMIN};
use serde_json::json;
use tokio::time::Instant;

/// Whether `path` asks for a tenant's discovery document.
pub fn is_discovery(path: &str) -> bool {
    path.ends_with("/v2.0/.well-known/openid-configuration")
}

/// Answers `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub fn openid_configuration(world: &mut World, req: &Req, now: Instant) -> Resp {
    let name = req
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let date = world.clock.rfc3339(now);
    let key = world.tenant_key(name);
    let tenant = key
        .and_then(|k| world.tenants.get_mut(&k))
        .filter(|t| !t.deleted);
    let Some(t) = tenant else {
        return login_error(
            400,
            "invalid_tenant",
            90002,
            &format!("Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
            &date,
            &req.request_id,
        );
    };
    // Only a read made once step 5's deletion check has begun is the
    // baseline the gate waits for: the read that resolves the tenant's GUID
    // at submit does not open step 5's gate, so it does not let the
    // auto-operator delete the tenant ahead of the baseline.
    if t.deletion_check_read {
        t.discovery_read = true;
    }
    let base = &req.base;
    let tid = &t.tenant_id;
    Resp::json(
        200,
        json!({
            "issuer": format!("{base}/{tid}/v2.0"),
            "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
            "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
            "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }),
    )
}

/// Deletes a service principal (enterprise app) by its app id, closeout's
/// own included. `Ok(false)` when there is none.
pub fn delete_principal(
    world: &mut World,
    tenant: &str,
    app_id: &str,
    now: Instant,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let before = t.service_principals.len();
    t.service_principals.retain(|s| s.app_id != app_id);
    if t.service_principals.len() == before {
        return Ok(false);
    }
    let path = format!("/_sim/tenants/{tenant}/operator/service-principals/{app_id}/delete");
    world.ledger.record(at, tenant, "POST", &path, 200);
    Ok(true)
}

/// Deletes a user (to the recycle bin) as an administrator does in the Entra
/// admin center. `Ok(false)` when there is none.
pub fn delete_user(
    world: &mut World,
    tenant: &str,
    user: &str,
    now: Instant,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let Some(u) = t.find_user(user).cloned() else {
        return Ok(false);
    };
    t.users.remove(&u.id);
    let original_upn = u.user_principal_name.clone();
    let mut gone = u;
    gone.user_principal_name = super::state::deleted_upn(&gone.id, &original_upn);
    t.deleted_users.insert(
        gone.id.clone(),
        DeletedUser {
            user: gone.clone(),
            deleted_at: now,
            deleted_date_time: at.clone(),
            original_upn,
        },
    );
    let path = format!("/_sim/tenants/{tenant}/operator/users/{}/delete", gone.id);
    world.ledger.record(at, tenant, "POST", &path, 200);
    Ok(true)
}

/// The user who finishes the closure as a person reads closeout's gate: the
/// first keep account holding the Global Administrator role.
pub fn finishing_admin(t: &Tenant) -> Option<String> {
    t.keep.iter().find_map(|k| {
        t.find_user(k)
            .filter(|u| u.roles.iter().any(|r| r == GLOBAL_ADMIN))
            .map(|u| u.id.clone())
    })
}

/// The portal's deletion check
/// (https://learn.microsoft.com/entra/identity/users/directory-delete-howto):
/// exactly one user (the Global Administrator who deletes the tenant), no
/// app registrations, no service principals left that block deletion (the
/// simulator's are customer apps and closeout's own, all blocking), every
/// subscription deprovisioned (trials and self-service included). Security
/// defaults and Conditional Access are not on the list. Unpaid invoices,
/// Azure subscriptions and MFA providers are not modelled.
pub fn portal_blockers(t: &Tenant) -> Vec<String> {
    let mut out = Vec::new();
    let admin = finishing_admin(t);
    if t.users.len() != 1 || admin.as_ref().is_none_or(|a| !t.users.contains_key(a)) {
        out.push(format!(
            "{} users remain; the portal requires exactly one, the Global Administrator deleting the tenant",
            t.users.len()
        ));
    }
    if !t.applications.is_empty() {
        out.push(format!("{} app registrations remain", t.applications.len()));
    }
    if !t.service_principals.is_empty() {
        out.push(format!(
            "{} enterprise apps remain",
            t.service_principals.len()
        ));
    }
    let live = t
        .subscriptions
        .iter()
        .filter(|s| s.status != "Deleted")
        .count();
    if live > 0 {
        out.push(format!("{live} subscriptions are not deprovisioned"));
    }
    out
}

/// What a person following closeout's step 5 gate does next, in the gate's
/// order: other users, app registrations, other enterprise apps, closeout's
/// own enterprise app last, then the tenant. Only once closeout has read the
/// deletion check and recorded its discovery baseline (the gate is open by
/// then), and only while subscriptions are all deprovisioned (the gate comes
/// after step 3). Returns the action key the auto-operator takes.
pub fn next_step5_action(t: &Tenant) -> Option<String> {
    if !(t.deletion_check_read && t.discovery_read) {
        return None;
    }
    if t.subscriptions.iter().any(|s| s.status != "Deleted") {
        return None;
    }
    let admin = finishing_admin(t)?;
    if let Some(u) = t.users.keys().find(|id| **id != admin) {
        return Some(format!("user/{u}"));
    }
    if let Some(a) = t.applications.first() {
        return Some(format!("app/{}", a.id));
    }
    if let Some(s) = t
        .service_principals
        .iter()
        .find(|s| s.app_id != t.client_id)
    {
        return Some(format!("sp/{}", s.app_id));
    }
    if t.own_principal().is_some() {
        return Some(format!("sp/{}", t.client_id));
    }
    portal_blockers(t).is_empty().then(|| "tenant".to_string())
}

/// Deletes an app registration (and its service principal) in the admin center.
pub fn delete_application(
    world: &mut World,
    tenant: &str,
    id: &str,
    now: Instant,
) -> Result<bool, Refusal> {
    let at = world.clock.rfc3339(now);
    let t = live(world, tenant)?;
    let Some(i) = t.applications.iter().position(|a| a.id == id) else {
        return Ok(false);
    };
    let app = t.applications.remove(i);
    t.service_principals.retain(|s| s.app_id != app.app_id);
    let path = format!("/_sim/tenants/{tenant}/operator/applications/{id}/delete");
    world.ledger.record(at, tenant, "POST", &path, 200);
    Ok(true)
}
