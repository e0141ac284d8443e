//! An inventory of any size is recorded: its users are split into parts
//! that each stay far below the store's record limit, and folding the
//! parts gives back the inventory read, also when a read repeated after a
//! crash records its parts again.

mod saga_support;

use closeout::model::{SubscriptionMode, User};
use closeout::saga::{fold, Event, Inventory, INVENTORY_PART_USERS};
use closeout::store::MAX_PAYLOAD;

/// The saga's first record, then `events`.
fn history(events: &[Event]) -> Vec<Event> {
    let mut all = vec![saga_support::started(SubscriptionMode::Manual)];
    all.extend_from_slice(events);
    all
}

fn inventory(users: usize) -> Inventory {
    Inventory {
        users: (0..users)
            .map(|i| User {
                id: format!("{i:08}-0000-0000-0000-000000000000"),
                // The longest names Graph allows: a 113-character UPN and a
                // 256-character display name.
                user_principal_name: format!("{i:0>64}@{}.onmicrosoft.com", "d".repeat(32)),
                display_name: "n".repeat(256),
                account_enabled: true,
                on_premises_sync_enabled: false,
                user_type: "Member".into(),
            })
            .collect(),
        global_admins: vec!["00000000-0000-0000-0000-000000000000".into()],
        subscriptions: Vec::new(),
        security_defaults: true,
        ca_policies: Vec::new(),
        applications: Vec::new(),
    }
}

#[test]
fn a_small_inventory_is_one_event() {
    let inv = inventory(3);
    assert_eq!(
        Event::inventory(inv.clone()),
        vec![Event::InventoryRecorded { inventory: inv }]
    );
}

#[test]
fn a_large_inventory_is_split_below_the_record_limit_and_folds_back() {
    for users in [
        INVENTORY_PART_USERS,
        INVENTORY_PART_USERS + 1,
        2 * INVENTORY_PART_USERS + 7,
    ] {
        let inv = inventory(users);
        let events = Event::inventory(inv.clone());
        assert_eq!(
            events.len(),
            users.div_ceil(INVENTORY_PART_USERS),
            "{users} users"
        );
        for e in &events {
            let bytes = e.encode().expect("encode");
            assert!(
                bytes.len() < MAX_PAYLOAD / 3,
                "{} bytes in one record",
                bytes.len()
            );
            assert_eq!(&Event::decode(&bytes).expect("decode"), e);
        }
        assert!(matches!(
            events.last(),
            Some(Event::InventoryRecorded { .. })
        ));
        let state = fold(&history(&events)).expect("the events begin with saga_started");
        assert_eq!(state.inventory.as_ref(), Some(&inv), "{users} users");
    }
}

#[test]
fn a_repeated_read_starts_the_parts_over() {
    let first = inventory(2 * INVENTORY_PART_USERS + 1);
    let mut events = Event::inventory(first);
    // A crash after the first part: the read is made again, in full.
    events.truncate(1);
    let again = inventory(INVENTORY_PART_USERS + 5);
    events.extend(Event::inventory(again.clone()));
    let state = fold(&history(&events)).expect("the events begin with saga_started");
    assert_eq!(state.inventory, Some(again));
}

#[test]
fn a_keep_entry_naming_an_object_id_in_capitals_is_the_same_user() {
    // Object ids are GUIDs: case does not make another user.
    let Event::InventoryRecorded { inventory } = saga_support::inventory() else {
        unreachable!()
    };
    let mut inv = inventory;
    inv.users[0].id = "aaaaaaaa-1111-4111-8111-111111111111".into();
    inv.global_admins = vec![inv.users[0].id.clone()];
    let spec = saga_support::spec(
        SubscriptionMode::Manual,
        vec!["AAAAAAAA-1111-4111-8111-111111111111".into()],
    );
    assert_eq!(
        closeout::saga::check_keep(&spec, &inv),
        Ok(vec![inv.users[0].id.clone()])
    );
}
