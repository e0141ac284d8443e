//! Users and the recycle bin: list (paged by an opaque cursor, `$top`,
//! `$select`), get by id or UPN, delete (to the recycle bin; 403 for admins
//! when the app is not privileged; 400 for users synced from on-premises),
//! deleted users, restore (400 after the retention period or when the UPN is
//! taken) and permanent delete.

use super::{collection, next_link, select, top, Call};
use crate::http::Resp;
use crate::state::{deleted_upn, DeletedUser, Tenant, User};
use serde_json::{json, Value};

/// The default property set of v1.0 (`accountEnabled` and the others come
/// only with `$select`, as in the real service).
fn user_json(c: &Call, u: &User) -> Value {
    if c.req.param("$select").is_some() {
        select(
            c,
            json!({
                "id": u.id,
                "userPrincipalName": u.user_principal_name,
                "displayName": u.display_name,
                "accountEnabled": u.account_enabled,
                "onPremisesSyncEnabled": if u.on_premises_sync_enabled { json!(true) } else { Value::Null },
                "userType": u.user_type,
                "mail": u.user_principal_name,
            }),
        )
    } else {
        json!({
            "businessPhones": [],
            "displayName": u.display_name,
            "givenName": null,
            "jobTitle": null,
            "mail": u.user_principal_name,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": null,
            "surname": null,
            "userPrincipalName": u.user_principal_name,
            "id": u.id,
        })
    }
}

/// `GET /users`: ordered by id; the skip token is the last id served.
pub fn list(t: &Tenant, c: &Call) -> Resp {
    let view = t.lag.users_view(&t.users, c.now);
    let users = view.as_ref().unwrap_or(&t.users);
    let top = match top(c, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let after = match c.req.param("$skiptoken") {
        None => None,
        Some(s) => match s.strip_prefix("u.") {
            Some(a) => Some(a),
            None => return super::bad_skiptoken(c),
        },
    };
    let iter: Box<dyn Iterator<Item = &User>> = match after {
        Some(a) => Box::new(
            users
                .range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                .map(|(_, u)| u),
        ),
        None => Box::new(users.values()),
    };
    let mut it = iter.peekable();
    let mut value = Vec::with_capacity(top.min(users.len()));
    let mut last = None;
    while value.len() < top {
        match it.next() {
            Some(u) => {
                value.push(user_json(c, u));
                last = Some(u.id.clone());
            }
            None => break,
        }
    }
    let next = match (it.peek(), last) {
        (Some(_), Some(l)) => Some(next_link(c, &format!("u.{l}"), top)),
        _ => None,
    };
    collection(c, "users", value, next)
}

/// `GET /users/{id or upn}`.
pub fn get(t: &Tenant, c: &Call, id: &str) -> Resp {
    let view = t.lag.users_view(&t.users, c.now);
    let found = match &view {
        Some(users) => users.get(id).or_else(|| {
            users
                .values()
                .find(|u| u.user_principal_name.eq_ignore_ascii_case(id))
        }),
        None => t.find_user(id),
    };
    match found {
        Some(u) => {
            let mut v = user_json(c, u);
            v["@odata.context"] = json!(c.context("users/$entity"));
            Resp::json(200, v)
        }
        None => c.not_found(id),
    }
}

/// `DELETE /users/{id}`.
pub fn delete(t: &mut Tenant, c: &Call, id: &str) -> (Resp, bool) {
    let Some(u) = t.find_user(id).cloned() else {
        return (c.not_found(id), false);
    };
    // https://learn.microsoft.com/graph/api/user-delete: an app deleting a
    // user who holds an administrator role needs a higher privileged role,
    // per "Who can perform sensitive actions"
    // (https://learn.microsoft.com/entra/identity/role-based-access-control/privileged-roles-permissions#who-can-perform-sensitive-actions).
    // Members of a restricted management administrative unit can be changed
    // only by administrators scoped to it, not by tenant-wide roles
    // (https://learn.microsoft.com/entra/identity/role-based-access-control/admin-units-restricted-management).
    let may =
        crate::saga::preflight::may_delete(&t.app_roles(), u.roles.iter().map(String::as_str));
    if !may || u.restricted {
        return (
            c.error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            false,
        );
    }
    // Synced users are mastered on-premises; the cloud refuses to delete
    // them while sync is on (https://learn.microsoft.com/microsoft-365/commerce/close-your-account:
    // turn off directory synchronization first). The 400 text is observed.
    if u.on_premises_sync_enabled {
        return (
            c.error(400, "Request_BadRequest", "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."),
            false,
        );
    }
    let lag = c.cfg.replication_lag;
    t.lag.user(&u.id, Some(u.clone()), c.now, lag);
    t.lag.bin(&u.id, None, c.now, lag);
    t.users.remove(&u.id);
    let original_upn = u.user_principal_name.clone();
    let mut user = u;
    user.user_principal_name = deleted_upn(&user.id, &original_upn);
    t.deleted_users.insert(
        user.id.clone(),
        DeletedUser {
            user,
            deleted_at: c.now,
            deleted_date_time: c.date(),
            original_upn,
        },
    );
    (Resp::empty(204), true)
}

fn deleted_json(c: &Call, d: &DeletedUser) -> Value {
    let mut v = user_json(c, &d.user);
    v["@odata.type"] = json!("#microsoft.graph.user");
    v["deletedDateTime"] = json!(d.deleted_date_time);
    v
}

/// `GET /directory/deletedItems/microsoft.graph.user`.
pub fn list_deleted(t: &Tenant, c: &Call) -> Resp {
    let view = t.lag.bin_view(&t.deleted_users, c.now);
    let items = view
        .as_ref()
        .unwrap_or(&t.deleted_users)
        .values()
        .map(|d| deleted_json(c, d))
        .collect();
    super::page(c, items, "directory/deletedItems/microsoft.graph.user", 100)
}

/// `GET /directory/deletedItems/{id}`.
pub fn get_deleted(t: &Tenant, c: &Call, id: &str) -> Resp {
    let view = t.lag.bin_view(&t.deleted_users, c.now);
    match view.as_ref().unwrap_or(&t.deleted_users).get(id) {
        Some(d) => Resp::json(200, deleted_json(c, d)),
        None => c.not_found(id),
    }
}

/// `POST /directory/deletedItems/{id}/restore`.
pub fn restore(t: &mut Tenant, c: &Call, id: &str) -> (Resp, bool) {
    let Some(d) = t.deleted_users.get(id) else {
        return (c.not_found(id), false);
    };
    if c.now.saturating_duration_since(d.deleted_at) > c.cfg.recycle_retention {
        t.deleted_users.remove(id);
        return (
            c.error(
                400,
                "Request_BadRequest",
                &format!(
                    "Deleted object '{id}' is past its retention period and cannot be restored."
                ),
            ),
            false,
        );
    }
    let upn = d.original_upn.clone();
    if t.users
        .values()
        .any(|u| u.user_principal_name.eq_ignore_ascii_case(&upn))
    {
        return (
            c.error(400, "Request_BadRequest", &format!("Another object with the same value for property userPrincipalName already exists: {upn}.")),
            false,
        );
    }
    let Some(mut d) = t.deleted_users.remove(id) else {
        return (c.not_found(id), false);
    };
    let lag = c.cfg.replication_lag;
    t.lag.user(id, None, c.now, lag);
    t.lag.bin(id, Some(d.clone()), c.now, lag);
    d.user.user_principal_name = d.original_upn;
    let mut v = user_json(c, &d.user);
    v["@odata.context"] = json!(c.context("directoryObjects/$entity"));
    v["@odata.type"] = json!("#microsoft.graph.user");
    t.users.insert(d.user.id.clone(), d.user);
    (Resp::json(200, v), true)
}

/// `DELETE /directory/deletedItems/{id}`: permanent.
pub fn purge(t: &mut Tenant, c: &Call, id: &str) -> (Resp, bool) {
    match t.deleted_users.remove(id) {
        Some(d) => {
            t.lag.bin(id, Some(d), c.now, c.cfg.replication_lag);
            (Resp::empty(204), true)
        }
        None => (c.not_found(id), false),
    }
}
