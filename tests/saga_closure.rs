//! Table tests of steps 4 and 5 as Microsoft's pages define them: step 4
//! leaves the finishing Global Administrator's MFA (and, unless the operator
//! opts in, security defaults and Conditional Access) alone and paces
//! Conditional Access writes; step 5 checks the portal's list, names the
//! right account, and knows the tenant is gone only from the credential-free
//! discovery document, changed from its baseline, twice.

mod saga_support;

use closeout::model::{
    CaPolicy, CaPolicyState, PerUserMfaState, SubscriptionMode, SubscriptionStatus,
};
use closeout::saga::closure::{
    Answer, DeletionCheck, MfaScope, Observation, PrincipalSeen, SubscriptionSeen,
};
use closeout::saga::{Action, Change, Event, Gate, MfaView, Read};
use saga_support::*;

const PC: SubscriptionMode = SubscriptionMode::PartnerCenter;
const DOMAIN: &str = "t1.onmicrosoft.com";

/// A saga at the start of step `n` (past the pivot) keeping `keep` (object
/// ids among `a`, `b`, `c`; `a` and `b` are Global Administrators), with a
/// closure policy if given.
fn at(n: u8, keep: &[&str], closure: Option<(MfaScope, Option<&str>)>) -> Vec<Event> {
    let mut events = vec![started_with(
        PC,
        keep.iter().map(std::string::ToString::to_string).collect(),
        policy(),
    )];
    if let Some((mfa_scope, finish_with)) = closure {
        events.push(Event::ClosurePolicyRecorded {
            mfa_scope,
            finish_with: finish_with.map(String::from),
        });
    }
    events.extend(resolved());
    events.extend([
        inventory(),
        Event::KeepListChecked {
            keep_ids: keep.iter().map(std::string::ToString::to_string).collect(),
        },
        Event::StepStarted { step: 1 },
        preflight(true, false),
        Event::PivotPassed {
            reason: "subscriptions are being deleted".into(),
        },
        Event::StepStarted { step: n },
    ]);
    events
}

fn policy_on(id: &str, on: bool) -> CaPolicy {
    CaPolicy {
        id: id.into(),
        display_name: id.to_uppercase(),
        state: if on {
            CaPolicyState::Enabled
        } else {
            CaPolicyState::Disabled
        },
        requires_mfa: true,
    }
}

fn mfa(sd: bool, policies: &[(&str, bool)], users: &[(&str, bool)]) -> Event {
    Event::MfaRead {
        mfa: MfaView {
            security_defaults: sd,
            ca_policies: policies.iter().map(|(p, on)| policy_on(p, *on)).collect(),
            per_user: users
                .iter()
                .map(|(u, on)| {
                    let s = if *on {
                        PerUserMfaState::Enforced
                    } else {
                        PerUserMfaState::Disabled
                    };
                    (u.to_string(), s)
                })
                .collect(),
        },
    }
}

#[test]
fn step_four_leaves_the_finishing_admin_and_by_default_the_policies_alone() {
    // Default scope (no closure policy recorded: an older saga), keep a and b:
    // a, the first keep Global Administrator, finishes; only b's MFA goes off.
    let given_ = [
        at(4, &["a", "b"], None),
        vec![mfa(true, &[("p1", true)], &[("a", true), ("b", true)])],
    ]
    .concat();
    assert_eq!(
        given(given_).when(T0),
        vec![
            record(vec![intent(0, Change::DisableUserMfa, &["b"])]),
            change(0, Change::DisableUserMfa, &["b"]),
        ]
    );
    // finish_with names b: a's MFA goes off, b's never.
    let named = [
        at(4, &["a", "b"], Some((MfaScope::Article, Some("b@t1")))),
        vec![mfa(false, &[], &[("a", true), ("b", true)])],
    ]
    .concat();
    assert_eq!(
        given(named).when(T0),
        vec![
            record(vec![intent(0, Change::DisableUserMfa, &["a"])]),
            change(0, Change::DisableUserMfa, &["a"]),
        ]
    );
    // Only the finishing admin left, its MFA on, policies on: nothing to do.
    let alone = [
        at(4, &["a"], Some((MfaScope::Article, None))),
        vec![mfa(true, &[("p1", true)], &[("a", true)])],
    ]
    .concat();
    assert_eq!(
        given(alone).when(T0),
        vec![record(vec![
            Event::StepCompleted { step: 4 },
            Event::StepStarted { step: 5 },
        ])]
    );
}

#[test]
fn step_four_with_scope_all_turns_policies_off_one_ca_write_a_second() {
    let s4 = at(4, &["a"], Some((MfaScope::All, None)));
    assert_eq!(
        given(
            [
                s4.clone(),
                vec![mfa(true, &[("p1", true), ("p2", true)], &[("a", true)])]
            ]
            .concat()
        )
        .when(T0),
        vec![
            record(vec![
                intent(0, Change::DisableSecurityDefaults, &["securityDefaults"]),
                intent(1, Change::DisableCaPolicy, &["p1"]),
            ]),
            change(0, Change::DisableSecurityDefaults, &["securityDefaults"]),
            change(1, Change::DisableCaPolicy, &["p1"]),
        ],
        "one CA policy per write, never the finishing admin's per-user MFA"
    );
    // p1's write finished at T0 (every given record is stamped T0).
    let after = [
        s4,
        vec![
            intent(0, Change::DisableSecurityDefaults, &["securityDefaults"]),
            intent(1, Change::DisableCaPolicy, &["p1"]),
            applied(0, "securityDefaults"),
            applied(1, "p1"),
            mfa(false, &[("p1", false), ("p2", true)], &[("a", true)]),
        ],
    ]
    .concat();
    assert_eq!(
        given(after.clone()).when(T0 + 400),
        vec![Action::WakeAt(ts(T0 + 1000))]
    );
    assert_eq!(
        given(after).when(T0 + 1000),
        vec![
            record(vec![intent(2, Change::DisableCaPolicy, &["p2"])]),
            change(2, Change::DisableCaPolicy, &["p2"]),
        ]
    );
}

fn check(users: &[&str], sps: &[&str], subs: &[(&str, bool, SubscriptionStatus)]) -> Event {
    Event::DeletionChecked {
        check: DeletionCheck {
            users: users
                .iter()
                .map(|u| (u.to_string(), format!("{u}@t1")))
                .collect(),
            applications: vec![],
            service_principals: sps
                .iter()
                .map(|s| PrincipalSeen {
                    id: format!("sp-{s}"),
                    app_id: s.to_string(),
                    name: format!("{s} app"),
                    first_party: false,
                })
                .collect(),
            subscriptions: subs
                .iter()
                .map(|(id, trial, status)| SubscriptionSeen {
                    id: id.to_string(),
                    sku: "E3".into(),
                    status: *status,
                    trial: *trial,
                    self_service: false,
                })
                .collect(),
            initial_domain: Some(DOMAIN.into()),
        },
    }
}

fn found() -> Answer {
    Answer::Found {
        issuer: "https://login/t1/v2.0".into(),
    }
}

fn not_found() -> Answer {
    Answer::NotFound {
        code: "AADSTS90002".into(),
    }
}

fn obs(id: Answer, domain: Answer) -> Observation {
    Observation {
        domain_name: Some(DOMAIN.into()),
        tenant_id: id,
        domain: Some(domain),
    }
}

fn discovery() -> Action {
    read(Read::Discovery {
        domain: Some(DOMAIN.into()),
    })
}

/// The instructions and wait reason of the gate `actions` opens.
fn opened(actions: &[Action]) -> (String, String) {
    let Some(Action::Record(events)) = actions.first() else {
        panic!("no record in {actions:?}");
    };
    let text = events.iter().find_map(|e| match e {
        Event::GateOpened {
            gate: Gate::DeleteTenant,
            instructions,
        } => Some(instructions.clone()),
        _ => None,
    });
    let reason = events.iter().find_map(|e| match e {
        Event::WaitStarted { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    (text.expect("a gate opened"), reason.expect("a wait"))
}

#[test]
fn step_five_checks_the_portal_list_and_records_a_baseline_before_the_gate() {
    let s5 = at(5, &["a"], None);
    assert_eq!(given(s5.clone()).when(T0), vec![read(Read::DeletionCheck)]);
    let checked = [
        s5.clone(),
        vec![check(
            &["a"],
            &["client"],
            &[("s1", false, SubscriptionStatus::Deleted)],
        )],
    ]
    .concat();
    assert_eq!(given(checked.clone()).when(T0), vec![discovery()]);
    let seen = [
        checked.clone(),
        vec![Event::DiscoveryRead {
            observation: obs(found(), found()),
        }],
    ]
    .concat();
    assert_eq!(
        given(seen.clone()).when(T0),
        vec![record(vec![Event::DiscoveryBaselineRecorded {
            observation: obs(found(), found())
        }])]
    );
    let based = [
        seen,
        vec![Event::DiscoveryBaselineRecorded {
            observation: obs(found(), found()),
        }],
    ]
    .concat();
    let actions = given(based).when(T0);
    let (text, reason) = opened(&actions);
    let unseen = text
        .find("Azure subscription")
        .expect("names Azure subscriptions");
    let invoices = text.find("invoice").expect("names unpaid invoices");
    let own = text
        .find("remove closeout's own enterprise app (application id client")
        .expect("names closeout's own app");
    assert!(unseen < own && invoices < own, "own app is last: {text}");
    assert!(!text.contains("not deletable"), "{text}");
    assert!(!text.to_lowercase().contains("security defaults"), "{text}");
    assert!(
        reason.contains("remove closeout's enterprise app"),
        "{reason}"
    );
    assert_eq!(actions.last(), Some(&Action::WakeAt(ts(T0 + 300_000))));
}

#[test]
fn step_five_names_the_other_keep_account_never_the_finishing_admin() {
    // keep a and b, b finishes: the portal's one user must be b, so a is named.
    let s5 = at(5, &["a", "b"], Some((MfaScope::Article, Some("b@t1"))));
    let ready = [
        s5,
        vec![
            check(
                &["a", "b"],
                &["client", "crm"],
                &[("s9", true, SubscriptionStatus::Warning)],
            ),
            Event::DiscoveryRead {
                observation: obs(found(), found()),
            },
            Event::DiscoveryBaselineRecorded {
                observation: obs(found(), found()),
            },
        ],
    ]
    .concat();
    let (text, reason) = opened(&given(ready).when(T0));
    assert!(text.contains("not deletable"), "{text}");
    assert!(text.contains("other keep accounts a@t1 "), "{text}");
    assert!(!text.contains("accounts b@t1"), "{text}");
    assert!(text.contains("Signed in as b@t1"), "{text}");
    assert!(
        text.contains("crm app"),
        "names the blocking enterprise app: {text}"
    );
    assert!(text.contains("E3 (trial) [s9]"), "names the trial: {text}");
    assert!(reason.contains("3 things block"), "{reason}");
}

fn waiting(extra: Vec<Event>) -> Vec<Event> {
    [
        at(5, &["a"], None),
        vec![
            Event::DiscoveryBaselineRecorded {
                observation: obs(found(), found()),
            },
            Event::GateOpened {
                gate: Gate::DeleteTenant,
                instructions: "do it".into(),
            },
            Event::WaitStarted {
                until: ts(T0 + 300_000),
                reason: "a person".into(),
            },
        ],
        extra,
    ]
    .concat()
}

#[test]
fn step_five_observes_the_tenant_gone_twice_without_its_credentials() {
    // After the wait: the portal list and the discovery document again.
    assert_eq!(
        given(waiting(vec![])).when(T0 + 300_000),
        vec![read(Read::DeletionCheck), discovery()]
    );
    // closeout's app removed: no failure, only the credential-free read.
    let cleaning = waiting(vec![Event::CredentialsRefused {
        code: "AADSTS7000229".into(),
    }]);
    assert_eq!(
        given(cleaning.clone()).when(T0 + 300_000),
        vec![discovery()]
    );
    let still = [
        cleaning.clone(),
        vec![Event::DiscoveryRead {
            observation: obs(found(), found()),
        }],
    ]
    .concat();
    let actions = given(still).when(T0 + 300_000);
    assert!(
        matches!(&actions[..], [Action::Record(e), Action::WakeAt(_)]
            if matches!(&e[..], [Event::WaitStarted { reason, .. }] if reason.contains("app is removed"))),
        "{actions:?}"
    );
    // Not found for the id but still found by domain: no evidence.
    let half = [
        cleaning.clone(),
        vec![Event::DiscoveryRead {
            observation: obs(not_found(), found()),
        }],
    ]
    .concat();
    assert!(!given(half)
        .when(T0 + 300_000)
        .iter()
        .any(|a| matches!(a, Action::Record(e) if e.iter().any(|e| matches!(e, Event::TenantObservedGone { .. })))));
    // Both gone: the first observation, then a durable wait.
    let gone = obs(not_found(), not_found());
    let first = [
        cleaning.clone(),
        vec![Event::DiscoveryRead {
            observation: gone.clone(),
        }],
    ]
    .concat();
    assert_eq!(
        given(first).when(T0 + 300_000),
        vec![
            record(vec![
                Event::TenantObservedGone {
                    confirmation: 1,
                    observation: gone.clone(),
                },
                Event::WaitStarted {
                    until: ts(T0 + 600_000),
                    reason: "confirming that the tenant is gone".into(),
                },
            ]),
            Action::WakeAt(ts(T0 + 600_000)),
        ]
    );
    let second = [
        cleaning,
        vec![
            Event::TenantObservedGone {
                confirmation: 1,
                observation: gone.clone(),
            },
            Event::WaitStarted {
                until: ts(T0 + 600_000),
                reason: "confirming".into(),
            },
            Event::DiscoveryRead {
                observation: gone.clone(),
            },
        ],
    ]
    .concat();
    assert_eq!(
        given(second).when(T0 + 600_000),
        vec![record(vec![
            Event::TenantObservedGone {
                confirmation: 2,
                observation: gone,
            },
            Event::GateClosed {
                gate: Gate::DeleteTenant,
            },
            Event::StepCompleted { step: 5 },
            Event::SagaCompleted,
        ])]
    );
}

#[test]
fn step_five_takes_no_not_found_before_the_deletion_as_evidence() {
    let s5 = at(5, &["a"], None);
    let unknown = [
        s5,
        vec![
            check(&["a"], &["client"], &[]),
            Event::DiscoveryRead {
                observation: obs(not_found(), not_found()),
            },
        ],
    ]
    .concat();
    let actions = given(unknown).when(T0);
    assert!(
        matches!(&actions[..], [Action::Record(e)] if matches!(&e[..], [Event::Paused { .. }])),
        "{actions:?}"
    );
}

#[test]
fn status_names_what_blocks_the_deletion_from_the_latest_check() {
    let s5 = at(5, &["a", "b"], Some((MfaScope::Article, Some("b@t1"))));
    let state = given(
        [
            s5,
            vec![
                check(&["a", "b"], &["client"], &[]),
                Event::GateOpened {
                    gate: Gate::DeleteTenant,
                    instructions: "do it".into(),
                },
            ],
        ]
        .concat(),
    )
    .0;
    let required = state.action_required().expect("a person is needed");
    assert!(required.what.contains("closeout's own enterprise app last"));
    assert_eq!(required.failing_preconditions.len(), 1, "{required:?}");
    assert!(
        required.failing_preconditions[0].contains("other keep accounts a@t1 "),
        "{required:?}"
    );
}
