//! The simulator's own API under `/_sim/`: the effects ledger, the tenants and
//! their credentials, the partner, a tenant's whole state, and the operator's
//! admin-center actions. Never faulted or throttled.

use super::http::Resp;
use super::operator;
use super::state::{Billing, World};
use super::Config;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

/// One line of `GET /_sim/tenants`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TenantInfo {
    /// Tenant id (a GUID).
    pub tenant_id: String,
    /// closeout's app in the tenant.
    pub client_id: String,
    /// The client secret the token endpoint accepts for `client_id`.
    pub client_secret: String,
    /// Keep accounts (UPNs), the Global Administrator among them.
    pub keep: Vec<String>,
    /// Users now in the directory.
    pub users: usize,
    /// `partner` (a CSP customer of the partner) or `direct` (bought from Microsoft).
    pub billing: Billing,
}

/// The tenants not deleted, in fixture order.
pub fn tenants(world: &World) -> Vec<TenantInfo> {
    world
        .order
        .iter()
        .filter_map(|id| world.tenants.get(id))
        .filter(|t| !t.deleted)
        .map(|t| TenantInfo {
            tenant_id: t.tenant_id.clone(),
            client_id: t.client_id.clone(),
            client_secret: t.client_secret.clone(),
            keep: t.keep.clone(),
            users: t.users.len(),
            billing: t.billing,
        })
        .collect()
}

fn refused((status, message): operator::Refusal) -> Resp {
    Resp::json(
        status,
        json!({"error": {"code": "OperatorActionRefused", "message": message}}),
    )
}

/// Handles `/_sim/...`.
pub fn handle(
    world: &mut World,
    method: &str,
    path: &str,
    query: &[(String, String)],
    now: Instant,
    cfg: &Config,
) -> Resp {
    operator::tick(world, now, cfg);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let to_json = |v: serde_json::Result<serde_json::Value>| match v {
        Ok(v) => Resp::json(200, v),
        Err(e) => Resp::json(
            500,
            json!({"error": {"code": "internal", "message": e.to_string()}}),
        ),
    };
    match (method, segs.as_slice()) {
        ("GET", ["_sim", "effects"]) => {
            let since = query
                .iter()
                .find(|(k, _)| k == "since")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            to_json(serde_json::to_value(world.ledger.since(since)))
        }
        ("GET", ["_sim", "tenants"]) => to_json(serde_json::to_value(tenants(world))),
        // Every token request: tenant, client, scope and kind of credential.
        ("GET", ["_sim", "token-requests"]) => to_json(serde_json::to_value(&world.token_log)),
        ("GET", ["_sim", "partner"]) => to_json(serde_json::to_value(&world.partner)),
        // Every Partner Center change request with its `MS-RequestId`, and
        // whether it was answered as a repeat of an earlier one.
        ("GET", ["_sim", "partner", "requests"]) => to_json(Ok(serde_json::Value::Array(
            world
                .partner_log
                .iter()
                .map(|(path, rid, replayed)| {
                    serde_json::json!({"path": path, "request_id": rid, "replayed": replayed})
                })
                .collect(),
        ))),
        ("GET", ["_sim", "tenants", id]) => {
            match world.tenant_key(id).and_then(|k| world.tenants.get(&k)) {
                Some(t) => to_json(serde_json::to_value(t)),
                None => refused((404, format!("tenant {id} not found"))),
            }
        }
        ("POST", ["_sim", "tenants", id, "operator", "subscriptions", sub, action]) => {
            let id = world.tenant_key(id).unwrap_or_else(|| id.to_string());
            match operator::subscription(world, &id, sub, action, now, cfg) {
                Ok(changed) => Resp::json(200, json!({"changed": changed})),
                Err(r) => refused(r),
            }
        }
        ("POST", ["_sim", "tenants", id, "operator", "app-role"]) => {
            let id = world.tenant_key(id).unwrap_or_else(|| id.to_string());
            match operator::grant_app_role(world, &id, now, cfg.replication_lag) {
                Ok(changed) => Resp::json(200, json!({"changed": changed})),
                Err(r) => refused(r),
            }
        }
        ("POST", ["_sim", "tenants", id, "operator", "dir-sync", "off"]) => {
            let id = world.tenant_key(id).unwrap_or_else(|| id.to_string());
            match operator::dir_sync_off(world, &id, now, cfg.replication_lag) {
                Ok(changed) => Resp::json(200, json!({"changed": changed})),
                Err(r) => refused(r),
            }
        }
        ("POST", ["_sim", "tenants", id, "operator", "users", user, "roles", role, "remove"]) => {
            let id = world.tenant_key(id).unwrap_or_else(|| id.to_string());
            match operator::remove_role(world, &id, user, role, now) {
                Ok(changed) => Resp::json(200, json!({"changed": changed})),
                Err(r) => refused(r),
            }
        }
        ("POST", ["_sim", "tenants", id, "operator", "service-principals", app, "delete"]) => {
            let id = world.tenant_key(id).unwrap_or_else(|| id.to_string());
            match super::discovery::delete_principal(world, &id, app, now) {
                Ok(changed) => Resp::json(200, json!({"changed": changed})),
                Err(r) => refused(r),
            }
        }
        ("POST", ["_sim", "tenants", id, "operator", "users", user, "delete"]) => {
            let id = world.tenant_key(id).unwrap_or_else(|| id.to_string());
            match super::discovery::delete_user(world, &id, user, now) {
                Ok(changed) => Resp::json(200, json!({"changed": changed})),
                Err(r) => refused(r),
            }
        }
        ("POST", ["_sim", "tenants", id, "operator", "delete"]) => {
            let id = world.tenant_key(id).unwrap_or_else(|| id.to_string());
            match operator::delete_tenant(world, &id, now) {
                Ok(()) => Resp::json(200, json!({"deleted": true})),
                Err(r) => refused(r),
            }
        }
        _ => refused((404, format!("no simulator endpoint {method} {path}"))),
    }
}
