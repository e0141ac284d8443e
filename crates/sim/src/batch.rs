//! JSON batching, `POST /v1.0/$batch`: at most 20 items with unique ids (else
//! 400 for the whole batch), a `body` and a `Content-Type` on every write item
//! (POST, PATCH, PUT) and a `Content-Type` on any item with a body (else 400
//! for the whole batch),
//! `dependsOn` on earlier items (a failed dependency gives 424). Each item goes
//! through the same Graph handler as a top-level call, so it is authenticated,
//! throttled and faulted (5xx or ghost) on its own and recorded in the ledger
//! with its own path. Responses come back in a seeded random order.

use super::faults::{Fault, Faults};
use super::graph;
use super::http::{graph_error, transient_code, Req, Resp};
use super::state::World;
use super::Config;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tokio::time::Instant;

/// Handles a `$batch` request under the world lock.
pub fn handle(
    world: &mut World,
    faults: &mut Faults,
    req: &Req,
    now: Instant,
    cfg: &Config,
) -> Resp {
    let date = world.clock.rfc3339(now);
    let bad = |msg: &str| graph_error(req, &date, 400, "BadRequest", msg);
    let version = if req.path.starts_with("/beta") {
        "/beta"
    } else {
        "/v1.0"
    };
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return bad("Invalid batch payload format.");
    };
    let Some(items) = body.get("requests").and_then(Value::as_array) else {
        return bad("Invalid batch payload format: the 'requests' property is missing.");
    };
    if items.is_empty() {
        return bad("Invalid batch payload format: no requests.");
    }
    if items.len() > 20 {
        return bad("The number of requests in the batch exceeds the limit of 20.");
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        // json-batching: `id` is "Required. String."
        let id = match item.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return bad("A batch request's 'id' must be a string."),
            None => return bad("Every request in a batch needs an 'id'."),
        };
        if seen.contains(&id) {
            return bad(&format!("Batch request id '{id}' is a duplicate."));
        }
        let (Some(method), Some(url)) = (
            item.get("method").and_then(Value::as_str),
            item.get("url").and_then(Value::as_str),
        ) else {
            return bad(&format!(
                "Batch request '{id}' needs a 'method' and a 'url'."
            ));
        };
        let headers: Map<String, Value> = item
            .get("headers")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let item_body = item.get("body").filter(|b| !b.is_null());
        let has_ct = headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"));
        // https://learn.microsoft.com/graph/json-batching: "When a body is
        // included with the request, the headers object must contain a value
        // for Content-Type", and for a POST whose target needs no body "you
        // must still specify the headers and body parameters where only body
        // can be an empty object". Graph refuses the whole batch with 400 and
        // this message (observed; the page does not print it) when a write
        // item lacks either.
        let is_write = matches!(
            method.to_ascii_uppercase().as_str(),
            "POST" | "PATCH" | "PUT"
        );
        if (item_body.is_some() || is_write) && !(has_ct && item_body.is_some()) {
            return bad(&format!(
                "Write request id : {id} does not contain Content-Type header or body."
            ));
        }
        let deps: Vec<String> = item
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(d) = deps.iter().find(|d| !seen.contains(d)) {
            return bad(&format!(
                "Batch request '{id}' depends on '{d}', which is not an earlier request."
            ));
        }
        seen.push(id.clone());
        parsed.push((
            id,
            method.to_ascii_uppercase(),
            url.to_string(),
            item_body.cloned(),
            deps,
            headers,
        ));
    }
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::with_capacity(parsed.len());
    for (id, method, url, item_body, deps, headers) in parsed {
        // json-batching: "the relative resource URL ... while the absolute
        // URL is https://graph.microsoft.com/v1.0/users, this url is
        // /users": a version inside it is not stripped (and then names no
        // resource).
        let rel = url.trim_start_matches('/');
        let (path_part, query) = rel.split_once('?').unwrap_or((rel, ""));
        let sub = Req {
            method: method.clone(),
            path: format!("{version}/{}", super::server::percent_decode(path_part)),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            bearer: req.bearer.clone(),
            client_request_id: headers
                .get("client-request-id")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| req.client_request_id.clone()),
            json_content: item_body.is_some(),
            body: item_body
                .map(|b| bytes::Bytes::from(b.to_string()))
                .unwrap_or_default(),
            base: req.base.clone(),
            request_id: super::server::request_id(),
            partner_headers: Vec::new(),
        };
        let resp = if deps
            .iter()
            .any(|d| statuses.get(d).is_none_or(|s| *s >= 400))
        {
            graph_error(
                &sub,
                &date,
                424,
                "FailedDependency",
                "The request depends on a request that failed.",
            )
        } else if sub.path.ends_with("/$batch") {
            graph_error(
                &sub,
                &date,
                400,
                "BadRequest",
                "A batch cannot contain a batch.",
            )
        } else {
            let fault = if faults.rates.any() {
                faults.decide(false)
            } else {
                Fault::None
            };
            match fault {
                Fault::Error(s) => graph_error(
                    &sub,
                    &date,
                    s,
                    transient_code(s),
                    "The service is temporarily unavailable.",
                ),
                _ => {
                    let out = graph::handle(world, &sub, now, cfg);
                    let mut resp = out.resp;
                    if let Fault::Ghost(s) = fault {
                        resp = graph_error(
                            &sub,
                            &date,
                            s,
                            transient_code(s),
                            "The service is temporarily unavailable.",
                        );
                        if s == 429 {
                            resp = resp.header("Retry-After", "1");
                        }
                    }
                    if let Some(t) = out.changed {
                        let path = sub.path.clone();
                        world
                            .ledger
                            .record(date.clone(), &t, &method, &path, resp.status);
                    }
                    resp
                }
            }
        };
        statuses.insert(id.clone(), resp.status);
        responses.push(item_json(&id, &sub.request_id, resp));
    }
    faults.shuffle(&mut responses);
    Resp::json(200, json!({"responses": responses}))
}

fn item_json(id: &str, request_id: &str, resp: Resp) -> Value {
    let mut headers = Map::new();
    headers.insert("request-id".into(), json!(request_id));
    if resp.body.is_some() {
        headers.insert("Content-Type".into(), json!("application/json"));
    }
    for (k, v) in &resp.headers {
        headers.insert(k.clone(), json!(v));
    }
    let mut item = json!({"id": id, "status": resp.status, "headers": headers});
    if let Some(b) = resp.body {
        item["body"] = b;
    }
    item
}
