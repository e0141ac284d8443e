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
                url: format!("/users/{id}"),
                body: None,
            },
            Op::Restore => Item {
                method: "POST",
                url: format!("/directory/deletedItems/{id}/restore"),
                body: None,
            },
        }
    }
}

/// An object id closeout puts in a URL: letters, digits and `-_.@` only, so
/// it can never change the path or query.
pub(crate) fn invalid_id(tenant: &str, id: &str) -> Option<WriteOutcome> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
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
