//! [`PartnerClient`]: the [`PartnerApi`] over Partner Center. It
//! authenticates as the partner's app in the partner's own tenant. A status
//! change reads the subscription first (Partner Center wants the whole
//! resource back, and a subscription already in the asked state is
//! `AlreadyDone`, which also resolves an in-doubt earlier attempt), then
//! PATCHes it with the new `status`. Never retried internally.

use super::auth::TokenSource;
use super::client::{Reply, Shared};
use super::error::{self, CallCtx};
use super::throttle::{Feedback, Throttle};
use crate::model::{
    parse_time, Applied, CallError, FailureClass, HttpInfo, PartnerStatus, PartnerSubscription,
    WriteOutcome,
};
use crate::ports::PartnerApi;
use reqwest::Method;
use std::sync::Arc;

/// The Partner Center client of the partner. Its `Debug` never shows the
/// secret or a token.
#[derive(Debug)]
pub struct PartnerClient {
    /// The shared HTTP client.
    shared: Arc<Shared>,
    /// The partner's own tenant.
    tenant: String,
    /// Its tokens (Partner Center scope).
    tokens: TokenSource,
    /// The throttle control of the partner's Partner Center calls.
    throttle: Arc<Throttle>,
}

impl PartnerClient {
    /// Asks the token endpoint for a token now (`closeout doctor`): the
    /// token endpoint's clock skew in seconds, when its answer had a `Date`.
    pub async fn check_token(&self) -> Result<Option<i64>, CallError> {
        self.tokens.fresh().await.map(|t| t.skew_secs)
    }

    /// How the partner's app signs in: `secret` or its certificate's
    /// thumbprint (as `closeout doctor` shows it).
    pub fn token_source_thumbprint(&self) -> Option<String> {
        Some(match self.tokens.thumbprint() {
            Some(t) => format!("certificate SHA256:{t}"),
            None => "secret".into(),
        })
    }

    /// The scope tokens are asked for.
    pub fn token_scope(&self) -> &str {
        self.tokens.scope()
    }

    pub(crate) fn new(
        shared: Arc<Shared>,
        tenant: &str,
        client_id: &str,
        credential: super::Credential,
    ) -> PartnerClient {
        let scope = shared
            .endpoints
            .cloud
            .partner_scope(&shared.endpoints.partner_center);
        PartnerClient {
            tokens: TokenSource::new(shared.clone(), tenant, client_id, credential, &scope),
            throttle: shared.throttle_with(
                &format!("partner:{tenant}"),
                shared.options.max_in_flight_partner_center,
            ),
            shared,
            tenant: tenant.to_string(),
        }
    }

    async fn call(
        &self,
        ctx: &CallCtx,
        method: Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
        extra: &[(&'static str, String)],
    ) -> (HttpInfo, Result<Reply, CallError>) {
        let mut http = HttpInfo {
            method: ctx.method.clone(),
            path: ctx.path.clone(),
            status: 0,
            request_id: String::new(),
        };
        let write = ctx.is_write();
        let Ok(permit) = self.throttle.acquire(write as u32).await else {
            return (http, Err(error::not_sent(ctx)));
        };
        // "MS-CorrelationId ... should be reset for every call";
        // "MS-Contract-Version: Required"
        // (https://learn.microsoft.com/en-us/partner-center/developer/headers).
        let mut headers: Vec<(&'static str, String)> = vec![
            ("MS-CorrelationId", uuid::Uuid::new_v4().to_string()),
            ("MS-Contract-Version", "v1".to_string()),
            ("Accept", "application/json".to_string()),
        ];
        headers.extend(extra.iter().cloned());
        let answer = match (self.tokens).send(method, url, body, &headers, false).await {
            Ok(answer) => answer,
            Err(e) => return (http, Err(e)),
        };
        let r = match answer {
            Ok(r) => r,
            Err((kind, detail)) => return (http, Err(error::transport_error(ctx, kind, &detail))),
        };
        http.status = r.status;
        http.request_id = r
            .header("ms-correlationid")
            .or(r.header("request-id"))
            .unwrap_or("")
            .to_string();
        let throttled = r.status == 429;
        self.throttle.record(
            &permit,
            Feedback {
                answered: 1,
                throttled: u32::from(throttled),
                write,
                accepted_writes: u32::from(write && !throttled),
                retry_after: r.retry_after(),
                hint: None,
            },
        );
        (http, Ok(r))
    }
}

fn status_word(s: PartnerStatus) -> &'static str {
    match s {
        PartnerStatus::Suspended => "suspended",
        PartnerStatus::Active => "active",
        PartnerStatus::Deleted => "deleted",
    }
}

/// Whether an id can be a path segment at all (see `bulk::segment`, which
/// encodes any other).
fn valid(id: &str) -> bool {
    !matches!(id, "" | "." | "..")
}

/// A fresh `MS-RequestId` for a call that is not part of a recorded intent.
fn fresh_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What a PATCH sets on the subscription resource.
#[derive(Clone, Copy)]
enum Patch {
    Status(PartnerStatus),
    AutoRenew(bool),
}

impl PartnerApi for PartnerClient {
    fn partner_tenant_id(&self) -> Option<&str> {
        Some(&self.tenant)
    }

    async fn set_subscription_status(
        &self,
        customer_tenant_id: &str,
        subscription_id: &str,
        status: PartnerStatus,
    ) -> WriteOutcome {
        self.patch(
            customer_tenant_id,
            subscription_id,
            Patch::Status(status),
            &fresh_request_id(),
        )
        .await
    }

    async fn set_subscription_status_as(
        &self,
        customer_tenant_id: &str,
        subscription_id: &str,
        status: PartnerStatus,
        request_id: &str,
    ) -> WriteOutcome {
        self.patch(
            customer_tenant_id,
            subscription_id,
            Patch::Status(status),
            request_id,
        )
        .await
    }

    async fn set_auto_renew(
        &self,
        customer_tenant_id: &str,
        subscription_id: &str,
        enabled: bool,
        request_id: &str,
    ) -> WriteOutcome {
        self.patch(
            customer_tenant_id,
            subscription_id,
            Patch::AutoRenew(enabled),
            request_id,
        )
        .await
    }

    async fn list_customer_subscriptions(
        &self,
        customer_tenant_id: &str,
    ) -> Result<Option<Vec<PartnerSubscription>>, CallError> {
        let path = format!(
            "/v1/customers/{}/subscriptions",
            super::bulk::segment(customer_tenant_id)
        );
        let ctx = CallCtx {
            tenant: customer_tenant_id.to_string(),
            method: "GET".into(),
            path: path.clone(),
            redact: self.tokens.redact(),
        };
        if !valid(customer_tenant_id) {
            return Err(CallError {
                class: FailureClass::Permanent,
                code: "invalid_id".into(),
                message: format!("{path}: not a valid customer id"),
                retry_after: None,
            });
        }
        let url = self
            .shared
            .endpoints
            .partner_center
            .join(&path)
            .map_err(|e| CallError {
                class: FailureClass::Permanent,
                code: "bad_url".into(),
                message: format!("cannot build url {path}: {e}"),
                retry_after: None,
            })?;
        let rid = fresh_request_id();
        let (http, reply) = self
            .call(&ctx, Method::GET, url, None, &[("MS-RequestId", rid)])
            .await;
        let r = reply?;
        // A customer that is not the partner's: nothing of it is the partner's.
        if r.status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&r.status) {
            let code = error::error_code(&r.body).or_else(|| partner_code(&r.body));
            error::judge(
                &ctx,
                r.status,
                code,
                &r.body_hint(),
                &http.request_id,
                r.retry_after(),
            )?;
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|_| error::bad_response(&ctx, &http.request_id, &r.body_hint()))?;
        let items = v
            .get("items")
            .and_then(|i| i.as_array())
            .ok_or_else(|| error::bad_response(&ctx, &http.request_id, &r.body_hint()))?;
        Ok(Some(
            items.iter().filter_map(partner_subscription).collect(),
        ))
    }
}

/// One item of the customer's subscription collection; `None` without an id.
fn partner_subscription(v: &serde_json::Value) -> Option<PartnerSubscription> {
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let time = |k: &str| v.get(k).and_then(|x| x.as_str()).and_then(parse_time);
    let id = text("id");
    if id.is_empty() {
        return None;
    }
    Some(PartnerSubscription {
        id,
        offer_id: text("offerId"),
        quantity: v
            .get("quantity")
            .and_then(serde_json::Value::as_u64)
            .and_then(|q| u32::try_from(q).ok())
            .unwrap_or(0),
        status: text("status").to_ascii_lowercase(),
        auto_renew: v
            .get("autoRenewEnabled")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        term_start: time("effectiveStartDate"),
        term_end: time("commitmentEndDate"),
    })
}

impl PartnerClient {
    /// GET the subscription (for its ETag and the whole resource Partner
    /// Center wants back), then PATCH it with `If-Match` and the intent's
    /// `MS-RequestId`.
    async fn patch(
        &self,
        customer_tenant_id: &str,
        subscription_id: &str,
        patch: Patch,
        request_id: &str,
    ) -> WriteOutcome {
        let path = format!(
            "/v1/customers/{}/subscriptions/{}",
            super::bulk::segment(customer_tenant_id),
            super::bulk::segment(subscription_id)
        );
        let fail = |http: HttpInfo, e: CallError| WriteOutcome {
            http,
            result: Err(e),
        };
        let blank = HttpInfo {
            method: "PATCH".into(),
            path: path.clone(),
            status: 0,
            request_id: String::new(),
        };
        if !valid(customer_tenant_id) || !valid(subscription_id) {
            return fail(
                blank,
                CallError {
                    class: FailureClass::Permanent,
                    code: "invalid_id".into(),
                    message: format!("{path} for partner {}: not a valid id", self.tenant),
                    retry_after: None,
                },
            );
        }
        let url = match self.shared.endpoints.partner_center.join(&path) {
            Ok(u) => u,
            Err(e) => {
                return fail(
                    blank,
                    CallError {
                        class: FailureClass::Permanent,
                        code: "bad_url".into(),
                        message: format!("cannot build url {path}: {e}"),
                        retry_after: None,
                    },
                )
            }
        };
        let judge = |ctx: &CallCtx, r: &Reply, http: &HttpInfo| {
            // "When the PATCH operation takes longer than expected, Partner
            // Center sends an HTTP status 202 and a location header ... You
            // can query the subscription periodically to monitor the status
            // and quantity changes"
            // (partner-center/developer/change-the-quantity-of-a-subscription,
            // the same PATCH): accepted is not done. In doubt, the saga
            // reads the subscription before it counts the change or repeats
            // it (and a repeat first reads, above, whether it is done).
            if r.status == 202 {
                return Err(CallError {
                    class: FailureClass::InDoubt,
                    code: ACCEPTED.into(),
                    message: format!(
                        "{} {} for customer {}: Partner Center accepted the change but has not \
                         made it yet (202 Accepted); closeout reads the subscription until it shows",
                        ctx.method, ctx.path, ctx.tenant
                    ),
                    retry_after: r.retry_after(),
                });
            }
            // A success is not parsed for an error code.
            if (200..300).contains(&r.status) {
                return Ok(Applied::Done);
            }
            let code = error::error_code(&r.body).or_else(|| partner_code(&r.body));
            error::judge(
                ctx,
                r.status,
                code,
                &r.body_hint(),
                &http.request_id,
                r.retry_after(),
            )
        };
        // Read the subscription.
        let get_ctx = CallCtx {
            tenant: customer_tenant_id.to_string(),
            method: "GET".into(),
            path: url.path().to_string(),
            redact: self.tokens.redact(),
        };
        let (http, reply) = self
            .call(
                &get_ctx,
                Method::GET,
                url.clone(),
                None,
                &[("MS-RequestId", fresh_request_id())],
            )
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return fail(http, e),
        };
        if let Err(e) = judge(&get_ctx, &reply, &http) {
            return fail(http, e);
        }
        let mut resource: serde_json::Value = match serde_json::from_slice(&reply.body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                return fail(
                    http.clone(),
                    error::bad_response(&get_ctx, &http.request_id, &reply.body_hint()),
                )
            }
        };
        let already = match patch {
            Patch::Status(status) => resource
                .get("status")
                .and_then(|s| s.as_str())
                .is_some_and(|c| c.eq_ignore_ascii_case(status_word(status))),
            Patch::AutoRenew(on) => {
                resource
                    .get("autoRenewEnabled")
                    .and_then(serde_json::Value::as_bool)
                    == Some(on)
            }
        };
        if already {
            return WriteOutcome {
                http,
                result: Ok(Applied::AlreadyDone),
            };
        }
        match patch {
            Patch::Status(status) => {
                resource["status"] = serde_json::Value::String(status_word(status).to_string());
            }
            Patch::AutoRenew(on) => resource["autoRenewEnabled"] = serde_json::Value::Bool(on),
        }
        // "Some API calls require an ETag passed via the If-Match header. The
        // ETag is usually on the resource" (headers page): the subscription
        // resource carries it in `attributes.etag`.
        let mut extra = vec![("MS-RequestId", request_id.to_string())];
        if let Some(etag) = resource
            .pointer("/attributes/etag")
            .and_then(|e| e.as_str())
            .or_else(|| reply.header("etag"))
        {
            extra.push(("If-Match", etag.to_string()));
        }
        let ctx = CallCtx {
            tenant: customer_tenant_id.to_string(),
            method: "PATCH".into(),
            path: url.path().to_string(),
            redact: self.tokens.redact(),
        };
        let (http, reply) = self
            .call(&ctx, Method::PATCH, url, Some(&resource), &extra)
            .await;
        match reply {
            Err(e) => fail(http, e),
            Ok(r) => {
                let result = judge(&ctx, &r, &http);
                WriteOutcome { http, result }
            }
        }
    }
}

/// The code of a change Partner Center accepted (202) but has not made yet.
pub const ACCEPTED: &str = "accepted_not_done";

/// Partner Center's own error shape: `{"code": 800002, "description": "..."}`.
fn partner_code(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = match v.get("code")? {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let desc = v
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .to_string();
    Some((code, desc))
}
