//! The JSON message a webhook receives, built from the saga's state and one
//! owed notice. Its `summary` is plain text without links (chat and pager
//! integrations render it as is); its `id` is stable across re-sends.

use crate::saga::{ActionRequired, Event, Notice, NoticeKind, State, Told};
use serde::{Deserialize, Serialize};

/// One notification, as POSTed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Idempotency id, `{saga_id}/{notice number}`: the same on every re-send.
    pub id: String,
    /// What happened: the notice's kind, snake_case in the JSON.
    pub kind: NoticeKind,
    /// The saga's id, as `closeout resume` and `closeout abort` take it.
    pub saga_id: String,
    /// The tenant it closes.
    pub tenant_id: String,
    /// The batch it was submitted with, if recorded.
    pub batch_id: Option<String>,
    /// The step it was in when this happened (1-5), if any.
    pub step: Option<u8>,
    /// What the person must do, in words.
    pub action: String,
    /// The same, item by item, while the saga waits for it.
    pub action_required: Option<ActionRequired>,
    /// A one-paragraph plain-text summary without links.
    pub summary: String,
    /// On a batch's end: the event log's head hash when the message was
    /// made, so that the receiving system holds an anchor that `closeout
    /// verify --expect-head` can check the log against later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_head: Option<String>,
}

impl Message {
    /// The message for notice `number` of the saga in `state`.
    pub fn build(state: &State, number: u32, notice: &Notice) -> Message {
        let (saga_id, tenant_id) = (
            state.header.saga_id.0.clone(),
            state.header.spec.tenant_id.clone(),
        );
        let kind = notice.kind();
        let action = match &notice.told {
            Told::GateOpened { instructions } => instructions.clone(),
            Told::Paused { .. } => format!(
                "Find and fix the cause, then run: closeout resume {saga_id} (or closeout abort {saga_id} before the point of no return)"
            ),
            Told::Failed { .. } => format!(
                "Nothing irreversible was done. Review closeout audit --saga {saga_id}, fix the cause and submit the tenant again"
            ),
            Told::RolledBack { .. } => format!(
                "Every change was undone. Review closeout audit --saga {saga_id}; submit the tenant again if it should still be closed"
            ),
            Told::BatchFinished { .. } => {
                "Review closeout status for the sagas that did not complete".to_string()
            }
            Told::SagaStopped { .. } => format!(
                "Read the reason in closeout status {saga_id} and the daemon's log, fix the cause, then run: closeout resume {saga_id}"
            ),
        };
        let what = match kind {
            NoticeKind::GateOpened => "waits for a person",
            NoticeKind::Paused => "is paused",
            NoticeKind::Failed => "failed",
            NoticeKind::RolledBack => "was rolled back",
            NoticeKind::BatchFinished => "ended the last of its batch",
            NoticeKind::SagaStopped => "stopped: its task ended",
        };
        let step = notice
            .step
            .map(|s| format!(" at step {s} of 5"))
            .unwrap_or_default();
        // A gate's detail is its instructions, already the action.
        let detail = match detail(&notice.told) {
            None => String::new(),
            Some(d) => format!(" ({})", d.trim_end_matches('.')),
        };
        let summary = link_free(&format!(
            "closeout: the closure of tenant {tenant_id} (saga {saga_id}) {what}{step}{detail}. To do: {}.",
            action.trim_end_matches('.'),
        ));
        Message {
            id: format!("{saga_id}/{number}"),
            kind,
            batch_id: state.batch.as_ref().map(|(b, _)| b.clone()),
            saga_id,
            tenant_id,
            step: notice.step,
            action: link_free(&action),
            action_required: state.action_required(),
            summary,
            log_head: None,
        }
    }
}

/// What a notice says beyond its kind, in the message's words (`None` for a
/// gate, whose instructions are the message's action).
fn detail(told: &Told) -> Option<String> {
    Some(match told {
        Told::GateOpened { .. } => return None,
        Told::Paused { who, why } => format!("paused by {who}: {why}"),
        Told::SagaStopped { reason } => format!("saga task stopped: {reason}"),
        Told::Failed { reason } => format!("failed: {reason}"),
        Told::RolledBack { why } => format!("rolled back: {why}"),
        Told::BatchFinished {
            batch_id,
            completed,
            rolled_back,
            failed,
        } => tally(batch_id, *completed, *rolled_back, *failed),
    })
}

/// A finished batch's tally, as the notice and the audit say it.
fn tally(batch_id: &str, completed: u32, rolled_back: u32, failed: u32) -> String {
    format!(
        "batch {batch_id} finished: {completed} completed, {rolled_back} rolled back, {failed} failed"
    )
}

/// How the audit describes the events of notifications and batches (empty
/// for any other event).
pub fn describe(event: &Event) -> String {
    match event {
        Event::NotificationSent {
            notice,
            kind,
            webhook,
            host,
            attempts,
            status,
        } => format!(
            "notification {notice} ({}) sent to webhook {webhook} ({host}): {status} after {attempts} attempts",
            kind.as_str()
        ),
        Event::NotificationAbandoned {
            notice,
            kind,
            webhook,
            host,
            attempts,
            reason,
        } => format!(
            "notification {notice} ({}) to webhook {webhook} ({host}) abandoned after {attempts} attempts: {reason}",
            kind.as_str()
        ),
        Event::BatchJoined { batch_id, size } => {
            format!("submitted in batch {batch_id} of {size} tenants")
        }
        Event::BatchFinished {
            batch_id,
            completed,
            rolled_back,
            failed,
        } => tally(batch_id, *completed, *rolled_back, *failed),
        _ => String::new(),
    }
}

/// `text` with every word that looks like a link (`scheme://...`, `www.`)
/// replaced by `[link removed]`.
pub fn link_free(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            if lower.contains("://") || lower.starts_with("www.") {
                "[link removed]"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::{apply, fold, Gate, SubscriptionRef};

    use super::tests_support::started;

    #[test]
    fn link_free_drops_links_and_keeps_words() {
        assert_eq!(
            link_free("see https://x.y/?token=1 or www.example.com now"),
            "see [link removed] or [link removed] now"
        );
        assert_eq!(link_free("plain text"), "plain text");
    }

    #[test]
    fn a_gate_message_names_the_saga_the_step_and_what_to_cancel() {
        let state = fold(&[
            started(),
            Event::BatchJoined {
                batch_id: "b-1".into(),
                size: 2,
            },
            Event::StepStarted { step: 2 },
            Event::SubscriptionsRead {
                subscriptions: vec![SubscriptionRef {
                    id: "sub-9".into(),
                    sku: "ENTERPRISEPACK".into(),
                    status: crate::model::SubscriptionStatus::Enabled,
                }],
            },
            Event::GateOpened {
                gate: Gate::CancelSubscriptions,
                instructions: "Cancel ENTERPRISEPACK (sub-9) at https://admin.example".into(),
            },
        ])
        .expect("the events begin with saga_started");
        let owed = state.owed_notices(1);
        assert_eq!(owed.len(), 1);
        let (number, notice, hooks) = &owed[0];
        assert_eq!(hooks, &vec![0]);
        let m = Message::build(&state, *number, notice);
        assert_eq!(m.id, "s-1/0");
        assert_eq!(m.kind, NoticeKind::GateOpened);
        assert_eq!((m.saga_id.as_str(), m.tenant_id.as_str()), ("s-1", "t-1"));
        assert_eq!(m.batch_id.as_deref(), Some("b-1"));
        assert_eq!(m.step, Some(2));
        assert!(!m.summary.contains("://"), "{}", m.summary);
        assert!(m.summary.contains("waits for a person at step 2"));
        let required = m.action_required.expect("a gate requires an action");
        assert_eq!(required.subscriptions.len(), 1);
        assert_eq!(required.subscriptions[0].action, "cancel");
        assert_eq!(required.subscriptions[0].id, "sub-9");
        let json = serde_json::to_value(Message::build(&state, *number, notice)).unwrap();
        assert_eq!(json["kind"], "gate_opened");
        assert_eq!(json["action_required"]["where"], crate::saga::ADMIN_CENTER);
    }

    #[test]
    fn owed_notices_follow_the_events_and_settle_per_webhook() {
        let mut state = fold(&[started(), Event::StepStarted { step: 1 }])
            .expect("the events begin with saga_started");
        assert!(state.owed_notices(2).is_empty());
        state = apply(
            state,
            &Event::Paused {
                who: "closeout".into(),
                why: "boom".into(),
            },
        );
        state = apply(
            state,
            &Event::SagaFailed {
                reason: "keep list".into(),
            },
        );
        let owed: Vec<(u32, NoticeKind, Vec<u16>)> = state
            .owed_notices(2)
            .into_iter()
            .map(|(n, notice, hooks)| (n, notice.kind(), hooks))
            .collect();
        assert_eq!(
            owed,
            vec![
                (0, NoticeKind::Paused, vec![0, 1]),
                (1, NoticeKind::Failed, vec![0, 1])
            ]
        );
        state = apply(
            state,
            &Event::NotificationSent {
                notice: 0,
                kind: NoticeKind::Paused,
                webhook: 1,
                host: "h".into(),
                attempts: 1,
                status: 200,
            },
        );
        state = apply(
            state,
            &Event::NotificationAbandoned {
                notice: 1,
                kind: NoticeKind::Failed,
                webhook: 0,
                host: "h".into(),
                attempts: 9,
                reason: "down".into(),
            },
        );
        let left: Vec<(u32, Vec<u16>)> = state
            .owed_notices(2)
            .into_iter()
            .map(|(n, _, hooks)| (n, hooks))
            .collect();
        assert_eq!(left, vec![(0, vec![0]), (1, vec![1])]);
        assert!(
            state.owed_notices(0).is_empty(),
            "no webhooks, nothing owed"
        );
        let m = Message::build(&state, 0, &state.notices[&0]);
        assert!(m.action.contains("closeout resume s-1"));
        assert_eq!(m.step, Some(1));
    }
}

#[cfg(test)]
mod preflight {
    use crate::saga::{fold, Event, MfaView, TenantView, UserRef};

    #[test]
    fn a_failed_preflight_lists_what_still_blocks_the_tenant_deletion() {
        let mut events = vec![super::tests_support::started()];
        events.push(Event::StepStarted { step: 5 });
        events.push(Event::TenantRead {
            view: TenantView {
                users: vec![
                    UserRef {
                        id: "u1".into(),
                        upn: "admin@t".into(),
                    },
                    UserRef {
                        id: "u2".into(),
                        upn: "bob@t".into(),
                    },
                ],
                subscriptions: Vec::new(),
                mfa: MfaView {
                    security_defaults: true,
                    ca_policies: Vec::new(),
                    per_user: Vec::new(),
                },
                applications: Vec::new(),
            },
        });
        events.push(Event::Paused {
            who: "closeout".into(),
            why: "step 5 preflight failed: 1 users besides the keep accounts".into(),
        });
        let state = fold(&events).expect("the events begin with saga_started");
        let required = state.action_required().expect("paused: an action");
        assert!(
            required.place.contains("closeout resume s-1"),
            "{required:?}"
        );
        assert_eq!(required.failing_preconditions.len(), 3, "{required:?}");
        assert!(required.failing_preconditions[0].contains("bob@t"));
        assert!(required.failing_preconditions[1].contains("security defaults"));
    }
}

#[cfg(test)]
mod tests_support {
    use crate::model::{SagaId, SecretSource, SubscriptionMode, TenantSpec, Timestamp};
    use crate::saga::{Event, SagaPolicy};

    /// The first event of a manual-mode saga `s-1` for tenant `t-1`.
    pub fn started() -> Event {
        Event::SagaStarted {
            saga_id: SagaId("s-1".into()),
            spec: TenantSpec {
                tenant_id: "t-1".into(),
                client_id: "c".into(),
                secret: SecretSource::File("/x".into()),
                keep: vec!["admin@t".into()],
                subscriptions: SubscriptionMode::Manual,
            },
            policy: SagaPolicy::default(),
            at: Timestamp(0),
            submitted_by: "op".into(),
        }
    }
}
