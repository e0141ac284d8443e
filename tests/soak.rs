//! Fault soak: the chaos batch (both subscription modes) against a sim where
//! about 30% of calls fail in mixed ways (5xx, dropped connections, hung
//! requests, ghost failures) on top of throttling, with no kills. Every saga
//! completes, the ledger agrees with the audit log, `verify` passes, and
//! every retry in the audit log is within the configured policy: attempts
//! numbered from 1 within a run, none past `give_up_after`, each delay the
//! policy's backoff for that attempt (never shorter) or the service's
//! `Retry-After`.
//!
//! Sizes: `CLOSEOUT_SOAK_TENANTS` (4), `CLOSEOUT_SOAK_USERS` (60),
//! `CLOSEOUT_SOAK_SEED` (20261130).

mod proof;
mod support;

use closeout::retry::{Jitter, RetryPolicy};
use proof::{env_num, FaultCounts};
use std::time::{Duration, Instant};
use support::{ConfigOpts, Daemon, Env, Sim};

#[test]
fn soak_thirty_percent_failures_stay_within_the_retry_policy() {
    let tenants_n: usize = env_num("CLOSEOUT_SOAK_TENANTS", 4);
    let users: usize = env_num("CLOSEOUT_SOAK_USERS", 60);
    let seed: u64 = env_num("CLOSEOUT_SOAK_SEED", 20261130);
    eprintln!("soak: seed {seed}, {tenants_n} tenants x {users} users");
    let mut args = proof::batch_args(tenants_n, users, seed);
    for a in [
        "--error-rate",
        "0.12",
        "--reset-rate",
        "0.05",
        "--hang-rate",
        "0.01",
        "--ghost-rate",
        "0.12",
        "--write-limit",
        "40/1s",
        "--deprovision-after",
        "1s",
    ] {
        args.push(a.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Sim::start(&args);
    let tenants = sim.tenants();
    let keep = proof::keep_ids(&sim, &tenants);
    // The policy the daemon runs with, written to its config.
    let policy = RetryPolicy {
        initial_interval: Duration::from_millis(40),
        multiplier: 1.5,
        max_interval: Duration::from_millis(400),
        jitter: Jitter::Equal,
        give_up_after: Duration::from_secs(300),
    };
    let env = Env::new(
        &sim,
        ConfigOpts {
            give_up_after: "5m",
            extra: String::new(),
            ..ConfigOpts::default()
        },
    );
    // Rewrite the [retry] table of the generated config with the policy.
    let text = std::fs::read_to_string(&env.config).expect("read config");
    let text = text.replace(
        "[retry]\ninitial_interval = \"50ms\"\nmax_interval = \"500ms\"\n",
        "[retry]\ninitial_interval = \"40ms\"\nmultiplier = 1.5\nmax_interval = \"400ms\"\njitter = \"equal\"\n",
    );
    assert!(
        text.contains("jitter = \"equal\""),
        "config layout changed: {text}"
    );
    std::fs::write(&env.config, text).expect("write config");
    let batch = env.write_batch("batch.toml", &tenants);

    let started = Instant::now();
    let mut d = Daemon::start(&env);
    env.submit(&batch);
    let rows = proof::wait_terminal(&env, &d, Duration::from_secs(420));
    for r in &rows {
        assert_eq!(
            r["state"],
            "completed",
            "{}\n{}",
            support::row_line(r),
            d.tail()
        );
    }
    assert_eq!(rows.len(), tenants_n);
    d.signal("TERM");
    assert!(
        d.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        d.tail()
    );
    let faults = FaultCounts::of(&sim);
    let sum = proof::check_ledger(&sim, &env, &tenants, &keep);
    proof::verify_ok(&env.data_dir);
    let audit = proof::audit_jsonl(&env.data_dir);
    let retries = proof::check_retries(&audit, &policy);
    eprintln!(
        "soak summary: seed {seed}; {tenants_n} tenants x {users} users; faults injected {} \
         ({} 5xx, {} resets, {} hangs, {} ghosts, {} throttled); {} retries in the audit log \
         ({} at the policy's backoff, {} at Retry-After, longest run {} attempts); \
         {} changes checked ({} repeats after doubt); {:?}",
        faults.total(),
        faults.errors,
        faults.resets,
        faults.hangs,
        faults.ghosts,
        faults.throttled,
        retries.retries,
        retries.backoff,
        retries.retry_after,
        retries.max_attempt,
        sum.changes,
        sum.repeats,
        started.elapsed()
    );
    assert!(retries.retries > 0, "no retry at 30% failures");
    assert!(
        faults.errors + faults.resets + faults.ghosts + faults.hangs >= 20,
        "too few faults: {faults:?}"
    );
}
