//! Opening the log: an unknown format version refused without changing the
//! data dir, a second open of a held dir refused with the clear message, and
//! a clean reopen keeping everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use closeout::model::SagaId;
use closeout::store::{layout, Error, Store, FORMAT_FILE, SLED_DIR};

/// Every file under `dir` with its contents.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

async fn small_log(dir: &Path) {
    let store = Store::open(dir).unwrap();
    let s = SagaId("s".into());
    store
        .append(&s, 1, vec![b"one".to_vec(), b"two".to_vec()], None)
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn an_unknown_format_file_is_refused_touching_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    small_log(tmp.path()).await;
    // Version 1 (one index entry per event) is no longer read.
    std::fs::write(tmp.path().join(FORMAT_FILE), "closeout-store 1\n").unwrap();
    let before = contents(tmp.path());
    match Store::open(tmp.path()) {
        Err(e @ Error::UnknownFormat { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("format version 1"), "{msg}");
            assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
        }
        Err(e) => panic!("expected an unknown format, got {e}"),
        Ok(_) => panic!("a log of an unknown format was opened"),
    }
    assert!(matches!(
        Store::verify_dir(tmp.path()),
        Err(Error::UnknownFormat { .. })
    ));
    assert_eq!(contents(tmp.path()), before, "the data dir was changed");
}

#[tokio::test]
async fn an_unknown_version_inside_sled_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    small_log(tmp.path()).await;
    {
        let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
        db.insert(layout::VERSION, &7u16.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    // sled itself may rewrite its snapshot file when opened, so this second
    // line of defence (the FORMAT file is the first) checks logical contents.
    match Store::open(tmp.path()) {
        Err(Error::UnknownFormat { found, .. }) => assert_eq!(found, "7"),
        Err(e) => panic!("expected an unknown format, got {e}"),
        Ok(_) => panic!("a log of an unknown format was opened"),
    }
    let db = closeout::store::open_sled(&tmp.path().join(SLED_DIR), None).unwrap();
    assert_eq!(
        db.get(layout::VERSION).unwrap().unwrap().as_ref(),
        &7u16.to_be_bytes()
    );
    assert_eq!(closeout::store::blocks::count_records(&db).unwrap(), 2);
}

#[tokio::test]
async fn a_sled_dir_without_format_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    small_log(tmp.path()).await;
    std::fs::remove_file(tmp.path().join(FORMAT_FILE)).unwrap();
    assert!(matches!(
        Store::open(tmp.path()),
        Err(Error::UnknownFormat { .. })
    ));
}

#[test]
fn a_second_open_in_this_process_is_refused_with_the_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = Store::open(tmp.path()).unwrap();
    let err = Store::open(tmp.path()).err().expect("opened twice");
    assert_eq!(
        err.to_string(),
        format!(
            "data dir {} is in use by another closeout process (pid {})",
            tmp.path().display(),
            std::process::id()
        )
    );
}

#[tokio::test]
async fn a_reopened_log_continues_the_chain_and_the_sagas() {
    let tmp = tempfile::tempdir().unwrap();
    small_log(tmp.path()).await;
    let store = Store::open(tmp.path()).unwrap();
    let s = SagaId("s".into());
    let a = store
        .append(&s, 3, vec![b"three".to_vec()], None)
        .await
        .unwrap();
    assert_eq!((a.first_global_seq, a.first_saga_seq), (3, 3));
    let payloads: Vec<_> = store
        .saga_records(&s, 2)
        .map(|r| r.unwrap().payload)
        .collect();
    assert_eq!(payloads, vec![b"two".to_vec(), b"three".to_vec()]);
    let all: Vec<_> = store
        .records_from(2)
        .map(|r| r.unwrap().global_seq)
        .collect();
    assert_eq!(all, vec![2, 3]);
    assert_eq!(store.verify().unwrap().first_bad, None);
    assert_eq!(store.saga(&SagaId("unknown".into())).unwrap(), None);
}

/// A log of `n` records in commits of 50, closed cleanly.
async fn log_of(dir: &Path, n: u64) {
    let store = fill(dir, n).await;
    store.close().await.unwrap();
}

/// A log of `n` records as a crash leaves it: its files copied into
/// `crashed` while the store is still open (every append is on disk).
async fn crashed_log_of(dir: &Path, crashed: &Path, n: u64) {
    let store = fill(dir, n).await;
    // A flush records the durable head outside sled, as the flusher does
    // once a second while appends go on.
    store.flush().await.unwrap();
    copy_tree(dir, crashed);
    store.close().await.unwrap();
}

async fn fill(dir: &Path, n: u64) -> Store {
    let store = Store::open(dir).unwrap();
    let s = SagaId("s".into());
    let mut seq = 1;
    while seq <= n {
        let batch: Vec<Vec<u8>> = (seq..(seq + 50).min(n + 1))
            .map(|i| format!("record {i} {}", "x".repeat(180)).into_bytes())
            .collect();
        let k = batch.len() as u64;
        store.append(&s, seq, batch, None).await.unwrap();
        seq += k;
    }
    store
}

/// Copies a data dir (for one damage case each).
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

/// The largest file of sled's directory.
fn sled_db_file(dir: &Path) -> PathBuf {
    contents(&dir.join(SLED_DIR))
        .into_iter()
        .max_by_key(|(_, b)| b.len())
        .unwrap()
        .0
}

#[tokio::test]
async fn a_damaged_log_is_never_changed_by_reading_it_and_refused_by_the_writer() {
    let live = tempfile::tempdir().unwrap();
    let built = tempfile::tempdir().unwrap();
    crashed_log_of(live.path(), built.path(), 2000).await;
    let head = Store::open_copy(built.path(), None)
        .unwrap()
        .head()
        .unwrap();
    let len = std::fs::metadata(sled_db_file(built.path())).unwrap().len();
    let mut refused = 0;
    // Every twentieth of the file, and near its end (sled panics on some
    // damage while it opens; that is turned into an error).
    for offset in (1..20).map(|k| k * len / 20).chain([len - 200]) {
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(built.path(), tmp.path());
        let file = sled_db_file(tmp.path());
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[offset as usize] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let sled = tmp.path().join(SLED_DIR);
        let before = contents(&sled);
        // Readers work on a private copy: whatever they find, the data
        // dir keeps every byte.
        let _ = Store::verify_dir(tmp.path());
        if let Ok(r) = Store::open_read_only(tmp.path()) {
            let _ = r.records().count();
        }
        if let Ok(s) = Store::open_copy(tmp.path(), None) {
            let _ = s.verify();
        }
        assert_eq!(
            contents(&sled),
            before,
            "offset {offset}: a reader changed the log"
        );
        // The writer refuses a log sled would cut, changing nothing, or
        // opens it whole.
        match Store::open(tmp.path()) {
            Err(e) => {
                refused += 1;
                assert_eq!(
                    contents(&sled),
                    before,
                    "offset {offset}: refused after changing it ({e})"
                );
            }
            Ok(s) => assert_eq!(s.head().unwrap(), head, "offset {offset}: history lost"),
        }
    }
    assert!(refused > 0, "no damage case reached the refusal");
}

#[tokio::test]
async fn a_removed_or_swapped_database_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    log_of(tmp.path(), 100).await;
    // Another log's database in its place: refused, as it was.
    let other = tempfile::tempdir().unwrap();
    log_of(other.path(), 60).await;
    let sled = tmp.path().join(SLED_DIR);
    std::fs::remove_dir_all(&sled).unwrap();
    copy_tree(&other.path().join(SLED_DIR), &sled);
    let before = contents(&sled);
    match Store::open(tmp.path()) {
        Err(e @ Error::HistoryLost { .. }) => {
            assert!(e.to_string().contains("acknowledged"), "{e}");
        }
        Err(e) => panic!("expected history lost, got {e}"),
        Ok(_) => panic!("another log's database was opened"),
    }
    assert_eq!(contents(&sled), before);
    // A longer log from elsewhere: its record at the acknowledged seq is
    // another one. Refused by the writer and by verify's copy.
    let longer = tempfile::tempdir().unwrap();
    log_of(longer.path(), 200).await;
    std::fs::remove_dir_all(&sled).unwrap();
    copy_tree(&longer.path().join(SLED_DIR), &sled);
    let before = contents(&sled);
    assert!(
        matches!(
            Store::open(tmp.path()),
            Err(Error::NotThisLog { seq: 100, .. })
        ),
        "another log's database was opened"
    );
    assert!(matches!(
        Store::open_copy(tmp.path(), None),
        Err(Error::NotThisLog { .. })
    ));
    assert_eq!(contents(&sled), before);
    // Removed: refused, never started empty in its place; also with the
    // store's state removed with it (FORMAT says a log was made here).
    std::fs::remove_dir_all(&sled).unwrap();
    assert!(matches!(
        Store::open(tmp.path()),
        Err(Error::SledMissing { .. })
    ));
    assert!(matches!(
        Store::open_read_only(tmp.path()),
        Err(Error::SledMissing { .. })
    ));
    std::fs::remove_file(tmp.path().join("STORE_STATE")).unwrap();
    assert!(matches!(
        Store::open(tmp.path()),
        Err(Error::SledMissing { .. })
    ));
    assert!(!sled.exists(), "a missing database was created");
}

#[tokio::test]
async fn verify_refuses_a_log_cut_behind_what_was_acknowledged() {
    let live = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    crashed_log_of(live.path(), crashed.path(), 2000).await;
    let file = sled_db_file(crashed.path());
    let len = std::fs::metadata(&file).unwrap().len();
    // Cut the database short: whatever sled makes of it, it is not the log
    // that acknowledged 2,000 records.
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    match Store::open_copy(crashed.path(), None) {
        Err(Error::HistoryLost { .. } | Error::NotThisLog { .. } | Error::Sled { .. }) => {}
        Err(e) => panic!("unexpected {e}"),
        Ok(s) => panic!("a cut log verified: head {:?}", s.head().unwrap()),
    }
}
