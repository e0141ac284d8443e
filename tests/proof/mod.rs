//! Checks shared by the chaos run (`tests/chaos.rs`) and the fault soak
//! (`tests/soak.rs`): the sizes from the environment, the sim's arguments
//! for a batch of both subscription modes, the effects ledger held against
//! the event log and its `audit --format jsonl` export change for change,
//! keep accounts untouched, `closeout verify`, and the retries of the audit
//! log held against the retry policy. Built on `tests/support`.
#![allow(dead_code)]

use crate::support::{self, Effect, Env, Sim};
use closeout::saga::{Change, Event};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// A size from the environment, or `default`.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The sim's fault counters (`GET /_sim/faults`).
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
pub struct FaultCounts {
    /// 5xx without applying.
    pub errors: u64,
    /// Dropped connections.
    pub resets: u64,
    /// Requests never answered.
    pub hangs: u64,
    /// Applied but answered 429/5xx.
    pub ghosts: u64,
    /// 429s of the throttle.
    pub throttled: u64,
}

impl FaultCounts {
    /// Reads the counters of `sim`.
    pub fn of(sim: &Sim) -> FaultCounts {
        serde_json::from_value(sim.get("/_sim/faults")).expect("GET /_sim/faults")
    }

    /// All injected faults.
    pub fn total(&self) -> u64 {
        self.errors + self.resets + self.hangs + self.ghosts + self.throttled
    }
}

/// What the event log says about one saga's changes.
#[derive(Default)]
struct Recorded {
    /// change_id -> (change, targets).
    intents: BTreeMap<u32, (Change, Vec<String>)>,
    /// (change_id, target) pairs with a recorded outcome.
    outcomes: HashSet<(u32, String)>,
    /// (method, path) of every call recorded with its outcome.
    calls: HashSet<(String, String)>,
    /// Targets whose in-doubt outcome was resolved by a read-back.
    resolved: HashSet<String>,
    /// Whether the tenant was found gone (later doubts stay unresolved).
    gone: bool,
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
            Event::InDoubtResolved {
                applied,
                not_applied,
                ..
            } => r
                .resolved
                .extend(applied.iter().chain(not_applied).cloned()),
            Event::TenantFoundGone { .. } => r.gone = true,
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

/// What the ledger check counted.
#[derive(Debug, Default)]
pub struct LedgerSummary {
    /// Changes in the sim's ledger (made by closeout).
    pub changes: usize,
    /// Of which the log recorded the outcome of that very call.
    pub exact: usize,
    /// Of which the outcome was lost in a crash (intent durable, in doubt).
    pub lost: usize,
    /// Ledger entries answered non-2xx (ghosts) or dropped.
    pub ghosts: usize,
    /// Calls made more than once (each after an in-doubt outcome).
    pub repeats: usize,
    /// Changes still in doubt at the end (tenant found gone).
    pub doubt_at_end: usize,
}

/// The object ids of each tenant's keep accounts.
pub fn keep_ids(sim: &Sim, tenants: &[Value]) -> HashSet<String> {
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
    assert!(!ids.is_empty(), "no keep account found in the sim");
    ids
}

/// `closeout audit --data-dir DIR --format jsonl`, parsed; every line has
/// the fields the README documents for the jsonl export.
pub fn audit_jsonl(data_dir: &Path) -> Vec<Value> {
    let out = std::process::Command::new(support::bin())
        .args(["audit", "--data-dir"])
        .arg(data_dir)
        .args(["--format", "jsonl"])
        .output()
        .expect("run closeout audit");
    assert!(out.status.success(), "audit: {}", support::stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
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

/// `closeout verify --data-dir DIR` must exit 0.
pub fn verify_ok(data_dir: &Path) {
    let out = std::process::Command::new(support::bin())
        .args(["verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run closeout verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "closeout verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        support::stderr(&out)
    );
}

/// Every tenant gone in the sim, no keep account deleted (step 4 may turn
/// off a keep account's per-user MFA: that is its job), and the sim's ledger held against the event
/// log (read from the stopped daemon's data dir) and the audit jsonl: every
/// change has a durable intent; a change whose outcome was recorded appears
/// in the audit with the same method and path; one whose outcome was lost
/// has its intent in the audit; a call is made again only after an in-doubt
/// outcome (ghost, drop, crash) — never after a 2xx.
pub fn check_ledger(
    sim: &Sim,
    env: &Env,
    tenants: &[Value],
    keep: &HashSet<String>,
) -> LedgerSummary {
    for t in tenants {
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
    let sagas = support::store_events(&env.data_dir);
    assert_eq!(sagas.len(), tenants.len(), "one saga per tenant");
    let mut by_tenant: HashMap<String, Recorded> = HashMap::new();
    let mut sum = LedgerSummary::default();
    for (id, events) in &sagas {
        let state = closeout::saga::fold(events).expect("the events begin with saga_started");
        let gone = events
            .iter()
            .any(|e| matches!(e, Event::TenantFoundGone { .. }));
        if !state.in_doubt().is_empty() {
            assert!(
                gone,
                "saga {id} ended with changes in doubt: {:?}",
                state.in_doubt()
            );
            sum.doubt_at_end += state.in_doubt().len();
        }
        let tenant = tenant_of(events).unwrap_or_else(|| panic!("saga {id} has no SagaStarted"));
        by_tenant.insert(tenant, recorded(events));
    }
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
    let mut seen: HashMap<(&str, &str, &str), Vec<&Effect>> = HashMap::new();
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
            sum.exact += 1;
        } else {
            assert!(
                intent
                    .iter()
                    .any(|(id, _, t)| !rec.outcomes.contains(&(*id, (*t).clone()))),
                "change in the ledger with neither a recorded outcome nor an in-doubt intent: {e:?}"
            );
            assert!(
                intent.iter().any(|(_, _, t)| audit_intents
                    .iter()
                    .any(|(tenant, line)| *tenant == e.tenant_id && line.contains(t.as_str()))),
                "change whose outcome was lost has no intent in the audit jsonl: {e:?}"
            );
            // Its outcome was then settled by reading the object back
            // (or the tenant was found gone with it still in doubt).
            assert!(
                intent
                    .iter()
                    .any(|(_, _, t)| rec.resolved.contains(t.as_str()))
                    || rec.gone,
                "change whose outcome was lost was never resolved by a read-back: {e:?}"
            );
            sum.lost += 1;
        }
        if !(200..300).contains(&e.status) {
            sum.ghosts += 1;
        }
    }
    // A call answered 2xx is never made again for the same change: at most
    // one 2xx per distinct change intended on the object (a subscription's
    // PATCH to "suspended" and later to "deleted" are two changes). Every
    // repeat must follow an answer that left the outcome in doubt (a ghost
    // 429/5xx, a dropped connection) or an outcome lost in a crash.
    for ((tenant, method, path), list) in &seen {
        let ok = list
            .iter()
            .filter(|e| (200..300).contains(&e.status))
            .count();
        let distinct: HashSet<Change> = by_tenant
            .get(*tenant)
            .map(|r| {
                r.intents
                    .values()
                    .filter(|(c, ts)| ts.iter().any(|t| targets(*c, t, path)))
                    .map(|(c, _)| *c)
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            ok <= distinct.len().max(1),
            "{method} {path} applied {ok} times with a known outcome for {} distinct changes: {list:?}",
            distinct.len()
        );
        if list.len() > distinct.len().max(1) {
            sum.repeats += list.len() - distinct.len().max(1);
        }
    }
    sum.changes = effects.len();
    sum
}

/// What the retry check counted.
#[derive(Debug, Default)]
pub struct RetrySummary {
    /// `retry_scheduled` lines checked.
    pub retries: usize,
    /// Of which the delay was the policy's backoff, exactly.
    pub backoff: usize,
    /// Of which the delay was the service's `Retry-After`.
    pub retry_after: usize,
    /// The longest run of retries of one failing call.
    pub max_attempt: u32,
}

/// The retries of the audit log held against `policy`: each run of retries
/// numbers its attempts 1, 2, 3, ...; none is scheduled later than
/// `give_up_after` after the run began; the delay (the retry's time minus
/// the record's time, less what the group commit took) is the policy's
/// backoff for that attempt with the saga's jitter — never shorter than it
/// — or, for a throttled or unavailable service, its `Retry-After`.
pub fn check_retries(audit: &[Value], policy: &closeout::retry::RetryPolicy) -> RetrySummary {
    let mut sum = RetrySummary::default();
    let mut last: HashMap<String, (u32, u64)> = HashMap::new();
    for l in audit.iter().filter(|l| l["kind"] == "retry_scheduled") {
        let saga = l["saga_id"].as_str().unwrap_or_default().to_string();
        let ev = &l["event"]["RetryScheduled"];
        let ev = if ev.is_object() { ev } else { &l["event"] };
        let at = ev["at"]
            .as_u64()
            .unwrap_or_else(|| panic!("retry without at: {l}"));
        let since = ev["since"]
            .as_u64()
            .unwrap_or_else(|| panic!("retry without since: {l}"));
        let attempt = ev["attempt"]
            .as_u64()
            .unwrap_or_else(|| panic!("retry without attempt: {l}")) as u32;
        let reason = ev["reason"].as_str().unwrap_or_default();
        let recorded = humantime::parse_rfc3339(l["at"].as_str().unwrap_or_default())
            .map(|t| closeout::model::Timestamp::from_system(t).0)
            .unwrap_or_else(|e| panic!("audit time of {l}: {e}"));
        // Attempts count up within a run (same `since`), from 1.
        match last.get(&saga) {
            Some((n, s)) if *s == since => assert_eq!(
                attempt,
                n + 1,
                "saga {saga}: attempt {attempt} after attempt {n} of the same run: {l}"
            ),
            _ => assert_eq!(
                attempt, 1,
                "saga {saga}: a new run of retries starts at {attempt}: {l}"
            ),
        }
        last.insert(saga.clone(), (attempt, since));
        assert!(
            at.saturating_sub(since) <= policy.give_up_after.as_millis() as u64 + 60_000,
            "saga {saga}: retry scheduled {}ms after the run began, past give_up_after {:?}: {l}",
            at - since,
            policy.give_up_after
        );
        let unit = closeout::saga::jitter_unit(&saga, attempt);
        let backoff = policy.delay(attempt, unit, None).as_millis() as u64;
        // `at` = decide's now + delay; the record is stamped when the group
        // commit takes it, a little after `now`.
        let delay = at.saturating_sub(recorded);
        let slack = 2_000;
        let throttled = reason.contains("429")
            || reason.contains("503")
            || reason.to_lowercase().contains("throttl")
            || reason.contains("TooManyRequests")
            || reason.contains("ServiceUnavailable");
        if delay <= backoff && delay + slack >= backoff {
            sum.backoff += 1;
        } else {
            assert!(
                throttled,
                "saga {saga}: retry {attempt} waits {delay}ms, the policy's backoff is {backoff}ms \
                 and the failure carried no Retry-After: {l}"
            );
            sum.retry_after += 1;
        }
        assert!(
            throttled || backoff <= policy.max_interval.as_millis() as u64,
            "backoff above max_interval: {l}"
        );
        sum.retries += 1;
        sum.max_attempt = sum.max_attempt.max(attempt);
    }
    sum
}

/// The sim arguments of a batch of `tenants` tenants of `users` users, both
/// subscription modes (40% billed directly: `manual`), generated from `seed`.
pub fn batch_args(tenants: usize, users: usize, seed: u64) -> Vec<String> {
    vec![
        "--generate".into(),
        format!("tenants={tenants},users={users},direct=0.4"),
        "--seed".into(),
        seed.to_string(),
        "--auto-operator".into(),
        "200ms".into(),
    ]
}

/// Waits until `status --json` shows every saga terminal; returns the rows.
pub fn wait_terminal(env: &Env, d: &support::Daemon, within: Duration) -> Vec<Value> {
    support::wait_status(env, d, within, "every saga terminal", support::all_terminal)
}

/// How a [`kill_loop`] treats the daemon it starts again and again.
pub struct KillPlan {
    /// SIGKILLs to deliver.
    pub kills: usize,
    /// Chance that a start is instead stopped gracefully (SIGTERM, a clean
    /// exit required); such a stop is not a kill.
    pub graceful: f64,
    /// Stop early once `kills` is reached and no saga is active any more
    /// (otherwise the loop goes on until `kills`).
    pub stop_when_idle: bool,
    /// Upper bound of the random pause before a kill, once the batch runs.
    pub max_pause: Duration,
    /// How long the whole loop may take.
    pub budget: Duration,
}

/// What a [`kill_loop`] did.
#[derive(Debug, Default)]
pub struct KillSummary {
    /// SIGKILLs delivered.
    pub kills: usize,
    /// Of them, while some saga was active.
    pub while_active: usize,
    /// Of them, during recovery (before READY=1).
    pub before_ready: usize,
    /// Graceful stops (SIGTERM).
    pub graceful: usize,
    /// How long the loop took.
    pub elapsed: Duration,
}

/// Starts the real daemon over and over, submits `batch` at the first start,
/// and SIGKILLs it at seeded random moments: right after submit, during
/// recovery (before READY=1), mid-step, while waiting. The daemon is left
/// stopped.
pub fn kill_loop(
    env: &Env,
    batch: &Path,
    rng: &mut impl rand::Rng,
    plan: &KillPlan,
) -> KillSummary {
    let started = std::time::Instant::now();
    let mut s = KillSummary::default();
    let mut submitted = false;
    while s.kills < plan.kills + usize::from(plan.stop_when_idle) * 4 {
        let mut d = support::Daemon::spawn(env);
        if submitted && rng.gen_bool(0.15) {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..80)));
            s.before_ready += 1;
        } else {
            d.wait_for_message("READY=1", Duration::from_secs(30));
            if !submitted {
                env.submit(batch);
                submitted = true;
                // The first kill right after submit.
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..20)));
            } else {
                let max = plan.max_pause.as_millis().max(11) as u64;
                std::thread::sleep(Duration::from_millis(rng.gen_range(10..max)));
            }
            if plan.graceful > 0.0 && rng.gen_bool(plan.graceful) {
                d.signal("TERM");
                let st = d.wait_exit(Duration::from_secs(20));
                assert!(st.success(), "graceful stop failed ({st})\n{}", d.tail());
                s.graceful += 1;
                continue;
            }
        }
        d.kill();
        s.kills += 1;
        if support::active_sagas(&env.data_dir) > 0 {
            s.while_active += 1;
        } else if plan.stop_when_idle && s.kills >= plan.kills {
            break;
        }
        assert!(
            started.elapsed() < plan.budget,
            "kill loop took longer than {:?}\n{}",
            plan.budget,
            d.tail()
        );
    }
    s.elapsed = started.elapsed();
    s
}
