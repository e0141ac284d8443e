//! `delete_users` and `restore_users`: one logical operation over many users,
//! sent as `$batch`es of up to 20 through the tenant's throttle.
//!
//! Items answered 429/5xx, or lost to a timeout or reset, may have been
//! applied (ghosts), so they are never resent blindly: after the longest
//! `Retry-After` among them (or a backoff from the retry policy when none was
//! given) each is read back (`GET /v1.0/users/{id}`, batched); a read showing
//! the change made ends it as `AlreadyDone` (with the write's HTTP
//! description: the call that changed the tenant), a read showing it not made lets it be resent, for at most
//! `batch_retry_rounds` rounds and never waiting longer than
//! `batch_retry_max_wait`. What is left is returned: read as not applied →
//! `Transient` with the remaining `retry_after`; not readable → `InDoubt`.
//! Items failing with nothing sent (connection refused) are resent without a
//! read.

use super::batch::{self, Item, ItemResult, MAX_ITEMS};
use super::tenant::TenantClient;
use crate::model::{Applied, CallError, FailureClass, HttpInfo, WriteOutcome};
use futures::StreamExt;
use rand::Rng;
use tokio::time::Instant;

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

    /// Whether a read of the user (found or not) shows the change made.
    fn applied_if_found(self, found: bool) -> bool {
        match self {
            Op::Delete => !found,
            Op::Restore => found,
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

/// An item still open after a round.
struct Open {
    /// Index into the caller's ids.
    index: usize,
    /// Its last result.
    last: ItemResult,
    /// Whether the change may have been applied (read before resending).
    in_doubt: bool,
    /// When it may be tried again (its `Retry-After`), if the service said.
    not_before: Option<Instant>,
}

/// Runs `op` for every id. One outcome per id, in the order given.
pub(crate) async fn run(
    client: &TenantClient,
    op: Op,
    ids: &[String],
) -> Vec<(String, WriteOutcome)> {
    let opts = &client.shared.options;
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; ids.len()];
    let mut pending = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        match invalid_id(client.tenant_id(), id) {
            Some(o) => outcomes[n] = Some(o),
            None => pending.push(n),
        }
    }
    let mut round = 0u32;
    while !pending.is_empty() {
        let mut open = Vec::new();
        for (index, last) in send_all(client, op, ids, &pending).await {
            match &last.result {
                Ok(_) => outcomes[index] = Some(done(last)),
                Err(e) if e.class == FailureClass::Permanent => outcomes[index] = Some(done(last)),
                Err(e) => {
                    let not_before = last.retry_after.map(|ra| Instant::now() + ra);
                    open.push(Open {
                        index,
                        in_doubt: e.class == FailureClass::InDoubt,
                        last,
                        not_before,
                    });
                }
            }
        }
        if open.is_empty() {
            break;
        }
        round += 1;
        // Wait for the longest Retry-After (or a backoff), if within bounds.
        let now = Instant::now();
        let wake = match open.iter().filter_map(|o| o.not_before).max() {
            Some(t) => t,
            None => {
                now + opts
                    .retry
                    .delay(round, rand::thread_rng().gen::<f64>(), None)
            }
        };
        let may_resend = round <= opts.batch_retry_rounds
            && wake.saturating_duration_since(now) <= opts.batch_retry_max_wait;
        if may_resend {
            tokio::time::sleep_until(wake).await;
        }
        // Read back what may have been applied. Not restores: right after a
        // deletion, a lagging read can still show the user present, so a
        // read-back cannot tell a restore made; the saga settles them by
        // reading after its replication wait.
        let doubtful: Vec<usize> = open
            .iter()
            .enumerate()
            .filter(|(_, o)| o.in_doubt && op == Op::Delete)
            .map(|(n, _)| n)
            .collect();
        let reads = read_back(client, ids, &open, &doubtful).await;
        pending = Vec::new();
        for (n, mut o) in open.into_iter().enumerate() {
            if let Some(read) = reads.get(&n) {
                match read {
                    Some((found, _)) if op.applied_if_found(*found) => {
                        // The write is what changed the tenant: its method,
                        // path, (ambiguous) status and request id are what
                        // the audit must show; the read only confirmed it.
                        outcomes[o.index] = Some(WriteOutcome {
                            http: o.last.http.clone(),
                            result: Ok(Applied::AlreadyDone),
                        });
                        continue;
                    }
                    Some(_) => o.in_doubt = false,
                    None => {}
                }
            }
            if may_resend && !o.in_doubt {
                pending.push(o.index);
            } else {
                // Rounds or patience exhausted, or unreadable: the caller's.
                let i = o.index;
                outcomes[i] = Some(give_back(o));
            }
        }
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
                        "object {id} for tenant {}: outcome unknown after {round} rounds",
                        client.tenant_id()
                    ),
                    retry_after: None,
                }),
            });
            (id, o)
        })
        .collect()
}

fn done(r: ItemResult) -> WriteOutcome {
    WriteOutcome {
        http: r.http,
        result: r.result,
    }
}

/// An open item returned to the caller: `Transient` with the remaining
/// `Retry-After` when known not applied, `InDoubt` otherwise.
fn give_back(o: Open) -> WriteOutcome {
    let mut out = done(o.last);
    if let Err(e) = &mut out.result {
        e.class = if o.in_doubt {
            FailureClass::InDoubt
        } else {
            FailureClass::Transient
        };
        e.retry_after = o
            .not_before
            .map(|t| t.saturating_duration_since(Instant::now()));
    }
    out
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

/// Reads back the users of `open[n]` for each `n` in `which`: per `n`,
/// `Some((found, http))`, or `None` when the read failed.
async fn read_back(
    client: &TenantClient,
    ids: &[String],
    open: &[Open],
    which: &[usize],
) -> std::collections::HashMap<usize, Option<(bool, HttpInfo)>> {
    let width = client.shared.options.max_in_flight_per_tenant.max(1);
    let jobs: Vec<_> = which
        .chunks(MAX_ITEMS)
        .map(<[usize]>::to_vec)
        .map(|chunk: Vec<usize>| async move {
            let items: Vec<Item> = chunk
                .iter()
                .map(|&n| Item {
                    method: "GET",
                    url: format!("/users/{}?$select=id", segment(&ids[open[n].index])),
                    body: None,
                })
                .collect();
            let results = batch::send(client, &items).await;
            chunk.into_iter().zip(results).collect::<Vec<_>>()
        })
        .collect();
    let results: Vec<(usize, ItemResult)> = futures::stream::iter(jobs)
        .buffer_unordered(width)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    results
        .into_iter()
        .map(|(n, r)| {
            let v = match (r.http.status, &r.result) {
                (200, Ok(_)) => Some((true, r.http)),
                (404, _) => Some((false, r.http)),
                _ => None,
            };
            (n, v)
        })
        .collect()
}
