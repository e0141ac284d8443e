//! Tampering with the sled database behind the store's back: one changed
//! byte, a removed record, two swapped records and a cut tail are each
//! detected by `verify`, naming the right global seq.

use std::path::Path;

use closeout::model::SagaId;
use closeout::store::{index, layout, Error, Snapshot, Store, SLED_DIR};

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

/// Builds a log, applies `tamper` to its sled tree, and returns what
/// `verify_dir` says about it.
async fn tampered(tamper: impl FnOnce(&sled::Db)) -> (tempfile::TempDir, Option<(u64, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path()).await;
    {
        let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
        tamper(&db);
        db.flush().unwrap();
    }
    let report = Store::verify_dir(tmp.path()).unwrap();
    let bad = report.first_bad.map(|b| (b.global_seq, b.reason));
    (tmp, bad)
}

fn key(seq: u64) -> [u8; 9] {
    layout::record_key(seq)
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
        db.get(key(7)).unwrap().unwrap().len()
    };
    for i in (0..len).step_by(5).chain([len - 1]) {
        {
            let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
            let mut v = db.get(key(7)).unwrap().unwrap().to_vec();
            v[i] ^= 0x20;
            db.insert(key(7), v).unwrap();
            db.flush().unwrap();
        }
        let bad = Store::verify_dir(tmp.path()).unwrap().first_bad;
        assert_eq!(bad.map(|b| b.global_seq), Some(7), "byte {i}");
        let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
        let mut v = db.get(key(7)).unwrap().unwrap().to_vec();
        v[i] ^= 0x20;
        db.insert(key(7), v).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(Store::verify_dir(tmp.path()).unwrap().first_bad, None);
}

#[tokio::test]
async fn a_changed_payload_byte_is_named() {
    let (_tmp, bad) = tampered(|db| {
        let mut v = db.get(key(12)).unwrap().unwrap().to_vec();
        let mid = v.len() / 2;
        v[mid] = v[mid].wrapping_add(1);
        db.insert(key(12), v).unwrap();
    })
    .await;
    let (seq, reason) = bad.expect("a changed byte went unnoticed");
    assert_eq!(seq, 12);
    assert!(reason.contains("hash"), "{reason}");
}

#[tokio::test]
async fn a_removed_record_is_named() {
    let (_tmp, bad) = tampered(|db| {
        db.remove(key(17)).unwrap();
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
            let next = db.get(key(s + 1)).unwrap().unwrap();
            db.insert(key(s), next).unwrap();
        }
        db.remove(key(30)).unwrap();
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(17));
}

#[tokio::test]
async fn two_swapped_records_are_named() {
    let (_tmp, bad) = tampered(|db| {
        let a = db.get(key(20)).unwrap().unwrap();
        let b = db.get(key(21)).unwrap().unwrap();
        db.insert(key(20), b).unwrap();
        db.insert(key(21), a).unwrap();
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(20));
}

#[tokio::test]
async fn a_cut_tail_is_named_and_refused_at_open() {
    let (tmp, bad) = tampered(|db| {
        for s in 26..=30 {
            db.remove(key(s)).unwrap();
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
        let mut v = db.get(key(30)).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        db.insert(key(30), v).unwrap();
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
        let mut v = db.get(key(25)).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        db.insert(key(25), v).unwrap();
    })
    .await;
    assert_eq!(bad.map(|b| b.0), Some(4));
}
