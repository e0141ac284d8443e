//! MFA settings: security defaults, Conditional Access policies and per-user
//! MFA requirements (beta).

use super::{page, Call};
use crate::http::Resp;
use crate::state::{CaPolicy, Tenant};
use serde_json::{json, Value};

/// `GET /policies/identitySecurityDefaultsEnforcementPolicy`.
pub fn get_defaults(t: &Tenant, c: &Call) -> Resp {
    Resp::json(
        200,
        json!({
            "@odata.context": c.context("policies/identitySecurityDefaultsEnforcementPolicy/$entity"),
            "id": "00000000-0000-0000-0000-000000000005",
            "displayName": "Security Defaults",
            "description": "Security defaults is a set of basic identity security mechanisms recommended by Microsoft.",
            "isEnabled": crate::lag::Lag::seen(&t.lag.security_defaults, t.security_defaults, c.now),
        }),
    )
}

/// `PATCH /policies/identitySecurityDefaultsEnforcementPolicy` `{"isEnabled":bool}`.
pub fn set_defaults(t: &mut Tenant, c: &Call) -> (Resp, bool) {
    let body = match c.body() {
        Ok(b) => b,
        Err(r) => return (r, false),
    };
    match body.get("isEnabled").and_then(Value::as_bool) {
        Some(v) => {
            if v != t.security_defaults {
                t.lag
                    .security_defaults(t.security_defaults, c.now, c.cfg.replication_lag);
            }
            t.security_defaults = v;
            (Resp::empty(204), true)
        }
        None => (
            c.error(400, "BadRequest", "Invalid value for property isEnabled."),
            false,
        ),
    }
}

fn ca_json(t: &Tenant, p: &CaPolicy, now: tokio::time::Instant) -> Value {
    let state = crate::lag::Lag::seen_in(&t.lag.ca, &p.id, &p.state, now);
    let controls: Vec<&str> = if p.requires_mfa {
        vec!["mfa"]
    } else {
        vec!["block"]
    };
    json!({
        "id": p.id,
        "displayName": p.display_name,
        "state": state,
        "createdDateTime": null,
        "modifiedDateTime": null,
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": controls},
    })
}

/// `GET /identity/conditionalAccess/policies`.
pub fn list_ca(t: &Tenant, c: &Call) -> Resp {
    page(
        c,
        t.ca_policies.iter().map(|p| ca_json(t, p, c.now)).collect(),
        "identity/conditionalAccess/policies",
        100,
    )
}

/// `GET /identity/conditionalAccess/policies/{id}`.
pub fn get_ca(t: &Tenant, c: &Call, id: &str) -> Resp {
    match t.ca_policies.iter().find(|p| p.id == id) {
        Some(p) => Resp::json(200, ca_json(t, p, c.now)),
        None => c.not_found(id),
    }
}

/// `PATCH /identity/conditionalAccess/policies/{id}` `{"state": ...}`.
pub fn set_ca(t: &mut Tenant, c: &Call, id: &str) -> (Resp, bool) {
    let body = match c.body() {
        Ok(b) => b,
        Err(r) => return (r, false),
    };
    let Some(p) = t.ca_policies.iter_mut().find(|p| p.id == id) else {
        return (c.not_found(id), false);
    };
    match body.get("state").and_then(Value::as_str) {
        Some(s @ ("enabled" | "disabled" | "enabledForReportingButNotEnforced")) => {
            if p.state != s {
                let before = std::mem::replace(&mut p.state, s.to_string());
                t.lag.ca(id, before, c.now, c.cfg.replication_lag);
            }
            (Resp::empty(204), true)
        }
        _ => (
            c.error(400, "BadRequest", "Invalid value for property state."),
            false,
        ),
    }
}

/// `GET /beta/users/{id}/authentication/requirements`.
pub fn get_mfa(t: &Tenant, c: &Call, id: &str) -> Resp {
    match t.find_user(id) {
        Some(u) => Resp::json(
            200,
            json!({
                "@odata.context": c.context(&format!("users('{}')/authentication/requirements/$entity", u.id)),
                "perUserMfaState": u.per_user_mfa_state,
            }),
        ),
        None => c.not_found(id),
    }
}

/// `PATCH /beta/users/{id}/authentication/requirements` `{"perUserMfaState": ...}`.
pub fn set_mfa(t: &mut Tenant, c: &Call, id: &str) -> (Resp, bool) {
    let body = match c.body() {
        Ok(b) => b,
        Err(r) => return (r, false),
    };
    let Some(uid) = t.find_user(id).map(|u| u.id.clone()) else {
        return (c.not_found(id), false);
    };
    match body.get("perUserMfaState").and_then(Value::as_str) {
        Some(s @ ("disabled" | "enabled" | "enforced")) => {
            if let Some(u) = t.users.get_mut(&uid) {
                u.per_user_mfa_state = s.to_string();
            }
            (Resp::empty(204), true)
        }
        _ => (
            c.error(
                400,
                "BadRequest",
                "Invalid value for property perUserMfaState.",
            ),
            false,
        ),
    }
}
