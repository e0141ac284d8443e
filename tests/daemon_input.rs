//! Bad input against the real daemon and sim, each with a clear message and
//! the exact outcome: an unknown tenant is refused at submission; credentials
//! or keep lists that are wrong fail the saga before any change (status says why, the sim's ledger stays empty); a data
//! dir held by another daemon or not writable stops the daemon with exit 1.
//! (Malformed files, unknown keys, an empty keep list, a missing secret file
//! and the CLI without a daemon are in `config_validation.rs`.)

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{run_bounded, state_of, wait_status, Daemon, Env, Sim};

fn sim() -> Sim {
    Sim::start(&[
        "--generate",
        "tenants=1,users=10,direct=0",
        "--seed",
        "21",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ])
}

/// Submits `tenant` alone and waits for its saga to end; returns its row.
fn run_to_end(sim: &Sim, tenant: Value) -> (Env, Value) {
    let env = Env::new(sim, Default::default());
    let batch = env.write_batch("batch.toml", &[tenant]);
    let daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the saga to end",
        |rows| support::all_terminal(rows) || state_of(rows, &saga) == "paused",
    );
    let row = rows
        .iter()
        .find(|r| r["saga_id"] == saga)
        .cloned()
        .unwrap_or(Value::Null);
    (env, row)
}

fn assert_failed_before_any_change(sim: &Sim, row: &Value, says: &[&str]) {
    eprintln!("status: {}", support::row_line(row));
    assert_eq!(row["state"], "failed", "{row}");
    let why = row["last_error"].as_str().unwrap_or("");
    for s in says {
        assert!(why.contains(s), "status should say {s:?}: {row}");
    }
    let effects = sim.client_effects();
    assert!(effects.is_empty(), "changes made: {effects:?}");
}

#[test]
fn wrong_secret_fails_before_any_change() {
    let sim = sim();
    let mut t = sim.tenants()[0].clone();
    t["client_secret"] = "wrong-secret".into();
    let (env, row) = run_to_end(&sim, t);
    assert_failed_before_any_change(&sim, &row, &["AADSTS7000215"]);
    let log = std::fs::read_to_string(env.path("daemon.log")).unwrap_or_default();
    assert!(!log.contains("wrong-secret"), "the secret reached the log");
}

#[test]
fn unknown_tenant_fails_before_any_change() {
    let sim = sim();
    let mut t = sim.tenants()[0].clone();
    t["tenant_id"] = "0badc0de-0000-4000-8000-000000000000".into();
    // Resolved (through its discovery document) before any saga starts: the
    // submission itself is refused, naming the tenant.
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &[t]);
    let _daemon = Daemon::start(&env);
    let out = env.cli("submit", &[batch.to_str().unwrap()]);
    let err = support::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("0badc0de-0000-4000-8000-000000000000") && err.contains("AADSTS90002"),
        "{err}"
    );
    assert_eq!(env.status().unwrap(), Vec::<Value>::new());
    assert!(sim.client_effects().is_empty());
}

#[test]
fn keep_list_without_a_global_administrator_fails_before_any_change() {
    let sim = sim();
    let mut t = sim.tenants()[0].clone();
    let id = t["tenant_id"].as_str().unwrap().to_string();
    let state = sim.tenant(&id).1;
    let plain = state["users"]
        .as_object()
        .and_then(|m| {
            m.values()
                .find(|u| u["roles"].as_array().is_some_and(std::vec::Vec::is_empty))
        })
        .and_then(|u| u["userPrincipalName"].as_str())
        .expect("a user without roles")
        .to_string();
    t["keep"] = serde_json::json!([plain]);
    let (_env, row) = run_to_end(&sim, t);
    assert_failed_before_any_change(&sim, &row, &["Global Administrator"]);
}

#[test]
fn data_dir_held_by_another_daemon() {
    let sim = sim();
    let env = Env::new(&sim, Default::default());
    let _first = Daemon::start(&env);
    // Same data dir, another control socket: the store's lock refuses.
    let other = env.path("other.toml");
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("control.sock", "other.sock");
    std::fs::write(&other, text).unwrap();
    let (code, err) = run_bounded(
        &["daemon", "--config", other.to_str().unwrap()],
        Duration::from_secs(20),
    );
    eprintln!("exit {code}: {err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(env.data_dir.to_str().unwrap()),
        "names the data dir: {err}"
    );
    assert!(
        err.to_lowercase().contains("lock") || err.contains("another"),
        "says it is held: {err}"
    );
    // The first daemon still answers.
    assert!(env.status().is_ok());
}

#[test]
fn unwritable_data_dir() {
    let sim = sim();
    let env = Env::new(&sim, Default::default());
    // A regular file where the data dir's parent should be: not writable
    // even for root.
    let blocker = env.path("blocker");
    std::fs::write(&blocker, "").unwrap();
    let text = std::fs::read_to_string(&env.config).unwrap().replace(
        &format!("data_dir = \"{}\"", env.data_dir.display()),
        &format!("data_dir = \"{}\"", blocker.join("data").display()),
    );
    std::fs::write(&env.config, text).unwrap();
    let (code, err) = run_bounded(
        &["daemon", "--config", env.config.to_str().unwrap()],
        Duration::from_secs(20),
    );
    eprintln!("exit {code}: {err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(blocker.to_str().unwrap()),
        "names the data dir: {err}"
    );
    assert!(!env.path("control.sock").exists());
}
