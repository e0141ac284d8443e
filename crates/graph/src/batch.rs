//! `POST /v1.0/$batch`: up to 20 independent items in one request, each
//! judged on its own (the outer 200 says nothing about them). A failure of
//! the whole request (no answer, 429/5xx, unreadable body) is given to every
//! item, in doubt for writes.

use super::error::{self, CallCtx, Redact};
use super::tenant::TenantClient;
use super::throttle::Feedback;
use super::wire::{BatchRequest, BatchRequestItem, BatchResponse};
use crate::model::{Applied, CallError, FailureClass, HttpInfo};
use reqwest::Method;
use std::time::{Duration, SystemTime};

/// Most items Graph accepts in one `$batch`.
pub const MAX_ITEMS: usize = 20;

/// One request inside a batch.
#[derive(Clone, Debug)]
pub struct Item {
    /// `GET`, `DELETE`, `POST`, `PATCH`.
    pub method: &'static str,
    /// Relative to the version, e.g. `/users/{id}`.
    pub url: String,
    /// JSON body, if any.
    pub body: Option<serde_json::Value>,
}

/// The judged result of one item.
#[derive(Clone, Debug)]
pub struct ItemResult {
    /// The item's method, path (`/v1.0/...`), status and request id.
    pub http: HttpInfo,
    /// Done, already done, or the classified error.
    pub result: Result<Applied, CallError>,
    /// The service's `Retry-After` for this item, if any.
    pub retry_after: Option<Duration>,
}

impl Item {
    /// The item's context; `redact` is what the whole `$batch` carried.
    fn ctx(&self, tenant: &str, redact: &Redact) -> CallCtx {
        let path = self.url.split('?').next().unwrap_or("");
        CallCtx {
            tenant: tenant.to_string(),
            method: self.method.to_string(),
            path: format!("/v1.0{path}"),
            redact: redact.clone(),
        }
    }
}

/// Sends up to [`MAX_ITEMS`] items as one `$batch` and judges each.
pub(crate) async fn send(client: &TenantClient, items: &[Item]) -> Vec<ItemResult> {
    debug_assert!(items.len() <= MAX_ITEMS);
    let tenant = client.tenant_id();
    let redact = client.tokens.redact();
    let writes = items.iter().filter(|i| i.method != "GET").count() as u32;
    let body = BatchRequest {
        requests: items
            .iter()
            .enumerate()
            .map(|(n, i)| BatchRequestItem {
                id: (n + 1).to_string(),
                method: i.method,
                url: &i.url,
                body: i.body.as_ref(),
                headers: i
                    .body
                    .as_ref()
                    .map(|_| serde_json::json!({"Content-Type": "application/json"})),
            })
            .collect(),
    };
    let body = match serde_json::to_value(&body) {
        Ok(b) => b,
        Err(e) => {
            return all_failed(
                items,
                tenant,
                &redact,
                &outer_bad(client, &e.to_string()),
                "",
                0,
            )
        }
    };
    let url = match client.url("/v1.0/$batch") {
        Ok(u) => u,
        Err(e) => return all_failed(items, tenant, &redact, &e, "", 0),
    };
    let outer_ctx = client.ctx(&Method::POST, &url);
    let (reply, permit) = match client.send(Method::POST, url, Some(&body), writes).await {
        Ok(r) => r,
        Err(e) => return all_failed(items, tenant, &redact, &e, "", 0),
    };
    let outer_rid = reply.request_id();
    let outer_hint = reply.limit_hint();
    if !(200..300).contains(&reply.status) {
        let e = error::status_error(
            &outer_ctx,
            reply.status,
            error::error_code(&reply.body),
            &reply.body_hint(),
            &outer_rid,
            reply.retry_after(),
        );
        let throttled = reply.status == 429;
        client.throttle.record(
            &permit,
            Feedback {
                answered: items.len() as u32,
                throttled: if throttled { items.len() as u32 } else { 0 },
                write: writes > 0,
                accepted_writes: 0,
                retry_after: e.retry_after,
                hint: outer_hint,
            },
        );
        return all_failed(items, tenant, &redact, &e, &outer_rid, reply.status);
    }
    let parsed: BatchResponse = match serde_json::from_slice(&reply.body) {
        Ok(p) => p,
        Err(_) => {
            let e = error::bad_response(&outer_ctx, &outer_rid, &reply.body_hint());
            return all_failed(items, tenant, &redact, &e, &outer_rid, reply.status);
        }
    };
    let now = SystemTime::now();
    let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
    let mut fb = Feedback {
        answered: parsed.responses.len() as u32,
        hint: outer_hint,
        ..Feedback::default()
    };
    for r in &parsed.responses {
        let Some(n) = r.id.parse::<usize>().ok().and_then(|n| n.checked_sub(1)) else {
            continue;
        };
        let Some(item) = items.get(n) else { continue };
        let ctx = item.ctx(tenant, &redact);
        let rid = r.header("request-id").unwrap_or(&outer_rid).to_string();
        let retry_after = r
            .header("retry-after")
            .and_then(|v| error::parse_retry_after(v, now));
        crate::metrics::batch_item_answered(item.method, r.status, retry_after.is_some());
        if let Some(h) = r
            .header("x-ms-throttle-limit-percentage")
            .and_then(error::parse_limit_hint)
        {
            fb.hint = Some(fb.hint.map_or(h, |o: f64| o.max(h)));
        }
        if r.status == 429 {
            fb.throttled += 1;
            fb.write |= item.method != "GET";
            fb.retry_after = fb.retry_after.max(retry_after);
        } else if item.method != "GET" {
            fb.accepted_writes += 1;
        }
        let hint = if r.body.is_null() {
            "an empty body".to_string()
        } else {
            "a json body without an error code".to_string()
        };
        let result = error::judge(
            &ctx,
            r.status,
            error::error_code_json(&r.body),
            &hint,
            &rid,
            retry_after,
        );
        results[n] = Some(ItemResult {
            http: HttpInfo {
                method: ctx.method,
                path: ctx.path,
                status: r.status,
                request_id: rid,
            },
            result,
            retry_after,
        });
    }
    client.throttle.record(&permit, fb);
    results
        .into_iter()
        .zip(items)
        .map(|(r, item)| {
            r.unwrap_or_else(|| {
                let ctx = item.ctx(tenant, &redact);
                let e = error::bad_response(&ctx, &outer_rid, "a $batch answer without this item");
                failed(item, tenant, &redact, &e, &outer_rid, reply.status)
            })
        })
        .collect()
}

fn outer_bad(client: &TenantClient, why: &str) -> CallError {
    CallError {
        class: FailureClass::Permanent,
        code: "bad_request_body".into(),
        message: format!(
            "cannot encode a $batch for tenant {}: {why}",
            client.tenant_id()
        ),
        retry_after: None,
    }
}

fn all_failed(
    items: &[Item],
    tenant: &str,
    redact: &Redact,
    e: &CallError,
    rid: &str,
    status: u16,
) -> Vec<ItemResult> {
    items
        .iter()
        .map(|i| failed(i, tenant, redact, e, rid, status))
        .collect()
}

/// The outer failure, as seen by one item: in doubt if the item is a write
/// that may have been applied, as the outer error otherwise.
fn failed(
    item: &Item,
    tenant: &str,
    redact: &Redact,
    e: &CallError,
    rid: &str,
    status: u16,
) -> ItemResult {
    let ctx = item.ctx(tenant, redact);
    let class = match e.class {
        FailureClass::InDoubt if !ctx.is_write() => FailureClass::Transient,
        c => c,
    };
    ItemResult {
        http: HttpInfo {
            method: ctx.method.clone(),
            path: ctx.path.clone(),
            status,
            request_id: rid.to_string(),
        },
        result: Err(CallError {
            class,
            code: e.code.clone(),
            message: format!("{} {} inside a $batch: {}", ctx.method, ctx.path, e.message),
            retry_after: e.retry_after,
        }),
        retry_after: e.retry_after,
    }
}
