//! Partner Center: `GET /v1/customers/{tenant}/subscriptions` (what the
//! partner sells the customer), `GET`/`PATCH .../subscriptions/{id}` with the
//! partner's own token, and the subscription lifecycle the sim's clock runs
//! (terms, cancellation windows, Expired > Disabled > Deleted), sped up by
//! `--clock-speed`. Each rule cites its page; `docs/fidelity.md` lists them.
//!
//! - `status=deleted` cancels a new-commerce subscription only inside its
//!   window ("within 7 days ... of purchase or renewal. After this window has
//!   passed, subscriptions can no longer be canceled and the API will throw an
//!   error": <https://learn.microsoft.com/en-us/partner-center/developer/cancel-an-azure-marketplace-subscription>);
//!   cancelled inside the window it "skips the Expired status and
//!   immediately moves to the Disabled status" (Graph `Suspended`), then is
//!   deprovisioned (Graph `Deleted`) after `--deprovision-after`
//!   (<https://learn.microsoft.com/en-us/microsoft-365/commerce/subscriptions/what-if-my-subscription-expires>).
//! - `status=suspended` is accepted for new commerce too, and does not end
//!   billing (the suspend page: the transacting partner continues to be
//!   billed); `active` reactivates a suspended subscription
//!   (<https://learn.microsoft.com/en-us/partner-center/developer/reactivate-a-suspended-a-subscription>).
//! - `autoRenewEnabled` is set by PATCH
//!   (<https://learn.microsoft.com/en-us/partner-center/developer/update-autorenew-for-an-azure-marketplace-subscription>);
//!   at the term's end a subscription with it on renews (a new term, and a
//!   new cancellation window: "of purchase or renewal"), with it off it
//!   goes Expired (30 days, Graph `Warning`), Disabled (90 days, Graph
//!   `Suspended`), Deleted ("Active > Expired > Disabled > Deleted", what-if
//!   page above). The docs do not map these states to Graph's `status`
//!   values; the sim's mapping is its own.
//! - Headers (<https://learn.microsoft.com/en-us/partner-center/developer/headers>):
//!   `MS-Contract-Version` is "Required" (400 without it); a repeated
//!   `MS-RequestId` ("if there's a timeout, the retry call should include
//!   the same value") is the same request: answered as the first time, not
//!   applied again; `If-Match` that is not the resource's current ETag
//!   answers 412 (the docs name no status; 412 is HTTP's). The ETag is the
//!   resource's `attributes.etag`.
//! - Customers billed directly, and subscriptions the partner did not sell,
//!   are not the partner's: 404.
//! - A PATCH that "takes longer than expected" is answered "HTTP status 202
//!   and a location header that points to where to retrieve the
//!   subscription", to be polled for the change
//!   (<https://learn.microsoft.com/en-us/partner-center/developer/change-the-quantity-of-a-subscription>):
//!   with `--partner-accepted-after D` every changing PATCH is, and the
//!   change is carried out D later. How long it takes, and what a second
//!   PATCH meanwhile gets, the docs do not say (the sim: 202 again,
//!   nothing more changed).

use super::http::{partner_error, Req, Resp};
use super::login::authenticate;
use super::state::{Audience, Billing, PendingPatch, Subscription, World};
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
    if req.partner_header("ms-contract-version").is_none() {
        return (
            partner_error(400, 800002, "The MS-Contract-Version header is required."),
            None,
        );
    }
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let (customer, sub_id) = match segs.as_slice() {
        ["v1", "customers", c, "subscriptions"] if req.method == "GET" => {
            return (list(world, c), None)
        }
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
    let clock = world.clock;
    let Some(sub) = tenant
        .subscriptions
        .iter_mut()
        .find(|s| s.commerce_subscription_id == sub_id && s.sold_by_partner())
    else {
        return (not_found(), None);
    };
    match req.method.as_str() {
        "GET" => (Resp::json(200, resource(sub, &tenant_id, &clock)), None),
        "PATCH" => {
            let rid = req.partner_header("ms-requestid").map(str::to_string);
            if let Some(rid) = &rid {
                if let Some((path, first)) = world.partner_requests.get(rid) {
                    if path == &req.path {
                        let first = first.clone();
                        world
                            .partner_log
                            .push((req.path.clone(), rid.clone(), true));
                        return (first, None);
                    }
                }
            }
            let tenant = world
                .tenant_key(customer)
                .and_then(|k| world.tenants.get_mut(&k));
            let Some(sub) = tenant.and_then(|t| {
                t.subscriptions
                    .iter_mut()
                    .find(|s| s.commerce_subscription_id == sub_id)
            }) else {
                return (not_found(), None);
            };
            let out = patch(sub, req, now, cfg, &tenant_id, &clock);
            if let Some(rid) = rid {
                world
                    .partner_log
                    .push((req.path.clone(), rid.clone(), false));
                world
                    .partner_requests
                    .insert(rid, (req.path.clone(), out.0.clone()));
            }
            out
        }
        _ => (
            partner_error(405, 600002, "The method is not allowed on this resource."),
            None,
        ),
    }
}

/// The customer's subscriptions the partner sold (a customer billed
/// directly is not the partner's: 404).
fn list(world: &World, customer: &str) -> Resp {
    let Some(t) = world
        .tenant_key(customer)
        .and_then(|k| world.tenants.get(&k))
        .filter(|t| t.billing == Billing::Partner && !t.deleted)
    else {
        return partner_error(404, 600008, &format!("Customer {customer} was not found."));
    };
    let items: Vec<Value> = t
        .subscriptions
        .iter()
        .filter(|s| s.sold_by_partner())
        .map(|s| resource(s, &t.tenant_id, &world.clock))
        .collect();
    Resp::json(
        200,
        json!({
            "totalCount": items.len(),
            "items": items,
            "links": {},
            "attributes": {"objectType": "Collection"},
        }),
    )
}

/// A PATCH of the whole resource: `status` and/or `autoRenewEnabled`,
/// under `If-Match`. With `--partner-accepted-after`, a change that would be
/// made is answered 202 Accepted with a `Location`, and carried out later by
/// the clock ([`apply_pending`]); reads show the old state until then.
fn patch(
    sub: &mut Subscription,
    req: &Req,
    now: Instant,
    cfg: &Config,
    tenant_id: &str,
    clock: &super::state::Clock,
) -> (Resp, Option<String>) {
    if let Some(tag) = req.partner_header("if-match") {
        if tag.trim_matches('"') != sub.etag.to_string() {
            return (
                partner_error(
                    412,
                    800003,
                    "The resource was changed since it was read (ETag mismatch).",
                ),
                None,
            );
        }
    }
    let body = serde_json::from_slice::<Value>(&req.body).ok();
    let status = body.as_ref().and_then(|v| {
        v.get("status")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    });
    let renew = body
        .as_ref()
        .and_then(|v| v.get("autoRenewEnabled"))
        .and_then(Value::as_bool);
    if status.is_none() && renew.is_none() {
        return (
            partner_error(
                400,
                800002,
                "The request body must contain the subscription resource.",
            ),
            None,
        );
    }
    let accepted = |sub: &Subscription| {
        // The page's example: `Location: /customers/{customer-tenant-id}/subscriptions/{subscriptionID}`.
        Resp::empty(202).header(
            "Location",
            format!(
                "/customers/{tenant_id}/subscriptions/{}",
                sub.commerce_subscription_id
            ),
        )
    };
    if let Some(after) = cfg.partner_accepted_after {
        // A PATCH while an accepted one is still under way: the docs are
        // silent; the simulator answers it as accepted too and changes
        // nothing more.
        if sub.pending.is_some() {
            return (accepted(sub), None);
        }
        let mut probe = sub.clone();
        return match apply(&mut probe, status.clone(), renew, now, cfg) {
            Err(r) => (r, None),
            Ok(false) => (Resp::json(200, resource(sub, tenant_id, clock)), None),
            Ok(true) => {
                sub.pending = Some(PendingPatch {
                    at: now + after,
                    status,
                    auto_renew: renew,
                });
                (accepted(sub), Some(tenant_id.to_string()))
            }
        };
    }
    match apply(sub, status, renew, now, cfg) {
        Err(r) => (r, None),
        Ok(changed) => (
            Resp::json(200, resource(sub, tenant_id, clock)),
            changed.then(|| tenant_id.to_string()),
        ),
    }
}

/// Makes the changes a PATCH asks for; `Ok(true)` when something changed.
fn apply(
    sub: &mut Subscription,
    status: Option<String>,
    renew: Option<bool>,
    now: Instant,
    cfg: &Config,
) -> Result<bool, Resp> {
    let mut changed = false;
    if let Some(status) = status.filter(|s| *s != sub.partner_status) {
        changed |= transition(sub, &status, now, cfg)?;
    }
    if let Some(on) = renew.filter(|on| *on != sub.auto_renew) {
        if !matches!(sub.partner_status.as_str(), "active" | "suspended") {
            return Err(partner_error(
                400,
                800005,
                "Auto-renew can be changed only on an active subscription.",
            ));
        }
        sub.auto_renew = on;
        changed = true;
    }
    if changed {
        sub.etag += 1;
    }
    Ok(changed)
}

/// The clock's part of an accepted PATCH: carries it out once due. Returns
/// whether it was carried out (a change no longer possible by then, such as
/// a cancel after the window closed, is dropped: the docs do not say what
/// Partner Center does then).
pub fn apply_pending(sub: &mut Subscription, now: Instant, cfg: &Config) -> Option<bool> {
    let due = sub.pending.as_ref().is_some_and(|p| p.at <= now);
    if !due {
        return None;
    }
    let p = sub.pending.take()?;
    Some(apply(sub, p.status, p.auto_renew, now, cfg).unwrap_or(false))
}

/// Fixes a subscription's lifecycle instants at the sim's start: its term's
/// end and cancellation window in real time at `speed`, and who sold it as
/// Graph's `ownerTenantId` says.
pub fn start_lifecycle(s: &mut Subscription, start: Instant, speed: f64, partner_tenant: &str) {
    let scale = |d: std::time::Duration| d.div_f64(speed);
    s.owner_tenant_id = match s.seller.as_str() {
        "partner" => Some(partner_tenant.to_string()),
        "direct" => None,
        other => Some(other.to_string()),
    };
    // A suspended subscription keeps its term: suspending a new-commerce
    // one does not stop its billing (partner-center/customers/suspend-a-subscription).
    if matches!(s.status.as_str(), "Enabled" | "Warning" | "Suspended") {
        s.term_end = s.term_left.map(|d| start + scale(d));
        if s.new_commerce && s.in_cancellation_window {
            s.window_end = Some(start + scale(WINDOW));
        }
    }
}

/// The new-commerce cancellation window: 7 days (168 hours).
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(168 * 3600);
const EXPIRED_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
const DISABLED_FOR: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);
const TERM: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// The lifecycle clock's work on one subscription at `now`: windows close,
/// terms renew or expire, Expired turns Disabled, Disabled turns Deleted.
/// Returns what happened, for the ledger.
pub fn lifecycle(s: &mut Subscription, now: Instant, cfg: &Config) -> Option<&'static str> {
    if s.window_end.is_some_and(|w| w <= now) {
        s.window_end = None;
        s.in_cancellation_window = false;
    }
    let before = s.status.clone();
    let what = if s.term_end.is_some_and(|t| t <= now) && s.partner_status == "active" {
        if s.auto_renew {
            s.term_end = Some(now + cfg.lifecycle(TERM));
            if s.new_commerce {
                s.in_cancellation_window = true;
                s.window_end = Some(now + cfg.lifecycle(WINDOW));
            }
            Some("renew")
        } else {
            s.term_end = None;
            s.partner_status = "expired".into();
            s.status = "Warning".into();
            s.next_phase = Some(now + cfg.lifecycle(EXPIRED_FOR));
            Some("expire")
        }
    } else if s.next_phase.is_some_and(|t| t <= now) {
        match s.partner_status.as_str() {
            "expired" => {
                s.partner_status = "disabled".into();
                s.status = "Suspended".into();
                s.next_phase = Some(now + cfg.lifecycle(DISABLED_FOR));
                Some("disable")
            }
            _ => {
                s.partner_status = "deleted".into();
                s.status = "Deleted".into();
                s.next_phase = None;
                Some("delete")
            }
        }
    } else {
        None
    };
    if what.is_some() {
        s.etag += 1;
        if s.status != before {
            crate::lag::Lag::sub(&mut s.lag_status, before, now, cfg.replication_lag);
        }
    }
    what
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
        crate::lag::Lag::sub(&mut sub.lag_status, before, now, cfg.replication_lag);
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
            // New commerce: suspension is accepted, and billing goes on.
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
            sub.term_end = None;
            sub.deprovision_at = Some(now + cfg.lifecycle(cfg.deprovision_after));
            Ok(true)
        }
        other => Err(partner_error(
            400,
            800002,
            &format!("Unsupported subscription status '{other}'."),
        )),
    }
}

fn resource(s: &Subscription, customer: &str, clock: &super::state::Clock) -> Value {
    // New-commerce offer ids are `productId:skuId:availabilityId`, legacy
    // ones GUIDs (the samples of "Get a customer's subscriptions").
    let offer = if s.new_commerce {
        format!(
            "CFQ7TTC0{}:0001:P1Y",
            &s.sku_id.replace('-', "").to_ascii_uppercase()[..4]
        )
    } else {
        s.sku_id.clone()
    };
    // The window closes 168 hours after the term's start: the start
    // reported is the one that makes that true in real time, whatever the
    // clock speed (a closed window: a start 30 days back).
    let start_ms = match s.window_end {
        Some(w) => clock.ms(w).saturating_sub(WINDOW.as_millis() as u64),
        None => clock.ms(clock.start).saturating_sub(30 * 24 * 3600 * 1000),
    };
    json!({
        "id": s.commerce_subscription_id,
        "offerId": offer,
        "offerName": s.sku_part_number,
        "friendlyName": s.sku_part_number,
        "quantity": s.total_licenses,
        "unitType": "Licenses",
        "creationDate": s.created_date_time,
        "status": s.partner_status,
        "autoRenewEnabled": s.auto_renew,
        "isTrial": s.is_trial,
        "billingType": "license",
        "termDuration": "P1Y",
        "effectiveStartDate": crate::model::Timestamp(start_ms).to_rfc3339(),
        "commitmentEndDate": s.term_end.map(|t| clock.rfc3339(t)),
        "links": {"self": {"uri": format!("/customers/{customer}/subscriptions/{}", s.commerce_subscription_id), "method": "GET", "headers": []}},
        "attributes": {"etag": s.etag.to_string(), "objectType": "Subscription"},
    })
}
