//! Microsoft Graph, `/v1.0/...` and `/beta/...`: authenticates the bearer
//! token, applies the throttle budgets, routes to one handler per resource
//! and reports whether the call changed the tenant (for the effects ledger).

mod directory;
mod policies;
pub mod reports;
mod roles;
mod users;

use super::http::{graph_error, Req, Resp};
use super::login::authenticate;
use super::state::{Audience, Tenant, World};
use super::throttle::Verdict;
use super::Config;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

/// What a Graph call did.
pub struct Outcome {
    /// The response to send back.
    pub resp: Resp,
    /// The tenant whose state it changed, when it changed one.
    pub changed: Option<String>,
}

/// A Graph call in context: the authenticated tenant and app.
pub struct Call<'a> {
    /// The request as received.
    pub req: &'a Req,
    /// Path segments after the version prefix.
    pub segs: Vec<&'a str>,
    /// The version prefix of the path: `v1.0` or `beta`.
    pub version: &'a str,
    /// The time of the call on the sim clock (which `tokio::time::pause` controls).
    pub now: Instant,
    /// The sim's clock, for `date()`.
    pub clock: crate::state::Clock,
    /// The simulator's settings (lifetimes, delays, lag, clock speed).
    pub cfg: &'a Config,
}

impl Call<'_> {
    /// `now` as RFC 3339 (formatted only when an answer needs it).
    pub fn date(&self) -> String {
        self.clock.rfc3339(self.now)
    }

    /// A Graph error answer for this call.
    pub fn error(&self, status: u16, code: &str, message: &str) -> Resp {
        graph_error(self.req, &self.date(), status, code, message)
    }

    /// 404 `Request_ResourceNotFound` for an object id.
    pub fn not_found(&self, id: &str) -> Resp {
        self.error(
            404,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    }

    /// The JSON body, or a 400 answer.
    pub fn body(&self) -> Result<Map<String, Value>, Resp> {
        match serde_json::from_slice::<Value>(&self.req.body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(self.error(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")),
        }
    }

    /// `@odata.context` for an entity set.
    pub fn context(&self, what: &str) -> String {
        format!("{}/{}/$metadata#{what}", self.req.base, self.version)
    }
}

/// Handles a Graph request (`req.path` starts with `/v1.0/` or `/beta/`).
pub fn handle(world: &mut World, req: &Req, now: Instant, cfg: &Config) -> Outcome {
    let (version, rest) = match req.path.strip_prefix("/v1.0") {
        Some(r) => ("v1.0", r),
        None => ("beta", req.path.strip_prefix("/beta").unwrap_or(&req.path)),
    };
    let call = Call {
        req,
        segs: rest.split('/').filter(|s| !s.is_empty()).collect(),
        version,
        now,
        clock: world.clock,
        cfg,
    };
    let Some(token) = authenticate(world, req, now, Audience::Graph).cloned() else {
        let msg = if req.bearer.is_none() {
            "Access token is empty."
        } else {
            "Access token has expired or is not yet valid."
        };
        return Outcome {
            resp: call.error(401, "InvalidAuthenticationToken", msg),
            changed: None,
        };
    };
    let tenant_id = token.tenant_id.clone();
    let write = req.method != "GET";
    let is_ca = call.segs.first() == Some(&"identity");
    // Throttling, before anything is read or changed.
    let users = world.tenants.get(&tenant_id).map_or(0, |t| t.users.len());
    let cost = if call.segs == ["users"] && req.method == "GET" {
        if req.param("$select").is_some() {
            1.0
        } else {
            2.0
        }
    } else {
        1.0
    };
    let mut verdicts = Vec::new();
    if cfg.throttling {
        if is_ca {
            verdicts.push(world.throttle.conditional_access(now, &tenant_id));
        }
        verdicts.push(if write {
            world.throttle.write(now, &token.client_id, &tenant_id)
        } else {
            world
                .throttle
                .read(now, &token.client_id, &tenant_id, users, cost)
        });
    }
    let mut percent = 0;
    for v in verdicts {
        match v {
            Verdict::Allowed { percent: p } => percent = percent.max(p),
            Verdict::Throttled {
                retry_after,
                scope,
                info,
            } => {
                let mut resp = call
                    .error(
                        429,
                        "TooManyRequests",
                        "Too many requests. Please try again later.",
                    )
                    .header("x-ms-throttle-scope", scope)
                    .header("x-ms-throttle-information", info)
                    .header("x-ms-resource-unit", format!("{cost}"));
                if let Some(d) = retry_after {
                    resp = resp.header("Retry-After", crate::throttle::whole_seconds(d));
                }
                return Outcome {
                    resp,
                    changed: None,
                };
            }
        }
    }
    let Some(tenant) = world.tenants.get_mut(&tenant_id) else {
        return Outcome {
            resp: call.error(
                401,
                "InvalidAuthenticationToken",
                "Access token is not valid for this tenant.",
            ),
            changed: None,
        };
    };
    let (mut resp, changed) = route(tenant, &call);
    resp = resp.header("x-ms-resource-unit", format!("{cost}"));
    // "Returned only when the application consumed more than 0.8 of its
    // limit. The value ranges from 0.8 to 1.8" (concepts/throttling-limits,
    // identity and access service limits): a fraction, not a percentage.
    if percent >= 80 {
        resp = resp.header(
            "x-ms-throttle-limit-percentage",
            format!("{:.2}", f64::from(percent.min(180)) / 100.0),
        );
    }
    let changed = (changed && resp.status < 300).then_some(tenant_id);
    Outcome { resp, changed }
}

/// Routes to a resource handler; the bool says whether the tenant changed.
fn route(t: &mut Tenant, c: &Call) -> (Resp, bool) {
    let m = c.req.method.as_str();
    let segs = c.segs.as_slice();
    let unchanged = |r: Resp| (r, false);
    match (m, segs) {
        ("GET", ["users"]) => unchanged(users::list(t, c)),
        ("GET", ["users", id]) => unchanged(users::get(t, c, id)),
        ("DELETE", ["users", id]) => users::delete(t, c, id),
        ("GET", ["me"]) => unchanged(c.error(
            400,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )),
        ("GET", ["users", id, "authentication", "requirements"]) if c.version == "beta" => {
            unchanged(policies::get_mfa(t, c, id))
        }
        ("PATCH", ["users", id, "authentication", "requirements"]) if c.version == "beta" => {
            policies::set_mfa(t, c, id)
        }
        ("GET", [role, "members"]) if role.starts_with("directoryRoles") => {
            unchanged(directory::role_members(t, c, role))
        }
        ("GET", ["directory", "deletedItems", "microsoft.graph.user"]) => {
            unchanged(users::list_deleted(t, c))
        }
        ("GET", ["directory", "deletedItems", id]) => unchanged(users::get_deleted(t, c, id)),
        ("DELETE", ["directory", "deletedItems", id]) => users::purge(t, c, id),
        ("POST", ["directory", "deletedItems", id, "restore"]) => users::restore(t, c, id),
        ("GET", ["directory", "subscriptions"]) => unchanged(directory::subscriptions(t, c)),
        ("GET", ["directory", "subscriptions", id]) => unchanged(directory::subscription(t, c, id)),
        ("GET", ["subscribedSkus"]) => unchanged(directory::skus(t, c)),
        ("GET", ["organization"]) => unchanged(directory::organization(t, c)),
        ("GET", ["applications"]) => unchanged(directory::apps(c, &t.applications, "applications")),
        ("DELETE", ["applications", id]) => directory::delete_app(t, c, id),
        ("GET", ["roleManagement", "directory", "roleAssignments"]) => {
            unchanged(roles::assignments(t, c))
        }
        ("GET", ["servicePrincipals", id, "appRoleAssignments"]) => {
            // Asked what it holds: the auto-operator may now grant it.
            t.preflight_read = true;
            unchanged(roles::app_role_assignments(t, c, id))
        }
        ("GET", [sp]) if sp.starts_with("servicePrincipals(") => {
            unchanged(roles::service_principal(t, c, sp))
        }
        ("GET", ["servicePrincipals"]) => {
            t.deletion_check_read = true;
            unchanged(directory::apps(
                c,
                &t.service_principals,
                "servicePrincipals",
            ))
        }
        ("GET", ["policies", "identitySecurityDefaultsEnforcementPolicy"]) => {
            unchanged(policies::get_defaults(t, c))
        }
        ("PATCH", ["policies", "identitySecurityDefaultsEnforcementPolicy"]) => {
            policies::set_defaults(t, c)
        }
        ("GET", ["identity", "conditionalAccess", "policies"]) => {
            unchanged(policies::list_ca(t, c))
        }
        ("GET", ["identity", "conditionalAccess", "policies", id]) => {
            unchanged(policies::get_ca(t, c, id))
        }
        ("PATCH", ["identity", "conditionalAccess", "policies", id]) => policies::set_ca(t, c, id),
        ("GET", ["reports", f]) if reports::function(f).is_some() => {
            if let Some(denied) = reports::denied(t, c, "Reports.Read.All") {
                return unchanged(denied);
            }
            let (kind, period) = reports::function(f).unwrap_or((reports::Kind::Mailbox, ""));
            unchanged(reports::redirect(t, c, kind, period))
        }
        ("GET", ["admin", "reportSettings"]) => unchanged(
            reports::denied(t, c, "ReportSettings.Read.All")
                .unwrap_or_else(|| reports::settings(t)),
        ),
        ("GET", ["solutions", "backupRestore", "protectionPolicies"]) => unchanged(
            reports::denied(t, c, "BackupRestore-Configuration.Read.All")
                .unwrap_or_else(|| reports::protection_policies(t, c)),
        ),
        _ => unchanged(c.error(
            400,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                segs.last().copied().unwrap_or("")
            ),
        )),
    }
}

/// `$top`: 1..=999, default `default`; else a 400 answer.
pub fn top(c: &Call, default: usize) -> Result<usize, Resp> {
    match c.req.param("$top") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n),
            _ => Err(c.error(
                400,
                "Request_UnsupportedQuery",
                &format!(
                    "Invalid page size specified: '{v}'. Must be between 1 and 999 inclusive."
                ),
            )),
        },
    }
}

/// Applies `$select` to an object (keeps only the named properties).
pub fn select(c: &Call, mut v: Value) -> Value {
    if let (Some(sel), Value::Object(m)) = (c.req.param("$select"), &mut v) {
        let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
        m.retain(|k, _| k.starts_with("@odata") || keep.iter().any(|s| s.eq_ignore_ascii_case(k)));
    }
    v
}

/// A page of `items` after the offset in `$skiptoken`, with an absolute
/// `@odata.nextLink` when more remain.
pub fn page(c: &Call, items: Vec<Value>, what: &str, default_top: usize) -> Resp {
    let top = match top(c, default_top) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let start: usize = match c.req.param("$skiptoken") {
        None => 0,
        Some(t) => match t.strip_prefix("o.").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return bad_skiptoken(c),
        },
    };
    let total = items.len();
    let value: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(top)
        .map(|v| select(c, v))
        .collect();
    let next = (start + top < total).then(|| next_link(c, &format!("o.{}", start + top), top));
    collection(c, what, value, next)
}

/// 400 for a skip token this simulator did not hand out.
pub fn bad_skiptoken(c: &Call) -> Resp {
    c.error(
        400,
        "Request_BadRequest",
        "The skip token is invalid or has expired.",
    )
}

/// An absolute next link repeating `$top` and `$select`.
pub fn next_link(c: &Call, token: &str, top: usize) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("$top", &top.to_string());
    if let Some(sel) = c.req.param("$select") {
        q.append_pair("$select", sel);
    }
    q.append_pair("$skiptoken", token);
    format!("{}{}?{}", c.req.base, c.req.path, q.finish())
}

/// A collection answer.
pub fn collection(c: &Call, what: &str, value: Vec<Value>, next: Option<String>) -> Resp {
    let mut body = json!({"@odata.context": c.context(what)});
    if let Some(n) = next {
        body["@odata.nextLink"] = Value::String(n);
    }
    body["value"] = Value::Array(value);
    Resp::json(200, body)
}
