//! Crash test: the real daemon is SIGKILLed at seeded random moments over a
//! whole closure (right after submit, during recovery, mid-step, while
//! waiting) against a faulty, throttling `closeout sim`, and restarted each
//! time. In the end every saga is completed, every tenant gone, keep accounts
//! untouched, and the sim's effects ledger agrees with the event log: every
//! change made had a durable intent and a recorded outcome (or an outcome
//! lost in a crash), the audit export (`closeout audit --format jsonl`) shows
//! each with the same method and path (or its intent), and no change was
//! applied twice unless its first outcome was in doubt.

mod support;

use closeout::saga::{Change, Event};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use support::{active_sagas, all_terminal, store_events, wait_status, Daemon, Env, Sim};

/// Kills required per run.
const KILLS: usize = 20;

/// What the event log says about one saga's changes.
#[derive(Default)]
struct Recorded {
    /// change_id -> (change, targets).
    intents: BTreeMap<u32, (Change, Vec<String>)>,
    /// (change_id, target) pairs with a recorded outcome.
    outcomes: HashSet<(u32, String)>,
    /// (method, path) of every call recorded with its outcome.
    calls: HashSet<(String, String)>,
}

fn recorded(events: &[Event]) -> Recorded {
    let mut r = Recorded::default();
    for e in events {
        match e {
            Event::ChangeIntended {
                change_id,
                change,
                targets,
            } => {
                r.intents.insert(*change_id, (*change, targets.clone()));
            }
            Event::ChangeApplied {
                change_id,
                target,
                http,
                ..
            }
            | Event::ChangeFailed {
                change_id,
                target,
                http,
                ..
            } => {
                r.outcomes.insert((*change_id, target.clone()));
                r.calls.insert((http.method.clone(), http.path.clone()));
            }
            _ => {}
        }
    }
    r
}

/// Whether `path` is a call on `target` of an intent of `change`.
fn targets(change: Change, target: &str, path: &str) -> bool {
    match change {
        Change::DisableSecurityDefaults => {
            path.contains("identitySecurityDefaultsEnforcementPolicy")
        }
        _ => path.contains(target),
    }
}

fn tenant_of(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::SagaStarted { spec, .. } => Some(spec.tenant_id.clone()),
        _ => None,
    })
}

#[test]
fn survives_sigkill_at_random_moments() {
    let seed: u64 = std::env::var("CLOSEOUT_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261128);
    eprintln!("crash test seed {seed} (CLOSEOUT_E2E_SEED)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let faults = [
        "--error-rate",
        "0.02",
        "--ghost-rate",
        "0.03",
        "--reset-rate",
        "0.01",
        "--write-limit",
        "30/1s",
    ];
    let mut args = vec![
        "--generate",
        "tenants=5,users=40,direct=0.4",
        "--seed",
        "5",
        "--auto-operator",
        "200ms",
        // Long enough that the kills below land while the closure runs, on
        // a fast machine too.
        "--deprovision-after",
        "3s",
    ];
    args.extend(faults);
    let sim = Sim::start(&args);
    let tenants = sim.tenants();
    let keep = keep_ids(&sim, &tenants);
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);

    let started = Instant::now();
    let mut kills = 0usize;
    let mut kills_while_active = 0usize;
    let mut kills_before_ready = 0usize;
    let mut submitted = false;
    while kills < KILLS + 4 {
        let mut d = Daemon::spawn(&env);
        if submitted && rng.gen_bool(0.15) {
            // Kill during recovery, before READY=1.
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..80)));
            kills_before_ready += 1;
        } else {
            d.wait_for_message("READY=1", Duration::from_secs(20));
            if !submitted {
                env.submit(&batch);
                submitted = true;
                // The first kill right after submit.
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..20)));
            } else {
                std::thread::sleep(Duration::from_millis(rng.gen_range(10..250)));
            }
        }
        d.kill();
        kills += 1;
        let active = active_sagas(&env.data_dir);
        if active > 0 {
            kills_while_active += 1;
        } else if kills >= KILLS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "crash loop took too long\n{}",
            d.tail()
        );
    }
    let kill_phase = started.elapsed();
    eprintln!("kill phase: {kills} kills in {kill_phase:?}, {kills_while_active} while active");

    let mut d = Daemon::start(&env);
    let rows = wait_status(
        &env,
        &d,
        // Seconds: in-doubt lookups are repeated at once when they fail
        // transiently, and Conditional Access 429s wait the documented 1 s.
        Duration::from_secs(60),
        "every saga terminal after the crashes",
        all_terminal,
    );
    let total = started.elapsed();
    let recovery = total - kill_phase;
    for r in &rows {
        assert_eq!(
            r["state"],
            "completed",
            "saga not completed: {r}\n{}",
            d.tail()
        );
    }
    d.signal("TERM");
    assert!(
        d.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        d.tail()
    );

    // The sim: every tenant gone, no keep account deleted.
    for t in &tenants {
        let id = t["tenant_id"].as_str().unwrap_or_default();
        assert_eq!(sim.tenant(id).1["deleted"], true, "tenant {id} not deleted");
    }
    let effects = sim.client_effects();
    for e in &effects {
        assert!(
            !(e.method == "DELETE" && keep.iter().any(|k| e.path.contains(k.as_str()))),
            "a keep account was deleted: {e:?}"
        );
    }

    // The log against the ledger.
    let sagas = store_events(&env.data_dir);
    assert_eq!(sagas.len(), tenants.len());
    let mut by_tenant: HashMap<String, Recorded> = HashMap::new();
    let mut doubt_at_end = 0;
    for (id, events) in &sagas {
        let state = closeout::saga::fold(events);
        // Outcomes still unknown at the end are acceptable only when the
        // tenant was found gone (nothing left to read them from).
        let gone = events
            .iter()
            .any(|e| matches!(e, Event::TenantFoundGone { .. }));
        if !state.in_doubt().is_empty() {
            assert!(
                gone,
                "saga {id} ended with changes in doubt: {:?}",
                state.in_doubt()
            );
            doubt_at_end += state.in_doubt().len();
        }
        let tenant = tenant_of(events).unwrap_or_else(|| panic!("saga {id} has no SagaStarted"));
        by_tenant.insert(tenant, recorded(events));
    }
    // The audit export (`closeout audit --format jsonl`) of the same log.
    let audit = audit_jsonl(&env.data_dir);
    let audit_calls: HashSet<(String, String, String)> = audit
        .iter()
        .filter(|l| l["http"].is_object())
        .map(|l| {
            (
                l["tenant_id"].as_str().unwrap_or("").to_string(),
                l["http"]["method"].as_str().unwrap_or("").to_string(),
                l["http"]["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let audit_intents: Vec<(String, String)> = audit
        .iter()
        .filter(|l| l["kind"] == "change_intended")
        .map(|l| {
            (
                l["tenant_id"].as_str().unwrap_or("").to_string(),
                l.to_string(),
            )
        })
        .collect();
    let (mut exact, mut lost) = (0, 0);
    // Keyed by tenant too: some paths (security defaults) are the same in
    // every tenant.
    let mut seen: HashMap<(&str, &str, &str), Vec<&support::Effect>> = HashMap::new();
    for e in &effects {
        seen.entry((&e.tenant_id, &e.method, &e.path))
            .or_default()
            .push(e);
        let rec = by_tenant
            .get(&e.tenant_id)
            .unwrap_or_else(|| panic!("change in a tenant never submitted: {e:?}"));
        let intent = rec
            .intents
            .iter()
            .flat_map(|(id, (c, ts))| ts.iter().map(move |t| (*id, *c, t)))
            .filter(|(_, c, t)| targets(*c, t, &e.path))
            .collect::<Vec<_>>();
        assert!(
            !intent.is_empty(),
            "change made without a durable intent: {e:?}"
        );
        if rec.calls.contains(&(e.method.clone(), e.path.clone())) {
            assert!(
                audit_calls.contains(&(e.tenant_id.clone(), e.method.clone(), e.path.clone())),
                "change missing from the audit jsonl (same method and path): {e:?}"
            );
            exact += 1;
        } else {
            assert!(
                intent
                    .iter()
                    .any(|(id, _, t)| !rec.outcomes.contains(&(*id, t.to_string()))),
                "change in the ledger with neither a recorded outcome nor an in-doubt intent: {e:?}"
            );
            assert!(
                intent.iter().any(|(_, _, t)| audit_intents
                    .iter()
                    .any(|(tenant, line)| *tenant == e.tenant_id && line.contains(t.as_str()))),
                "change whose outcome was lost has no intent in the audit jsonl: {e:?}"
            );
            lost += 1;
        }
    }
    // A change answered 2xx is never made again: the same call succeeds at
    // most once per distinct change recorded for it (a subscription's PATCH
    // to "suspended" and later to "deleted" are two changes). Repeats after a
    // ghost (5xx/429 after applying) or a dropped answer are in doubt and
    // allowed.
    for ((_, method, path), list) in &seen {
        let ok = list
            .iter()
            .filter(|e| (200..300).contains(&e.status))
            .count();
        let tenant = &list[0].tenant_id;
        // The distinct changes intended on this object (intents are durable
        // even when the outcome was lost in a crash).
        let intents: Vec<(u32, Change)> = by_tenant
            .get(tenant)
            .map(|r| {
                r.intents
                    .iter()
                    .filter(|(_, (c, ts))| ts.iter().any(|t| targets(*c, t, path)))
                    .map(|(id, (c, _))| (*id, *c))
                    .collect()
            })
            .unwrap_or_default();
        let distinct: HashSet<Change> = intents.iter().map(|(_, c)| *c).collect();
        assert!(
            ok <= distinct.len().max(1),
            "{method} {path} applied {ok} times with a known outcome for {} distinct changes \
             (intents {intents:?}): {list:?}",
            distinct.len()
        );
    }
    let ghosts = effects
        .iter()
        .filter(|e| !(200..300).contains(&e.status))
        .count();
    eprintln!(
        "crash test: {kills} kills ({kills_while_active} while sagas active, {kills_before_ready} before READY), \
         kill phase {kill_phase:?}, final recovery {recovery:?}, total {total:?}; ledger {} changes ({exact} with recorded outcome, \
         {lost} outcome lost in a crash, {ghosts} ghost/dropped; {doubt_at_end} in doubt when the tenant was found gone); \
         faults {faults:?}",
        effects.len()
    );
    assert!(
        kills_while_active >= KILLS,
        "only {kills_while_active} kills hit an active closure"
    );
}

/// `closeout audit --data-dir DIR --format jsonl`, parsed; every line has
/// the fields of design.md §3.
fn audit_jsonl(data_dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(support::bin())
        .args([
            "audit",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--format",
            "jsonl",
        ])
        .output()
        .expect("run closeout audit");
    assert!(out.status.success(), "audit: {}", support::stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect();
    assert!(!lines.is_empty(), "empty audit");
    for l in &lines {
        for field in [
            "seq",
            "at",
            "saga_id",
            "tenant_id",
            "kind",
            "hash",
            "prev_hash",
        ] {
            assert!(!l[field].is_null(), "audit line without {field}: {l}");
        }
    }
    lines
}

/// The object ids of each tenant's keep accounts.
fn keep_ids(sim: &Sim, tenants: &[serde_json::Value]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for t in tenants {
        let id = t["tenant_id"].as_str().unwrap_or_default();
        let state = sim.tenant(id).1;
        let keep: Vec<&str> = t["keep"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
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
    assert!(!ids.is_empty());
    ids
}
