//! The lazily written index: readers see every event whether it is in a run
//! yet or only in the unindexed tail; a log whose runs were lost (a crash
//! before they were flushed) reads, appends and verifies as before, and is
//! indexed again by the next writer; opening a log only to read it writes
//! nothing; a saga's end comes from its snapshot or its index end, whichever
//! says more, whether its appends carry snapshots or not.

use std::path::Path;

use closeout::model::SagaId;
use closeout::store::{index, layout, Snapshot, Store, SLED_DIR};

const WINDOW: usize = 5;

fn saga(i: u64) -> SagaId {
    SagaId(format!("saga-{i}"))
}

/// What a reader sees of saga `s`: its next seq and its events' payloads.
fn seen(store: &Store, s: u64) -> (u64, Vec<String>) {
    let next = store.saga(&saga(s)).unwrap().map_or(0, |m| m.next_seq);
    let events = store
        .saga_records(&saga(s), 1)
        .map(|r| String::from_utf8(r.unwrap().payload).unwrap())
        .collect();
    (next, events)
}

fn expected(s: u64, n: u64) -> (u64, Vec<String>) {
    (n + 1, (1..=n).map(|i| format!("{s}/{i}")).collect())
}

/// Appends events 1..=n to sagas 0..sagas, interleaved one event at a time,
/// checking after each append that readers see every event so far.
async fn fill(store: &Store, sagas: u64, from: u64, to: u64) {
    for i in from..=to {
        for s in 0..sagas {
            let snap = Snapshot {
                state: vec![i as u8],
                terminal: false,
                label: format!("t{s}"),
            };
            store
                .append(
                    &saga(s),
                    i,
                    vec![format!("{s}/{i}").into_bytes()],
                    Some(snap),
                )
                .await
                .unwrap();
            assert_eq!(seen(store, s), expected(s, i));
            let listed: Vec<_> = store
                .list_sagas()
                .unwrap()
                .into_iter()
                .map(|m| (m.saga_id.0, m.next_seq))
                .collect();
            let want: Vec<_> = (0..sagas)
                .map(|t| (saga(t).0, if t <= s { i + 1 } else { i }))
                .filter(|(_, next)| *next > 1)
                .collect();
            assert_eq!(listed, want, "after event {i} of saga {s}");
        }
    }
}

/// sled's own handle on the database.
fn sled_db(dir: &Path) -> sled::Db {
    closeout::store::open_sled(&dir.join(SLED_DIR), None).unwrap()
}

/// The index mark of a closed log, read through a store opened to read only.
fn mark(dir: &Path) -> u64 {
    Store::open(dir).unwrap().indexed_through().unwrap()
}

/// Removes every run and resets the mark: the log as a crash before any run
/// was flushed leaves it.
fn lose_the_index(dir: &Path) {
    let db = sled_db(dir);
    for k in db.scan_prefix([layout::INDEX]).keys() {
        db.remove(k.unwrap()).unwrap();
    }
    db.insert(index::INDEXED, &0u64.to_be_bytes()).unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn readers_see_events_in_runs_and_in_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_tuned(tmp.path(), None, WINDOW).unwrap();
    fill(&store, 3, 1, 7).await;
    // 21 events, a run per saga written every 5: the mark is at 20.
    {
        let records: Vec<_> = store.records_from(1).map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), 21);
    }
    assert_eq!(store.indexed_through().unwrap(), 20);
    store.close().await.unwrap();
    drop(store);
    assert_eq!(mark(tmp.path()), 21, "closing indexes the tail");
    let report = Store::verify_dir(tmp.path()).unwrap();
    assert_eq!((report.records, report.first_bad), (21, None));
}

#[tokio::test]
async fn a_log_whose_runs_were_lost_reads_appends_and_is_indexed_again() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open_tuned(tmp.path(), None, 1000).unwrap();
        fill(&store, 4, 1, 3).await;
        store.close().await.unwrap();
    }
    lose_the_index(tmp.path());
    // Sound as it is: the tail needs no index.
    let report = Store::verify_dir(tmp.path()).unwrap();
    assert_eq!((report.records, report.first_bad), (12, None));
    {
        // Opened to read only: every event is there, and nothing is written.
        let store = Store::open_tuned(tmp.path(), None, WINDOW).unwrap();
        for s in 0..4 {
            assert_eq!(seen(&store, s), expected(s, 3));
        }
        assert_eq!(store.list_sagas().unwrap().len(), 4);
        store.close().await.unwrap();
    }
    assert_eq!(mark(tmp.path()), 0, "a reader wrote the index");
    {
        // The next writer continues each saga where it stopped and indexes
        // the old tail with its own events.
        let store = Store::open_tuned(tmp.path(), None, WINDOW).unwrap();
        fill(&store, 4, 4, 6).await;
        store.close().await.unwrap();
    }
    assert_eq!(mark(tmp.path()), 24);
    let report = Store::verify_dir(tmp.path()).unwrap();
    assert_eq!((report.records, report.first_bad), (24, None));
    let store = Store::open(tmp.path()).unwrap();
    for s in 0..4 {
        assert_eq!(seen(&store, s), expected(s, 6));
    }
}

#[tokio::test]
async fn reading_from_the_middle_of_a_run_or_of_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_tuned(tmp.path(), None, WINDOW).unwrap();
    fill(&store, 2, 1, 8).await;
    // Saga 0: seqs 1..=8; the mark (at 15) leaves its last event in the tail.
    assert_eq!(store.indexed_through().unwrap(), 15);
    for from in 1..=9 {
        let seqs: Vec<u64> = store
            .saga_records(&saga(0), from)
            .map(|r| r.unwrap().saga_seq)
            .collect();
        assert_eq!(seqs, (from..=8).collect::<Vec<_>>(), "from {from}");
    }
}

/// A snapshot after event `i` (its state is `i`).
fn snapshot(i: u64) -> Snapshot {
    Snapshot {
        state: vec![i as u8],
        terminal: false,
        label: "t".into(),
    }
}

#[tokio::test]
async fn sagas_end_where_their_snapshot_or_index_end_says() {
    // Saga 0 carries a snapshot with every append; saga 1 with none; saga 2
    // with every third. Runs are written every 5 events, so each kind of
    // saga has runs ending at a snapshot and runs ending past it.
    let tmp = tempfile::tempdir().unwrap();
    let check = |store: &Store, n: u64| {
        let listed: Vec<_> = store
            .list_sagas()
            .unwrap()
            .into_iter()
            .map(|m| (m.saga_id.0, m.next_seq, m.snapshot_seq))
            .collect();
        let want = vec![
            (saga(0).0, n + 1, Some(n)),
            (saga(1).0, n + 1, None),
            (saga(2).0, n + 1, Some(n / 3 * 3)),
        ];
        let want: Vec<_> = want
            .into_iter()
            .map(|(s, next, snap)| (s, next, snap.filter(|&q| q > 0)))
            .collect();
        assert_eq!(listed, want, "after {n} events each");
        for s in 0..3 {
            assert_eq!(seen(store, s), expected(s, n));
        }
    };
    {
        let store = Store::open_tuned(tmp.path(), None, WINDOW).unwrap();
        for i in 1..=11u64 {
            for s in 0..3u64 {
                let snap = match s {
                    0 => Some(snapshot(i)),
                    2 if i % 3 == 0 => Some(snapshot(i)),
                    _ => None,
                };
                let event = vec![format!("{s}/{i}").into_bytes()];
                store.append(&saga(s), i, event, snap).await.unwrap();
            }
            check(&store, i);
        }
        store.close().await.unwrap();
    }
    let report = Store::verify_dir(tmp.path()).unwrap();
    assert_eq!((report.records, report.first_bad), (33, None));
    // Reopened: the same ends, and each saga continues where it stopped.
    let store = Store::open_tuned(tmp.path(), None, WINDOW).unwrap();
    check(&store, 11);
    for s in 0..3u64 {
        let event = vec![format!("{s}/12").into_bytes()];
        store.append(&saga(s), 12, event, None).await.unwrap();
    }
    store.close().await.unwrap();
    drop(store);
    let report = Store::verify_dir(tmp.path()).unwrap();
    assert_eq!((report.records, report.first_bad), (36, None));
}

#[tokio::test]
async fn a_snapshot_that_does_not_decode_is_named_when_listing() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path()).unwrap();
        let event = vec![b"e".to_vec()];
        store
            .append(&saga(7), 1, event, Some(snapshot(1)))
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    {
        let db = sled_db(tmp.path());
        db.insert(
            layout::saga_key(layout::SNAPSHOT, &saga(7)),
            &[1u8, 0, 9][..],
        )
        .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(tmp.path()).unwrap();
    match store.list_sagas() {
        Err(e @ closeout::store::Error::Codec { .. }) => {
            assert!(e.to_string().contains("saga-7"), "{e}");
        }
        other => panic!("expected a codec error, got {other:?}"),
    }
}
