//! Crash and lock tests across processes: the test binary re-executes itself
//! as a child (selected by an environment variable) that appends and is
//! SIGKILLed, or that holds the data dir while the parent tries to open it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use closeout::model::SagaId;
use closeout::store::{Error, Snapshot, Store};

/// The child's role and data dir: `append:<dir>` or `hold:<dir>`.
const ROLE: &str = "CLOSEOUT_STORE_TEST_CHILD";

fn spawn_child(test: &str, role: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, format!("{role}:{}", dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads one line of the child's output, recording it if it is a complete
/// acknowledgement (`ack <task> <saga seq> <global seq>\n`); false at the end.
fn read_ack(out: &mut impl BufRead, acked: &mut Vec<(u64, u64, u64)>) -> bool {
    let mut line = String::new();
    if out.read_line(&mut line).unwrap_or(0) == 0 {
        return false;
    }
    if let (Some(rest), true) = (line.split("ack ").nth(1), line.ends_with('\n')) {
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        acked.push((v[0], v[1], v[2]));
    }
    true
}

/// The child: appends forever from 8 tasks, each continuing its saga after
/// its durable seq, printing each acknowledgement.
#[test]
fn child_append() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let Some(dir) = role.strip_prefix("append:") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(Path::new(dir)).unwrap();
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let saga = SagaId(format!("saga-{t}"));
                let mut seq = store.saga(&saga).unwrap().map_or(1, |m| m.next_seq);
                loop {
                    let n = 1 + seq % 3;
                    let payloads = (0..n).map(|i| vec![t as u8; 50 + i as usize]).collect();
                    let snap = Snapshot {
                        state: seq.to_le_bytes().to_vec(),
                        terminal: false,
                        label: format!("tenant-{t}"),
                    };
                    let a = store
                        .append(&saga, seq, payloads, Some(snap))
                        .await
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    for i in 0..n {
                        writeln!(out, "ack {t} {} {}", seq + i, a.first_global_seq + i).unwrap();
                    }
                    out.flush().unwrap();
                    seq += n;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// The child: holds the data dir until its stdin closes.
#[test]
fn child_hold() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let Some(dir) = role.strip_prefix("hold:") else {
        return;
    };
    let _store = Store::open(Path::new(dir)).unwrap();
    println!("child ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[tokio::test]
async fn every_acknowledged_event_survives_sigkill() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut acked: Vec<(u64, u64, u64)> = Vec::new();
    for round in 0..3 {
        let mut child = spawn_child("child_append", "append", &dir);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let before = acked.len();
        while acked.len() < before + 200 {
            assert!(read_ack(&mut out, &mut acked), "child ended early");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements printed before the kill but not yet read count too.
        while read_ack(&mut out, &mut acked) {}
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("round {round}: {e}"));
        for &(t, saga_seq, global) in &acked {
            let saga = SagaId(format!("saga-{t}"));
            let r = store
                .saga_records(&saga, saga_seq)
                .next()
                .unwrap_or_else(|| panic!("acknowledged saga-{t} seq {saga_seq} lost"))
                .unwrap();
            assert_eq!((r.saga_seq, r.global_seq), (saga_seq, global));
        }
        let report = store.verify().unwrap();
        assert_eq!(report.first_bad, None);
        assert!(report.records >= acked.len() as u64);
        for meta in store.list_sagas().unwrap() {
            let n = store.saga_records(&meta.saga_id, 1).count() as u64;
            assert_eq!(meta.next_seq, n + 1, "{}", meta.saga_id);
        }
        drop(store);
    }
}

#[test]
fn a_dir_held_by_another_process_is_refused_with_its_pid() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut child = spawn_child("child_hold", "hold", &dir);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child ended early").unwrap();
        if line.ends_with("child ready") {
            break;
        }
    }
    match Store::open(&dir) {
        Err(e @ Error::Locked { .. }) => {
            let want = format!(
                "data dir {} is in use by another closeout process (pid {})",
                dir.display(),
                child.id()
            );
            assert_eq!(e.to_string(), want);
        }
        Err(e) => panic!("expected a lock error, got {e}"),
        Ok(_) => panic!("a held data dir was opened twice"),
    }
    drop(child.stdin.take());
    child.wait().unwrap();
    Store::open(&dir).expect("the dir is free once its holder has exited");
}
