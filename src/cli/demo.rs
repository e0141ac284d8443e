//! `closeout demo`: an end-to-end run on simulated tenants, the README's first
//! command. Starts the simulator in-process (generated tenants of both billing
//! kinds, one tenant whose app lacks its role and one synced from on-premises
//! (both gated by step 1's preflight until the auto-operator fixes them), some
//! faults, throttling, 200 ms of replication lag, an auto-operator with short
//! lifecycle delays), writes secrets, a batch and a config into an output directory as
//! an operator would, runs the real daemon (executor and control socket) on a
//! data dir there, submits the batch through the control socket as `submit`
//! does, attests each tenant's backup at the backup gate as a simulated
//! operator (`confirm --backup`, with a reason saying so), shows progress, and ends with a summary per tenant read back from the
//! event log, the effects ledger compared with the log, and the audit report.
//! The output directory is kept for `closeout audit` and `closeout verify`.

pub mod report;
pub mod setup;

use super::common::{call, connect, load_batch, unexpected};
use super::Error;
use crate::config::Config;
use crate::runtime::control::{Request, Response, SagaStatus, Server};
use crate::runtime::systemd::Notifier;
use crate::runtime::{executor::Executor, logging, Daemon};
use crate::sim::{self, state::Billing, GenerateSpec};
use anyhow::anyhow;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `closeout demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many tenants to simulate (half billed through the partner).
    #[arg(long, default_value_t = 6)]
    pub tenants: usize,
    /// Users generated per simulated tenant.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Seed of the generator and of the simulator's faults.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where to write the files, the data dir and the reports [default: a
    /// new directory under the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// No injected errors, resets or ghost writes (throttling stays on).
    #[arg(long)]
    pub no_faults: bool,
    /// Give up after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// Show the daemon's own log lines (warnings and errors) on stderr.
    #[arg(long)]
    pub verbose: bool,
}

/// Runs `closeout demo`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.tenants == 0 || args.users == 0 {
        return Err(Error::Invalid(anyhow!(
            "--tenants and --users must be at least 1"
        )));
    }
    let dir = output_dir(args.dir.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(anyhow!("cannot start the async runtime: {e}")))?;
    rt.block_on(demo(&args, &dir))
}

/// A fresh output directory (mode 0700): the one given, or a new one;
/// absolute, since the config written into it names paths inside it and a
/// relative path in a config resolves against the config's own directory
/// (`--dir demo1` would otherwise name `demo1/demo1/secrets/...`).
fn output_dir(given: Option<&Path>) -> Result<PathBuf, Error> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = match given {
        Some(d) => std::path::absolute(d)
            .map_err(|e| Error::Invalid(anyhow!("cannot make {} absolute: {e}", d.display())))?,
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            std::env::temp_dir().join(format!("closeout-demo-{stamp}-{}", std::process::id()))
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::Failed(anyhow!("cannot create {}: {e}", dir.display())))?;
    if std::fs::read_dir(&dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(true)
    {
        return Err(Error::Invalid(anyhow!(
            "{} is not empty: give a new or empty directory",
            dir.display()
        )));
    }
    Ok(dir)
}

/// The simulator as the demo sets it up.
fn sim_options(args: &Args) -> sim::Options {
    let spec = GenerateSpec {
        tenants: args.tenants,
        users: args.users,
        direct: 0.5,
        subscriptions: 2,
        admins: 1,
        ..GenerateSpec::default()
    };
    let mut fixture = sim::fixture::generate(&spec, args.seed);
    // Both billing kinds however few the tenants: even ones through the
    // partner (Partner Center), odd ones bought directly (the admin center).
    for (i, t) in fixture.tenants.iter_mut().enumerate() {
        t.billing = if i % 2 == 0 {
            Billing::Partner
        } else {
            Billing::Direct
        };
    }
    // One tenant of each hard case step 1's preflight gates on, fixed by the
    // auto-operator once closeout asks: tenant 0's app lacks the role that
    // deleting its administrators needs, tenant 1 syncs two users from
    // on-premises.
    if let Some(t) = fixture.tenants.first_mut() {
        t.app_privileged = false;
    }
    if let Some(t) = fixture.tenants.get_mut(1) {
        t.directory_sync = Some(true);
        for u in t.users.iter_mut().filter(|u| u.roles.is_empty()).take(2) {
            u.synced = true;
        }
    }
    // The data at stake: tenant 2 keeps Microsoft 365 Backup policies (its
    // backup gate warns that those copies go with the tenant), tenant 3
    // conceals user names in its usage reports (totals only).
    if let Some(t) = fixture.tenants.get_mut(2) {
        t.backup = true;
    }
    if let Some(t) = fixture.tenants.get_mut(3) {
        t.concealed_names = true;
    }
    let faults = if args.no_faults { 0.0 } else { 1.0 };
    sim::Options {
        fixture,
        seed: args.seed,
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(3),
        error_rate: 0.01 * faults,
        reset_rate: 0.003 * faults,
        ghost_rate: 0.005 * faults,
        throttling: true,
        deprovision_after: Duration::from_millis(1500),
        auto_operator: Some(Duration::from_millis(300)),
        replication_lag: Duration::from_millis(200),
        ..sim::Options::default()
    }
}

async fn demo(args: &Args, dir: &Path) -> Result<(), Error> {
    let failed = |e: anyhow::Error| Error::Failed(e);
    let began = Instant::now();
    let sim = sim::Sim::start(sim_options(args))
        .await
        .map_err(|e| failed(e.into()))?;
    println!(
        "closeout demo: simulator at {} with {} tenants of {} users (seed {})",
        sim.base_url(),
        args.tenants,
        args.users,
        args.seed
    );
    let tuning = setup::Tuning {
        poll: Duration::from_millis(250),
        log_level: "warn".into(),
        ..setup::Tuning::default()
    };
    let files = setup::write(
        dir,
        &sim.base_url(),
        &sim.tenants(),
        &sim.partner(),
        &tuning,
    )
    .map_err(|e| failed(e.into()))?;
    let config = Config::load(&files.config).map_err(|e| Error::Invalid(e.into()))?;
    if args.verbose {
        logging::init(&config.log);
    }
    println!("  files:    {}", dir.display());
    println!("  data dir: {}", config.data_dir.display());

    // The daemon, in-process: the same shell `closeout daemon` runs.
    let server = Server::bind(&config.control_socket)
        .await
        .map_err(|e| failed(e.into()))?;
    let engine = Executor::start(&config)
        .await
        .map_err(|e| failed(anyhow!("cannot start the executor: {e}")))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (_reload_tx, reloads) = tokio::sync::mpsc::channel(1);
    let daemon = Daemon {
        config_path: files.config.clone(),
        config: config.clone(),
        notifier: Notifier::new(None, None),
    };
    let serving = tokio::spawn(daemon.serve(server, Arc::clone(&engine), stop_rx, reloads));

    let outcome = drive(&config, &files.batch, args.timeout).await;
    let _ = stop_tx.send(());
    // `serve` drains the engine (shutdown) before it returns.
    let served = serving.await;
    drop(engine);
    let rows = outcome?;
    if let Ok(Err(e)) = served {
        eprintln!("closeout demo: the daemon stopped with an error: {e}");
    }

    let effects = sim.effects(0);
    let summary = report::read(&config.data_dir, &rows, &effects)
        .await
        .map_err(|e| failed(anyhow!("cannot read the event log back: {e}")))?;
    sim.shutdown().await;
    report::print(&summary, began.elapsed());
    report::audit(dir, &config.data_dir);
    println!(
        "\n  verify the log's hash chain: closeout verify --data-dir {}",
        config.data_dir.display()
    );
    let incomplete = rows
        .iter()
        .filter(|r| r.state != crate::runtime::control::SagaState::Completed)
        .count();
    if incomplete > 0 {
        return Err(Error::Failed(anyhow!(
            "{incomplete} of {} sagas did not complete",
            rows.len()
        )));
    }
    Ok(())
}

/// Submits the batch as `closeout submit` does and follows the sagas until
/// every one is terminal; returns their last status rows.
async fn drive(config: &Config, batch: &Path, timeout: Duration) -> Result<Vec<SagaStatus>, Error> {
    let batch = load_batch(batch)?;
    let mut client = connect(config).await?;
    let sagas = match call(
        &mut client,
        &Request::Submit {
            tenants: batch.tenants,
            finish_with: batch.finish_with,
            domains: batch.domains,
        },
    )
    .await?
    {
        Response::Submitted { sagas } => sagas,
        other => return Err(unexpected(other)),
    };
    println!("  submitted {} sagas\n", sagas.len());
    let mut attested = std::collections::HashSet::new();
    let terminal = std::io::stdout().is_terminal();
    let start = Instant::now();
    let mut drawn = 0usize;
    let mut last_plain = None::<Instant>;
    let mut tick = tokio::time::interval(Duration::from_millis(if terminal { 200 } else { 500 }));
    loop {
        tick.tick().await;
        let rows = match call(&mut client, &Request::Status { saga: None }).await? {
            Response::Status { rows } => rows,
            other => return Err(unexpected(other)),
        };
        attest_backups(&mut client, &rows, &mut attested).await?;
        let done = !rows.is_empty() && rows.iter().all(|r| r.state.is_terminal());
        if terminal {
            report::redraw(&rows, &mut drawn, start.elapsed());
        } else if done || last_plain.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
            report::plain(&rows, start.elapsed());
            last_plain = Some(Instant::now());
        }
        if done {
            return Ok(rows);
        }
        if start.elapsed() > timeout {
            return Err(Error::Failed(anyhow!(
                "the sagas did not finish within {}",
                humantime::format_duration(timeout)
            )));
        }
    }
}

/// The demo's simulated operator at the backup gate: attests, through the
/// control socket as `closeout confirm SAGA --backup` does, for each saga
/// waiting there. Recorded with the demo user as the socket peer and a
/// reason that says the attestation is the demo's.
async fn attest_backups(
    client: &mut crate::runtime::control::Client,
    rows: &[SagaStatus],
    attested: &mut std::collections::HashSet<String>,
) -> Result<(), Error> {
    use crate::runtime::control::OperatorCommand;
    for r in rows {
        let at_gate = r
            .action_required
            .as_ref()
            .is_some_and(|a| a.place.contains("--backup"));
        if !at_gate || !attested.insert(r.saga_id.clone()) {
            continue;
        }
        let request = Request::Command {
            saga: r.saga_id.clone(),
            command: OperatorCommand::ConfirmBackup,
            reason: Some(
                "closeout demo's simulated operator: the simulated tenants hold no real data; \
                 attested to show the backup gate"
                    .into(),
            ),
        };
        match client.call(&request).await {
            Ok(Response::Done) => {}
            // Refused (the gate closed meanwhile): the next status shows it.
            Ok(Response::Error(_)) => {
                attested.remove(&r.saga_id);
            }
            Ok(other) => return Err(unexpected(other)),
            Err(e) => return Err(Error::Failed(e.into())),
        }
    }
    Ok(())
}
