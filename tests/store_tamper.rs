//! Tampering with the sled database behind the store's back: one changed
//! byte, a removed record, two swapped records and a cut tail are each
//! detected by `verify`, naming the right global seq, whether each record
//! has a block of its own (one event per commit) or shares it (one append
//! of many events), and a broken block frame too.

use std::path::Path;

use closeout::model::SagaId;
use closeout::store::{blocks, index, layout, Error, Snapshot, Store, SLED_DIR};

/// 3 sagas x 10 events, interleaved: global seqs 1..=30.
async fn build(dir: &Path) {
    let store = Store::open(dir).unwrap();
    for i in 0..10u64 {
        for s in 0..3u64 {
            let saga = SagaId(format!("saga-{s}"));
            let snap = Snapshot {
                state: vec![i as u8],
                terminal: false,
                label: "t".into(),
            };
            store
                .append(&saga, i + 1, vec![vec![s as u8; 40]], Some(snap))
                .await
                .unwrap();
        }
    }
    store.close().await.unwrap();
}

/// 3 sagas x 10 events, one append each: three blocks of 10 records
/// (global seqs 1..=10, 11..=20, 21..=30).
async fn build_packed(dir: &Path) {
    let store = Store::open(dir).unwrap();
    for s in 0..3u64 {
        let saga = SagaId(format!("saga-{s}"));
        let events = (0..10u8).map(|i| vec![i; 40]).collect();
        store.append(&saga, 1, events, None).await.unwrap();
    }
    store.close().await.unwrap();
}

/// Builds a log, applies `tamper` to its sled tree, and returns what
/// `verify_dir` says about it.
async fn tampered(tamper: impl FnOnce(&sled::Db)) -> (tempfile::TempDir, Option<(u64, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path()).await;
    tamper_and_verify(tmp, tamper)
}

/// [`tampered`] on the log of [`build_packed`].
async fn tampered_packed(
    tamper: impl FnOnce(&sled::Db),
) -> (tempfile::TempDir, Option<(u64, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    build_packed(tmp.path()).await;
    tamper_and_verify(tmp, tamper)
}

fn tamper_and_verify(
    tmp: tempfile::TempDir,
    tamper: impl FnOnce(&sled::Db),
) -> (tempfile::TempDir, Option<(u64, String)>) {
    {
        let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
        tamper(&db);
        db.flush().unwrap();
    }
    let report = Store::verify_dir(tmp.path()).unwrap();
    let bad = report.first_bad.map(|b| (b.global_seq, b.reason));
    (tmp, bad)
}

/// The bytes of record `seq` (in its block).
fn get(db: &sled::Db, seq: u64) -> Vec<u8> {
    blocks::get_record(db, seq).unwrap().expect("the record")
}

/// Rewrites record `seq` (in its block).
fn put(db: &sled::Db, seq: u64, bytes: &[u8]) {
    assert!(blocks::put_record(db, seq, bytes).unwrap());
}

/// Removes record `seq` from its block.
fn del(db: &sled::Db, seq: u64) {
    assert!(blocks::remove_record(db, seq).unwrap());
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let (tmp, bad) = tampered(|_| {}).await;
    assert_eq!(bad, None);
    let report = Store::verify_dir(tmp.path()).unwrap();
    assert_eq!(report.records, 30);
}

#[tokio::test]
async fn a_changed_byte_anywhere_in_a_record_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path()).await;
    let len = {
        let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
        get(&db, 7).len()
    };
    for i in (0..len).step_by(5).chain([len - 1]) {
        {
            let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
            let mut v = get(&db, 7);
            v[i] ^= 0x20;
            put(&db, 7, &v);
            db.flush().unwrap();
        }
        let bad = Store::verify_dir(tmp.path()).unwrap().first_bad;
        assert_eq!(bad.map(|b| b.global_seq), Some(7), "byte {i}");
        let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
        let mut v = get(&db, 7);
        v[i] ^= 0x20;
        put(&db, 7, &v);
        db.flush().unwrap();
    }
    assert_eq!(Store::verify_dir(tmp.path()).unwrap().first_bad, None);
}

#[tokio::test]
async fn a_changed_payload_byte_is_named() {
    let (_tmp, bad) = tampered(|db| {
        let mut v = get(db, 12);
        let mid = v.len() / 2;
        v[mid] = v[mid].wrapping_add(1);
        put(db, 12, &v);
    })
    .await;
    let (seq, reason) = bad.expect("a changed byte went unnoticed");
    assert_eq!(seq, 12);
    assert!(reason.contains("hash"), "{reason}");
}

#[tokio::test]
async fn a_removed_record_is_named() {
    let (_tmp, bad) = tampered(|db| {
        del(db, 17);
    })
    .await;
    let (seq, reason) = bad.expect("a removed record went unnoticed");
    assert_eq!(seq, 17);
    assert!(reason.contains("missing"), "{reason}");
}

#[tokio::test]
async fn a_removed_and_renumbered_record_is_named() {
    // Remove record 17 and move every later record down one key: no gap in
    // the keys, so only the chain can tell.
    let (_tmp, bad) = tampered(|db| {
        for s in 17..30 {
            let next = get(db, s + 1);
            put(db, s, &next);
        }
        del(db, 30);
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(17));
}

#[tokio::test]
async fn two_swapped_records_are_named() {
    let (_tmp, bad) = tampered(|db| {
        let a = get(db, 20);
        let b = get(db, 21);
        put(db, 20, &b);
        put(db, 21, &a);
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(20));
}

#[tokio::test]
async fn a_cut_tail_is_named_and_refused_at_open() {
    let (tmp, bad) = tampered(|db| {
        for s in 26..=30 {
            del(db, s);
        }
    })
    .await;
    let (seq, reason) = bad.expect("a cut tail went unnoticed");
    assert_eq!(seq, 26);
    assert!(reason.contains("tail was cut"), "{reason}");
    match Store::open(tmp.path()) {
        Err(Error::Damaged(b)) => assert_eq!(b.global_seq, 26),
        Err(e) => panic!("expected a damaged log, got {e}"),
        Ok(_) => panic!("a log with a cut tail was opened"),
    }
}

#[tokio::test]
async fn a_damaged_last_record_is_refused_at_open_naming_it() {
    let (tmp, bad) = tampered(|db| {
        let mut v = get(db, 30);
        let last = v.len() - 1;
        v[last] ^= 1;
        put(db, 30, &v);
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(30));
    match Store::open(tmp.path()) {
        Err(e @ Error::Damaged(_)) => {
            assert!(e.to_string().contains("record 30"), "{e}");
        }
        Err(e) => panic!("expected a damaged log, got {e}"),
        Ok(_) => panic!("a damaged log was opened"),
    }
}

/// The key of a saga's index run ending at `seq`, as the store writes it.
fn index(saga: &str, seq: u64) -> Vec<u8> {
    layout::index_key(&SagaId(saga.into()), seq)
}

/// The global seqs of a saga's one run (each saga of the built log has one
/// of its 10 events: it was indexed when the store closed).
fn run(db: &sled::Db, saga: &str) -> Vec<u64> {
    let v = db.get(index(saga, 10)).unwrap().expect("the saga's run");
    index::decode_run(&v).expect("a run").collect()
}

/// Replaces a saga's run by one of `globals` (ending at seq `globals.len()`).
fn set_run(db: &sled::Db, saga: &str, globals: &[u64]) {
    db.remove(index(saga, 10)).unwrap();
    let last = globals.len() as u64;
    db.insert(index(saga, last), index::encode_run(globals))
        .unwrap();
}

#[tokio::test]
async fn a_closed_store_has_indexed_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path()).await;
    let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
    assert_eq!(
        run(&db, "saga-1"),
        (0..10).map(|i| 2 + 3 * i).collect::<Vec<_>>()
    );
    assert_eq!(index::indexed(&db).unwrap(), 30);
}

#[tokio::test]
async fn a_removed_index_entry_is_named() {
    // saga-1's 4th event is record 11 (3 sagas interleaved): drop it from
    // the run, so that seq 4 names record 14.
    let (_tmp, bad) = tampered(|db| {
        let mut g = run(db, "saga-1");
        g.remove(3);
        set_run(db, "saga-1", &g);
    })
    .await;
    let (seq, reason) = bad.expect("a removed index entry went unnoticed");
    assert_eq!(seq, 11);
    assert!(reason.contains("index"), "{reason}");
}

#[tokio::test]
async fn a_removed_index_run_is_named() {
    let (_tmp, bad) = tampered(|db| {
        db.remove(index("saga-2", 10)).unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("a removed index run went unnoticed");
    assert_eq!(seq, 3, "saga-2's first record");
    assert!(reason.contains("index"), "{reason}");
}

#[tokio::test]
async fn an_index_entry_pointing_elsewhere_is_named() {
    let (_tmp, bad) = tampered(|db| {
        let mut g = run(db, "saga-2");
        g[6] = 14;
        set_run(db, "saga-2", &g);
    })
    .await;
    let (seq, reason) = bad.expect("a wrong index entry went unnoticed");
    assert_eq!(seq, 21);
    assert!(reason.contains("index"), "{reason}");
}

#[tokio::test]
async fn an_index_entry_of_no_record_is_named() {
    let (_tmp, bad) = tampered(|db| {
        set_run(db, "saga-9", &[5]);
    })
    .await;
    let (_, reason) = bad.expect("an index entry of no saga went unnoticed");
    assert!(reason.contains("index"), "{reason}");
}

#[tokio::test]
async fn an_index_entry_past_a_sagas_last_record_is_named() {
    let (_tmp, bad) = tampered(|db| {
        let mut g = run(db, "saga-0");
        g.push(31);
        set_run(db, "saga-0", &g);
    })
    .await;
    let (_, reason) = bad.expect("an index entry past the saga's records went unnoticed");
    assert!(reason.contains("index"), "{reason}");
}

#[tokio::test]
async fn a_malformed_index_run_is_named() {
    // saga-0's first record is record 1.
    let (_tmp, bad) = tampered(|db| {
        db.insert(index("saga-0", 10), &[1u8, 2, 3][..]).unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("a malformed run went unnoticed");
    assert_eq!(seq, 1);
    assert!(reason.contains("index"), "{reason}");
}

#[tokio::test]
async fn an_index_mark_beyond_the_head_is_named_and_refused_at_open() {
    let (tmp, bad) = tampered(|db| {
        db.insert(index::INDEXED, &40u64.to_be_bytes()).unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("a mark beyond the head went unnoticed");
    assert_eq!(seq, 31);
    assert!(reason.contains("index"), "{reason}");
    match Store::open(tmp.path()) {
        Err(Error::Damaged(b)) => assert!(b.reason.contains("index"), "{b}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a log whose index mark is beyond its head"),
    }
}

#[tokio::test]
async fn an_index_problem_before_a_broken_chain_is_named_first() {
    let (_tmp, bad) = tampered(|db| {
        let mut g = run(db, "saga-0");
        g.remove(1);
        set_run(db, "saga-0", &g);
        let mut v = get(db, 25);
        let last = v.len() - 1;
        v[last] ^= 1;
        put(db, 25, &v);
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(4));
}

#[tokio::test]
async fn an_appends_records_share_a_block_and_verify() {
    let (tmp, bad) = tampered_packed(|db| {
        let blocks: Vec<u64> = db
            .scan_prefix([layout::BLOCK])
            .map(|kv| layout::block_seq(&kv.unwrap().0).unwrap())
            .collect();
        assert_eq!(blocks, [1, 11, 21]);
    })
    .await;
    assert_eq!(bad, None);
    assert_eq!(Store::verify_dir(tmp.path()).unwrap().records, 30);
}

#[tokio::test]
async fn a_record_removed_from_inside_a_block_is_named() {
    let (_tmp, bad) = tampered_packed(|db| del(db, 15)).await;
    let (seq, reason) = bad.expect("a removed record went unnoticed");
    assert_eq!(seq, 15);
    assert!(reason.contains("missing"), "{reason}");
}

#[tokio::test]
async fn two_records_swapped_inside_a_block_are_named() {
    let (_tmp, bad) = tampered_packed(|db| {
        let (a, b) = (get(db, 4), get(db, 5));
        put(db, 4, &b);
        put(db, 5, &a);
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(4));
}

#[tokio::test]
async fn a_changed_byte_inside_a_block_is_named() {
    let (_tmp, bad) = tampered_packed(|db| {
        let mut v = get(db, 13);
        let mid = v.len() / 2;
        v[mid] ^= 0x20;
        put(db, 13, &v);
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(13));
}

#[tokio::test]
async fn a_tail_cut_inside_a_block_is_named_and_refused_at_open() {
    let (tmp, bad) = tampered_packed(|db| {
        for s in 28..=30 {
            del(db, s);
        }
    })
    .await;
    let (seq, reason) = bad.expect("a cut tail went unnoticed");
    assert_eq!(seq, 28);
    assert!(reason.contains("tail was cut"), "{reason}");
    match Store::open(tmp.path()) {
        Err(Error::Damaged(b)) => assert_eq!(b.global_seq, 28),
        Err(e) => panic!("expected a damaged log, got {e}"),
        Ok(_) => panic!("a log with a cut tail was opened"),
    }
}

#[tokio::test]
async fn a_broken_block_frame_is_named() {
    let (_tmp, bad) = tampered_packed(|db| {
        let k = layout::block_key(11);
        let mut v = db.get(k).unwrap().unwrap().to_vec();
        // The third record's length (the frames are 4-byte lengths).
        let third = blocks::frames(&v).nth(2).unwrap().unwrap().0 - 4;
        v[third..third + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        db.insert(k, v).unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("a broken frame went unnoticed");
    assert_eq!(seq, 13);
    assert!(reason.contains("block 11"), "{reason}");
}

/// The index end entries (`e`) in the log, by saga.
fn index_ends(db: &sled::Db) -> Vec<(String, u64)> {
    db.scan_prefix([layout::ENDS])
        .map(|kv| {
            let (k, v) = kv.unwrap();
            let saga = layout::saga_of(&k).unwrap().0;
            (saga, layout::u64_value(&v).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_saga_whose_snapshot_names_its_last_event_needs_no_index_end() {
    let (_tmp, bad) = tampered(|db| assert_eq!(index_ends(db), [])).await;
    assert_eq!(bad, None);
    let (_tmp, bad) = tampered_packed(|db| {
        let ends = (0..3)
            .map(|s| (format!("saga-{s}"), 11))
            .collect::<Vec<_>>();
        assert_eq!(index_ends(db), ends, "appends without a snapshot");
    })
    .await;
    assert_eq!(bad, None);
}

#[tokio::test]
async fn a_missing_index_end_is_named() {
    let (_tmp, bad) = tampered_packed(|db| {
        db.remove(layout::saga_key(layout::ENDS, &SagaId("saga-1".into())))
            .unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("a missing index end went unnoticed");
    assert_eq!(seq, 20, "saga-1's last record");
    assert!(reason.contains("index end"), "{reason}");
}

#[tokio::test]
async fn an_index_end_past_the_runs_is_named() {
    let (_tmp, bad) = tampered_packed(|db| {
        let key = layout::saga_key(layout::ENDS, &SagaId("saga-2".into()));
        db.insert(key, &12u64.to_be_bytes()).unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("an index end past the runs went unnoticed");
    assert_eq!(seq, 30, "saga-2's last record");
    assert!(reason.contains("index end"), "{reason}");
}

#[tokio::test]
async fn an_index_end_of_no_saga_is_named() {
    let (_tmp, bad) = tampered_packed(|db| {
        let key = layout::saga_key(layout::ENDS, &SagaId("saga-9".into()));
        db.insert(key, &3u64.to_be_bytes()).unwrap();
    })
    .await;
    let (_, reason) = bad.expect("an index end of no saga went unnoticed");
    assert!(reason.contains("saga-9"), "{reason}");
}

#[tokio::test]
async fn a_snapshot_past_the_sagas_last_event_is_named() {
    // saga-0's snapshot names seq 10, its last; make it claim seq 12.
    let (_tmp, bad) = tampered(|db| {
        let key = layout::saga_key(layout::SNAPSHOT, &SagaId("saga-0".into()));
        let snap = Snapshot {
            state: vec![9],
            terminal: false,
            label: "t".into(),
        };
        let bytes =
            closeout::codec::encode_versioned(closeout::store::SNAPSHOT_VERSION, &(12u64, snap))
                .unwrap();
        db.insert(key, bytes).unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("a snapshot past the last event went unnoticed");
    assert_eq!(seq, 28, "saga-0's last record");
    assert!(reason.contains("snapshot"), "{reason}");
}
