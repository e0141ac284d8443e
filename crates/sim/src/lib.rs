//! `closeout sim`: a faithful stand-in for login, Microsoft Graph (v1.0 and
//! beta, `$batch`) and Partner Center on one loopback port, with its own
//! inspection and operator API under `/_sim/`, used by the tests, the
//! benchmarks and `closeout demo` (what it models, with Microsoft's pages: docs/fidelity.md).
//!
//! In process: `Sim::start(Options)` binds `127.0.0.1:0` (or `listen`) on the
//! current tokio runtime and returns a [`SimHandle`] with `base_url()`, typed
//! accessors (tenants, partner, effects, a tenant's state) and `shutdown()`.
//!
//! Modelled: client-credentials tokens bound to (tenant, app, audience) and
//! expiring; users with `$select`/`$top`/`@odata.nextLink` paging; the recycle
//! bin with restore and retention (a deleted user's UPN prefixed with its
//! object id); Global Administrator members; every directory role assignment
//! and closeout's own service principal, whose role decides which users it
//! may delete ("Who can perform sensitive actions"); directory sync from
//! on-premises; subscriptions,
//! SKUs and the Partner Center lifecycle (cancel, reactivate, delete,
//! deprovision after `deprovision_after`, cancellation window, 404 for direct
//! customers); security defaults, Conditional Access (≈1 req/s per tenant,
//! 429 without `Retry-After`), per-user MFA (beta); applications and service
//! principals; `organization`; throttling budgets with the documented headers;
//! `$batch` refusing write items without `body` and `Content-Type`; seeded
//! faults; replication lag of reads (`lag`, off by default); an auto-operator
//! that also makes the fixes closeout's preflight gates ask for
//! (`operator/app-role`, `operator/dir-sync/off`). Each behaviour, its
//! Microsoft page and what it leaves out: `docs/fidelity.md`. closeout's app is a multi-tenant app
//! registered in the partner's tenant: in customer tenants it is only a
//! service principal, so it never blocks tenant deletion (see `fixture`).
//!
//! The effects ledger records the status the simulator answered: a ghost's
//! 429/5xx, or 0 when it dropped or hung the connection after applying the
//! change (a dropped or hung request applies it in half the cases, seeded).
//! `Options::throttling = false` (`--no-throttle`) turns the budgets off for
//! benchmarks.
//!
//! Not modelled: delegated (user) tokens and certificate assertions, `$filter`,
//! `$orderby`, `$count`, `$expand`, delta queries, partial replication, Graph
//! writes other than those closeout makes, Partner Center's other resources
//! and its throttling, HTTP/2.
#![forbid(unsafe_code)]

use closeout_auth::{cert, cloud};
use closeout_core::{model, saga};

pub mod batch;
pub mod discovery;
pub mod effects;
pub mod faults;
pub mod fixture;
pub mod generate;
mod graph;
pub mod http;
pub mod inspect;
pub mod lag;
pub mod login;
pub mod operator;
pub mod partner;
mod server;
pub mod state;
pub mod throttle;

pub use effects::Effect;
pub use fixture::Fixture;
pub use generate::GenerateSpec;
pub use inspect::TenantInfo;
pub use state::{Partner, Tenant};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("sim listen address {addr}: {source}")]
    Bind {
        /// The listen address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The fixture is unusable.
    #[error(transparent)]
    Fixture(#[from] fixture::Error),
}

/// Everything `closeout sim` can be told; `Default` is a quiet simulator of
/// the built-in example fixture on `127.0.0.1:0`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to listen on (port 0: any).
    pub listen: SocketAddr,
    /// The tenants to simulate.
    pub fixture: Fixture,
    /// Seed of every random decision (faults, tokens, batch order).
    pub seed: u64,
    /// Fixed delay added to each faulted request.
    pub latency: Duration,
    /// Up to this much extra delay, uniformly.
    pub jitter: Duration,
    /// Fraction of requests answered 500/502/503/504.
    pub error_rate: f64,
    /// Fraction of requests whose connection is dropped.
    pub reset_rate: f64,
    /// Fraction of requests never answered.
    pub hang_rate: f64,
    /// Fraction of changes applied but answered 429/5xx.
    pub ghost_rate: f64,
    /// Whether faults also hit the token endpoint.
    pub faults_on_token: bool,
    /// Override of the (app, tenant) write budget.
    pub write_limit: Option<throttle::Budget>,
    /// Whether throttling budgets apply at all (benchmarks turn them off).
    pub throttling: bool,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Delay between deleting a subscription and its deprovisioning.
    pub deprovision_after: Duration,
    /// How long deleted users can be restored.
    pub recycle_retention: Duration,
    /// Auto-operator delay; `None`: no auto-operator.
    pub auto_operator: Option<Duration>,
    /// How often the sim's clock runs deprovisioning and the auto-operator.
    pub tick: Duration,
    /// How long reads may show the state from before a change (see `lag`);
    /// zero: reads always show the latest state.
    pub replication_lag: Duration,
    /// How many times faster than real time the subscription lifecycle runs
    /// (terms, cancellation windows, Expired and Disabled): a months-long
    /// term ends in seconds. Tokens and `Date` headers keep real time.
    pub clock_speed: f64,
    /// When set, Partner Center answers each subscription `PATCH` that
    /// changes something with 202 Accepted and carries the change out this
    /// long after (real time); `None`: at once, with 200.
    pub partner_accepted_after: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            fixture: Fixture::example(),
            seed: 0,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            error_rate: 0.0,
            reset_rate: 0.0,
            hang_rate: 0.0,
            ghost_rate: 0.0,
            faults_on_token: false,
            write_limit: None,
            throttling: true,
            token_lifetime: Duration::from_secs(3599),
            deprovision_after: Duration::from_secs(72 * 3600),
            recycle_retention: Duration::from_secs(30 * 24 * 3600),
            auto_operator: None,
            tick: Duration::from_millis(10),
            replication_lag: Duration::ZERO,
            clock_speed: 1.0,
            partner_accepted_after: None,
        }
    }
}

/// The settings handlers consult.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Delay before a deleted subscription is deprovisioned.
    pub deprovision_after: Duration,
    /// How long deleted users can be restored; after it a restore is refused.
    pub recycle_retention: Duration,
    /// How long after an admin-center action becomes possible the auto-operator takes
    /// it; `None`: no auto-operator.
    pub auto_operator: Option<Duration>,
    /// Whether the token endpoint is faulted.
    pub faults_on_token: bool,
    /// Whether throttling budgets apply.
    pub throttling: bool,
    /// Replication lag of reads (see `lag`); zero: none.
    pub replication_lag: Duration,
    /// Lifecycle speed-up (see `Options::clock_speed`).
    pub clock_speed: f64,
    /// See `Options::partner_accepted_after`.
    pub partner_accepted_after: Option<Duration>,
}

impl Config {
    /// Real time a lifecycle duration takes at the configured clock speed.
    pub fn lifecycle(&self, d: Duration) -> Duration {
        if self.clock_speed > 0.0 && self.clock_speed.is_finite() {
            d.div_f64(self.clock_speed)
        } else {
            d
        }
    }
}

/// The running simulator's shared state.
pub struct Sim {
    /// The world, behind one lock never held across an `.await`.
    world: Mutex<state::World>,
    /// The fault decisions (locked after `world` when both are needed).
    faults: Mutex<faults::Faults>,
    /// Whether any fault is configured (fast path).
    faulty: bool,
    /// The settings handlers consult.
    cfg: Config,
    /// Seeded rng for token values.
    rng: Mutex<rand_chacha::ChaCha8Rng>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sim {
    /// Builds the world and starts serving on the current tokio runtime.
    pub async fn start(options: Options) -> Result<SimHandle, Error> {
        use rand::SeedableRng;
        let clock = state::Clock::new();
        let created = clock.rfc3339(clock.start);
        let mut tenants = options.fixture.build(&created)?;
        let partner_tenant = options.fixture.partner().tenant_id;
        let speed = if options.clock_speed > 0.0 && options.clock_speed.is_finite() {
            options.clock_speed
        } else {
            1.0
        };
        for t in &mut tenants {
            for s in &mut t.subscriptions {
                partner::start_lifecycle(s, clock.start, speed, &partner_tenant);
            }
        }
        let mut budgets = throttle::Budgets::default();
        if let Some(b) = options.write_limit {
            budgets.app_tenant_writes = b;
        }
        let world = state::World {
            clock,
            order: tenants.iter().map(|t| t.tenant_id.clone()).collect(),
            tenants: tenants
                .into_iter()
                .map(|t| (t.tenant_id.clone(), t))
                .collect(),
            partner: options.fixture.partner(),
            tokens: Default::default(),
            ledger: Default::default(),
            throttle: throttle::Throttle::new(budgets),
            possible_since: Default::default(),
            partner_requests: Default::default(),
            partner_log: Default::default(),
            token_log: Default::default(),
        };
        let rates = faults::Rates {
            latency: options.latency,
            jitter: options.jitter,
            error: options.error_rate,
            reset: options.reset_rate,
            hang: options.hang_rate,
            ghost: options.ghost_rate,
        };
        let sim = Arc::new(Sim {
            world: Mutex::new(world),
            faulty: rates.any(),
            faults: Mutex::new(faults::Faults::new(rates, options.seed)),
            cfg: Config {
                token_lifetime: options.token_lifetime,
                deprovision_after: options.deprovision_after,
                clock_speed: options.clock_speed,
                recycle_retention: options.recycle_retention,
                auto_operator: options.auto_operator,
                faults_on_token: options.faults_on_token,
                throttling: options.throttling,
                replication_lag: options.replication_lag,
                partner_accepted_after: options.partner_accepted_after,
            },
            rng: Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(
                options.seed ^ 0x70ce,
            )),
        });
        server::serve(sim, options.listen, options.tick).await
    }
}

/// A running simulator. Dropping it stops the server too.
pub struct SimHandle {
    /// The address the server listens on (the port chosen when 0 was asked for).
    addr: SocketAddr,
    /// The shared state, for the typed accessors.
    sim: Arc<Sim>,
    /// Tells the server to stop.
    stop: tokio::sync::watch::Sender<bool>,
    /// The accept loop's task; `None` once it has been taken to stop it.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the base of login, Graph, Partner Center and `/_sim`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The tenants, as `GET /_sim/tenants` lists them.
    pub fn tenants(&self) -> Vec<TenantInfo> {
        inspect::tenants(&lock(&self.sim.world))
    }

    /// The partner's credentials for Partner Center.
    pub fn partner(&self) -> Partner {
        lock(&self.sim.world).partner.clone()
    }

    /// The effects after sequence number `since` (0: all).
    pub fn effects(&self, since: u64) -> Vec<Effect> {
        let mut w = lock(&self.sim.world);
        operator::tick(&mut w, tokio::time::Instant::now(), &self.sim.cfg);
        w.ledger.since(since).to_vec()
    }

    /// A tenant's whole state (also after deletion), by id or domain.
    pub fn tenant(&self, id: &str) -> Option<Tenant> {
        let w = lock(&self.sim.world);
        w.tenant_key(id).and_then(|k| w.tenants.get(&k).cloned())
    }

    /// Runs a closure on the world (for tests that arrange unusual states).
    pub fn with_world<R>(&self, f: impl FnOnce(&mut state::World) -> R) -> R {
        f(&mut lock(&self.sim.world))
    }

    /// Stops serving and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
