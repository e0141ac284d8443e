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
