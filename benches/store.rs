//! Benchmark of the event log: durable appends with 1, 8 and 64 concurrent
//! appenders against sled's own insert rates, and recovery of a large log
//! against sled's bare open of the same database.
//!
//! Prints `bench <name> <value> <unit>` per figure. `CLOSEOUT_BENCH_QUICK=1`
//! shrinks it to a few seconds (a 20k-event log instead of 1M).

use std::path::Path;
use std::time::{Duration, Instant};

use closeout::model::SagaId;
use closeout::store::{Snapshot, Store, SLED_DIR};

/// Sizes of one run.
struct Sizes {
    /// Events appended per appender count (1, 8, 64).
    appends: [u64; 3],
    /// Inserts for sled's flush-per-insert figure.
    flush_each: u64,
    /// Inserts for sled's no-flush figure.
    no_flush: u64,
    /// Events in the recovery log.
    recovery_events: u64,
    /// Timed repetitions of each open (the median is printed).
    opens: usize,
}

const PAYLOAD: usize = 200;
const SAGAS: u64 = 1000;

fn print(name: &str, value: f64, unit: &str) {
    // Opens take milliseconds: seconds get microsecond resolution.
    let places = if unit == "s" { 6 } else { 3 };
    println!("bench {name} {value:.places$} {unit}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn appends(dir: &Path, appenders: u64, events: u64) -> f64 {
    let store = Store::open(dir).unwrap();
    let per_task = events / appenders;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..appenders {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let saga = SagaId(format!("bench-{t}"));
            for seq in 1..=per_task {
                store
                    .append(&saga, seq, vec![vec![7u8; PAYLOAD]], None)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (per_task * appenders) as f64 / start.elapsed().as_secs_f64();
    store.close().await.unwrap();
    rate
}

fn sled_inserts(dir: &Path, n: u64, flush_each: bool) -> f64 {
    let db = sled::open(dir).unwrap();
    let value = vec![7u8; PAYLOAD];
    let start = Instant::now();
    for i in 0..n {
        db.insert(i.to_be_bytes(), value.as_slice()).unwrap();
        if flush_each {
            db.flush().unwrap();
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// A log of `events` events over 1,000 sagas, each append of 50 events
/// carrying a snapshot, written by 64 concurrent appenders.
async fn build_log(dir: &Path, events: u64) {
    let store = Store::open(dir).unwrap();
    let per_saga = events / SAGAS;
    let chunk = 50.min(per_saga).max(1);
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for s in (t..SAGAS).step_by(64) {
                let saga = SagaId(format!("{s:08}-0000-4000-8000-000000000000"));
                let mut seq = 1;
                while seq <= per_saga {
                    let n = chunk.min(per_saga - seq + 1);
                    let snap = Snapshot {
                        state: vec![1u8; PAYLOAD],
                        terminal: false,
                        label: format!("tenant-{s}"),
                    };
                    let payloads = (0..n).map(|_| vec![9u8; PAYLOAD]).collect();
                    store
                        .append(&saga, seq, payloads, Some(snap))
                        .await
                        .unwrap();
                    seq += n;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.close().await.unwrap();
}

/// Opens the log and loads the state of its active sagas: their snapshots
/// plus any events after them.
fn recover(dir: &Path) -> Duration {
    let start = Instant::now();
    let store = Store::open(dir).unwrap();
    let mut active = 0;
    let mut replayed = 0;
    for meta in store.list_sagas().unwrap() {
        let Some(snap) = &meta.snapshot else { continue };
        if snap.terminal {
            continue;
        }
        active += 1;
        // As the daemon does: read the events after the snapshot, if any.
        let from = meta.snapshot_seq.unwrap_or(0) + 1;
        if from < meta.next_seq {
            replayed += store.saga_records(&meta.saga_id, from).count();
        }
    }
    let took = start.elapsed();
    assert_eq!((active, replayed), (SAGAS, 0));
    drop(store);
    took
}

fn bare_open(dir: &Path) -> Duration {
    let start = Instant::now();
    let db = sled::Config::new().path(dir.join(SLED_DIR)).open().unwrap();
    let took = start.elapsed();
    drop(db);
    took
}

fn main() {
    let quick = std::env::var("CLOSEOUT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let s = if quick {
        Sizes {
            appends: [300, 2_000, 10_000],
            flush_each: 300,
            no_flush: 20_000,
            recovery_events: 20_000,
            opens: 3,
        }
    } else {
        Sizes {
            appends: [3_000, 20_000, 128_000],
            flush_each: 3_000,
            no_flush: 200_000,
            recovery_events: 1_000_000,
            opens: 5,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (i, n) in [1u64, 8, 64].into_iter().enumerate() {
        let dir = tmp.path().join(format!("appends-{n}"));
        let rate = rt.block_on(appends(&dir, n, s.appends[i]));
        print(&format!("store.appends_{n}"), rate, "events/s");
    }
    let rate = sled_inserts(&tmp.path().join("sled-flush"), s.flush_each, true);
    print("sled.insert_flush_each", rate, "events/s");
    let rate = sled_inserts(&tmp.path().join("sled-no-flush"), s.no_flush, false);
    print("sled.insert_no_flush", rate, "events/s");

    let dir = tmp.path().join("recovery");
    rt.block_on(build_log(&dir, s.recovery_events));
    // sled is opened bare on its own copy of the same files: opening them
    // bare changes them, and the store then (rightly) checks a copy first.
    let bare = tmp.path().join("recovery-bare");
    copy_tree(&dir, &bare);
    let (mut store_t, mut sled_t, mut crash_t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.opens {
        sled_t.push(bare_open(&bare));
        store_t.push(recover(&dir));
    }
    // After a crash the store opens a copy of sled's files first, so that
    // sled's recovery cannot cut acknowledged records: a crash leaves its
    // state file not clean.
    for _ in 0..s.opens.min(3) {
        let state = dir.join("STORE_STATE");
        let text = std::fs::read_to_string(&state).unwrap();
        std::fs::write(&state, text.replace("clean true", "clean false")).unwrap();
        crash_t.push(recover(&dir));
    }
    eprintln!("(recovery log: {} events)", s.recovery_events);
    print("store.recovery_1m", median(store_t).as_secs_f64(), "s");
    print("sled.open_1m", median(sled_t).as_secs_f64(), "s");
    print(
        "store.recovery_after_crash_1m",
        median(crash_t).as_secs_f64(),
        "s",
    );
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}
