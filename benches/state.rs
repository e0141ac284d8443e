//! How large a saga's state grows: replays every saga of the recorded
//! finished closures (`tests/corpus/v0.2-a46e395-done`, 60 users each)
//! event by event, as recovery does, and encodes the state after each
//! event as a snapshot would.
//!
//! Prints `bench state.users` (users per saga), `bench state.max_encoded_kb`
//! (the largest encoded state over every saga and event), the parts of the
//! final state that weigh most (`state.inventory_kb`, `state.stake_kb`,
//! `state.tables_kb`, `state.notices_kb`) and `bench state.replay_events_per_s`.

use closeout::saga::{Event, State};
use closeout::store::Store;
use std::time::Instant;

fn kb(bytes: usize) -> f64 {
    bytes as f64 / 1000.0
}

fn encoded<T: serde::Serialize>(value: &T) -> usize {
    closeout::codec::encode(value).map_or(0, |b| b.len())
}

fn main() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/v0.2-a46e395-done/data");
    // The store takes its lock in the data dir: read a copy.
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("data");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(&corpus)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(copied.success(), "cannot copy {}", corpus.display());
    let store = Store::open_read_only(&copy).expect("open the corpus");
    let mut max = 0usize;
    let mut events = 0u64;
    let mut replay = std::time::Duration::ZERO;
    let mut last: Option<State> = None;
    for meta in store.list_sagas().expect("list sagas") {
        let mut state: Option<State> = None;
        for record in store.saga_records(&meta.saga_id, 0) {
            let record = record.expect("record");
            let event = Event::decode(&record.payload).expect("event");
            let started = Instant::now();
            match &mut state {
                None => state = Some(State::begin(&event).expect("saga_started first")),
                Some(s) => s.apply_at(&event, record.at),
            }
            replay += started.elapsed();
            events += 1;
            if let Some(s) = &state {
                max = max.max(s.encode().expect("encode").len());
            }
        }
        last = state;
    }
    let s = last.expect("the corpus holds a saga");
    let users = s.inventory.as_ref().map_or(0, |i| i.users.len());
    println!("bench state.users {users} users");
    println!("bench state.max_encoded_kb {:.1} KB", kb(max));
    println!(
        "bench state.inventory_kb {:.1} KB",
        kb(encoded(&s.inventory))
    );
    println!("bench state.stake_kb {:.1} KB", kb(encoded(&s.stake)));
    println!("bench state.tables_kb {:.1} KB", kb(encoded(&s.tables)));
    println!("bench state.notices_kb {:.1} KB", kb(encoded(&s.notices)));
    println!(
        "bench state.replay_events_per_s {:.0} events/s",
        events as f64 / replay.as_secs_f64().max(1e-9)
    );
}
