//! End to end, the real daemon against a real `closeout sim`: subscriptions
//! as Microsoft bills them. A new-commerce subscription past its window gets
//! auto-renew off and runs out its (simulated, `--clock-speed`) term; what
//! the partner did not sell goes to a person; the pivot is recorded only
//! after Partner Center accepted an irreversible change; a crash in the
//! middle of a term's wait resumes it with the same deadline.

mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use support::{all_terminal, wait_status, Daemon, Env, Sim};

/// The saga's events, in order, from `closeout audit --format jsonl`.
fn audit(env: &Env) -> Vec<Value> {
    let out = env.cli("audit", &["--format", "jsonl"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect()
}

/// The Partner Center subscription ids the simulated partner sold, per tenant.
fn partner_sold(sim: &Sim, tenants: &[Value]) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    for t in tenants {
        let id = t["tenant_id"].as_str().unwrap_or_default().to_string();
        let (_, state) = sim.tenant(&id);
        let subs: Vec<String> = state["subscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["seller"] == "partner" && t["billing"] == "partner")
            .map(|s| s["commerce_subscription_id"].as_str().unwrap_or("").into())
            .collect();
        out.insert(id, subs);
    }
    out
}

#[test]
fn outside_window_subscriptions_run_out_their_term_and_end_deleted() {
    // 30 days of term, then 30 days Expired and 90 Disabled, in a few
    // seconds; tokens keep real time.
    let sim = Sim::start(&[
        "--generate",
        "tenants=2,users=6,direct=0,subscriptions=1,outside_window=2,term_ends_in=30days",
        "--seed",
        "3",
        "--clock-speed",
        "2000000",
        "--deprovision-after",
        "1s",
        // Step 5's person: deletes the tenant once the portal would.
        "--auto-operator",
        "200ms",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    env.submit(&batch);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "every saga terminal",
        all_terminal,
    );
    for r in &rows {
        assert_eq!(r["state"], "completed", "{r}");
    }
    let events = audit(&env);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(!kinds.contains(&"compensation_started"), "{kinds:?}");
    // Auto-renew off, never a suspend nor a cancel past the window.
    let changes: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "change_intended")
        .map(|e| e["event"]["change"].to_string())
        .collect();
    assert!(
        changes.iter().any(|c| c.contains("set_auto_renew")),
        "{changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c.contains("set_subscription")),
        "{changes:?}"
    );
    // The pivot came only when the subscriptions read Deleted.
    let pivots: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "pivot_passed")
        .collect();
    assert_eq!(pivots.len(), 2, "one per saga");
    for p in pivots {
        assert!(
            p["event"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("every subscription reads Deleted"),
            "{p}"
        );
    }
    for t in &tenants {
        let (_, state) = sim.tenant(t["tenant_id"].as_str().unwrap());
        for s in state["subscriptions"].as_array().unwrap() {
            assert_eq!(s["status"], "Deleted", "{s}");
            assert_eq!(s["auto_renew"], false, "{s}");
        }
    }
}

#[test]
fn what_the_partner_did_not_sell_is_never_sent_to_partner_center() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=3,users=5,direct=0.34,trials=3,self_service=3,other_partner=3,legacy=2",
        "--seed",
        "8",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let sold = partner_sold(&sim, &tenants);
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    env.submit(&batch);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(90),
        "every saga terminal",
        all_terminal,
    );
    for r in &rows {
        assert_eq!(r["state"], "completed", "{r}");
    }
    // Every Partner Center change targets a subscription the partner sold.
    for e in sim.client_effects() {
        if let Some(rest) = e.path.strip_prefix("/v1/customers/") {
            let sub = rest.rsplit('/').next().unwrap_or_default();
            assert!(
                sold.get(&e.tenant_id)
                    .is_some_and(|s| s.iter().any(|x| x == sub)),
                "{e:?} sent to Partner Center, which does not own it"
            );
        }
    }
    // The pivot is recorded after the first irreversible change Partner
    // Center accepted, never before it.
    let events = audit(&env);
    let mut by_saga: HashMap<String, Vec<&Value>> = HashMap::new();
    for e in &events {
        by_saga
            .entry(e["saga_id"].as_str().unwrap_or("").into())
            .or_default()
            .push(e);
    }
    for (saga, evs) in by_saga {
        let pivot = evs.iter().position(|e| e["kind"] == "pivot_passed");
        let deleted: Vec<u64> = evs
            .iter()
            .filter(|e| e["kind"] == "change_intended")
            .filter(|e| e["event"]["change"].to_string().contains("deleted"))
            .filter_map(|e| e["event"]["change_id"].as_u64())
            .collect();
        let first_accept = evs.iter().position(|e| {
            e["kind"] == "change_applied"
                && e["event"]["change_id"]
                    .as_u64()
                    .is_some_and(|c| deleted.contains(&c))
        });
        if let (Some(p), Some(a)) = (pivot, first_accept) {
            assert!(
                p > a,
                "saga {saga}: pivot at {p} before the accepted cancel at {a}"
            );
        }
        if let Some(p) = pivot {
            assert!(
                first_accept.is_some() || evs[p]["event"]["reason"].to_string().contains("Deleted"),
                "saga {saga}: a pivot without an irreversible change: {}",
                evs[p]
            );
        }
    }
}

#[test]
fn a_crash_during_a_terms_wait_resumes_it_with_the_same_deadline() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=4,direct=0,subscriptions=1,outside_window=1,term_ends_in=200days",
        "--seed",
        "4",
        "--clock-speed",
        "2000000",
        "--deprovision-after",
        "1s",
        // Step 5's person: deletes the tenant once the portal would.
        "--auto-operator",
        "200ms",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    env.submit(&batch);
    let term = |rows: &[Value]| {
        rows.iter().any(|r| {
            r["waiting_for"]
                .as_str()
                .is_some_and(|w| w.contains("run to the end of their term"))
        })
    };
    let before = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the term's wait",
        term,
    );
    let waiting = before[0]["waiting_for"].clone();
    let waits_before = audit(&env)
        .iter()
        .filter(|e| e["kind"] == "wait_started")
        .map(|e| e["event"]["until"].clone())
        .collect::<Vec<_>>();
    daemon.kill();
    let daemon = Daemon::start(&env);
    let after = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the wait again",
        term,
    );
    assert_eq!(
        after[0]["waiting_for"], waiting,
        "same deadline after the restart"
    );
    let waits_after = audit(&env)
        .iter()
        .filter(|e| e["kind"] == "wait_started")
        .map(|e| e["event"]["until"].clone())
        .collect::<Vec<_>>();
    assert_eq!(
        waits_after.last(),
        waits_before.last(),
        "the restart recorded no new deadline"
    );
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the saga terminal",
        all_terminal,
    );
    assert_eq!(rows[0]["state"], "completed", "{}", rows[0]);
}

/// When the event was recorded (its `at`).
fn at(e: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339_weak(e["at"].as_str().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{e}: {err}"))
}

#[test]
fn step_one_waits_until_near_the_terms_end_with_auto_renew_off_first() {
    // A 200-day term ends about 8.6 s after the simulator starts; users are
    // to be deleted 5 s before it ends, so step 1 waits about 3.6 s.
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=5,direct=0,subscriptions=1,outside_window=1,term_ends_in=200days",
        "--seed",
        "5",
        "--clock-speed",
        "2000000",
        "--deprovision-after",
        "1s",
        "--auto-operator",
        "200ms",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(
        &sim,
        support::ConfigOpts {
            saga: "users_before_term_end = \"5s\"".into(),
            ..Default::default()
        },
    );
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    env.submit(&batch);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "every saga terminal",
        all_terminal,
    );
    assert_eq!(rows[0]["state"], "completed", "{}", rows[0]);
    let events = audit(&env);
    let first = |what: &str, kind: &str| {
        events
            .iter()
            .position(|e| e["kind"] == kind && e["event"].to_string().contains(what))
            .unwrap_or_else(|| panic!("no {kind} with {what}"))
    };
    let renew_off = first("set_auto_renew", "change_intended");
    let scheduled = first("step 1 is scheduled", "wait_started");
    let delete = first("delete_user", "change_intended");
    assert!(
        renew_off < scheduled && scheduled < delete,
        "auto-renew off at {renew_off}, the wait at {scheduled}, the first delete at {delete}"
    );
    let waited = at(&events[delete])
        .duration_since(at(&events[scheduled]))
        .unwrap_or_default();
    assert!(
        waited >= Duration::from_secs(2),
        "the first user was deleted {waited:?} after the wait began"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "schedule_policy_recorded")
            .count(),
        1
    );
    assert!(!events.iter().any(|e| e["kind"] == "compensation_started"));
}

#[test]
fn a_suspended_subscription_past_its_window_waits_for_a_person_in_partner_center() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=4,direct=0,subscriptions=1,suspended=1,term_ends_in=30days",
        "--seed",
        "6",
        "--clock-speed",
        "2000000",
        "--deprovision-after",
        "1s",
        // The partner's person reactivates it with auto-renew off, as the
        // gate asks; step 5's person deletes the tenant.
        "--auto-operator",
        "200ms",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    env.submit(&batch);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "every saga terminal",
        all_terminal,
    );
    assert_eq!(rows[0]["state"], "completed", "{}", rows[0]);
    let events = audit(&env);
    let gate = events
        .iter()
        .find(|e| e["kind"] == "gate_opened" && e["event"]["gate"] == "end_subscriptions_elsewhere")
        .expect("the gate");
    assert!(
        gate["event"]["instructions"]
            .as_str()
            .unwrap_or_default()
            .contains("suspended after their cancellation window"),
        "{gate}"
    );
    // Asked before anyone is deleted: a restore window must not run out
    // while a person decides.
    let gate_at = events.iter().position(|e| std::ptr::eq(e, gate));
    let first_delete = events.iter().position(|e| {
        e["kind"] == "change_intended" && e["event"]["change"].to_string().contains("delete_user")
    });
    assert!(
        gate_at < first_delete && first_delete.is_some(),
        "gate at {gate_at:?}, first delete at {first_delete:?}"
    );
    // closeout itself never changed it (nor reactivated it).
    for e in events.iter().filter(|e| e["kind"] == "change_intended") {
        assert!(
            !e["event"]["change"]
                .to_string()
                .contains("set_subscription"),
            "{e}"
        );
    }
    let id = tenants[0]["tenant_id"].as_str().unwrap();
    let (_, state) = sim.tenant(id);
    let s = &state["subscriptions"][0];
    assert_eq!(s["status"], "Deleted", "{s}");
    assert_eq!(s["auto_renew"], false, "{s}");
}

#[test]
fn a_change_partner_center_accepted_but_has_not_made_is_read_back_before_the_pivot() {
    // Every Partner Center PATCH is answered 202 Accepted and carried out
    // 2 s later, as when a change "takes longer than expected".
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=4,direct=0,subscriptions=2",
        "--seed",
        "5",
        "--partner-accepted-after",
        "2s",
        "--deprovision-after",
        "1s",
        "--auto-operator",
        "200ms",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    env.submit(&batch);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(90),
        "every saga terminal",
        all_terminal,
    );
    for r in &rows {
        assert_eq!(r["state"], "completed", "{r}");
    }
    let events = audit(&env);
    let cancels: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "change_intended")
        .filter(|e| e["event"]["change"].to_string().contains("deleted"))
        .filter_map(|e| e["event"]["change_id"].as_u64())
        .collect();
    assert!(!cancels.is_empty(), "no cancel was intended");
    let of_cancel = |e: &&Value| {
        e["event"]["change_id"]
            .as_u64()
            .is_some_and(|c| cancels.contains(&c))
    };
    // Each 202 is recorded in doubt, never as done.
    let accepted: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["kind"] == "change_failed" && of_cancel(e))
        .filter(|(_, e)| e["event"]["error"]["code"] == "accepted_not_done")
        .map(|(i, _)| i)
        .collect();
    assert!(!accepted.is_empty(), "no 202 was recorded in doubt");
    let pivot = events
        .iter()
        .position(|e| e["kind"] == "pivot_passed")
        .expect("a pivot");
    assert!(
        pivot > *accepted.last().unwrap_or(&0),
        "the pivot at {pivot} came before a cancel that was only accepted ({accepted:?})"
    );
    // The pivot follows a read showing the cancel made: an outcome of the
    // cancel that is not a failure, after the last 202.
    let done = events
        .iter()
        .enumerate()
        .skip(accepted[0])
        .filter(|(_, e)| e["kind"] == "change_applied" && of_cancel(e))
        .map(|(i, _)| i)
        .next_back();
    assert!(
        done.is_some_and(|d| d < pivot),
        "no read-back outcome before the pivot at {pivot}"
    );
    // Partner Center made each cancel once: every PATCH was answered 202,
    // and the subscriptions end Deleted.
    let patches: Vec<_> = sim
        .client_effects()
        .into_iter()
        .filter(|e| e.method == "PATCH" && e.path.starts_with("/v1/customers/"))
        .collect();
    assert!(patches.iter().all(|e| e.status == 202), "{patches:?}");
    let (_, state) = sim.tenant(tenants[0]["tenant_id"].as_str().unwrap_or(""));
    for s in state["subscriptions"].as_array().into_iter().flatten() {
        if s["seller"] == "partner" {
            assert_eq!(s["status"], "Deleted", "{s}");
        }
    }
}
