//! The backup gate in `decide` and `handle`: under `attest` (and for sagas
//! recorded before the setting, while they have deleted no one) step 1,
//! once its preflight passed (and any wait for a term's end is over), reads
//! the data at stake, then waits for an operator's attestation before the
//! first delete; a saga that has begun deleting is never held; `off` asks
//! no one; in-tenant Microsoft 365 Backup policies are named in the gate.

mod saga_support;

use closeout::model::SubscriptionMode;
use closeout::saga::stake::{BackupMode, DataAtStake, ProtectionPolicy};
use closeout::saga::{Action, Call, Change, Command, Event, Gate, Read};
use saga_support::*;

/// A saga in step 1 whose preflight passed, recorded with `mode`, or
/// without any backup policy (as before the setting existed).
fn step_1(mode: Option<BackupMode>) -> Vec<Event> {
    let mut events = at_step_1(SubscriptionMode::Manual);
    if let Some(mode) = mode {
        events.insert(1, Event::BackupPolicyRecorded { mode });
    }
    events
}

fn stake(policies: usize) -> Event {
    let mut s = DataAtStake::unavailable("test");
    for i in 0..policies {
        s.protection_policies.push(ProtectionPolicy {
            id: format!("p{i}"),
            kind: "exchange".into(),
            display_name: "mail".into(),
            status: "active".into(),
        });
    }
    s.policies_unavailable = None;
    Event::DataAtStakeRecorded { stake: s }
}

fn opened(actions: &[Action]) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::Record(events) => events.iter().find_map(|e| match e {
            Event::GateOpened {
                gate: Gate::AttestBackup,
                instructions,
            } => Some(instructions.clone()),
            _ => None,
        }),
        _ => None,
    })
}

#[test]
fn attest_reads_the_data_at_stake_then_waits_for_the_operator() {
    let mut events = step_1(Some(BackupMode::Attest));
    assert_eq!(
        given_as_recorded(events.clone()).when(T0),
        vec![read(Read::DataAtStake)]
    );
    events.push(stake(0));
    let actions = given_as_recorded(events.clone()).when(T0);
    let text = opened(&actions).expect("the backup gate opens");
    assert!(text.contains("--backup"), "{text}");
    assert!(text.contains("rests on a person's word"), "{text}");
    assert!(!text.contains("go with it"), "{text}");
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            Action::Perform(Call::Change { .. } | Call::Read(Read::Preflight))
        )),
        "{actions:?}"
    );
}

#[test]
fn in_tenant_backup_policies_are_named_in_the_gate() {
    let mut events = step_1(Some(BackupMode::Attest));
    events.push(stake(2));
    let text = opened(&given_as_recorded(events).when(T0)).expect("the backup gate opens");
    assert!(
        text.contains("2 Microsoft 365 Backup protection policies"),
        "{text}"
    );
    assert!(text.contains("go with it"), "{text}");
}

#[test]
fn only_an_attestation_with_a_reason_passes_the_gate() {
    let mut events = step_1(Some(BackupMode::Attest));
    events.push(stake(1));
    let g = given_as_recorded(events.clone());
    let attest = |why: &str| Command::AttestBackup {
        who: "alice".into(),
        why: why.into(),
    };
    // No gate open yet: refused.
    assert!(g.command(attest("copied")).is_err());
    let actions = g.when(T0);
    for a in &actions {
        if let Action::Record(e) = a {
            events.extend(e.iter().cloned());
        }
    }
    let g = given_as_recorded(events.clone());
    assert_eq!(g.0.status().state.as_str(), "waiting");
    // Re-checking by reading cannot pass this gate; a reason is required.
    let plain = g.command(Command::ConfirmGate {
        who: "alice".into(),
        why: "done".into(),
    });
    assert!(plain.unwrap_err().reason.contains("--backup"));
    assert!(g.command(attest("  ")).is_err());
    let recorded = g.command(attest("exported to the escrow bucket")).unwrap();
    assert_eq!(
        recorded,
        vec![Event::BackupAttested {
            who: "alice".into(),
            why: "exported to the escrow bucket".into(),
            in_tenant_policies: 1,
        }]
    );
    events.extend(recorded);
    // The gate's wait made the preflight stale: it is read again, then the
    // gate closes and the first delete comes (its fresh keep-admin read).
    assert_eq!(
        given_as_recorded(events.clone()).when(T0 + 1),
        vec![read(Read::AppPermissions)]
    );
    events.push(permissions_granted());
    events.push(preflight(true, false));
    assert_eq!(
        given_as_recorded(events.clone()).when(T0 + 1),
        vec![record(vec![Event::GateClosed {
            gate: Gate::AttestBackup
        }])]
    );
    events.push(Event::GateClosed {
        gate: Gate::AttestBackup,
    });
    assert_eq!(
        given_as_recorded(events).when(T0 + 1),
        vec![read(Read::KeepAdmins {
            keep_ids: vec!["a".into()]
        })]
    );
}

#[test]
fn off_records_the_data_at_stake_and_asks_no_one() {
    let mut events = step_1(Some(BackupMode::Off));
    assert_eq!(
        given_as_recorded(events.clone()).when(T0),
        vec![read(Read::DataAtStake)]
    );
    events.push(stake(1));
    // Straight on to the first delete (its fresh keep-admin read).
    assert_eq!(
        given_as_recorded(events).when(T0),
        vec![read(Read::KeepAdmins {
            keep_ids: vec!["a".into()]
        })]
    );
}

#[test]
fn an_older_saga_is_gated_only_while_it_has_deleted_no_one() {
    // Recorded before the setting, nothing deleted yet: the safe reading.
    let mut events = step_1(None);
    events.push(stake(0));
    assert!(opened(&given_as_recorded(events).when(T0)).is_some());
    // Recorded before the setting, deletes already intended: never held.
    let mut events = step_1(None);
    events.push(keep_admin_verified());
    events.push(intent(0, Change::DeleteUser, &["b", "c"]));
    events.push(applied(0, "b"));
    events.push(applied(0, "c"));
    let actions = given_as_recorded(events).when(T0);
    assert!(opened(&actions).is_none(), "{actions:?}");
    assert!(
        !actions.iter().any(|a| a == &read(Read::DataAtStake)),
        "{actions:?}"
    );
}

#[test]
fn an_abort_at_the_backup_gate_ends_the_saga_without_deleting_anyone() {
    let mut events = step_1(Some(BackupMode::Attest));
    events.push(stake(0));
    for a in given_as_recorded(events.clone()).when(T0) {
        if let Action::Record(e) = a {
            events.extend(e);
        }
    }
    let g = given_as_recorded(events.clone());
    events.extend(
        g.command(Command::Abort {
            who: "alice".into(),
            why: "no backup yet".into(),
        })
        .unwrap(),
    );
    for _ in 0..5 {
        let g = given_as_recorded(events.clone());
        if g.0.is_terminal() {
            break;
        }
        for a in g.when(T0 + 1) {
            match a {
                Action::Record(e) => events.extend(e),
                Action::Perform(Call::Change { change, .. }) => {
                    panic!("{change:?} after an abort at the backup gate")
                }
                _ => {}
            }
        }
    }
    let end = given_as_recorded(events.clone());
    assert!(end.0.is_terminal(), "{events:#?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::ChangeIntended { .. })));
}
