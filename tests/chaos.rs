//! Chaos run: a batch of tenants of both subscription modes (partner-center
//! and manual) closed by the real daemon against a `closeout sim` with every
//! fault on (5xx, dropped connections, hung requests, ghost failures,
//! throttling, 200 ms of replication lag on every read), the daemon SIGKILLed at seeded random moments and sometimes
//! stopped gracefully (SIGTERM) instead. At the end every saga is completed,
//! every tenant gone, no keep account touched, the sim's effects ledger and
//! `audit --format jsonl` agree change for change, and `closeout verify`
//! exits 0.
//!
//! Sizes come from the environment (CI size by default):
//! `CLOSEOUT_CHAOS_TENANTS` (4), `CLOSEOUT_CHAOS_USERS` (60),
//! `CLOSEOUT_CHAOS_KILLS` (30), `CLOSEOUT_CHAOS_SEED` (20261129). The full
//! run of the README: 20 tenants, 300 users, 200 kills.

mod proof;
mod support;

use proof::{env_num, FaultCounts};
use rand::SeedableRng;
use std::time::{Duration, Instant};
use support::{Daemon, Env, Sim};

#[test]
fn chaos_kills_restarts_and_every_fault() {
    let tenants_n: usize = env_num("CLOSEOUT_CHAOS_TENANTS", 4);
    let users: usize = env_num("CLOSEOUT_CHAOS_USERS", 60);
    let kills_wanted: usize = env_num("CLOSEOUT_CHAOS_KILLS", 30);
    let seed: u64 = env_num("CLOSEOUT_CHAOS_SEED", 20261129);
    eprintln!(
        "chaos: seed {seed}, {tenants_n} tenants x {users} users, {kills_wanted} kills \
         (CLOSEOUT_CHAOS_SEED/_TENANTS/_USERS/_KILLS)"
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Subscriptions deprovision late enough that most kills land while the
    // closure runs: a restart's recovery grows with the batch, so about
    // 25 ms per kill and tenant (20 tenants, 200 kills: 100 s).
    let deprovision = format!(
        "{}ms",
        (kills_wanted as u64 * tenants_n as u64 * 25).max(3000)
    );
    let mut args = proof::batch_args(tenants_n, users, seed);
    let faults = [
        "--error-rate",
        "0.03",
        "--reset-rate",
        "0.01",
        "--hang-rate",
        "0.005",
        "--ghost-rate",
        "0.03",
        "--write-limit",
        "40/1s",
        "--deprovision-after",
        &deprovision,
        "--replication-lag",
        "200ms",
    ];
    args.extend(faults.iter().map(std::string::ToString::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Sim::start(&args);
    let tenants = sim.tenants();
    assert_eq!(tenants.len(), tenants_n);
    assert!(
        tenants.iter().any(|t| t["billing"] == "partner")
            && tenants.iter().any(|t| t["billing"] == "direct"),
        "the batch must hold both subscription modes"
    );
    let keep = proof::keep_ids(&sim, &tenants);
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);

    let started = Instant::now();
    let summary = proof::kill_loop(
        &env,
        &batch,
        &mut rng,
        &proof::KillPlan {
            kills: kills_wanted,
            graceful: 0.12,
            stop_when_idle: false,
            max_pause: Duration::from_millis(300),
            budget: Duration::from_secs(60 + kills_wanted as u64 * 3),
        },
    );
    let proof::KillSummary {
        kills,
        while_active,
        before_ready,
        graceful,
        ..
    } = summary;
    let kill_phase = started.elapsed();

    let mut d = Daemon::start(&env);
    let rows = proof::wait_terminal(&env, &d, Duration::from_secs(120 + users as u64 / 5));
    for r in &rows {
        assert_eq!(
            r["state"],
            "completed",
            "saga not completed: {}\n{}",
            support::row_line(r),
            d.tail()
        );
    }
    assert_eq!(rows.len(), tenants_n, "one saga per tenant");
    d.signal("TERM");
    assert!(
        d.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        d.tail()
    );
    let faults = FaultCounts::of(&sim);

    let sum = proof::check_ledger(&sim, &env, &tenants, &keep);
    proof::verify_ok(&env.data_dir);
    let total = started.elapsed();
    eprintln!(
        "chaos summary: seed {seed}; {tenants_n} tenants x {users} users; {kills} kills \
         ({while_active} while sagas active, {before_ready} before READY), {graceful} graceful \
         restarts; faults injected {} ({} 5xx, {} resets, {} hangs, {} ghosts, {} throttled); \
         {} changes checked ({} with recorded outcome, {} outcome lost in a crash, {} ghost/dropped, \
         {} repeats after doubt, {} in doubt when found gone); kill phase {kill_phase:?}, total {total:?}",
        faults.total(),
        faults.errors,
        faults.resets,
        faults.hangs,
        faults.ghosts,
        faults.throttled,
        sum.changes,
        sum.exact,
        sum.lost,
        sum.ghosts,
        sum.repeats,
        sum.doubt_at_end
    );
    assert!(
        while_active * 2 >= kills_wanted,
        "only {while_active} of {kills} kills hit an active closure"
    );
    assert!(
        faults.errors > 0 && faults.resets > 0 && faults.ghosts > 0 && faults.throttled > 0,
        "a fault kind was never injected: {faults:?}"
    );
    assert!(
        sum.changes >= tenants_n * (users / 2),
        "too few changes: {sum:?}"
    );
}
