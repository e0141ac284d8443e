//! Partner Center: `GET`/`PATCH /v1/customers/{tenant}/subscriptions/{id}`
//! with the partner's own token. `suspended` cancels (Graph `Suspended`),
//! `active` reactivates until deprovisioning, `deleted` schedules
//! deprovisioning (Graph `Deleted`) after `--deprovision-after`. New-commerce
//! subscriptions outside their cancellation window answer 400; customers
//! billed directly (not the partner's) answer 404.

use super::http::{partner_error, Req, Resp};
use super::login::authenticate;
use super::state::{Audience, Billing, Subscription, World};
use super::Config;
use serde_json::{json, Value};
use tokio::time::Instant;

/// What a Partner Center call did: the answer, and the customer tenant
/// changed, if any.
pub fn handle(world: &mut World, req: &Req, now: Instant, cfg: &Config) -> (Resp, Option<String>) {
    let Some(token) = authenticate(world, req, now, Audience::PartnerCenter) else {
        return (
            partner_error(
                401,
                900419,
                "Access token is missing, expired or not issued for Partner Center.",
            ),
            None,
        );
    };
    if token.tenant_id != world.partner.tenant_id {
        return (
            partner_error(
                401,
                900419,
                "The token was not issued in the partner's tenant.",
            ),
            None,
        );
    }
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let (customer, sub_id) = match segs.as_slice() {
        ["v1", "customers", c, "subscriptions", s] => (*c, *s),
        _ => {
            return (
                partner_error(404, 600001, "The resource was not found."),
                None,
            )
        }
    };
    let not_found = || {
        partner_error(
            404,
            600008,
            &format!("Customer {customer} or subscription {sub_id} was not found."),
        )
    };
    let Some(tenant) = world
        .tenant_key(customer)
        .and_then(|k| world.tenants.get_mut(&k))
    else {
        return (not_found(), None);
    };
    if tenant.billing == Billing::Direct || tenant.deleted {
        return (not_found(), None);
    }
    let tenant_id = tenant.tenant_id.clone();
    let Some(sub) = tenant
        .subscriptions
        .iter_mut()
        .find(|s| s.commerce_subscription_id == sub_id)
    else {
        return (not_found(), None);
    };
    match req.method.as_str() {
        "GET" => (Resp::json(200, resource(sub, &tenant_id)), None),
        "PATCH" => {
            let status = serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|v| {
                    v.get("status")
                        .and_then(Value::as_str)
                        .map(str::to_ascii_lowercase)
                });
            let Some(status) = status else {
                return (
                    partner_error(
                        400,
                        800002,
                        "The request body must contain the subscription with its status.",
                    ),
                    None,
                );
            };
            match transition(sub, &status, now, cfg) {
                Ok(changed) => (
                    Resp::json(200, resource(sub, &tenant_id)),
                    changed.then_some(tenant_id),
                ),
                Err(r) => (r, None),
            }
        }
        _ => (
            partner_error(405, 600002, "The method is not allowed on this resource."),
            None,
        ),
    }
}

/// Applies a Partner Center status change; `Ok(true)` when something changed.
pub fn transition(
    sub: &mut Subscription,
    status: &str,
    now: Instant,
    cfg: &Config,
) -> Result<bool, Resp> {
    let before = sub.status.clone();
    let out = change_status(sub, status, now, cfg);
    if sub.status != before {
        crate::sim::lag::Lag::sub(&mut sub.lag_status, before, now, cfg.replication_lag);
    }
    out
}

fn change_status(
    sub: &mut Subscription,
    status: &str,
    now: Instant,
    cfg: &Config,
) -> Result<bool, Resp> {
    let deprovisioned = sub.status == "Deleted";
    match status {
        "suspended" => {
            if deprovisioned {
                return Err(partner_error(
                    400,
                    800005,
                    "The subscription has been deprovisioned and cannot be changed.",
                ));
            }
            if sub.partner_status != "active" {
                return Ok(false);
            }
            if !sub.cancellable() {
                return Err(partner_error(400, 800040, "Cancellation is allowed only within the cancellation window after purchase or renewal."));
            }
            sub.partner_status = "suspended".into();
            sub.status = "Suspended".into();
            Ok(true)
        }
        "active" => {
            if deprovisioned {
                return Err(partner_error(
                    400,
                    800005,
                    "The subscription has been deprovisioned and cannot be reactivated.",
                ));
            }
            if sub.partner_status == "active" {
                return Ok(false);
            }
            sub.partner_status = "active".into();
            sub.status = "Enabled".into();
            sub.deprovision_at = None;
            Ok(true)
        }
        "deleted" => {
            if deprovisioned || sub.partner_status == "deleted" {
                return Ok(false);
            }
            if sub.partner_status == "active" && !sub.cancellable() {
                return Err(partner_error(400, 800040, "Cancellation is allowed only within the cancellation window after purchase or renewal."));
            }
            sub.partner_status = "deleted".into();
            sub.status = "Suspended".into();
            sub.deprovision_at = Some(now + cfg.deprovision_after);
            Ok(true)
        }
        other => Err(partner_error(
            400,
            800002,
            &format!("Unsupported subscription status '{other}'."),
        )),
    }
}

fn resource(s: &Subscription, customer: &str) -> Value {
    json!({
        "id": s.commerce_subscription_id,
        "offerId": s.sku_id,
        "offerName": s.sku_part_number,
        "friendlyName": s.sku_part_number,
        "quantity": s.total_licenses,
        "unitType": "Licenses",
        "creationDate": s.created_date_time,
        "status": s.partner_status,
        "autoRenewEnabled": s.partner_status == "active",
        "isTrial": s.is_trial,
        "billingType": "license",
        "termDuration": "P1Y",
        "links": {"self": {"uri": format!("/customers/{customer}/subscriptions/{}", s.commerce_subscription_id), "method": "GET", "headers": []}},
        "attributes": {"objectType": "Subscription"},
    })
}
