//! Data dirs recorded by earlier versions (`tests/corpus/*`, made by
//! `scripts/record-corpus.sh` with the binary of their time) are resumed by
//! this one, never refused: `verify` accepts them as they are, the daemon
//! recovers their sagas and drives them to completion against the same
//! simulated tenants, no keep account is deleted, and the log still verifies
//! after the new version appended to it.
//!
//! The simulator starts the recorded tenants afresh (same generator and
//! seed), so users a recorded saga had already deleted exist again: the
//! resumed saga must find them by reading, as it would after any lost
//! outcome, and close the tenant anyway.

mod support;

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{all_terminal, wait_status, write_secret, ConfigOpts, Daemon, Env, Sim};

/// What `scripts/record-corpus.sh` wrote beside the data dir.
#[derive(serde::Deserialize)]
struct Meta {
    /// `step1` (killed mid step 1) or `done` (a finished closure).
    mode: String,
    /// The simulator's `--generate` spec.
    generate: String,
    /// The simulator's `--seed`.
    seed: u64,
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.toml").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no recorded data dir in {}",
        root.display()
    );
    dirs
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create data dir copy");
    for entry in fs::read_dir(from).expect("read corpus dir") {
        let entry = entry.expect("corpus entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy corpus file");
        }
    }
}

fn verify(data_dir: &Path) -> String {
    let out = std::process::Command::new(support::bin())
        .args(["verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run closeout verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        support::stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0), "verify refused: {text}");
    text
}

#[test]
fn earlier_data_dirs_resume_to_completion() {
    for dir in corpus() {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        eprintln!("corpus {name}");
        let meta: Meta = toml::from_str(&fs::read_to_string(dir.join("meta.toml")).expect("meta"))
            .unwrap_or_else(|e| panic!("{name}/meta.toml: {e}"));
        let sim = Sim::start(&[
            "--generate",
            &meta.generate,
            "--seed",
            &meta.seed.to_string(),
            "--auto-operator",
            "100ms",
            "--deprovision-after",
            "500ms",
        ]);
        let env = Env::new(&sim, ConfigOpts::default());
        copy_dir(&dir.join("data"), &env.data_dir);
        let recorded = verify(&env.data_dir);
        assert!(recorded.contains("log sound"), "{name}: {recorded}");

        // The recorded sagas name their secrets as credentials t0, t1, ...
        // in the order the simulator lists its tenants.
        let creds = env.path("creds");
        fs::create_dir_all(&creds).expect("creds dir");
        let tenants = sim.tenants();
        for (i, t) in tenants.iter().enumerate() {
            write_secret(
                &creds.join(format!("t{i}")),
                t["client_secret"].as_str().unwrap_or(""),
            );
        }

        let daemon = Daemon::start(&env);
        let rows = wait_status(
            &env,
            &daemon,
            Duration::from_secs(120),
            "the recorded sagas to end",
            all_terminal,
        );
        assert_eq!(rows.len(), tenants.len(), "{name}: one saga per tenant");
        for r in &rows {
            assert_eq!(r["state"], "completed", "{name}: {r}");
        }
        let keep = keep_accounts(&sim, &tenants);
        for e in sim.client_effects() {
            assert!(
                !(e.method == "DELETE" && keep.iter().any(|k| e.path.contains(k.as_str()))),
                "{name}: a keep account was deleted: {e:?}"
            );
        }
        drop(daemon);
        if meta.mode == "step1" {
            for t in &tenants {
                let id = t["tenant_id"].as_str().unwrap_or_default();
                assert_eq!(
                    sim.tenant(id).1["deleted"],
                    true,
                    "{name}: {id} not deleted"
                );
            }
        }
        let after = verify(&env.data_dir);
        assert!(after.contains("log sound"), "{name}: {after}");
    }
}

/// The object ids of the tenants' keep accounts, read from the simulator.
fn keep_accounts(sim: &Sim, tenants: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for t in tenants {
        let id = t["tenant_id"].as_str().unwrap_or_default();
        let keep: Vec<&str> = t["keep"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let state = sim.tenant(id).1;
        for u in state["users"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            if keep.contains(&u["userPrincipalName"].as_str().unwrap_or("")) {
                ids.push(u["id"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    assert!(!ids.is_empty(), "no keep account found in the sim");
    ids
}
