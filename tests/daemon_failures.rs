//! Failures end to end: a permanent 403 before the pivot is compensated
//! (deleted users restored through the strict simulator, which refuses a
//! bodyless restore item as Graph does; saga `rolled_back`); a permanent failure after
//! the pivot pauses the saga, and `closeout resume` after the fix completes it.

mod support;

use std::time::Duration;
use support::{state_of, wait_status, write_secret, Daemon, Env, Sim};

#[test]
fn permanent_403_in_step_1_rolls_back_and_restores_users() {
    rollback_restores_everyone(&[]);
}

#[test]
fn the_rollback_restores_everyone_once_under_replication_lag() {
    // Reads trail writes by 200 ms: a restore read back too early must lead
    // to a wait and a re-read, never to a permanent failure or a duplicate.
    rollback_restores_everyone(&["--replication-lag", "200ms"]);
}

fn rollback_restores_everyone(extra: &[&str]) {
    // The tenant's last user is in a restricted management administrative
    // unit (no preflight sees it): step 1 deletes the other users, then its
    // DELETE is refused with 403 for good, and the rollback restores them
    // all through `$batch` items the simulator checks like Graph.
    let mut args = vec![
        "--generate",
        "tenants=1,users=20,admins=2,restricted=1,direct=0",
        "--seed",
        "3",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ];
    args.extend_from_slice(extra);
    let sim = Sim::start(&args);
    let tenants = sim.tenants();
    let tid = tenants[0]["tenant_id"].as_str().unwrap().to_string();
    let before = sim.tenant(&tid).1;
    let users_before = before["users"].as_object().map_or(0, serde_json::Map::len);
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    let saga = sagas[0].0.clone();
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "rolled_back",
        |rows| {
            matches!(
                state_of(rows, &saga),
                "rolled_back" | "completed" | "failed"
            )
        },
    );
    assert_eq!(state_of(&rows, &saga), "rolled_back", "{}", daemon.tail());

    let effects = sim.client_effects();
    let deletes = effects.iter().filter(|e| e.method == "DELETE").count();
    let restores = effects
        .iter()
        .filter(|e| e.method == "POST" && e.path.contains("restore"))
        .count();
    assert_eq!(
        deletes, 18,
        "step 1 deleted all but the restricted user: {effects:?}"
    );
    assert_eq!(
        restores, deletes,
        "every deleted user is restored: {effects:?}"
    );
    // Each deleted user restored exactly once, after its deletion.
    for d in effects.iter().filter(|e| e.method == "DELETE") {
        let id = d.path.rsplit('/').next().unwrap();
        let r: Vec<_> = effects
            .iter()
            .filter(|e| {
                e.method == "POST" && e.path == format!("/v1.0/directory/deletedItems/{id}/restore")
            })
            .collect();
        assert_eq!(r.len(), 1, "{id}: {effects:?}");
        assert!(r[0].seq > d.seq, "{id} restored before its deletion");
        assert_eq!(r[0].status, 200);
    }
    let after = sim.tenant(&tid).1;
    assert_eq!(after["deleted"], false);
    assert_eq!(
        after["users"].as_object().map_or(0, serde_json::Map::len),
        users_before,
        "users after the rollback"
    );
    assert_eq!(
        after["deleted_users"]
            .as_object()
            .map_or(0, serde_json::Map::len),
        0,
        "recycle bin after the rollback"
    );
    // Restored under the UPN each had (Graph prefixes it while deleted).
    for (id, u) in before["users"].as_object().unwrap() {
        assert_eq!(
            after["users"][id]["userPrincipalName"], u["userPrincipalName"],
            "{id}"
        );
    }
    // Nothing past step 1 happened: no subscription touched.
    assert!(
        !effects.iter().any(|e| e.path.contains("/subscriptions/")),
        "{effects:?}"
    );
}

#[test]
fn permanent_failure_after_the_pivot_pauses_and_resume_completes() {
    // Partner-billed, no auto-operator: after the pivot the saga waits for
    // the tenant's deletion (a gate). Its secret is then made wrong: the
    // token endpoint refuses it permanently and the saga pauses. Fixed and
    // resumed, it completes once the operator deletes the tenant.
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=10,direct=0",
        "--seed",
        "4",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let tid = tenants[0]["tenant_id"].as_str().unwrap().to_string();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the step 5 gate",
        |rows| {
            rows.iter()
                .any(|r| r["saga_id"] == saga && r["step"] == 5 && !r["waiting_for"].is_null())
        },
    );

    // The secret goes wrong while the daemon is down.
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    let secret = env.path(&format!("secret_{tid}"));
    let good = std::fs::read_to_string(&secret).unwrap();
    write_secret(&secret, "not-the-secret");
    let daemon = Daemon::start(&env);
    let rows = wait_status(&env, &daemon, Duration::from_secs(30), "paused", |rows| {
        matches!(state_of(rows, &saga), "paused" | "failed" | "completed")
    });
    assert_eq!(state_of(&rows, &saga), "paused", "{}", daemon.tail());
    let row = rows.iter().find(|r| r["saga_id"] == saga).unwrap();
    let why = row["last_error"].as_str().unwrap_or("");
    assert!(!why.is_empty(), "a paused saga says why: {row}");
    assert!(!why.contains("not-the-secret"), "the secret leaked: {why}");

    // Fixed, resumed; the operator deletes the tenant.
    write_secret(&secret, &good);
    let out = env.cli("resume", &[&saga]);
    assert!(out.status.success(), "resume: {}", support::stderr(&out));
    // As the deletion page asks: closeout's own enterprise app goes first.
    let app = tenants[0]["client_id"].as_str().unwrap();
    let (status, body) = sim.post(&format!(
        "/_sim/tenants/{tid}/operator/service-principals/{app}/delete"
    ));
    assert_eq!(status, 200, "operator removes closeout's app: {body}");
    let (status, body) = sim.post(&format!("/_sim/tenants/{tid}/operator/delete"));
    assert_eq!(status, 200, "operator delete: {body}");
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "completed",
        |rows| {
            matches!(
                state_of(rows, &saga),
                "completed" | "failed" | "rolled_back"
            )
        },
    );
    assert_eq!(state_of(&rows, &saga), "completed", "{}", daemon.tail());
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(!log.contains(&good), "the secret reached the log");
}

#[test]
fn secret_file_gone_while_the_daemon_was_down_pauses_and_resume_continues() {
    // Direct billing, no auto-operator: the saga waits at the step 2 gate
    // (cancel subscriptions in the admin center). The secret file vanishes
    // while the daemon is down; with on_failure = "pause" the saga pauses
    // naming the file, and goes on once it is back and the saga resumed.
    let sim = Sim::start(&["--generate", "tenants=1,users=10,direct=1", "--seed", "6"]);
    let tenants = sim.tenants();
    let tid = tenants[0]["tenant_id"].as_str().unwrap().to_string();
    let env = Env::new(
        &sim,
        support::ConfigOpts {
            on_failure: "pause",
            ..Default::default()
        },
    );
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    wait_status(&env, &daemon, Duration::from_secs(30), "a gate", |rows| {
        rows.iter()
            .any(|r| r["saga_id"] == saga && !r["waiting_for"].is_null())
    });
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    let secret = env.path(&format!("secret_{tid}"));
    let good = std::fs::read_to_string(&secret).unwrap();
    std::fs::remove_file(&secret).unwrap();

    let daemon = Daemon::start(&env);
    let rows = wait_status(&env, &daemon, Duration::from_secs(30), "paused", |rows| {
        matches!(
            state_of(rows, &saga),
            "paused" | "failed" | "rolled_back" | "completed"
        )
    });
    assert_eq!(state_of(&rows, &saga), "paused", "{}", daemon.tail());
    let row = rows.iter().find(|r| r["saga_id"] == saga).unwrap();
    let why = format!("{} {}", row["last_error"], row["waiting_for"]);
    assert!(
        why.contains(secret.to_str().unwrap()),
        "names the secret file: {row}"
    );

    write_secret(&secret, &good);
    let out = env.cli("resume", &[&saga]);
    assert!(out.status.success(), "resume: {}", support::stderr(&out));
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "waiting at the gate again",
        |rows| {
            rows.iter().any(|r| {
                r["saga_id"] == saga && r["state"] == "waiting" && !r["waiting_for"].is_null()
            })
        },
    );
    assert!(sim
        .client_effects()
        .iter()
        .all(|e| e.method != "POST" || !e.path.contains("restore")));
}
