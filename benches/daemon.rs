//! One daemon closing many tenants against the simulator: the built
//! `closeout daemon` runs as a child process (so that its peak RSS and CPU are
//! its own, not the simulator's), the simulator runs in this process (10 ms
//! latency, throttling off, auto-operator), and the batch goes in through the
//! control socket as `closeout submit` sends it.
//!
//! Lifecycle delays (the simulator's clock and the daemon's polls), short but
//! in the real service's shape (deprovisioning much slower than a person at
//! the admin center, polls a fraction of what they wait for):
//! deprovisioning takes 2 s (72 hours in the real service), the auto-operator
//! acts 1 s after an admin-center action becomes possible, and the daemon
//! re-reads every 500 ms while it waits. One tenant alone is then bound by
//! these delays (a few seconds), as a real one is by days, and the many-tenant
//! run by the daemon's CPU. `CLOSEOUT_BENCH_DELAYS=short` uses the earlier,
//! extremely short delays instead (300 ms deprovisioning, 100 ms operator and
//! polls), where one tenant takes under a second and the ratio mostly
//! measures CPU per tenant.
//!
//! Measured in the same run: one tenant alone, then 1,000 tenants of 20 users
//! (50 with `CLOSEOUT_BENCH_QUICK=1`). Prints `bench daemon.tenant_1_s`,
//! `bench daemon.tenants_1000_s` (the name stays; the count is printed too),
//! `bench daemon.ratio`, `bench daemon.peak_rss_mb` (VmHWM of the daemon in
//! the large run) and the daemon's CPU (user + system) per tenant. Target:
//! ratio at most 3, peak RSS under 300 MB.
//!
//! `CLOSEOUT_BENCH_SCALING=1` measures instead how time and daemon CPU grow:
//! 1, 10, 100 and 1,000 tenants of 20 users (`daemon.scale_tenants_<n>_s`,
//! `..._cpu_s`), and one tenant of 100, 1,000, 10,000, 100,000 and 250,000 users
//! (`daemon.scale_users_<n>_s`, `..._cpu_s`); with `CLOSEOUT_BENCH_QUICK=1`
//! only the two smallest of each. `CLOSEOUT_BENCH_USERS=N` closes one
//! tenant of N users alone (`daemon.users_<n>_s`, `_cpu_s`, `_rss_mb`).

use closeout::cli::demo::setup::{self, Tuning};
use closeout::config::BatchFile;
use closeout::runtime::control::{Client, Request, Response, SagaState};
use closeout::sim::{self, state::Billing, GenerateSpec};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon child; SIGKILLed if the bench fails half-way.
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU seconds (user + system) used so far by process `pid` (`self` for this one).
fn cpu_s(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and
    // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// The simulator's lifecycle delays and the daemon's polls.
#[derive(Clone, Copy)]
struct Delays {
    /// How long deprovisioning a deleted subscription takes.
    deprovision: Duration,
    /// How long the auto-operator takes to act once it can.
    operator: Duration,
    /// How often the daemon re-reads while it waits.
    poll: Duration,
}

impl Delays {
    fn from_env() -> Delays {
        if std::env::var("CLOSEOUT_BENCH_DELAYS").is_ok_and(|v| v == "short") {
            Delays {
                deprovision: Duration::from_millis(300),
                operator: Duration::from_millis(100),
                poll: Duration::from_millis(100),
            }
        } else {
            Delays {
                deprovision: Duration::from_secs(2),
                operator: Duration::from_secs(1),
                poll: Duration::from_millis(500),
            }
        }
    }
}

/// One run: `tenants` tenants of `users` users; returns the time from submit
/// to the last saga completed, the daemon's peak RSS in kB, and the CPU
/// seconds of the daemon and of the simulator over that time.
async fn run(tenants: usize, users: usize, seed: u64, delays: Delays) -> (Duration, u64, f64, f64) {
    let mut fixture = sim::fixture::generate(
        &GenerateSpec {
            tenants,
            users,
            subscriptions: 2,
            ..GenerateSpec::default()
        },
        seed,
    );
    for (i, t) in fixture.tenants.iter_mut().enumerate() {
        t.billing = if i % 2 == 0 {
            Billing::Partner
        } else {
            Billing::Direct
        };
    }
    let sim = sim::Sim::start(sim::Options {
        fixture,
        seed,
        latency: Duration::from_millis(10),
        deprovision_after: delays.deprovision,
        auto_operator: Some(delays.operator),
        // Throttling off, as in the simulator's own bench: with it on, a
        // saga's step-4 read of the Conditional Access policies stays
        // answered 429 for minutes (reported; see the module doc).
        throttling: false,
        ..sim::Options::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let tuning = Tuning {
        max_concurrent_sagas: tenants,
        poll: delays.poll,
        retry_initial: Duration::from_millis(100),
        log_level: "warn".into(),
        // No operator attests here: the bench measures the closure itself.
        backup: closeout::saga::stake::BackupMode::Off,
    };
    let files = setup::write(
        dir.path(),
        &sim.base_url(),
        &sim.tenants(),
        &sim.partner(),
        &tuning,
    )
    .expect("files");
    let socket = dir.path().join("control.sock");
    let daemon = Daemon {
        child: Command::new(env!("CARGO_BIN_EXE_closeout"))
            .arg("daemon")
            .arg("--config")
            .arg(&files.config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).expect("log file"))
            .spawn()
            .expect("closeout daemon"),
    };
    let mut client = connect(&socket, &daemon).await;
    let batch = BatchFile::load(&files.batch).expect("batch");
    let start = Instant::now();
    let (daemon_cpu0, sim_cpu0) = (cpu_s(&daemon.child.id().to_string()), cpu_s("self"));
    match client
        .call(&Request::Submit {
            tenants: batch.tenants,
            finish_with: batch.finish_with,
            domains: batch.domains,
        })
        .await
        .expect("submit")
    {
        Response::Submitted { sagas } => assert_eq!(sagas.len(), tenants),
        other => panic!("submit answered {other:?}"),
    }
    let poll = Duration::from_millis(if tenants == 1 { 10 } else { 100 });
    let mut shown = Instant::now();
    let elapsed = loop {
        tokio::time::sleep(poll).await;
        let rows = match client.call(&Request::Status { saga: None }).await {
            Ok(Response::Status { rows }) => rows,
            other => panic!("status answered {other:?}"),
        };
        if shown.elapsed() > Duration::from_secs(5) {
            shown = Instant::now();
            let mut counts = std::collections::BTreeMap::new();
            for r in &rows {
                *counts
                    .entry(format!("{:?} step {:?}", r.state, r.step))
                    .or_insert(0) += 1;
            }
            eprintln!("{:.0?}: {counts:?}", start.elapsed());
            if let Some(r) = rows.iter().find(|r| !r.state.is_terminal()) {
                eprintln!("  e.g. {r:?}");
            }
        }
        if rows.iter().all(|r| r.state.is_terminal()) {
            let elapsed = start.elapsed();
            let bad: Vec<_> = rows
                .iter()
                .filter(|r| r.state != SagaState::Completed)
                .collect();
            assert!(bad.is_empty(), "sagas not completed: {bad:?}");
            break elapsed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "the sagas did not finish in 30 minutes"
        );
    };
    let rss = vm_hwm_kb(daemon.child.id()).unwrap_or(0);
    let daemon_cpu = cpu_s(&daemon.child.id().to_string()) - daemon_cpu0;
    let sim_cpu = cpu_s("self") - sim_cpu0;
    drop(client);
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status();
    drop(daemon);
    sim.shutdown().await;
    (elapsed, rss, daemon_cpu, sim_cpu)
}

/// Waits for the daemon's control socket (the daemon binds it first thing).
async fn connect(socket: &Path, daemon: &Daemon) -> Client {
    let start = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect(socket).await {
            if let Ok(Response::Health(_)) = c.call(&Request::Health).await {
                return c;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "daemon {} did not answer on {}",
            daemon.child.id(),
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    let quick = std::env::var("CLOSEOUT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let scaling = std::env::var("CLOSEOUT_BENCH_SCALING").is_ok_and(|v| v == "1");
    let delays = Delays::from_env();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    if let Some(users) = std::env::var("CLOSEOUT_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let (t, rss_kb, cpu, _) = rt.block_on(run(1, users, 20 + users as u64, delays));
        println!("bench daemon.users_{users}_s {:.3} s", t.as_secs_f64());
        println!("bench daemon.users_{users}_cpu_s {cpu:.2} s");
        println!(
            "bench daemon.users_{users}_rss_mb {:.1} MB",
            rss_kb as f64 / 1024.0
        );
        return;
    }
    if scaling {
        rt.block_on(scale(quick, delays));
        return;
    }
    let many = if quick { 50 } else { 1000 };
    rt.block_on(async {
        let (one, _, _, _) = run(1, 20, 1, delays).await;
        let (all, rss_kb, daemon_cpu, sim_cpu) = run(many, 20, 2, delays).await;
        println!("bench daemon.tenant_1_s {:.3} s", one.as_secs_f64());
        println!("bench daemon.tenants_1000_s {:.3} s", all.as_secs_f64());
        println!("bench daemon.tenants {many} tenants");
        println!(
            "bench daemon.ratio {:.2} x",
            all.as_secs_f64() / one.as_secs_f64()
        );
        println!("bench daemon.peak_rss_mb {:.1} MB", rss_kb as f64 / 1024.0);
        // Where the time of the large run went: CPU of the daemon and of
        // this process (the simulator), against the cores available.
        println!("bench daemon.daemon_cpu_s {daemon_cpu:.2} s");
        println!(
            "bench daemon.daemon_cpu_ms_per_tenant {:.2} ms",
            daemon_cpu * 1000.0 / many as f64
        );
        println!("bench daemon.sim_cpu_s {sim_cpu:.2} s");
        println!(
            "bench daemon.cores {} cores",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        );
    });
}

/// The scaling mode: time and daemon CPU against tenants, then against users.
async fn scale(quick: bool, delays: Delays) {
    let (tenants, users): (&[usize], &[usize]) = if quick {
        (&[1, 10], &[100, 1_000])
    } else {
        (
            &[1, 10, 100, 1_000],
            &[100, 1_000, 10_000, 100_000, 250_000],
        )
    };
    for &n in tenants {
        let (t, rss_kb, cpu, _) = run(n, 20, 10 + n as u64, delays).await;
        println!("bench daemon.scale_tenants_{n}_s {:.3} s", t.as_secs_f64());
        println!("bench daemon.scale_tenants_{n}_cpu_s {cpu:.2} s");
        println!(
            "bench daemon.scale_tenants_{n}_rss_mb {:.1} MB",
            rss_kb as f64 / 1024.0
        );
    }
    for &u in users {
        let (t, rss_kb, cpu, _) = run(1, u, 20 + u as u64, delays).await;
        println!("bench daemon.scale_users_{u}_s {:.3} s", t.as_secs_f64());
        println!("bench daemon.scale_users_{u}_cpu_s {cpu:.2} s");
        println!(
            "bench daemon.scale_users_{u}_rss_mb {:.1} MB",
            rss_kb as f64 / 1024.0
        );
    }
}
