//! Directory resources other than users and policies: Global Administrator
//! role members, subscriptions (`companySubscription`, read-only in Graph),
//! `subscribedSkus`, `organization`, app registrations and service principals.

use super::{collection, page, Call};
use crate::http::Resp;
use crate::state::{App, Tenant, GLOBAL_ADMIN};
use serde_json::{json, Value};

/// `GET /directoryRoles(roleTemplateId='…')/members`: the role's members
/// as user objects ("Only users can be assigned to a directory role"), with
/// `accountEnabled` so that a caller can tell an enabled holder from a
/// disabled one: <https://learn.microsoft.com/graph/api/directoryrole-list-members>.
pub fn role_members(t: &Tenant, c: &Call, seg: &str) -> Resp {
    let template = seg
        .strip_prefix("directoryRoles(roleTemplateId='")
        .and_then(|s| s.strip_suffix("')"));
    let Some(template) = template else {
        return c.error(
            400,
            "Request_BadRequest",
            &format!("Invalid object identifier '{seg}'."),
        );
    };
    if template != GLOBAL_ADMIN
        && !t
            .users
            .values()
            .any(|u| u.roles.iter().any(|r| r == template))
    {
        return c.not_found(template);
    }
    let items = t
        .users
        .values()
        .filter(|u| u.roles.iter().any(|r| r == template))
        .map(|u| {
            json!({
                "@odata.type": "#microsoft.graph.user",
                "id": u.id,
                "userPrincipalName": u.user_principal_name,
                "displayName": u.display_name,
                "accountEnabled": u.account_enabled,
            })
        })
        .collect();
    page(c, items, "directoryObjects", 100)
}

fn subscription_json(
    s: &crate::state::Subscription,
    now: tokio::time::Instant,
    clock: &crate::state::Clock,
) -> Value {
    let status = crate::lag::Lag::seen(&s.lag_status, s.status.clone(), now);
    // "The date and time when the subscription will move to the next state
    // ... if not renewed" (companySubscription): the term's end, or the end
    // of Expired / Disabled.
    let next = s.term_end.or(s.next_phase).map(|t| clock.rfc3339(t));
    json!({
        "id": s.id,
        "commerceSubscriptionId": s.commerce_subscription_id,
        "skuId": s.sku_id,
        "skuPartNumber": s.sku_part_number,
        "status": status,
        "isTrial": s.is_trial,
        "totalLicenses": s.total_licenses,
        "createdDateTime": s.created_date_time,
        "nextLifecycleDateTime": next,
        "ownerId": null,
        "ownerTenantId": s.owner_tenant_id,
        "ownerType": null,
        "serviceStatus": [],
    })
}

/// `GET /directory/subscriptions`.
pub fn subscriptions(t: &Tenant, c: &Call) -> Resp {
    let items = t
        .subscriptions
        .iter()
        .map(|s| subscription_json(s, c.now, &c.clock))
        .collect();
    page(c, items, "directory/subscriptions", 100)
}

/// `GET /directory/subscriptions/{id}`.
pub fn subscription(t: &Tenant, c: &Call, id: &str) -> Resp {
    match t
        .subscriptions
        .iter()
        .find(|s| s.id == id || s.commerce_subscription_id == id)
    {
        Some(s) => Resp::json(200, subscription_json(s, c.now, &c.clock)),
        None => c.not_found(id),
    }
}

/// `GET /subscribedSkus`: one entry per SKU still provisioned.
pub fn skus(t: &Tenant, c: &Call) -> Resp {
    let mut by_sku: Vec<(String, String, [u32; 4])> = Vec::new();
    for s in t.subscriptions.iter().filter(|s| s.status != "Deleted") {
        let slot = match s.status.as_str() {
            "Enabled" => 0,
            "Suspended" => 1,
            "Warning" => 2,
            _ => 3,
        };
        match by_sku.iter_mut().find(|(id, _, _)| *id == s.sku_id) {
            Some(e) => e.2[slot] += s.total_licenses,
            None => {
                let mut units = [0; 4];
                units[slot] = s.total_licenses;
                by_sku.push((s.sku_id.clone(), s.sku_part_number.clone(), units));
            }
        }
    }
    let value = by_sku
        .into_iter()
        .map(|(sku_id, part, u)| {
            let status = if u[0] > 0 { "Enabled" } else if u[2] > 0 { "Warning" } else if u[1] > 0 { "Suspended" } else { "LockedOut" };
            json!({
                "id": format!("{}_{}", t.tenant_id, sku_id),
                "accountId": t.tenant_id,
                "appliesTo": "User",
                "capabilityStatus": status,
                "consumedUnits": 0,
                "skuId": sku_id,
                "skuPartNumber": part,
                "prepaidUnits": {"enabled": u[0], "suspended": u[1], "warning": u[2], "lockedOut": u[3]},
                "servicePlans": [],
            })
        })
        .collect();
    collection(c, "subscribedSkus", value, None)
}

/// `GET /organization`: one organization whose `id` is the tenant GUID and
/// whose `verifiedDomains` name the initial domain (`isInitial`):
/// <https://learn.microsoft.com/graph/api/resources/organization> and
/// <https://learn.microsoft.com/graph/api/resources/verifieddomain>.
pub fn organization(t: &Tenant, c: &Call) -> Resp {
    let org = json!({
        "id": t.tenant_id,
        "displayName": t.display_name,
        "tenantType": "AAD",
        "verifiedDomains": [{"name": t.domain, "isDefault": true, "isInitial": true, "type": "Managed", "capabilities": "Email, OfficeCommunicationsOnline"}],
        "onPremisesSyncEnabled": if crate::lag::Lag::seen(&t.lag.dir_sync.as_ref().map(|(u, s, _)| (*u, *s)), t.dir_sync, c.now) { json!(true) } else { Value::Null },
    });
    collection(c, "organization", vec![org], None)
}

/// `GET /applications` or `/servicePrincipals`.
pub fn apps(c: &Call, apps: &[App], what: &str) -> Resp {
    let items = apps
        .iter()
        .map(|a| json!({"id": a.id, "appId": a.app_id, "displayName": a.display_name}))
        .collect();
    page(c, items, what, 100)
}

/// `DELETE /applications/{id}`.
pub fn delete_app(t: &mut Tenant, c: &Call, id: &str) -> (Resp, bool) {
    match t.applications.iter().position(|a| a.id == id) {
        Some(i) => {
            let app = t.applications.remove(i);
            t.service_principals.retain(|s| s.app_id != app.app_id);
            (Resp::empty(204), true)
        }
        None => (c.not_found(id), false),
    }
}
