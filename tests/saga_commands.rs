//! Operator commands, status and the event envelope: `given(events).when(command).then(events)`.

mod saga_support;

use closeout::model::{FailureClass, SubscriptionMode};
use closeout::saga::{
    fold, Change, Command, Event, Gate, Progress, SagaState, State, EVENT_VERSION,
};
use saga_support::*;

fn op(c: fn(String, String) -> Command) -> Command {
    c("alice".into(), "ticket 42".into())
}
fn pause() -> Command {
    op(|who, why| Command::Pause { who, why })
}
fn resume() -> Command {
    op(|who, why| Command::Resume { who, why })
}
fn abort() -> Command {
    op(|who, why| Command::Abort { who, why })
}
fn confirm() -> Command {
    op(|who, why| Command::ConfirmGate { who, why })
}

/// (name, history, command, expected events or refusal reason)
type Row = (
    &'static str,
    Vec<Event>,
    Command,
    Result<Vec<Event>, &'static str>,
);

#[test]
fn operator_commands_become_events_with_who_and_why_or_are_refused() {
    let pc = SubscriptionMode::PartnerCenter;
    let running = at_step_1(pc);
    let paused = [
        running.clone(),
        vec![Event::Paused {
            who: "alice".into(),
            why: "x".into(),
        }],
    ]
    .concat();
    let past_pivot = at_step(pc, 4);
    let gated = [
        at_step(SubscriptionMode::Manual, 2),
        gate_waiting(Gate::CancelSubscriptions),
    ]
    .concat();
    let ended = [at_step(pc, 5), vec![Event::SagaCompleted]].concat();
    let who = || ("alice".to_string(), "ticket 42".to_string());
    let (w, y) = who();
    let table: Vec<Row> = vec![
        (
            "pause a running saga",
            running.clone(),
            pause(),
            Ok(vec![Event::Paused {
                who: w.clone(),
                why: y.clone(),
            }]),
        ),
        (
            "pause twice",
            paused.clone(),
            pause(),
            Err("the saga is already paused"),
        ),
        (
            "resume a paused saga",
            paused.clone(),
            resume(),
            Ok(vec![Event::Resumed {
                who: w.clone(),
                why: y.clone(),
            }]),
        ),
        (
            "resume a running saga",
            running.clone(),
            resume(),
            Err("the saga is not paused"),
        ),
        (
            "abort before the pivot",
            running.clone(),
            abort(),
            Ok(vec![Event::AbortRequested {
                who: w.clone(),
                why: y.clone(),
            }]),
        ),
        (
            "abort while paused, before the pivot",
            paused,
            abort(),
            Ok(vec![Event::AbortRequested {
                who: w.clone(),
                why: y.clone(),
            }]),
        ),
        (
            "confirm an open gate",
            gated,
            confirm(),
            Ok(vec![Event::GateConfirmed {
                who: w.clone(),
                why: y.clone(),
            }]),
        ),
        (
            "confirm without a gate",
            running,
            confirm(),
            Err("no operator gate is open"),
        ),
        (
            "pause an ended saga",
            ended,
            pause(),
            Err("the saga has ended (Completed)"),
        ),
    ];
    for (name, history, command, expected) in table {
        let got = given(history).command(command);
        match (got, expected) {
            (Ok(events), Ok(want)) => assert_eq!(events, want, "{name}"),
            (Err(refusal), Err(want)) => {
                assert_eq!(refusal.reason, want, "{name}");
                assert!(refusal.record.is_empty(), "{name}");
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    // Abort after the pivot: refused, and the refusal is recorded for the audit.
    let refusal = given(past_pivot).command(abort()).unwrap_err();
    assert!(
        refusal.reason.contains("point of no return"),
        "{}",
        refusal.reason
    );
    assert_eq!(
        refusal.record,
        vec![Event::AbortRefused {
            who: w,
            why: y,
            reason: refusal.reason.clone(),
        }]
    );
}

#[test]
fn abort_before_the_pivot_rolls_back_what_was_done() {
    let history = [
        at_step_1(SubscriptionMode::PartnerCenter),
        vec![
            intent(0, Change::DeleteUser, &["b", "c"]),
            applied(0, "b"),
            failed(0, "c", FailureClass::Permanent, None),
            Event::AbortRequested {
                who: "alice".into(),
                why: "wrong tenant".into(),
            },
        ],
    ]
    .concat();
    let g = given(history);
    assert_eq!(g.0.status().state, SagaState::Compensating);
    assert_eq!(
        g.when(T0),
        vec![
            record(vec![intent(1, Change::RestoreUser, &["b"])]),
            change(1, Change::RestoreUser, &["b"]),
        ]
    );
}

#[test]
fn abort_is_refused_once_the_deleted_users_restore_window_has_closed() {
    // Users deleted at T0, the saga waiting at step 2 (a person's gate)
    // before any pivot: 30 days on, they can no longer be restored.
    let history = [
        at_step(SubscriptionMode::PartnerCenter, 1),
        vec![
            intent(0, Change::DeleteUser, &["b"]),
            applied(0, "b"),
            Event::StepCompleted { step: 1 },
            Event::StepStarted { step: 2 },
        ],
        gate_waiting(Gate::EndSubscriptionsElsewhere),
    ]
    .concat();
    let g = given(history);
    assert!(!g.0.pivot());
    const DAY: u64 = 24 * 3600 * 1000;
    assert_eq!(
        g.command_at(abort(), T0 + 29 * DAY),
        Ok(vec![Event::AbortRequested {
            who: "alice".into(),
            why: "ticket 42".into(),
        }]),
        "inside the window the users can still be restored"
    );
    let refusal = g.command_at(abort(), T0 + 30 * DAY).unwrap_err();
    assert!(
        refusal.reason.contains("restore window closed"),
        "{}",
        refusal.reason
    );
    assert!(matches!(
        refusal.record.as_slice(),
        [Event::AbortRefused { .. }]
    ));
}

#[test]
fn status_reports_state_step_progress_and_what_is_awaited() {
    let pc = SubscriptionMode::PartnerCenter;
    let s = given(
        [
            at_step_1(pc),
            vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                failed(0, "c", FailureClass::Transient, None),
            ],
        ]
        .concat(),
    )
    .0
    .status();
    assert_eq!(s.state, SagaState::Running);
    assert_eq!(s.step, Some(1));
    assert_eq!(s.progress, Progress { done: 1, total: 2 });
    assert_eq!(
        s.last_error.as_deref(),
        Some("c: code (Transient): message")
    );
    assert_eq!(s.updated_at, ts(T0));

    let g = given(
        [
            at_step(SubscriptionMode::Manual, 2),
            gate_waiting(Gate::CancelSubscriptions),
        ]
        .concat(),
    );
    let s = g.0.status();
    assert_eq!(s.state, SagaState::Waiting);
    assert_eq!(s.waiting_for.as_deref(), Some("do it"));

    let s = given(vec![started(pc)]).0.status();
    assert_eq!((s.state, s.step), (SagaState::Running, None));

    let s = given([at_step(pc, 5), vec![Event::SagaCompleted]].concat()).0;
    assert!(s.is_terminal());
    assert_eq!(s.status().state, SagaState::Completed);
    assert_eq!(s.status().progress, Progress { done: 1, total: 1 });

    let s = given([at_step_1(pc), vec![intent(0, Change::DeleteUser, &["b"])]].concat()).0;
    assert_eq!(s.in_doubt(), vec![(Change::DeleteUser, "b".to_string())]);

    let json = serde_json::to_value(given(vec![started(pc)]).0.status()).expect("json");
    assert_eq!(json["state"], "running");
    assert_eq!(json["progress"]["done"], 0);
}

#[test]
fn events_are_versioned_and_survive_the_codec_and_json() {
    let history = [
        at_step_1(SubscriptionMode::PartnerCenter),
        vec![
            intent(0, Change::DeleteUser, &["b", "c"]),
            applied(0, "b"),
            failed(0, "c", FailureClass::InDoubt, Some(2)),
        ],
    ]
    .concat();
    let decoded: Vec<Event> = history
        .iter()
        .map(|e| {
            let bytes = e.encode().expect("encode");
            assert_eq!(bytes[..2], EVENT_VERSION.to_le_bytes());
            Event::decode(&bytes).expect("decode")
        })
        .collect();
    assert_eq!(decoded, history);
    let state = fold(&decoded).expect("the events begin with saga_started");
    assert_eq!(
        state,
        fold(&history).expect("the events begin with saga_started")
    );
    assert_eq!(
        State::decode(&state.encode().expect("snapshot")).expect("snapshot"),
        state
    );
    let mut future = Event::SagaCompleted.encode().expect("encode");
    future[0] = future[0].wrapping_add(1);
    assert!(matches!(
        Event::decode(&future),
        Err(closeout::codec::Error::UnknownVersion { .. })
    ));

    let e = &history[history.len() - 1];
    assert_eq!(e.kind(), "change_failed");
    assert_eq!(e.http().map(|h| h.status), Some(503));
    assert_eq!(e.objects(), vec!["c"]);
    let intent = (history.iter())
        .find(|e| e.kind() == "change_intended")
        .expect("an intent");
    assert_eq!(intent.objects(), vec!["b", "c"]);
    let json = serde_json::to_value(e).expect("json");
    assert_eq!(json["change_failed"]["error"]["class"], "in_doubt");
    // The first event holds the secret's location, never a secret.
    let first = serde_json::to_string(&history[0]).expect("json");
    assert!(first.contains("t1-secret") && first.contains("credential"));
}

#[test]
fn plan_lists_what_would_be_done_without_changing_anything() {
    let Event::InventoryRecorded { inventory } = inventory() else {
        unreachable!()
    };
    let p = closeout::saga::plan(
        &spec(SubscriptionMode::Manual, vec!["A@t1".into()]),
        &inventory,
    );
    assert_eq!(p.keep, Ok(vec!["a".to_string()]));
    let ids: Vec<&str> = p.delete_users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, vec!["b", "c"]);
    assert_eq!(p.cancel_subscriptions.len(), 1);
    assert_eq!(p.delete_subscriptions.len(), 1);
    assert!(p.disable_security_defaults);
    assert_eq!(p.disable_ca_policies, vec!["p1".to_string()]);

    let bad = closeout::saga::plan(
        &spec(SubscriptionMode::Manual, vec!["c".into()]),
        &inventory,
    );
    assert_eq!(
        bad.keep,
        Err("tenant t1: no keep account holds the Global Administrator role".to_string())
    );
}

#[test]
fn a_failed_read_reads_as_a_sentence_with_a_count_not_a_dump() {
    let ids: Vec<String> = (0..3000).map(|n| format!("{n:08}-id")).collect();
    let s = given(
        [
            at_step_1(SubscriptionMode::PartnerCenter),
            vec![Event::ReadFailed {
                read: closeout::saga::Read::CheckUsers { ids },
                error: error(FailureClass::Transient, None),
            }],
        ]
        .concat(),
    )
    .0;
    let last = s.status().last_error.expect("a last error");
    assert!(last.starts_with("look up 3000 users by id: "), "{last}");
    assert!(
        !last.contains("00000001-id") && !last.contains('{'),
        "{last}"
    );
}

#[test]
fn a_history_that_does_not_begin_with_saga_started_is_named_not_replayed() {
    let none: Vec<Event> = Vec::new();
    let err = closeout::saga::fold(&none).expect_err("no records: no saga");
    assert_eq!(err.found, "nothing");
    let headless = [
        Event::StepStarted { step: 1 },
        started(SubscriptionMode::PartnerCenter),
    ];
    let err = closeout::saga::fold(&headless).expect_err("a headless history");
    assert_eq!(err.found, "step_started");
    assert!(
        err.to_string()
            .contains("`step_started`, not `saga_started`"),
        "{err}"
    );
    // Its header is there from the first record on, and a status names it.
    let state = closeout::saga::fold(&[started(SubscriptionMode::PartnerCenter)])
        .expect("begins with saga_started");
    let status = state.status();
    assert_eq!(status.saga_id, state.header.saga_id.0);
    assert_eq!(status.tenant_id, state.header.spec.tenant_id);
}
