//! Table-driven `given(events).when(now).then(actions)` tests of `decide` for
//! every step, mode and failure class.

mod saga_support;

use closeout::model::{FailureClass, PartnerStatus, SubscriptionMode, SubscriptionStatus};
use closeout::saga::{
    Action, Call, Change, Event, FailurePolicy, Gate, IdentitySource, Read, SagaPolicy,
};
use saga_support::*;
use std::time::Duration;

use closeout::saga::subscriptions::{Kind, Seller, SubscriptionClass};

/// The partner's subscriptions, classified: (id, kind, NCE window end).
fn classified(subs: &[(&str, Kind, Option<u64>)]) -> Event {
    Event::SubscriptionsClassified {
        subscriptions: subs
            .iter()
            .map(|(id, kind, window)| SubscriptionClass {
                id: id.to_string(),
                sku: "E3".into(),
                status: SubscriptionStatus::Enabled,
                seller: Seller::Partner,
                kind: *kind,
                partner_id: Some(id.to_string()),
                partner_status: Some("active".into()),
                auto_renew: Some(true),
                term_end: None,
                window_end: window.map(ts),
            })
            .collect(),
    }
}

/// Partner NCE subscriptions past their window: (id, window end, term end).
fn classified_ending(subs: &[(&str, u64, u64)]) -> Event {
    let Event::SubscriptionsClassified { mut subscriptions } = classified(
        &subs
            .iter()
            .map(|(id, w, _)| (*id, Kind::Nce, Some(*w)))
            .collect::<Vec<_>>(),
    ) else {
        unreachable!()
    };
    for (c, (_, _, end)) in subscriptions.iter_mut().zip(subs) {
        c.term_end = Some(ts(*end));
    }
    Event::SubscriptionsClassified { subscriptions }
}

/// One row: a name, the history, the time, the expected actions.
struct Case {
    name: &'static str,
    given: Vec<Event>,
    now: u64,
    then: Vec<Action>,
}

fn check(cases: Vec<Case>) {
    for c in cases {
        let actions = given(c.given).when(c.now);
        assert_eq!(actions, c.then, "case `{}`", c.name);
    }
}

#[test]
fn before_step_one_the_inventory_and_keep_list_are_checked() {
    let pc = SubscriptionMode::PartnerCenter;
    check(vec![
        Case {
            name: "a new saga confirms its tenant's GUID with its own token first",
            given: vec![started(pc), resolved()[0].clone()],
            now: T0,
            then: vec![read(Read::Organization)],
        },
        Case {
            name: "then it reads the inventory",
            given: [vec![started(pc)], resolved()].concat(),
            now: T0,
            then: vec![read(Read::Inventory)],
        },
        Case {
            name: "the token's organization is another tenant: fails before any change",
            given: vec![
                started(pc),
                resolved()[0].clone(),
                Event::TenantResolved {
                    tenant_guid: "00000000-0000-4000-8000-00000000000f".into(),
                    source: IdentitySource::Organization,
                },
            ],
            now: T0,
            then: vec![record(vec![Event::SagaFailed {
                reason: format!(
                    "tenant t1: its discovery document names tenant {GUID} but its token's organization is 00000000-0000-4000-8000-00000000000f: nothing was changed"
                ),
            }])],
        },
        Case {
            name: "keep Global Administrator disabled: fails before any change",
            given: [
                vec![started(pc)],
                resolved(),
                vec![inventory_with_a_disabled()],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::SagaFailed {
                reason: "tenant t1: the keep Global Administrator a@t1 is disabled (accountEnabled = false): no keep account is an enabled Global Administrator".into(),
            }])],
        },
        Case {
            name: "keep list with a Global Administrator: step 1 starts",
            given: [vec![started(pc)], resolved(), vec![inventory()]].concat(),
            now: T0,
            then: vec![record(vec![
                Event::KeepListChecked {
                    keep_ids: vec!["a".into()],
                },
                Event::StepStarted { step: 1 },
            ])],
        },
        Case {
            name: "keep list without a Global Administrator: fails before any change",
            given: [
                vec![started_with(pc, vec!["c".into()], policy())],
                resolved(),
                vec![inventory()],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::SagaFailed {
                reason: "tenant t1: no keep account holds the Global Administrator role".into(),
            }])],
        },
        Case {
            name: "keep entry naming nobody: fails",
            given: [
                vec![started_with(pc, vec!["ghost@t1".into()], policy())],
                resolved(),
                vec![inventory()],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::SagaFailed {
                reason: "tenant t1: keep account ghost@t1 is not a user of the tenant".into(),
            }])],
        },
        Case {
            name: "a permanent inventory failure fails the saga: nothing was changed",
            given: [
                vec![started(pc)],
                resolved(),
                vec![Event::ReadFailed {
                    read: Read::Inventory,
                    error: error(FailureClass::Permanent, None),
                }],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::SagaFailed {
                reason: "read the inventory: code (Permanent): message".into(),
            }])],
        },
    ]);
}

#[test]
fn step_one_reads_its_preflight_and_gates_before_the_first_delete() {
    let pc = SubscriptionMode::PartnerCenter;
    let start = [
        vec![started(pc)],
        resolved(),
        vec![
            inventory(),
            keep_checked(),
            Event::StepStarted { step: 1 },
            permissions_granted(),
        ],
    ]
    .concat();
    let with = |more: Vec<Event>| [start.clone(), more].concat();
    let role_gate = "In the Entra admin center of tenant t1 (Roles & admins > Privileged \
        Authentication Administrator > Add assignments), assign closeout's app the \
        Privileged Authentication Administrator role: it may not delete 1 users holding \
        administrator roles (b@t1). closeout re-reads the app's role assignments \
        periodically and deletes no one until it holds the role.";
    let gate_opened = Event::GateOpened {
        gate: Gate::AssignAppRole,
        instructions: role_gate.to_string(),
    };
    let waited = |first: Vec<Event>, reason: &str| {
        let mut first = first;
        first.push(Event::WaitStarted {
            until: ts(T0 + 300_000),
            reason: reason.into(),
        });
        vec![record(first), Action::WakeAt(ts(T0 + 300_000))]
    };
    let step_started = [
        vec![started(pc)],
        resolved(),
        vec![inventory(), keep_checked(), Event::StepStarted { step: 1 }],
    ]
    .concat();
    let lacking = Event::PermissionsRead {
        granted: closeout::saga::permissions::ALL
            .iter()
            .filter(|p| p.name != "User.ReadWrite.All" && p.name != "Application.Read.All")
            .map(|p| p.id.to_string())
            .collect(),
    };
    let permission_gate = Event::GateOpened {
        gate: Gate::GrantPermissions,
        instructions: "In the Entra admin center of tenant t1 (Enterprise apps > closeout > \
            Permissions > Grant admin consent), grant closeout's app the Microsoft Graph \
            application permissions it lacks: User.ReadWrite.All, Application.Read.All. \
            closeout re-reads the app's permissions periodically and changes nothing until \
            it holds them."
            .into(),
    };
    check(vec![
        Case {
            name: "nothing changes before the app's permissions are read (an older saga reads them too)",
            given: step_started.clone(),
            now: T0,
            then: vec![read(Read::AppPermissions)],
        },
        Case {
            name: "permissions missing: a gate naming them, and no preflight, no intent",
            given: [step_started.clone(), vec![lacking.clone()]].concat(),
            now: T0,
            then: waited(
                vec![permission_gate.clone()],
                "an operator to grant closeout's app Microsoft Graph permissions",
            ),
        },
        Case {
            name: "permissions granted: the role preflight is read next",
            given: [
                step_started.clone(),
                vec![
                    lacking.clone(),
                    permission_gate.clone(),
                    Event::WaitStarted {
                        until: ts(T0),
                        reason: "r".into(),
                    },
                    permissions_granted(),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![read(Read::Preflight)],
        },
        Case {
            name: "no delete before the preflight is read (an older saga reads it too)",
            given: start.clone(),
            now: T0,
            then: vec![read(Read::Preflight)],
        },
        Case {
            name: "an app without the role: a gate, and no intent",
            given: with(vec![preflight(false, false)]),
            now: T0,
            then: waited(
                vec![gate_opened.clone()],
                "an operator to assign closeout's app a role",
            ),
        },
        Case {
            name: "the gate open, a re-read still short of the role: wait again, nothing new",
            given: with(vec![
                gate_opened.clone(),
                Event::WaitStarted {
                    until: ts(T0),
                    reason: "r".into(),
                },
                permissions_granted(),
                preflight(false, false),
            ]),
            now: T0,
            then: waited(vec![], "an operator to assign closeout's app a role"),
        },
        Case {
            name: "the role granted, sync on: the role gate closes, the sync gate opens",
            given: with(vec![gate_opened.clone(), preflight(true, true)]),
            now: T0,
            then: waited(
                vec![
                    Event::GateClosed {
                        gate: Gate::AssignAppRole,
                    },
                    Event::GateOpened {
                        gate: Gate::TurnOffDirectorySync,
                        instructions: "Turn off directory synchronization in tenant t1 (1 \
                            users are synced from on-premises: c@t1) (Microsoft Graph \
                            PowerShell: Update-MgBetaOrganization -OnPremisesSyncEnabled:$false; \
                            it can take up to 72 hours). closeout re-reads the organization and \
                            its users until sync is off and no user to delete is synced, and \
                            deletes no one before."
                            .into(),
                    },
                ],
                "directory synchronization to be turned off",
            ),
        },
        Case {
            name: "read done: the gate closes with the first intents",
            given: with(vec![
                gate_opened,
                preflight(true, false),
                classified(&[]),
                keep_admin_verified(),
            ]),
            now: T0,
            then: vec![
                record(vec![
                    Event::GateClosed {
                        gate: Gate::AssignAppRole,
                    },
                    intent(0, Change::DeleteUser, &["b", "c"]),
                ]),
                change(0, Change::DeleteUser, &["b", "c"]),
            ],
        },
    ]);
}

#[test]
fn step_one_deletes_users_with_intents_and_resolves_doubt_by_reading() {
    // Classified: nothing runs out a term, so step 1 starts at once.
    let base = [
        at_step_1(SubscriptionMode::PartnerCenter),
        vec![classified(&[])],
    ]
    .concat();
    let with = |more: Vec<Event>| [base.clone(), more].concat();
    check(vec![
        Case {
            name: "a Global Administrator among the targets: the role is read fresh first",
            given: base.clone(),
            now: T0,
            then: vec![read(Read::KeepAdmins {
                keep_ids: vec!["a".into()],
            })],
        },
        Case {
            name: "intent for every non-keep user, then the call",
            given: with(vec![keep_admin_verified()]),
            now: T0,
            then: vec![
                record(vec![intent(0, Change::DeleteUser, &["b", "c"])]),
                change(0, Change::DeleteUser, &["b", "c"]),
            ],
        },
        Case {
            name: "an intent without outcome after restart is resolved by reading",
            given: with(vec![intent(0, Change::DeleteUser, &["b", "c"])]),
            now: T0,
            then: vec![read(Read::CheckUsers {
                ids: vec!["b".into(), "c".into()],
            })],
        },
        Case {
            name: "an in-doubt outcome (a 5xx to a write) first backs off",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                failed(0, "c", FailureClass::InDoubt, Some(1)),
            ]),
            now: T0,
            then: vec![
                record(vec![Event::RetryScheduled {
                    at: ts(T0 + 1000),
                    attempt: 1,
                    reason: "code (InDoubt): message".into(),
                    since: ts(T0),
                }]),
                Action::WakeAt(ts(T0 + 1000)),
            ],
        },
        Case {
            name: "then the in-doubt outcome is resolved by reading, not by repeating",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                failed(0, "c", FailureClass::InDoubt, None),
                retry(T0 + 1000, 1, T0),
            ]),
            now: T0 + 1000,
            then: vec![read(Read::CheckUsers {
                ids: vec!["c".into()],
            })],
        },
        Case {
            name: "the read settles the doubt: 404 means done",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                Event::UsersChecked {
                    present: vec!["c".into()],
                    absent: vec!["b".into()],
                },
            ]),
            now: T0,
            then: vec![record(vec![Event::InDoubtResolved {
                change: Change::DeleteUser,
                applied: vec!["b".into()],
                not_applied: vec!["c".into()],
            }])],
        },
        Case {
            name: "found not applied: a new intent, then the call again",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                Event::InDoubtResolved {
                    change: Change::DeleteUser,
                    applied: vec![],
                    not_applied: vec!["c".into()],
                },
            ]),
            now: T0,
            then: vec![
                record(vec![intent(1, Change::DeleteUser, &["c"])]),
                change(1, Change::DeleteUser, &["c"]),
            ],
        },
        Case {
            name: "a transient failure is scheduled with the service's Retry-After",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                failed(0, "c", FailureClass::Transient, Some(2)),
            ]),
            now: T0 + 5,
            then: vec![
                record(vec![Event::RetryScheduled {
                    at: ts(T0 + 2005),
                    attempt: 1,
                    reason: "code (Transient): message".into(),
                    since: ts(T0 + 5),
                }]),
                Action::WakeAt(ts(T0 + 2005)),
            ],
        },
        Case {
            name: "nothing before the retry is due",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                failed(0, "c", FailureClass::Transient, Some(2)),
                retry(T0 + 2005, 1, T0),
            ]),
            now: T0 + 1000,
            then: vec![Action::WakeAt(ts(T0 + 2005))],
        },
        Case {
            name: "once due, the failed object gets a new intent",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                failed(0, "c", FailureClass::Transient, Some(2)),
                retry(T0 + 2005, 1, T0),
            ]),
            now: T0 + 2005,
            then: vec![
                record(vec![intent(1, Change::DeleteUser, &["c"])]),
                change(1, Change::DeleteUser, &["c"]),
            ],
        },
        Case {
            name: "past the give-up time a transient failure counts as permanent",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                failed(0, "c", FailureClass::Transient, None),
                retry(T0 + 100, 7, T0),
                intent(1, Change::DeleteUser, &["c"]),
                failed(1, "c", FailureClass::Transient, None),
            ]),
            now: T0 + 31 * 60_000,
            then: vec![record(vec![Event::CompensationStarted {
                reason: "gave up after 31m of transient failures: code (Transient): message".into(),
            }])],
        },
        Case {
            name: "all deleted: verify by reading the users",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
            ]),
            now: T0,
            then: vec![read(Read::Users)],
        },
        Case {
            name: "only keep accounts remain: step 2",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                users_read(&["a"]),
            ]),
            now: T0,
            then: vec![record(vec![
                Event::StepCompleted { step: 1 },
                Event::StepStarted { step: 2 },
            ])],
        },
        Case {
            name: "a user that appeared meanwhile is deleted too",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                users_read(&["a", "d"]),
            ]),
            now: T0,
            then: vec![
                record(vec![intent(1, Change::DeleteUser, &["d"])]),
                change(1, Change::DeleteUser, &["d"]),
            ],
        },
        Case {
            name: "a deleted user still listed: wait for replication, never delete twice",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                users_read(&["a", "b"]),
            ]),
            now: T0,
            then: vec![
                record(vec![Event::WaitStarted {
                    until: ts(T0 + 30_000),
                    reason: "1 deleted users still listed (replication delay)".into(),
                }]),
                Action::WakeAt(ts(T0 + 30_000)),
            ],
        },
        Case {
            name: "still listed after the wait: looked up by id",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                Event::WaitStarted {
                    until: ts(T0 + 30_000),
                    reason: "r".into(),
                },
                users_read(&["a", "b"]),
            ]),
            now: T0 + 30_000,
            then: vec![read(Read::CheckUsers {
                ids: vec!["b".into()],
            })],
        },
        Case {
            name: "gone by id: the list only lagged, step 2",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                Event::WaitStarted {
                    until: ts(T0 + 30_000),
                    reason: "r".into(),
                },
                users_read(&["a", "b"]),
                Event::UsersChecked {
                    present: vec![],
                    absent: vec!["b".into()],
                },
            ]),
            now: T0 + 30_000,
            then: vec![record(vec![
                Event::StepCompleted { step: 1 },
                Event::StepStarted { step: 2 },
            ])],
        },
        Case {
            name:
                "still there by id after the wait: the user is back, deleted again as a new intent",
            given: with(vec![
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                Event::WaitStarted {
                    until: ts(T0 + 30_000),
                    reason: "r".into(),
                },
                users_read(&["a", "b"]),
                Event::UsersChecked {
                    present: vec!["b".into()],
                    absent: vec![],
                },
            ]),
            now: T0 + 30_000,
            // `b` holds the Global Administrator role: the keep account is
            // read to be an enabled Global Administrator first.
            then: vec![read(Read::KeepAdmins {
                keep_ids: vec!["a".into()],
            })],
        },
    ]);
}

#[test]
fn intents_are_grouped_by_the_policy_size() {
    let p = SagaPolicy {
        intent_size: 1,
        ..policy()
    };
    let events = [
        vec![started_with(
            SubscriptionMode::Manual,
            vec!["A@T1".into()],
            p,
        )],
        resolved(),
        vec![
            inventory(),
            keep_checked(),
            Event::StepStarted { step: 1 },
            permissions_granted(),
            preflight(true, false),
            classified(&[]),
            keep_admin_verified(),
        ],
    ]
    .concat();
    check(vec![Case {
        name: "one intent per object with size 1; keep matched by UPN, any case",
        given: events,
        now: T0,
        then: vec![
            record(vec![
                intent(0, Change::DeleteUser, &["b"]),
                intent(1, Change::DeleteUser, &["c"]),
            ]),
            change(0, Change::DeleteUser, &["b"]),
            change(1, Change::DeleteUser, &["c"]),
        ],
    }]);
}

/// Step 1 intends a window of users at a time (`INTENT_WINDOW` groups of the
/// intent size), not the whole step: what a stop can leave in doubt is
/// bounded by the window. The next window follows once the first has its
/// outcomes, taken from the inventory's users without an intent yet.
#[test]
fn step_one_intends_one_window_at_a_time() {
    let p = SagaPolicy {
        intent_size: 2,
        ..policy()
    };
    let ids: Vec<String> = (0..10).map(|n| format!("u{n}")).collect();
    let mut users = vec![user("a")];
    users.extend(ids.iter().map(|id| user(id)));
    let inventory = Event::InventoryRecorded {
        inventory: closeout::saga::Inventory {
            users,
            global_admins: vec!["a".into()],
            subscriptions: vec![],
            security_defaults: false,
            ca_policies: vec![],
            applications: vec![],
        },
    };
    let start = [
        vec![started_with(
            SubscriptionMode::Manual,
            vec!["a@t1".into()],
            p,
        )],
        resolved(),
        vec![
            inventory,
            keep_checked(),
            Event::StepStarted { step: 1 },
            permissions_granted(),
            preflight(true, false),
            classified(&[]),
        ],
    ]
    .concat();
    assert_eq!(closeout::saga::INTENT_WINDOW, 4);
    let r = |n: usize| [ids[n].as_str(), ids[n + 1].as_str()];
    let mut done = start.clone();
    for (g, n) in (0..8).step_by(2).enumerate() {
        done.push(intent(g as u32, Change::DeleteUser, &r(n)));
    }
    for id in &ids[..8] {
        let g = ids.iter().position(|i| i == id).unwrap() / 2;
        done.push(applied(g as u32, id));
    }
    check(vec![
        Case {
            name: "the first window: four groups of two",
            given: start,
            now: T0,
            then: vec![
                record(
                    (0..4)
                        .map(|g| intent(g, Change::DeleteUser, &r(2 * g as usize)))
                        .collect(),
                ),
                change(0, Change::DeleteUser, &r(0)),
                change(1, Change::DeleteUser, &r(2)),
                change(2, Change::DeleteUser, &r(4)),
                change(3, Change::DeleteUser, &r(6)),
            ],
        },
        Case {
            name: "the next window: the users left",
            given: done,
            now: T0,
            then: vec![
                record(vec![intent(4, Change::DeleteUser, &r(8))]),
                change(4, Change::DeleteUser, &r(8)),
            ],
        },
    ]);
}

/// A `Retry-After` the runtime marked as longer than `[retry]
/// max_retry_after` pauses the saga with the reason instead of scheduling a
/// retry that far away.
#[test]
fn a_retry_after_beyond_the_maximum_pauses_the_saga() {
    let mut error = error(FailureClass::InDoubt, Some(1_000_000_000));
    error.code = closeout::model::RETRY_AFTER_TOO_LONG.into();
    let events = [
        at_step_1(SubscriptionMode::Manual),
        vec![
            intent(0, Change::DeleteUser, &["b", "c"]),
            Event::ChangeFailed {
                change_id: 0,
                target: "b".into(),
                http: closeout::model::HttpInfo {
                    method: "DELETE".into(),
                    path: "/v1.0/users/b".into(),
                    status: 429,
                    request_id: String::new(),
                },
                error: error.clone(),
            },
            failed(0, "c", FailureClass::InDoubt, Some(5)),
        ],
    ]
    .concat();
    check(vec![Case {
        name: "paused, with the service's words",
        given: events,
        now: T0,
        then: vec![record(vec![Event::Paused {
            who: "closeout".into(),
            why: error.to_string(),
        }])],
    }]);
}

#[test]
fn failure_policy_before_and_after_the_pivot() {
    let permanent = vec![
        intent(0, Change::DeleteUser, &["b", "c"]),
        failed(0, "b", FailureClass::Permanent, None),
    ];
    let compensate = at_step_1(SubscriptionMode::PartnerCenter);
    let pause = [
        vec![started_with(
            SubscriptionMode::PartnerCenter,
            vec!["a".into()],
            SagaPolicy {
                failure: FailurePolicy::Pause,
                ..policy()
            },
        )],
        compensate[1..].to_vec(),
    ]
    .concat();
    let after_pivot = [
        at_step_1(SubscriptionMode::PartnerCenter),
        vec![Event::PivotPassed { reason: "x".into() }],
        vec![Event::StepStarted { step: 4 }],
    ]
    .concat();
    check(vec![
        Case {
            name: "compensate policy: compensation starts",
            given: [compensate.clone(), permanent.clone()].concat(),
            now: T0,
            then: vec![record(vec![Event::CompensationStarted {
                reason: "b: code (Permanent): message".into(),
            }])],
        },
        Case {
            name: "pause policy: paused by closeout",
            given: [pause, permanent.clone()].concat(),
            now: T0,
            then: vec![record(vec![Event::Paused {
                who: "closeout".into(),
                why: "b: code (Permanent): message".into(),
            }])],
        },
        Case {
            name: "after the pivot: paused, never compensated",
            given: [
                after_pivot,
                vec![
                    intent(0, Change::DisableCaPolicy, &["p1"]),
                    failed(0, "p1", FailureClass::Permanent, None),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::Paused {
                who: "closeout".into(),
                why: "p1: code (Permanent): message".into(),
            }])],
        },
        Case {
            name: "a paused saga does nothing",
            given: [
                compensate.clone(),
                vec![Event::Paused {
                    who: "op".into(),
                    why: "lunch".into(),
                }],
            ]
            .concat(),
            now: T0,
            then: vec![],
        },
        Case {
            name: "resume retries the permanently failed object",
            given: [
                compensate.clone(),
                permanent,
                vec![
                    applied(0, "c"),
                    Event::Paused {
                        who: "closeout".into(),
                        why: "x".into(),
                    },
                    Event::Resumed {
                        who: "op".into(),
                        why: "fixed the role".into(),
                    },
                    keep_admin_verified(),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![intent(1, Change::DeleteUser, &["b"])]),
                change(1, Change::DeleteUser, &["b"]),
            ],
        },
    ]);
}

#[test]
fn step_two_cancels_subscriptions_by_partner_center_or_gate() {
    let suspend = Change::SetSubscription {
        status: PartnerStatus::Suspended,
    };
    let cancel = Change::SetSubscription {
        status: PartnerStatus::Deleted,
    };
    let renew_off = Change::SetAutoRenew { enabled: false };
    let manual = at_step(SubscriptionMode::Manual, 2);
    check(vec![
        Case {
            name: "partner-center: a saga that never classified reads it before acting",
            given: at_step(SubscriptionMode::PartnerCenter, 2),
            now: T0,
            then: vec![read(Read::ClassifySubscriptions)],
        },
        Case {
            name: "partner-center: NCE inside its window is cancelled; no pivot before the answer",
            given: [
                at_step(SubscriptionMode::PartnerCenter, 2),
                vec![classified(&[("s1", Kind::Nce, Some(T0 + 3_600_000))])],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![intent(0, cancel, &["s1"])]),
                change(0, cancel, &["s1"]),
            ],
        },
        Case {
            name: "partner-center: the pivot is recorded once Partner Center accepted the cancel",
            given: [
                at_step(SubscriptionMode::PartnerCenter, 2),
                vec![
                    classified(&[("s1", Kind::Nce, Some(T0 + 3_600_000))]),
                    intent(0, cancel, &["s1"]),
                    applied(0, "s1"),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::PivotPassed {
                reason: "Partner Center accepted the cancellation of subscription s1, which is \
                         not undone"
                    .into(),
            }])],
        },
        Case {
            name: "partner-center: NCE past its window: auto-renew off, never a suspend",
            given: [
                at_step(SubscriptionMode::PartnerCenter, 2),
                vec![classified(&[("s1", Kind::Nce, Some(T0 - 1))])],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![intent(0, renew_off, &["s1"])]),
                change(0, renew_off, &["s1"]),
            ],
        },
        Case {
            name: "partner-center: legacy is suspended",
            given: [
                at_step(SubscriptionMode::PartnerCenter, 2),
                vec![classified(&[("s1", Kind::Legacy, None)])],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![intent(0, suspend, &["s1"])]),
                change(0, suspend, &["s1"]),
            ],
        },
        Case {
            name: "partner-center: suspended and verified, step 3",
            given: [
                at_step(SubscriptionMode::PartnerCenter, 2),
                vec![
                    classified(&[("s1", Kind::Legacy, None)]),
                    intent(0, suspend, &["s1"]),
                    applied(0, "s1"),
                    subs_read(&[("s1", SubscriptionStatus::Suspended)]),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![
                Event::StepCompleted { step: 2 },
                Event::StepStarted { step: 3 },
            ])],
        },
        Case {
            name: "manual: read first",
            given: manual.clone(),
            now: T0,
            then: vec![read(Read::Subscriptions)],
        },
        Case {
            name: "manual: a gate for the operator, re-read periodically",
            given: [
                manual.clone(),
                vec![subs_read(&[("s1", SubscriptionStatus::Enabled)])],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![
                    Event::GateOpened {
                        gate: Gate::CancelSubscriptions,
                        instructions: "In the Microsoft 365 admin center of tenant t1 (Billing > \
                                       Your products), cancel these subscriptions: E3 (s1). \
                                       Where the admin center no longer offers to cancel one \
                                       (its cancellation window has passed), turn off its \
                                       recurring billing instead: it then ends with its term, \
                                       and closeout waits for that. closeout re-reads the \
                                       tenant periodically and continues once it sees them \
                                       done."
                            .into(),
                    },
                    Event::WaitStarted {
                        until: ts(T0 + 300_000),
                        reason: "an operator to cancel 1 subscriptions in the Microsoft 365 \
                                 admin center"
                            .into(),
                    },
                ]),
                Action::WakeAt(ts(T0 + 300_000)),
            ],
        },
        Case {
            name: "manual: while the gate waits, nothing",
            given: [manual.clone(), gate_waiting(Gate::CancelSubscriptions)].concat(),
            now: T0 + 1000,
            then: vec![Action::WakeAt(ts(T0 + 300_000))],
        },
        Case {
            name: "manual: a confirmation only makes it re-check at once",
            given: [
                manual.clone(),
                gate_waiting(Gate::CancelSubscriptions),
                vec![Event::GateConfirmed {
                    who: "op".into(),
                    why: "done".into(),
                }],
            ]
            .concat(),
            now: T0 + 1000,
            then: vec![read(Read::Subscriptions)],
        },
        Case {
            name: "manual: the read shows it done, the gate closes",
            given: [
                manual,
                gate_waiting(Gate::CancelSubscriptions),
                vec![subs_read(&[("s1", SubscriptionStatus::Suspended)])],
            ]
            .concat(),
            now: T0 + 300_000,
            then: vec![record(vec![
                Event::GateClosed {
                    gate: Gate::CancelSubscriptions,
                },
                Event::StepCompleted { step: 2 },
                Event::StepStarted { step: 3 },
            ])],
        },
    ]);
}

#[test]
fn step_three_passes_the_pivot_and_waits_for_deprovisioning() {
    let delete = Change::SetSubscription {
        status: PartnerStatus::Deleted,
    };
    let suspend = Change::SetSubscription {
        status: PartnerStatus::Suspended,
    };
    let renew_off = Change::SetAutoRenew { enabled: false };
    let pc = at_step(SubscriptionMode::PartnerCenter, 3);
    let pivot = Event::PivotPassed {
        reason: "subscriptions are being deleted".into(),
    };
    check(vec![
        Case {
            name: "partner-center: a suspended legacy subscription is deleted; the pivot waits for the answer",
            given: [
                pc.clone(),
                vec![
                    classified(&[("s1", Kind::Legacy, None)]),
                    intent(0, suspend, &["s1"]),
                    applied(0, "s1"),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![intent(1, delete, &["s1"])]),
                change(1, delete, &["s1"]),
            ],
        },
        Case {
            name: "partner-center: an auto-renew-off term is waited for durably, to its end",
            given: [
                pc.clone(),
                vec![
                    classified_ending(&[("s1", T0 - 1, T0 + 864_000_000)]),
                    intent(0, renew_off, &["s1"]),
                    applied(0, "s1"),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![Event::WaitStarted {
                    until: ts(T0 + 864_000_000),
                    reason: format!(
                        "1 subscriptions run to the end of their term (auto-renew off); the last ends {}",
                        ts(T0 + 864_000_000).to_rfc3339()
                    ),
                }]),
                Action::WakeAt(ts(T0 + 864_000_000)),
            ],
        },
        Case {
            name: "partner-center: deleted, deprovisioning: a durable wait",
            given: [
                pc.clone(),
                vec![
                    pivot.clone(),
                    intent(0, delete, &["s1"]),
                    applied(0, "s1"),
                    subs_read(&[("s1", SubscriptionStatus::Suspended)]),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![Event::WaitStarted {
                    until: ts(T0 + 3_600_000),
                    reason: "1 subscriptions deprovisioning".into(),
                }]),
                Action::WakeAt(ts(T0 + 3_600_000)),
            ],
        },
        Case {
            name: "partner-center: all deleted, step 4",
            given: [
                pc,
                vec![
                    pivot,
                    intent(0, delete, &["s1"]),
                    applied(0, "s1"),
                    subs_read(&[("s1", SubscriptionStatus::Deleted)]),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![
                Event::StepCompleted { step: 3 },
                Event::StepStarted { step: 4 },
            ])],
        },
        Case {
            name: "manual: asking a person to delete passes the pivot",
            given: [
                at_step(SubscriptionMode::Manual, 3),
                vec![subs_read(&[("s1", SubscriptionStatus::Suspended)])],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![
                    Event::PivotPassed {
                        reason: "an operator is asked to delete the subscriptions".into(),
                    },
                    Event::GateOpened {
                        gate: Gate::DeleteSubscriptions,
                        instructions: "In the Microsoft 365 admin center of tenant t1 (Billing > \
                                       Your products), delete these subscriptions: E3 (s1). \
                                       closeout re-reads the tenant periodically and continues \
                                       once it sees them done."
                            .into(),
                    },
                    Event::WaitStarted {
                        until: ts(T0 + 3_600_000),
                        reason: "an operator to delete 1 subscriptions in the Microsoft 365 \
                                 admin center"
                            .into(),
                    },
                ]),
                Action::WakeAt(ts(T0 + 3_600_000)),
            ],
        },
    ]);
}

#[test]
fn compensation_undoes_in_reverse_order() {
    let suspend = Change::SetSubscription {
        status: PartnerStatus::Suspended,
    };
    let activate = Change::SetSubscription {
        status: PartnerStatus::Active,
    };
    let done = [
        at_step(SubscriptionMode::PartnerCenter, 1),
        vec![
            intent(0, Change::DeleteUser, &["b", "c"]),
            applied(0, "b"),
            applied(0, "c"),
            Event::StepStarted { step: 2 },
            intent(1, suspend, &["s1"]),
            failed(1, "s1", FailureClass::InDoubt, None),
            Event::CompensationStarted { reason: "x".into() },
        ],
    ]
    .concat();
    check(vec![
        Case {
            name: "first settle what is in doubt",
            given: done.clone(),
            now: T0,
            then: vec![read(Read::Subscriptions)],
        },
        Case {
            name: "then reactivate what was suspended (step 2 before step 1)",
            given: [
                done.clone(),
                vec![subs_read(&[("s1", SubscriptionStatus::Suspended)])],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::InDoubtResolved {
                change: suspend,
                applied: vec!["s1".into()],
                not_applied: vec![],
            }])],
        },
        Case {
            name: "reactivation intents",
            given: [
                done.clone(),
                vec![Event::InDoubtResolved {
                    change: suspend,
                    applied: vec!["s1".into()],
                    not_applied: vec![],
                }],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![intent(2, activate, &["s1"])]),
                change(2, activate, &["s1"]),
            ],
        },
        Case {
            name: "then restore the deleted users",
            given: [
                done.clone(),
                vec![
                    Event::InDoubtResolved {
                        change: suspend,
                        applied: vec!["s1".into()],
                        not_applied: vec![],
                    },
                    intent(2, activate, &["s1"]),
                    applied(2, "s1"),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![intent(3, Change::RestoreUser, &["b", "c"])]),
                change(3, Change::RestoreUser, &["b", "c"]),
            ],
        },
        Case {
            name: "an in-doubt restore first waits out replication (a read may lag)",
            given: [
                done.clone(),
                vec![
                    Event::InDoubtResolved {
                        change: suspend,
                        applied: vec![],
                        not_applied: vec!["s1".into()],
                    },
                    intent(2, Change::RestoreUser, &["b", "c"]),
                    applied(2, "b"),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![Event::WaitStarted {
                    until: ts(T0 + 30_000),
                    reason: "restores to replicate before they are read back".into(),
                }]),
                Action::WakeAt(ts(T0 + 30_000)),
            ],
        },
        Case {
            name: "then it is resolved by reading the user by id, not the recycle bin",
            given: [
                done.clone(),
                vec![
                    Event::InDoubtResolved {
                        change: suspend,
                        applied: vec![],
                        not_applied: vec!["s1".into()],
                    },
                    intent(2, Change::RestoreUser, &["b", "c"]),
                    applied(2, "b"),
                    Event::WaitStarted {
                        until: ts(T0),
                        reason: "r".into(),
                    },
                ],
            ]
            .concat(),
            now: T0,
            then: vec![read(Read::CheckUsers {
                ids: vec!["c".into()],
            })],
        },
        Case {
            name: "a user read back present is restored; absent, the restore is made again",
            given: [
                done.clone(),
                vec![
                    Event::InDoubtResolved {
                        change: suspend,
                        applied: vec![],
                        not_applied: vec!["s1".into()],
                    },
                    intent(2, Change::RestoreUser, &["b", "c"]),
                    Event::WaitStarted {
                        until: ts(T0),
                        reason: "r".into(),
                    },
                    Event::UsersChecked {
                        present: vec!["b".into()],
                        absent: vec!["c".into()],
                    },
                ],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::InDoubtResolved {
                change: Change::RestoreUser,
                applied: vec!["b".into()],
                not_applied: vec!["c".into()],
            }])],
        },
        Case {
            name: "all undone: rolled back",
            given: [
                done,
                vec![
                    Event::InDoubtResolved {
                        change: suspend,
                        applied: vec![],
                        not_applied: vec!["s1".into()],
                    },
                    intent(2, Change::RestoreUser, &["b", "c"]),
                    applied(2, "b"),
                    applied(2, "c"),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![record(vec![Event::SagaRolledBack])],
        },
        Case {
            name: "manual mode: reactivation is a gate verified by reading",
            given: [
                at_step(SubscriptionMode::Manual, 2),
                vec![
                    Event::AbortRequested {
                        who: "op".into(),
                        why: "wrong tenant".into(),
                    },
                    subs_read(&[("s1", SubscriptionStatus::Suspended)]),
                ],
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![
                    Event::GateOpened {
                        gate: Gate::ReactivateSubscriptions,
                        instructions: "In the Microsoft 365 admin center of tenant t1 (Billing > \
                                       Your products), reactivate these subscriptions: E3 (s1). \
                                       closeout re-reads the tenant periodically and continues \
                                       once it sees them active."
                            .into(),
                    },
                    Event::WaitStarted {
                        until: ts(T0 + 300_000),
                        reason: "an operator to reactivate 1 subscriptions in the Microsoft \
                                 365 admin center"
                            .into(),
                    },
                ]),
                Action::WakeAt(ts(T0 + 300_000)),
            ],
        },
    ]);
}

#[test]
fn the_retry_delay_is_jittered_deterministically_per_saga_and_attempt() {
    let a = closeout::saga::jitter_unit("saga-1", 1);
    assert_eq!(a, closeout::saga::jitter_unit("saga-1", 1));
    assert_ne!(a, closeout::saga::jitter_unit("saga-1", 2));
    assert_ne!(a, closeout::saga::jitter_unit("saga-2", 1));
    assert!((0.0..1.0).contains(&a));
    // Without Retry-After the delay follows the policy with that jitter.
    let events = [
        at_step_1(SubscriptionMode::PartnerCenter),
        vec![
            intent(0, Change::DeleteUser, &["b", "c"]),
            failed(0, "b", FailureClass::Transient, None),
        ],
    ]
    .concat();
    let actions = given(events).when(T0);
    let expected = policy()
        .retry
        .delay(1, closeout::saga::jitter_unit("saga-1", 1), None);
    let at = ts(T0).plus(expected);
    assert_eq!(actions.last(), Some(&Action::WakeAt(at)));
    assert!(expected <= Duration::from_millis(500));
}

#[test]
fn decide_never_performs_a_change_without_a_preceding_intent() {
    // Across every table above, any change call follows a Record holding its intent.
    let histories = vec![
        [
            at_step_1(SubscriptionMode::PartnerCenter),
            vec![classified(&[]), keep_admin_verified()],
        ]
        .concat(),
        [
            at_step(SubscriptionMode::PartnerCenter, 2),
            vec![classified(&[("s1", Kind::Nce, Some(T0 + 1))])],
        ]
        .concat(),
        [
            at_step(SubscriptionMode::PartnerCenter, 4),
            vec![
                Event::ClosurePolicyRecorded {
                    mfa_scope: closeout::saga::closure::MfaScope::All,
                    finish_with: None,
                },
                mfa_read(true, true, true),
            ],
        ]
        .concat(),
    ];
    for h in histories {
        let actions = given(h).when(T0);
        let mut intended = Vec::new();
        for a in &actions {
            match a {
                Action::Record(events) => {
                    for e in events {
                        if let Event::ChangeIntended { change_id, .. } = e {
                            intended.push(*change_id);
                        }
                    }
                }
                Action::Perform(Call::Change { change_id, .. }) => {
                    assert!(intended.contains(change_id), "{actions:?}");
                }
                _ => {}
            }
        }
        assert!(!intended.is_empty());
    }
}

#[test]
fn a_batch_groups_records_before_calls() {
    let actions = given(
        [
            at_step_1(SubscriptionMode::PartnerCenter),
            vec![classified(&[]), keep_admin_verified()],
        ]
        .concat(),
    )
    .when(T0);
    let b = closeout::saga::Decision::from_actions(actions);
    assert_eq!(b.record, vec![intent(0, Change::DeleteUser, &["b", "c"])]);
    assert_eq!(b.perform.len(), 1);
    assert!(!b.is_idle() && b.wake_at.is_none());
    let waiting = [
        at_step(SubscriptionMode::Manual, 2),
        gate_waiting(Gate::CancelSubscriptions),
    ]
    .concat();
    let b = closeout::saga::Decision::from_actions(given(waiting).when(T0));
    assert!(b.is_idle());
    assert_eq!(b.wake_at, Some(ts(T0 + 300_000)));
}

#[test]
fn a_global_administrator_is_deleted_only_right_after_a_keep_admin_check() {
    let base = at_step_1(SubscriptionMode::PartnerCenter);
    let with = |more: Vec<Event>| [base.clone(), more].concat();
    let missing = Event::KeepAdminMissing {
        reason: "tenant t1: no keep account holds the Global Administrator role now".into(),
        admin_ids: vec!["b".into()],
        at: ts(T0),
    };
    let paused_for_it = Event::Paused {
        who: "closeout".into(),
        why: "tenant t1: no keep account holds the Global Administrator role now: no Global Administrator is deleted until a keep account is an enabled Global Administrator again".into(),
    };
    check(vec![
        Case {
            name: "the check found no enabled keep Global Administrator: paused before deleting",
            given: with(vec![missing.clone()]),
            now: T0,
            then: vec![record(vec![paused_for_it.clone()])],
        },
        Case {
            name: "the runtime's guard refused the admin: paused, however the outcome failed",
            given: with(vec![
                keep_admin_verified(),
                intent(0, Change::DeleteUser, &["b", "c"]),
                missing.clone(),
                failed(0, "b", FailureClass::Permanent, None),
                applied(0, "c"),
            ]),
            now: T0,
            then: vec![record(vec![paused_for_it.clone()])],
        },
        Case {
            name: "resumed: the refused admin is deleted only after a new fresh check",
            given: with(vec![
                keep_admin_verified(),
                intent(0, Change::DeleteUser, &["b", "c"]),
                missing.clone(),
                failed(0, "b", FailureClass::Permanent, None),
                applied(0, "c"),
                paused_for_it.clone(),
                Event::Resumed {
                    who: "op".into(),
                    why: "role given back".into(),
                },
            ]),
            now: T0,
            then: vec![read(Read::KeepAdmins {
                keep_ids: vec!["a".into()],
            })],
        },
        Case {
            name: "a check is used once: the next admin delete reads again",
            given: with(vec![
                keep_admin_verified(),
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "c"),
                failed(0, "b", FailureClass::Transient, None),
                retry(T0 + 10, 1, T0),
            ]),
            now: T0 + 10,
            then: vec![read(Read::KeepAdmins {
                keep_ids: vec!["a".into()],
            })],
        },
        Case {
            name: "a user who became a Global Administrator after the inventory is guarded too",
            given: with(vec![
                keep_admin_verified(),
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                Event::KeepAdminVerified {
                    keep_admin_ids: vec!["a".into()],
                    admin_ids: vec!["a".into(), "d".into()],
                    at: ts(T0),
                },
                intent(1, Change::DeleteUser, &["x"]),
                applied(1, "x"),
                users_read(&["a", "d"]),
            ]),
            now: T0,
            then: vec![read(Read::KeepAdmins {
                keep_ids: vec!["a".into()],
            })],
        },
        Case {
            name: "non-admin targets need no check",
            given: with(vec![
                keep_admin_verified(),
                intent(0, Change::DeleteUser, &["b", "c"]),
                applied(0, "b"),
                applied(0, "c"),
                users_read(&["a", "e"]),
            ]),
            now: T0,
            then: vec![
                record(vec![intent(1, Change::DeleteUser, &["e"])]),
                change(1, Change::DeleteUser, &["e"]),
            ],
        },
        Case {
            name: "a saga recorded before tenant GUIDs reads its organization before acting",
            given: vec![
                started(SubscriptionMode::PartnerCenter),
                inventory(),
                keep_checked(),
                Event::StepStarted { step: 1 },
            ],
            now: T0,
            then: vec![read(Read::Organization)],
        },
    ]);
}

#[test]
fn partner_center_request_ids_are_kept_on_a_retry_after_a_timeout_only() {
    let off = Change::SetAutoRenew { enabled: false };
    let base = [
        at_step(SubscriptionMode::PartnerCenter, 2),
        vec![
            classified(&[("s1", Kind::Nce, Some(T0 - 1))]),
            intent(0, off, &["s1"]),
        ],
    ]
    .concat();
    let id = |events: Vec<Event>| {
        let s = closeout::saga::fold(&events).expect("begins with saga_started");
        s.request_id(off, "s1")
    };
    let first = id(base.clone());
    assert_eq!(first.len(), 36, "a GUID: {first}");
    assert_eq!(first, id(base.clone()), "stable across restarts (a replay)");
    let timed_out = [
        base.clone(),
        vec![failed(0, "s1", FailureClass::InDoubt, None)],
    ]
    .concat();
    assert_eq!(id(timed_out), first, "a timeout keeps the id for the retry");
    let answered = [
        base.clone(),
        vec![failed(0, "s1", FailureClass::Transient, None)],
    ]
    .concat();
    assert_ne!(id(answered), first, "an answer resets it");
    assert_ne!(
        id(base.clone()),
        {
            let s = closeout::saga::fold(&base).expect("begins with saga_started");
            s.request_id(off, "s2")
        },
        "one per target"
    );
}

#[test]
fn step_one_waits_for_a_running_out_term_with_auto_renew_off_first() {
    const DAY: u64 = 86_400_000;
    let pc = SubscriptionMode::PartnerCenter;
    let off = Change::SetAutoRenew { enabled: false };
    // s1: the partner's NCE past its window, its term ending in 100 days.
    let term_end = T0 + 100 * DAY;
    let ending = classified_ending(&[("s1", T0 - DAY, term_end)]);
    let start = term_end - 7 * DAY;
    let reason = format!(
        "step 1 is scheduled for {}, 7days before the last subscription term ends ({}, auto-renew \
         off): deleted users can be restored for 30 days, so they are deleted close to the \
         term's end",
        ts(start).to_rfc3339(),
        ts(term_end).to_rfc3339()
    );
    let waited = Event::WaitStarted {
        until: ts(start),
        reason: reason.clone(),
    };
    let base = at_step_1(pc);
    let with = |more: Vec<Event>| [base.clone(), more].concat();
    check(vec![
        Case {
            name: "the preflight passed: the subscriptions are classified afresh",
            given: base.clone(),
            now: T0,
            then: vec![read(Read::ClassifySubscriptions)],
        },
        Case {
            name: "a term runs out: auto-renew goes off before anyone is deleted",
            given: with(vec![ending.clone()]),
            now: T0,
            then: vec![
                record(vec![intent(0, off, &["s1"])]),
                change(0, off, &["s1"]),
            ],
        },
        Case {
            name: "auto-renew off: step 1 waits until a week before the term ends",
            given: with(vec![
                ending.clone(),
                intent(0, off, &["s1"]),
                applied(0, "s1"),
                permissions_granted(),
                preflight(true, false),
                ending.clone(),
            ]),
            now: T0,
            then: vec![record(vec![waited.clone()]), Action::WakeAt(ts(start))],
        },
        Case {
            name: "a restart during the wait keeps its deadline",
            given: with(vec![
                ending.clone(),
                intent(0, off, &["s1"]),
                applied(0, "s1"),
                permissions_granted(),
                preflight(true, false),
                ending.clone(),
                waited.clone(),
            ]),
            now: T0 + 50 * DAY,
            then: vec![Action::WakeAt(ts(start))],
        },
        Case {
            name: "the wait over: the terms are read again before the first delete",
            given: with(vec![
                ending.clone(),
                intent(0, off, &["s1"]),
                applied(0, "s1"),
                permissions_granted(),
                preflight(true, false),
                ending.clone(),
                waited.clone(),
            ]),
            now: start,
            then: vec![read(Read::AppPermissions)],
        },
        Case {
            name: "read again, still ending then: the users are deleted",
            given: with(vec![
                ending.clone(),
                intent(0, off, &["s1"]),
                applied(0, "s1"),
                permissions_granted(),
                preflight(true, false),
                ending.clone(),
                waited.clone(),
                permissions_granted(),
                preflight(true, false),
                ending.clone(),
                keep_admin_verified(),
            ]),
            now: start,
            then: vec![
                record(vec![intent(1, Change::DeleteUser, &["b", "c"])]),
                change(1, Change::DeleteUser, &["b", "c"]),
            ],
        },
        Case {
            name: "a cancel still possible inside a window: no wait (it is the pivot anyway)",
            given: with(vec![classified(&[("s2", Kind::Nce, Some(T0 + DAY))])]),
            now: T0,
            then: vec![read(Read::KeepAdmins {
                keep_ids: vec!["a".into()],
            })],
        },
        Case {
            name: "a recorded lead applies",
            given: [
                vec![started(pc)],
                vec![Event::SchedulePolicyRecorded {
                    users_before_term_end: Duration::from_secs(0),
                }],
                with(vec![
                    ending.clone(),
                    intent(0, off, &["s1"]),
                    applied(0, "s1"),
                    permissions_granted(),
                    preflight(true, false),
                    ending.clone(),
                ])[1..]
                    .to_vec(),
            ]
            .concat(),
            now: T0,
            then: vec![
                record(vec![Event::WaitStarted {
                    until: ts(term_end),
                    reason: reason
                        .replace(&ts(start).to_rfc3339(), &ts(term_end).to_rfc3339())
                        .replace("7days", "0s"),
                }]),
                Action::WakeAt(ts(term_end)),
            ],
        },
    ]);
    // Manual mode never reads Partner Center.
    let manual = given(
        [
            at_step_1(SubscriptionMode::Manual),
            vec![keep_admin_verified()],
        ]
        .concat(),
    )
    .when(T0);
    assert!(
        matches!(manual.first(), Some(Action::Record(e)) if matches!(e[0], Event::ChangeIntended { change: Change::DeleteUser, .. })),
        "{manual:?}"
    );
}

#[test]
fn a_suspended_new_commerce_subscription_past_its_window_goes_to_a_person() {
    use closeout::saga::subscriptions::{plan_for, suspended_handled, Place, Plan};
    const DAY: u64 = 86_400_000;
    let Event::SubscriptionsClassified { subscriptions } =
        classified_ending(&[("s1", T0 - DAY, T0 + 100 * DAY)])
    else {
        unreachable!()
    };
    let mut c = subscriptions[0].clone();
    c.status = SubscriptionStatus::Suspended;
    c.partner_status = Some("suspended".into());
    assert_eq!(
        plan_for(&c, ts(T0)),
        Plan::Operator(Place::SuspendedPastWindow)
    );
    let text = Place::SuspendedPastWindow.describe(&c.seller);
    assert!(text.contains("goes on billing"), "{text}");
    assert!(!suspended_handled(&c));
    // Inside its window, it is not a person's: step 3 cancels it.
    c.window_end = Some(ts(T0 + DAY));
    assert_eq!(plan_for(&c, ts(T0)), Plan::Nothing);
    // The person reactivated it with auto-renew off: handled.
    c.auto_renew = Some(false);
    c.status = SubscriptionStatus::Enabled;
    assert!(suspended_handled(&c));
}

#[test]
fn a_subscription_suspended_past_its_window_goes_to_a_person_before_anyone_is_deleted() {
    const DAY: u64 = 86_400_000;
    let pc = SubscriptionMode::PartnerCenter;
    // s1: the partner's NCE, suspended past its window, its term ending in
    // 200 days: suspended, it bills to that end.
    let term_end = T0 + 200 * DAY;
    let suspended = |auto_renew: bool| {
        let Event::SubscriptionsClassified { mut subscriptions } =
            classified_ending(&[("s1", T0 - DAY, term_end)])
        else {
            unreachable!()
        };
        for c in &mut subscriptions {
            c.partner_status = Some("suspended".into());
            c.status = SubscriptionStatus::Suspended;
            c.auto_renew = Some(auto_renew);
        }
        Event::SubscriptionsClassified { subscriptions }
    };
    let base = at_step_1(pc);
    // Asked: a gate and a wait, before any delete.
    let asked = given([base.clone(), vec![suspended(true)]].concat()).when(T0);
    let [Action::Record(events), Action::WakeAt(_)] = asked.as_slice() else {
        panic!("{asked:?}")
    };
    match events.as_slice() {
        [Event::GateOpened {
            gate: Gate::EndSubscriptionsElsewhere,
            instructions,
        }, Event::WaitStarted { reason, .. }] => {
            assert!(
                instructions.contains("Before anyone is deleted"),
                "{instructions}"
            );
            assert!(instructions.contains("E3 (s1)"), "{instructions}");
            assert!(reason.contains("reactivate 1 suspended"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Still suspended with auto-renew on, later: the gate stays, no delete.
    let gate = Event::GateOpened {
        gate: Gate::EndSubscriptionsElsewhere,
        instructions: "reactivate".into(),
    };
    let still = given(
        [
            base.clone(),
            vec![
                suspended(true),
                gate.clone(),
                Event::WaitStarted {
                    until: ts(T0 + 1),
                    reason: "a person".into(),
                },
                permissions_granted(),
                preflight(true, false),
                suspended(true),
            ],
        ]
        .concat(),
    )
    .when(T0 + 10);
    assert!(
        matches!(still.as_slice(), [Action::Record(e), Action::WakeAt(_)]
            if matches!(e.as_slice(), [Event::WaitStarted { .. }])),
        "{still:?}"
    );
    // Handled (auto-renew off): the gate closes, and step 1 waits until a
    // week before the term ends, like a term closeout runs out itself.
    let start = term_end - 7 * DAY;
    let handled = given(
        [
            base,
            vec![
                suspended(true),
                gate,
                Event::WaitStarted {
                    until: ts(T0 + 1),
                    reason: "a person".into(),
                },
                permissions_granted(),
                preflight(true, false),
                suspended(false),
            ],
        ]
        .concat(),
    )
    .when(T0 + 10);
    let [Action::Record(events), Action::WakeAt(at)] = handled.as_slice() else {
        panic!("{handled:?}")
    };
    assert_eq!(*at, ts(start));
    assert!(
        matches!(events.as_slice(), [Event::GateClosed { gate: Gate::EndSubscriptionsElsewhere }, Event::WaitStarted { until, .. }] if *until == ts(start)),
        "{events:?}"
    );
}
