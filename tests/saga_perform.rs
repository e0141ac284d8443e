//! `runtime::perform` against the fake tenant: calls map to the ports and
//! results to events, one outcome per object with its HTTP description.

#[path = "saga_model/fake.rs"]
#[allow(dead_code)]
mod fake;

use closeout::model::{Applied, FailureClass, PartnerStatus, Timestamp, User};
use closeout::runtime::perform::perform;
use closeout::saga::{Call, Change, Event, Read};
use fake::{Fake, World};
use futures::executor::block_on;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

fn world(read_faults: f64) -> Fake {
    let user = |id: &str| User {
        id: id.into(),
        user_principal_name: format!("{id}@t1"),
        display_name: id.into(),
        account_enabled: true,
        on_premises_sync_enabled: false,
        user_type: "Member".into(),
    };
    let w = World {
        seed: 1,
        tenant_id: "t1".into(),
        users: BTreeMap::from([("a".into(), user("a")), ("b".into(), user("b"))]),
        deleted: BTreeMap::new(),
        admins: BTreeSet::from(["a".to_string()]),
        keep_ids: BTreeSet::from(["a".to_string()]),
        subs: BTreeMap::new(),
        security_defaults: true,
        ca: vec![],
        mfa: BTreeMap::new(),
        apps: vec![],
        exists: true,
        poisoned: BTreeSet::new(),
        transient_rate: read_faults,
        ghost_rate: 0.0,
        lost_rate: 0.0,
        calls: BTreeMap::new(),
        now: 0,
        log: vec![Event::ChangeIntended {
            change_id: 0,
            change: Change::DeleteUser,
            targets: vec!["b".into(), "zz".into()],
        }],
        violations: vec![],
        destructive: vec![],
    };
    Fake(Arc::new(Mutex::new(w)))
}

fn run(fake: &Fake, call: Call, partner: bool) -> Vec<Event> {
    let partner = partner.then_some(fake);
    block_on(perform(&call, fake, partner, "t1", Timestamp(0)))
}

#[test]
fn a_change_yields_one_outcome_per_object_with_its_http() {
    let fake = world(0.0);
    let events = run(
        &fake,
        Call::Change {
            change_id: 0,
            change: Change::DeleteUser,
            targets: vec!["b".into(), "zz".into()],
        },
        true,
    );
    assert_eq!(events.len(), 2);
    match &events[0] {
        Event::ChangeApplied {
            change_id: 0,
            target,
            http,
            applied: Applied::Done,
        } => {
            assert_eq!(target, "b");
            assert_eq!((http.method.as_str(), http.status), ("DELETE", 204));
            assert_eq!(http.path, "/v1.0/users/b");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        &events[1],
        Event::ChangeApplied {
            applied: Applied::AlreadyDone,
            ..
        }
    ));
    assert!(fake.with(|w| w.violations.is_empty()));
}

#[test]
fn partner_center_changes_without_credentials_fail_permanently() {
    let events = run(
        &world(0.0),
        Call::Change {
            change_id: 3,
            change: Change::SetSubscription {
                status: PartnerStatus::Suspended,
            },
            targets: vec!["s1".into()],
        },
        false,
    );
    match events.as_slice() {
        [Event::ChangeFailed { http, error, .. }] => {
            assert_eq!(error.class, FailureClass::Permanent);
            assert_eq!(http.path, "/v1/customers/t1/subscriptions/s1");
            assert_eq!(http.status, 0);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn reads_become_read_events_and_failures_read_failed() {
    let events = run(&world(0.0), Call::Read(Read::Users), true);
    match events.as_slice() {
        [Event::UsersRead { users }] => assert_eq!(users.len(), 2),
        other => panic!("unexpected {other:?}"),
    }
    let events = run(&world(0.0), Call::Read(Read::Subscriptions), true);
    assert!(
        matches!(events.as_slice(), [Event::SubscriptionsRead { subscriptions }] if subscriptions.is_empty())
    );
    let events = run(
        &world(0.0),
        Call::Read(Read::CheckUsers {
            ids: vec!["a".into(), "x".into()],
        }),
        true,
    );
    assert_eq!(
        events,
        vec![Event::UsersChecked {
            present: vec!["a".into()],
            absent: vec!["x".into()],
        }]
    );
    let events = run(&world(1.0), Call::Read(Read::TenantExists), true);
    match events.as_slice() {
        [Event::ReadFailed { read, error }] => {
            assert_eq!(*read, Read::TenantExists);
            assert_eq!(error.class, FailureClass::Transient);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn many_users_to_check_are_settled_by_one_listing_not_a_get_each() {
    let fake = world(0.0);
    // 60 ids in doubt (as after a crash mid-window), one of them present.
    let mut ids: Vec<String> = (0..59).map(|i| format!("gone-{i}")).collect();
    ids.push("b".into());
    let events = run(
        &fake,
        Call::Read(Read::CheckUsers { ids: ids.clone() }),
        true,
    );
    let [Event::UsersChecked { present, absent }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(present, &vec!["b".to_string()]);
    assert_eq!(absent.len(), 59);
    let calls = fake.0.lock().unwrap().calls.clone();
    assert_eq!(calls.get("list_users:"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("get_user:"), None, "{calls:?}");
    // A few are read one by one.
    let few = world(0.0);
    run(
        &few,
        Call::Read(Read::CheckUsers {
            ids: ids[..3].to_vec(),
        }),
        true,
    );
    let calls = few.0.lock().unwrap().calls.clone();
    assert_eq!(calls.get("get_user:"), Some(&3), "{calls:?}");
    assert_eq!(calls.get("list_users:"), None, "{calls:?}");
}
