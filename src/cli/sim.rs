//! `closeout sim`: runs the simulator of login, Graph and Partner Center on
//! loopback until SIGINT or SIGTERM. The first stdout line is
//! `closeout sim listening on http://127.0.0.1:PORT`.

use crate::sim::{self, Fixture, GenerateSpec, Options};
use anyhow::anyhow;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// Arguments of `closeout sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// TOML fixture describing the tenants.
    #[arg(long, conflicts_with = "generate")]
    pub fixture: Option<std::path::PathBuf>,
    /// Generate tenants instead: `tenants=N,users=M[,direct=F,subscriptions=N,admins=N,unprivileged=K,synced=K,outside_window=K,apps=K,trials=K,self_service=K,other_partner=K,legacy=K,suspended=K,term_ends_in=DURATION]`.
    #[arg(long)]
    pub generate: Option<String>,
    /// A certificate (PEM; a key in the file is ignored) registered for
    /// every tenant's app and the partner's, beside their secrets: client
    /// assertions signed with its key are accepted.
    #[arg(long)]
    pub certificate: Option<std::path::PathBuf>,
    /// Seed of the generator and of every fault decision.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Faults, throttling and timing (boxed: keeps the subcommand enum small).
    #[command(flatten)]
    pub tuning: Box<Tuning>,
}

/// Faults, throttling and timing options of `closeout sim`.
#[derive(Debug, clap::Args)]
pub struct Tuning {
    /// Fixed delay per request (humantime, e.g. `20ms`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Extra random delay up to this much.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub jitter: Duration,
    /// Fraction of requests answered 500/502/503/504.
    #[arg(long, value_parser = fraction, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of requests whose connection is dropped.
    #[arg(long, value_parser = fraction, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Fraction of requests never answered.
    #[arg(long, value_parser = fraction, default_value_t = 0.0)]
    pub hang_rate: f64,
    /// Fraction of changes applied but answered 429/5xx.
    #[arg(long, value_parser = fraction, default_value_t = 0.0)]
    pub ghost_rate: f64,
    /// Also fault the token endpoint.
    #[arg(long)]
    pub fault_token: bool,
    /// Write budget of one app in one tenant, `N/DURATION` (default 3000/150s).
    #[arg(long, value_parser = sim::throttle::Budget::parse)]
    pub write_limit: Option<sim::throttle::Budget>,
    /// Turn throttling off entirely (benchmarks).
    #[arg(long)]
    pub no_throttle: bool,
    /// Lifetime of issued tokens.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3599s")]
    pub token_lifetime: Duration,
    /// Delay between deleting a subscription and its deprovisioning.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "72h")]
    pub deprovision_after: Duration,
    /// How long deleted users can be restored.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30days")]
    pub recycle_retention: Duration,
    /// Play the operator: take each admin-center action this long after it becomes possible.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub auto_operator: Option<Duration>,
    /// Entra ID's eventual consistency: reads show the state from before a
    /// change for this long after it (users, deleted items, roles,
    /// subscriptions, policies). Off by default.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub replication_lag: Duration,
    /// Run the subscription lifecycle (terms, cancellation windows, Expired,
    /// Disabled) this many times faster than real time; tokens and `Date`
    /// headers keep real time.
    #[arg(long, value_parser = speed, default_value_t = 1.0)]
    pub clock_speed: f64,
    /// Partner Center answers each subscription PATCH that changes something
    /// with 202 Accepted and carries it out this long after, as it does when
    /// a change "takes longer than expected". Off by default.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub partner_accepted_after: Option<Duration>,
}

fn speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
        _ => Err(format!("{s:?} is not a speed-up of at least 1")),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction from 0 to 1")),
    }
}

/// Runs `closeout sim`.
pub fn run(args: Args) -> Result<(), super::Error> {
    let fixture = match (&args.fixture, &args.generate) {
        (Some(path), _) => Fixture::load(path).map_err(|e| super::Error::Invalid(e.into()))?,
        (None, Some(spec)) => {
            let spec: GenerateSpec = spec
                .parse()
                .map_err(|e: sim::fixture::Error| super::Error::Invalid(e.into()))?;
            sim::fixture::generate(&spec, args.seed)
        }
        (None, None) => Fixture::example(),
    };
    let fixture = match &args.certificate {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| super::Error::Invalid(anyhow!("{}: {e}", path.display())))?;
            crate::cert::Registered::from_pem(&pem)
                .map_err(|e| super::Error::Invalid(anyhow!("{}: {e}", path.display())))?;
            fixture.with_certificate(&pem)
        }
        None => fixture,
    };
    let t = *args.tuning;
    let options = Options {
        listen: args.listen,
        fixture,
        seed: args.seed,
        latency: t.latency,
        jitter: t.jitter,
        error_rate: t.error_rate,
        reset_rate: t.reset_rate,
        hang_rate: t.hang_rate,
        ghost_rate: t.ghost_rate,
        faults_on_token: t.fault_token,
        write_limit: t.write_limit,
        throttling: !t.no_throttle,
        token_lifetime: t.token_lifetime,
        deprovision_after: t.deprovision_after,
        recycle_retention: t.recycle_retention,
        auto_operator: t.auto_operator,
        replication_lag: t.replication_lag,
        clock_speed: t.clock_speed,
        partner_accepted_after: t.partner_accepted_after,
        ..Options::default()
    };
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| super::Error::Failed(anyhow!("tokio runtime: {e}")))?;
    rt.block_on(async move {
        let handle = sim::Sim::start(options).await.map_err(|e| match e {
            sim::Error::Fixture(f) => super::Error::Invalid(f.into()),
            other => super::Error::Failed(other.into()),
        })?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "closeout sim listening on {}", handle.base_url())
            .and_then(|_| out.flush())
            .map_err(|e| super::Error::Failed(anyhow!("stdout: {e}")))?;
        drop(out);
        wait_for_signal()
            .await
            .map_err(|e| super::Error::Failed(anyhow!("signals: {e}")))?;
        handle.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
