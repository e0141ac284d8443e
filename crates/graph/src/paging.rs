//! The paging helper: reads every page of a Graph collection by following
//! `@odata.nextLink` (absolute URLs, used as given, never built by hand).
//! A next link must stay on the Graph host, so a token is never sent
//! elsewhere; a repeated link is an error instead of an endless loop, and
//! so is a chain of distinct links longer than `[limits] max_pages`. Every
//! page must carry its `value` array ([`Page`]): a 2xx page without one
//! (`{}`) is a `bad_response`, never an empty listing.

use super::tenant::TenantClient;
use super::wire::Page;
use crate::model::{CallError, FailureClass};
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use url::Url;

/// Every item of the collection at `first`.
pub(crate) async fn get_all<T: DeserializeOwned>(
    client: &TenantClient,
    first: Url,
) -> Result<Vec<T>, CallError> {
    let mut items = Vec::new();
    let mut url = first;
    let mut seen = HashSet::new();
    let redact = client.tokens.redact();
    loop {
        // The path of a next link is the service's text.
        let ctx_path = redact.apply(url.path());
        let page: Page<T> = match client.get_json(url.clone()).await? {
            Some(p) => p,
            None => {
                return Err(CallError {
                    class: FailureClass::Permanent,
                    code: "Request_ResourceNotFound".into(),
                    message: format!(
                        "GET {ctx_path} for tenant {} answered 404",
                        client.tenant_id()
                    ),
                    retry_after: None,
                })
            }
        };
        items.extend(page.value);
        let Some(next) = page.next_link else {
            return Ok(items);
        };
        if seen.len() + 1 >= client.shared.options.max_pages as usize {
            return Err(CallError {
                class: FailureClass::Permanent,
                code: "too_many_pages".into(),
                message: format!(
                    "GET {ctx_path} for tenant {}: more than {} pages ([limits] max_pages); \
                     the listing was abandoned",
                    client.tenant_id(),
                    client.shared.options.max_pages
                ),
                retry_after: None,
            });
        }
        let next = next_url(client, &url, &next)?;
        if !seen.insert(next.to_string()) {
            return Err(bad_link(client, &ctx_path, "repeats an earlier page"));
        }
        url = next;
    }
}

fn next_url(client: &TenantClient, current: &Url, next: &str) -> Result<Url, CallError> {
    let path = || client.tokens.redact().apply(current.path());
    let parsed =
        Url::parse(next).map_err(|_| bad_link(client, &path(), "is not an absolute url"))?;
    let graph = &client.shared.endpoints.graph;
    if parsed.origin() != graph.origin() {
        return Err(bad_link(client, &path(), "points to another host"));
    }
    Ok(parsed)
}

fn bad_link(client: &TenantClient, path: &str, why: &str) -> CallError {
    CallError {
        class: FailureClass::Permanent,
        code: "bad_next_link".into(),
        message: format!(
            "GET {path} for tenant {}: @odata.nextLink {why}",
            client.tenant_id()
        ),
        retry_after: None,
    }
}
