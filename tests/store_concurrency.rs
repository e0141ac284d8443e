//! 64 concurrent appenders over 1,000 sagas: every saga's seqs gap-free, the
//! global seqs gap-free, the chain valid, snapshots where they were written;
//! and two writers for one saga caught by the expected seq.

use std::collections::HashSet;

use closeout::model::SagaId;
use closeout::store::{Error, Snapshot, Store};

fn saga(i: u64) -> SagaId {
    SagaId(format!("{i:08}-1111-4000-8000-000000000000"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_appenders_over_a_thousand_sagas() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            // Round-robin over this task's sagas, 3 appends each of 1 or 2 events.
            for round in 0..3u64 {
                for s in (t..1000).step_by(64) {
                    let n = 1 + (s + round) % 2;
                    let expected = match round {
                        0 => 1,
                        _ => store.saga(&saga(s)).unwrap().unwrap().next_seq,
                    };
                    let payloads = (0..n)
                        .map(|i| format!("{s}/{round}/{i}").into_bytes())
                        .collect();
                    let snap = (round == 2).then(|| Snapshot {
                        state: format!("state of {s}").into_bytes(),
                        terminal: s.is_multiple_of(10),
                        label: format!("tenant-{s}"),
                    });
                    let a = store
                        .append(&saga(s), expected, payloads, snap)
                        .await
                        .unwrap();
                    assert_eq!(a.first_saga_seq, expected);
                    acks.push((s, expected, n, a.first_global_seq));
                }
            }
            acks
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let total: u64 = acked.iter().map(|a| a.2).sum();
    assert_eq!(store.last_global_seq().unwrap(), total);

    // Global seqs: 1..=total, each exactly once, in order, chain linked.
    let mut prev = [0u8; 32];
    let mut seen = HashSet::new();
    for (i, r) in store.records_from(1).enumerate() {
        let r = r.unwrap();
        assert_eq!(r.global_seq, i as u64 + 1);
        assert_eq!(r.prev_hash, prev);
        prev = r.hash;
        assert!(seen.insert((r.saga_id.clone(), r.saga_seq)));
    }
    assert_eq!(seen.len() as u64, total);
    // Every acknowledged append is where its acknowledgement said.
    for (s, first, n, global) in &acked {
        let got: Vec<_> = store
            .saga_records(&saga(*s), *first)
            .take(*n as usize)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got.len() as u64, *n);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(
                (r.saga_seq, r.global_seq),
                (first + i as u64, global + i as u64)
            );
            assert_eq!(r.at, got[0].at, "one append, one time");
        }
    }
    // Per saga: seqs 1..next without gaps; the snapshot covers all of them.
    let metas = store.list_sagas().unwrap();
    assert_eq!(metas.len(), 1000);
    for m in &metas {
        let seqs: Vec<u64> = store
            .saga_records(&m.saga_id, 1)
            .map(|r| r.unwrap().saga_seq)
            .collect();
        assert_eq!(seqs, (1..m.next_seq).collect::<Vec<_>>(), "{}", m.saga_id);
        assert_eq!(m.snapshot_seq, Some(m.next_seq - 1));
        let snap = m.snapshot.as_ref().unwrap();
        let n: u64 = m.saga_id.0[..8].parse().unwrap();
        assert_eq!(snap.state, format!("state of {n}").into_bytes());
        assert_eq!(snap.terminal, n.is_multiple_of(10));
    }
    let report = store.verify().unwrap();
    assert_eq!((report.records, report.first_bad), (total, None));
    store.close().await.unwrap();
    drop(store);
    let reopened = Store::open(tmp.path()).unwrap();
    assert_eq!(reopened.list_sagas().unwrap(), metas);
}

#[tokio::test]
async fn two_writers_for_one_saga_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let s = saga(1);
    let (a, b) = tokio::join!(
        store.append(&s, 1, vec![b"a".to_vec()], None),
        store.append(&s, 1, vec![b"b".to_vec()], None),
    );
    let (ok, conflict) = match (a, b) {
        (Ok(x), Err(e)) | (Err(e), Ok(x)) => (x, e),
        other => panic!("expected exactly one success, got {other:?}"),
    };
    assert_eq!(ok.first_saga_seq, 1);
    match conflict {
        Error::SeqConflict {
            expected: 1,
            actual: 2,
            ..
        } => {}
        e => panic!("expected a seq conflict, got {e}"),
    }
    let err = store
        .append(&s, 5, vec![b"c".to_vec()], None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SeqConflict {
                expected: 5,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = store.append(&s, 2, vec![], None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidAppend { .. }), "{err}");
    // Refused appends leave no trace.
    assert_eq!(store.last_global_seq().unwrap(), 1);
    assert_eq!(store.saga(&s).unwrap().unwrap().next_seq, 2);
    assert_eq!(store.verify().unwrap().first_bad, None);
    store.close().await.unwrap();
    let err = store
        .append(&s, 2, vec![b"d".to_vec()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WriterStopped(_)), "{err}");
}
