//! Who holds which directory role, and closeout's own service principal:
//! what step 1's preflight reads.
//!
//! - `GET /roleManagement/directory/roleAssignments`
//!   (https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments):
//!   `unifiedRoleAssignment`s with `principalId` and `roleDefinitionId` (for a
//!   built-in role, its template id), tenant-wide scope `/`. Users' roles and
//!   the role closeout's app holds (Privileged Authentication Administrator,
//!   when privileged) are listed; `$filter` and `$expand` are not modelled.
//! - `GET /servicePrincipals(appId='{appId}')`
//!   (https://learn.microsoft.com/graph/api/serviceprincipal-get): the
//!   service principal by its app id; 404 when the app has none in the tenant.

use super::{page, select, Call};
use crate::http::Resp;
use crate::state::Tenant;
use serde_json::json;

/// `GET /roleManagement/directory/roleAssignments`.
pub fn assignments(t: &mut Tenant, c: &Call) -> Resp {
    t.preflight_read = true;
    let mut items = Vec::new();
    let assignment = |principal: &str, role: &str| {
        json!({
            "id": format!("{role}_{principal}"),
            "principalId": principal,
            "roleDefinitionId": role,
            "directoryScopeId": "/",
        })
    };
    for u in t.users.values() {
        for r in &u.roles {
            items.push(assignment(&u.id, r));
        }
    }
    if let Some(sp) = t.own_principal() {
        for r in t.app_roles_seen(c.now) {
            items.push(assignment(&sp.id, r));
        }
    }
    page(c, items, "roleManagement/directory/roleAssignments", 100)
}

/// `GET /servicePrincipals(appId='…')`.
pub fn service_principal(t: &Tenant, c: &Call, seg: &str) -> Resp {
    let Some(app_id) = seg
        .strip_prefix("servicePrincipals(appId='")
        .and_then(|s| s.strip_suffix("')"))
    else {
        return c.error(
            400,
            "Request_BadRequest",
            &format!("Invalid object identifier '{seg}'."),
        );
    };
    match t.service_principals.iter().find(|s| s.app_id == app_id) {
        Some(sp) => {
            let mut v = select(
                c,
                json!({"id": sp.id, "appId": sp.app_id, "displayName": sp.display_name}),
            );
            v["@odata.context"] = json!(c.context("servicePrincipals/$entity"));
            Resp::json(200, v)
        }
        None => c.not_found(app_id),
    }
}

/// `GET /servicePrincipals/{id}/appRoleAssignments`
/// (https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments):
/// the app roles (application permissions) granted to closeout's own
/// service principal, all of Microsoft Graph (`resourceId` the Graph
/// service principal, here a fixed id); other principals have none. The
/// simulator reports missing permissions here but does not refuse the calls
/// they would guard (left out: closeout checks before it calls).
pub fn app_role_assignments(t: &Tenant, c: &Call, id: &str) -> Resp {
    let Some(own) = t.own_principal().filter(|sp| sp.id == id) else {
        if t.service_principals.iter().any(|sp| sp.id == id) {
            return page(
                c,
                Vec::new(),
                "servicePrincipals('id')/appRoleAssignments",
                100,
            );
        }
        return c.not_found(id);
    };
    let items: Vec<serde_json::Value> = t
        .app_permissions
        .iter()
        .map(|role| {
            json!({
                "id": format!("{}-{}", own.id, role),
                "appRoleId": role,
                "principalId": own.id,
                "principalType": "ServicePrincipal",
                "resourceId": GRAPH_PRINCIPAL,
                "resourceDisplayName": "Microsoft Graph",
            })
        })
        .collect();
    page(c, items, "servicePrincipals('id')/appRoleAssignments", 100)
}

/// The object id the simulator gives Microsoft Graph's service principal.
const GRAPH_PRINCIPAL: &str = "8fce32da-1246-437b-99cd-76d1d4677bd5";
