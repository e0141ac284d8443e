//! `delete_users` and `restore_users`: one logical operation over many users,
//! sent once as `$batch`es of up to 20 through the tenant's throttle.
//!
//! Each item's outcome is returned as the service judged it (see
//! [`super::batch`]): done, already done (a 404 on a delete), or a classified
//! error. Nothing is resent or read back here: an item answered 429/5xx or
//! lost may have been applied, and only the saga, which recorded the intent,
//! decides when to read it back and whether to send it again (its
//! `RetryScheduled` and in-doubt reads are in the event log; a second,
//! unrecorded loop here would change the tenant behind the log's back).

use super::batch::{self, Item, ItemResult, MAX_ITEMS};
use super::tenant::TenantClient;
use crate::model::{CallError, FailureClass, HttpInfo, WriteOutcome};
use futures::StreamExt;

/// Which logical operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `DELETE /v1.0/users/{id}`.
    Delete,
    /// `POST /v1.0/directory/deletedItems/{id}/restore`.
    Restore,
}

impl Op {
    fn item(self, id: &str) -> Item {
        match self {
            Op::Delete => Item {
                method: "DELETE",
                url: format!("/users/{}", segment(id)),
                body: None,
            },
            Op::Restore => Item {
                method: "POST",
                url: format!("/directory/deletedItems/{}/restore", segment(id)),
                // https://learn.microsoft.com/graph/json-batching: a write
                // item whose target needs no body still carries an empty
                // `body` (and so a `Content-Type`, which `batch::send` adds to
                // every item with a body), or Graph rejects the whole batch.
                body: Some(serde_json::json!({})),
            },
        }
    }
}

/// An object id as one URL path segment: every byte outside RFC 3986's
/// unreserved characters (and `@`, which user principal names carry) is
/// percent-encoded, so an id can never change the path or add a query, and an
/// unusual id still reaches the service, which judges it.
pub(crate) fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Refuses the few ids no encoding makes a segment of (empty, `.`, `..`,
/// which would name the collection or its parent instead of an object).
pub(crate) fn invalid_id(tenant: &str, id: &str) -> Option<WriteOutcome> {
    let ok = !matches!(id, "" | "." | "..");
    (!ok).then(|| WriteOutcome {
        http: HttpInfo {
            method: String::new(),
            path: String::new(),
            status: 0,
            request_id: String::new(),
        },
        result: Err(CallError {
            class: FailureClass::Permanent,
            code: "invalid_id".into(),
            message: format!("object id {id:?} for tenant {tenant} is not a valid id"),
            retry_after: None,
        }),
    })
}

/// Runs `op` for every id: each id is sent once, in `$batch`es of up to 20.
/// One outcome per id, in the order given.
pub(crate) async fn run(
    client: &TenantClient,
    op: Op,
    ids: &[String],
) -> Vec<(String, WriteOutcome)> {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; ids.len()];
    let mut pending = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        match invalid_id(client.tenant_id(), id) {
            Some(o) => outcomes[n] = Some(o),
            None => pending.push(n),
        }
    }
    for (index, item) in send_all(client, op, ids, &pending).await {
        outcomes[index] = Some(WriteOutcome {
            http: item.http,
            result: item.result,
        });
    }
    ids.iter()
        .cloned()
        .zip(outcomes)
        .map(|(id, o)| {
            let o = o.unwrap_or_else(|| WriteOutcome {
                http: HttpInfo {
                    method: String::new(),
                    path: String::new(),
                    status: 0,
                    request_id: String::new(),
                },
                result: Err(CallError {
                    class: FailureClass::InDoubt,
                    code: "not_resolved".into(),
                    message: format!(
                        "object {id} for tenant {}: no outcome from its $batch",
                        client.tenant_id()
                    ),
                    retry_after: None,
                }),
            });
            (id, o)
        })
        .collect()
}

/// Sends the items at `indexes` as concurrent batches of up to 20.
async fn send_all(
    client: &TenantClient,
    op: Op,
    ids: &[String],
    indexes: &[usize],
) -> Vec<(usize, ItemResult)> {
    let width = client.shared.options.max_in_flight_per_tenant.max(1);
    let jobs: Vec<_> = indexes
        .chunks(MAX_ITEMS)
        .map(<[usize]>::to_vec)
        .map(|chunk: Vec<usize>| async move {
            let items: Vec<Item> = chunk.iter().map(|&n| op.item(&ids[n])).collect();
            let results = batch::send(client, &items).await;
            chunk.into_iter().zip(results).collect::<Vec<_>>()
        })
        .collect();
    futures::stream::iter(jobs)
        .buffer_unordered(width)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}
