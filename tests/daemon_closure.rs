//! End to end: the real daemon closes several tenants of a real `closeout sim`
//! in both subscription modes (Partner Center and manual gates played by the
//! sim's auto-operator); keep accounts are never touched.

mod support;

use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use support::{all_terminal, wait_status, Daemon, Env, Sim};

/// The object ids of each tenant's keep accounts, from the sim's state.
pub fn keep_ids(sim: &Sim, tenants: &[Value]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for t in tenants {
        let id = t["tenant_id"].as_str().unwrap_or_default();
        let (status, state) = sim.tenant(id);
        assert_eq!(status, 200, "tenant {id}: {state}");
        let keep: Vec<&str> = t["keep"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for u in state["users"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            if keep.contains(&u["userPrincipalName"].as_str().unwrap_or("")) {
                ids.insert(u["id"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    assert!(!ids.is_empty(), "no keep account found in the sim's state");
    ids
}

#[test]
fn closes_tenants_in_both_subscription_modes() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=4,users=25,direct=0.5",
        "--seed",
        "11",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let billings: HashSet<&str> = tenants
        .iter()
        .filter_map(|t| t["billing"].as_str())
        .collect();
    assert!(
        billings.contains("partner") && billings.contains("direct"),
        "seed must give both billings: {billings:?}"
    );
    let keep = keep_ids(&sim, &tenants);
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    assert_eq!(sagas.len(), tenants.len());

    let started = std::time::Instant::now();
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(90),
        "every saga terminal",
        all_terminal,
    );
    eprintln!(
        "closure of {} tenants took {:?}",
        tenants.len(),
        started.elapsed()
    );
    for r in &rows {
        assert_eq!(
            r["state"],
            "completed",
            "saga not completed: {r}\n{}",
            daemon.tail()
        );
    }
    // Idle, the daemon stops at once on SIGTERM.
    daemon.signal("TERM");
    let st = daemon.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "daemon exited {st}\n{}", daemon.tail());
    for t in &tenants {
        let id = t["tenant_id"].as_str().unwrap_or_default();
        let (_, state) = sim.tenant(id);
        assert_eq!(state["deleted"], true, "tenant {id} not deleted");
    }
    let effects = sim.client_effects();
    assert!(!effects.is_empty());
    for e in &effects {
        if e.method == "DELETE" {
            assert!(
                !keep.iter().any(|k| e.path.contains(k.as_str())),
                "a keep account was deleted: {e:?}"
            );
        }
    }
    // Partner-billed tenants' subscriptions went through Partner Center;
    // direct ones through the operator (no client call for them).
    let partner_calls = effects
        .iter()
        .filter(|e| e.path.contains("/customers/"))
        .count();
    assert!(partner_calls > 0, "no Partner Center change: {effects:?}");
}
