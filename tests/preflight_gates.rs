//! Step 1's preflight end to end: a tenant whose app lacks the role that
//! deleting its administrators needs, or whose directory is synced from
//! on-premises, waits at an operator gate before any user is deleted (the
//! effects ledger shows no delete until the fix), and completes once the
//! (auto-)operator has made the fix.

mod support;

use std::time::Duration;
use support::{state_of, wait_status, Daemon, Env, Sim};

/// Runs one tenant with `hard_case=1` under an auto-operator that acts 2 s
/// after it is asked; returns nothing, asserts everything.
fn gated_then_completed(hard_case: &str, fix_path: &str, instruction: &str) {
    let sim = Sim::start(&[
        "--generate",
        &format!("tenants=1,users=12,admins=2,direct=1,{hard_case}=1"),
        "--seed",
        "5",
        "--auto-operator",
        "2s",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let tid = tenants[0]["tenant_id"].as_str().unwrap().to_string();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    let saga = sagas[0].0.clone();

    // The gate: waiting in step 1, telling a person what to do.
    let rows = wait_status(&env, &daemon, Duration::from_secs(30), "the gate", |rows| {
        rows.iter().any(|r| {
            r["saga_id"] == saga.as_str()
                && r["state"] == "waiting"
                && r["step"] == 1
                && r["waiting_for"]
                    .as_str()
                    .is_some_and(|w| w.contains(instruction))
        })
    });
    let row = rows.iter().find(|r| r["saga_id"] == saga.as_str()).unwrap();
    assert!(
        row["waiting_for"].as_str().unwrap().contains(&tid),
        "the instructions name the tenant: {row}"
    );
    assert!(
        sim.client_effects().iter().all(|e| e.method != "DELETE"),
        "a user was deleted while the gate was open"
    );

    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "completion",
        |rows| {
            matches!(
                state_of(rows, &saga),
                "completed" | "failed" | "rolled_back"
            )
        },
    );
    assert_eq!(state_of(&rows, &saga), "completed", "{}", daemon.tail());

    // The ledger: the fix, then (and only then) the deletions.
    let all: Vec<support::Effect> =
        serde_json::from_value(sim.get("/_sim/effects")).expect("effects");
    let fix = all
        .iter()
        .find(|e| e.path == format!("/_sim/tenants/{tid}/operator/{fix_path}"))
        .unwrap_or_else(|| panic!("no {fix_path} in {all:?}"));
    let deletes: Vec<_> = all.iter().filter(|e| e.method == "DELETE").collect();
    assert_eq!(deletes.len(), 11, "every user but the keep admin: {all:?}");
    assert!(
        deletes.iter().all(|d| d.seq > fix.seq),
        "a delete came before the fix: {all:?}"
    );
}

#[test]
fn an_unprivileged_app_waits_for_its_role_before_deleting_anyone() {
    gated_then_completed(
        "unprivileged",
        "app-role",
        "assign closeout's app the Privileged Authentication Administrator role",
    );
}

#[test]
fn a_synced_directory_waits_for_sync_off_before_deleting_anyone() {
    gated_then_completed(
        "synced",
        "dir-sync/off",
        "Turn off directory synchronization in tenant",
    );
}
