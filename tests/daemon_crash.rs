//! Crash test: the real daemon is SIGKILLed at seeded random moments over a
//! whole closure (right after submit, during recovery, mid-step, while
//! waiting) against a faulty, throttling `closeout sim`, and restarted each
//! time. In the end every saga is completed, every tenant gone, keep accounts
//! untouched, and the sim's effects ledger agrees with the event log: every
//! change made had a durable intent and a recorded outcome (or an outcome
//! lost in a crash), the audit export (`closeout audit --format jsonl`) shows
//! each with the same method and path (or its intent), and no change was
//! applied twice unless its first outcome was in doubt.

mod proof;
mod support;

use rand::SeedableRng;
use std::time::{Duration, Instant};
use support::{all_terminal, wait_status, Daemon, Env, Sim};

/// Kills required per run.
const KILLS: usize = 20;

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
    let keep = proof::keep_ids(&sim, &tenants);
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);

    let started = Instant::now();
    let summary = proof::kill_loop(
        &env,
        &batch,
        &mut rng,
        &proof::KillPlan {
            kills: KILLS,
            graceful: 0.0,
            stop_when_idle: true,
            max_pause: Duration::from_millis(250),
            budget: Duration::from_secs(120),
        },
    );
    let proof::KillSummary {
        kills,
        while_active: kills_while_active,
        before_ready: kills_before_ready,
        ..
    } = summary;
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

    // The sim's ledger against the event log and the audit jsonl (the
    // checks shared with tests/chaos.rs), then the hash chain.
    let sum = proof::check_ledger(&sim, &env, &tenants, &keep);
    proof::verify_ok(&env.data_dir);
    eprintln!(
        "crash test: {kills} kills ({kills_while_active} while sagas active, {kills_before_ready} before READY), \
         kill phase {kill_phase:?}, final recovery {recovery:?}, total {total:?}; ledger {sum:?}; faults {faults:?}"
    );
    assert!(
        kills_while_active >= KILLS,
        "only {kills_while_active} kills hit an active closure"
    );
}
