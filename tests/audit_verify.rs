//! `closeout verify`: a sound log exits 0 with a summary; tampering with a
//! copy of the log (a changed byte, a removed record, an outcome without an
//! intent) exits 1 naming the first bad record; a jsonl export is checked
//! line by line against the log.

mod audit_support;

use audit_support::{build, closeout, standard, Script};
use closeout::saga::Event;
use closeout::store::blocks;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// Changes the stored bytes of record `seq` in a (copied, closed) data dir.
fn tamper(dir: &Path, f: impl FnOnce(&sled::Db)) {
    let db = closeout::store::open_sled(&dir.join("sled"), None).expect("open sled copy");
    f(&db);
    db.flush().expect("flush");
}

fn verify(dir: &Path) -> (i32, String, String) {
    closeout(&["verify", "--data-dir", dir.to_str().unwrap_or_default()])
}

#[test]
fn a_sound_log_verifies_with_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sagas = standard(dir.path());
    let records: usize = sagas.iter().map(|(_, e)| e.len()).sum();
    let (code, out, err) = verify(dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("log sound: {records} records in 2 sagas")),
        "{out}"
    );
    assert!(out.contains("1 in doubt"), "{out}");
}

#[test]
fn a_changed_byte_in_a_copy_is_caught_at_that_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), copy.path());
    let (code, _, err) = verify(copy.path());
    assert_eq!(code, 0, "the untouched copy is sound: {err}");
    tamper(copy.path(), |db| {
        let mut v = blocks::get_record(db, 17).expect("get").expect("record 17");
        // Flip a byte in the payload (after the header), e.g. a status code.
        let i = v.len() / 2;
        v[i] ^= 0x20;
        assert!(blocks::put_record(db, 17, &v).expect("rewrite its block"));
    });
    let (code, _, err) = verify(copy.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("log unsound: record 17 "), "{err}");
    // The original is untouched and still sound.
    assert_eq!(verify(dir.path()).0, 0);
}

#[test]
fn a_removed_record_is_caught_as_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    tamper(dir.path(), |db| {
        assert!(blocks::remove_record(db, 9).expect("rewrite its block"));
    });
    let (code, _, err) = verify(dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("record 9"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn an_outcome_without_intent_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Script::new("saga-orphan", "orphan.onmicrosoft.com", 2);
    let mut events = audit_support::events(&script);
    // Drop the first intent: its outcomes now answer nothing (a chain that
    // is sound byte for byte, but a log that breaks the intent rule).
    let i = events
        .iter()
        .position(|e| matches!(e, Event::ChangeIntended { .. }))
        .expect("an intent");
    events.remove(i);
    let first_outcome = events
        .iter()
        .position(|e| matches!(e, Event::ChangeApplied { .. }))
        .expect("an outcome");
    build(dir.path(), &[("saga-orphan".into(), events)], 3);
    let (code, _, err) = verify(dir.path());
    assert_eq!(code, 1, "{err}");
    let seq = first_outcome + 1;
    assert!(
        err.contains(&format!("record {seq} (saga saga-orphan #{seq}): outcome of change 0/orphan.onmicrosoft.com-user-000000 has no earlier intent")),
        "{err}"
    );
}

#[test]
fn an_export_is_checked_against_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let d = dir.path().to_str().unwrap_or_default();
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("audit.jsonl");
    let f = file.to_str().unwrap_or_default();
    let (code, _, err) = closeout(&["audit", "--data-dir", d, "--format", "jsonl", "--output", f]);
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = closeout(&["verify", "--data-dir", d, "--export", f]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("matches the log"), "{stdout}");

    // A filtered export is a faithful part of the log too.
    let part = out.path().join("part.jsonl");
    let p = part.to_str().unwrap_or_default();
    let (code, _, err) = closeout(&[
        "audit",
        "--data-dir",
        d,
        "--format",
        "jsonl",
        "--saga",
        "saga-fabrikam",
        "--output",
        p,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(closeout(&["verify", "--data-dir", d, "--export", p]).0, 0);

    // Someone edits a status in the copy: the line is named.
    let text = std::fs::read_to_string(&file).expect("export");
    let line = text
        .lines()
        .position(|l| l.contains("\"status\":429"))
        .expect("a 429 line")
        + 1;
    std::fs::write(&file, text.replacen("\"status\":429", "\"status\":204", 1)).expect("write");
    let (code, _, err) = closeout(&["verify", "--data-dir", d, "--export", f]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("line {line} ")), "{err}");
    assert!(err.contains("http differs from the log"), "{err}");
}

#[test]
fn a_log_held_by_a_running_daemon_is_reported_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let config = dir.path().join("closeout.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ncontrol_socket = {:?}\n",
            dir.path().display().to_string(),
            dir.path().join("control.sock").display().to_string()
        ),
    )
    .expect("config");
    let c = config.to_str().unwrap_or_default();
    assert_eq!(
        closeout(&["audit", "--config", c, "--format", "jsonl"]).0,
        0
    );
    let held = closeout::store::Store::open(dir.path()).expect("hold the store");
    let (code, _, err) = closeout(&["audit", "--config", c]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is locked by the running daemon"), "{err}");
    assert!(err.contains("control.sock"), "{err}");
    let (code, _, err) = closeout(&["verify", "--config", c]);
    assert_eq!(code, 1, "{err}");
    drop(held);

    let empty = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = verify(empty.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no closeout event log here"), "{err}");
}
