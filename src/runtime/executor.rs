//! The executor: runs every saga of the daemon. For each saga one task loops
//! `decide → record → perform → record`: it appends the events `decide` asks
//! for durably (and only then applies them), performs the external calls
//! through the Graph client, appends their outcomes, and sleeps until the next
//! recorded timer or an operator command. Replaying is folding: on start the
//! executor rebuilds each active saga from its latest snapshot plus the events
//! after it, performs nothing while doing so, and lets `decide` resolve
//! intents left without outcome by reading first.

use super::control::{Engine, EngineError, Operator, OperatorCommand, SagaSummary, StatusRow};
use super::notify::Heartbeat;
use super::perform::{bound_retry_after, left_in_doubt, perform_as};
use super::tenant::{self, Api};
use super::Lifecycle;
use crate::config::Config;
use crate::graph::{self, PartnerClient};
use crate::model::{SagaId, SubscriptionMode, TenantSpec, Timestamp};
use crate::saga::{self, Batch, Call, Command, Event, SagaState, State};
use crate::store::{self, Snapshot, Store};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

mod supervise;

use supervise::{fault, supervise};

/// A snapshot is written with the append that brings a saga this many events
/// past its previous one (and always with a terminal event), so recovery
/// replays at most this many events per saga; for a large saga at most a
/// quarter of its objects (see [`snapshot_every`]).
const SNAPSHOT_EVERY: u64 = 32;

/// Events between snapshots for a saga in this state: [`SNAPSHOT_EVERY`],
/// or a quarter of the objects it holds (users of the inventory, entries of
/// its tables) when that is more. A snapshot costs time in proportion to the
/// state, so this keeps the snapshots of a 100,000-user tenant from costing
/// more than its events, while recovery still replays no more events than
/// the snapshot holds objects: its cost follows the state, not the history.
fn snapshot_every(state: &State) -> u64 {
    let users = state.inventory.as_ref().map_or(0, |i| i.users.len());
    let entries: usize = state.tables.values().map(|t| t.len()).sum();
    SNAPSHOT_EVERY.max(((users + entries) / 4) as u64)
}

/// Staged events are appended at the latest once this many are waiting, so
/// a long run of decisions or outcomes still reaches the log in pieces.
const STAGE_LIMIT: usize = 512;

/// The daemon's engine: owns the store, the Graph client and the saga tasks.
pub struct Executor {
    /// Shared with every saga task.
    inner: Arc<Inner>,
    /// The saga tasks; joined on shutdown.
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

/// What the saga tasks share.
struct Inner {
    /// The event log.
    store: Store,
    /// Where it lives (for audits served over the control socket).
    data_dir: std::path::PathBuf,
    /// HTTP to login, Graph and Partner Center (pooled, throttle-controlled).
    graph: graph::Client,
    /// Partner Center, when the config names the partner's app.
    partner: Option<PartnerClient>,
    /// Settings that a reload may change (policy of new sagas, limits).
    settings: RwLock<Settings>,
    /// Every known saga: status for `status`, a channel for commands.
    sagas: Mutex<HashMap<String, Slot>>,
    /// At most this many sagas perform calls at once.
    working: Arc<Semaphore>,
    /// Set once shutdown begins: tasks stop after their in-flight calls.
    stopping: watch::Sender<bool>,
    /// Beaten by the pulse task after each successful store flush: the
    /// executor is healthy while it is young.
    pulse: Heartbeat,
    /// Where notifications go (`[notify]`; none configured: none owed).
    webhooks: Arc<crate::notify::Webhooks>,
    /// Which sagas make up each batch, to record once that it finished.
    batches: crate::notify::Batches,
    /// Tenant keys (see [`tenant_keys`]) reserved by submissions whose sagas
    /// are not registered yet. Locked only while `sagas` is held, so that a
    /// check and its reservation are one step.
    reserving: Mutex<HashSet<String>>,
}

/// The reloadable part of the config, as the executor uses it.
#[derive(Clone)]
struct Settings {
    /// The policy recorded in the first event of each new saga.
    policy: saga::SagaPolicy,
    /// `[retry] max_retry_after`: a longer `Retry-After` pauses the saga.
    max_retry_after: Duration,
    /// `[limits] stop_grace`: how long a stopping saga awaits its calls on
    /// the wire.
    stop_grace: Duration,
    /// What step 4 of each new saga turns off (recorded next to its policy).
    mfa_scope: saga::closure::MfaScope,
    /// When step 1 of each new saga starts before a running-out term ends.
    users_before_term_end: Duration,
    /// `[saga] backup`: whether each new saga waits for a backup
    /// attestation before step 1 (recorded next to its policy).
    backup: saga::stake::BackupMode,
}

impl Settings {
    fn of(config: &Config) -> Settings {
        Settings {
            policy: policy_of(config),
            max_retry_after: config.retry.max_retry_after,
            stop_grace: config.limits.stop_grace,
            mfa_scope: config.saga.mfa_scope,
            users_before_term_end: config.saga.users_before_term_end,
            backup: config.saga.backup,
        }
    }
}

/// One saga as the executor tracks it.
struct Slot {
    /// The tenant it closes.
    tenant_id: String,
    /// When it was submitted (status lists oldest first).
    started: Timestamp,
    /// The status as of its latest record.
    status: saga::Status,
    /// Commands to its task; `None` once the saga is terminal, or while its
    /// task is dead and unrecorded (`stopped`).
    commands: Option<mpsc::Sender<Msg>>,
    /// For a saga recorded before tenants were resolved: its tenant's GUID
    /// as the daemon resolved it on recovery (until the saga records its own).
    recovered_guid: Option<String>,
    /// Why its task stopped without the saga ending, until an operator
    /// resumes or aborts it (the daemon is unhealthy meanwhile).
    fault: Option<String>,
    /// Its task is dead and the log could not record it: `status` shows it
    /// `stopped` with the fault until the next start runs it again.
    stopped: bool,
}

/// A message to a saga task.
struct Msg {
    /// The operator command, with who and why.
    command: Command,
    /// The answer for the control socket.
    reply: oneshot::Sender<Result<(), EngineError>>,
}

/// Why the executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event log could not be opened or read.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The HTTP client or the partner's credentials could not be set up.
    #[error(transparent)]
    Graph(#[from] graph::Error),
    /// The webhooks' HTTP client could not be set up.
    #[error(transparent)]
    Notify(#[from] crate::notify::Error),
    /// A record could not be decoded (unknown version, damage).
    #[error("saga {saga}: {message}")]
    Record {
        /// The saga whose log is unreadable.
        saga: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The wall clock, in the saga core's terms. Only the runtime reads it.
pub fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// The saga policy the config asks for.
pub fn policy_of(config: &Config) -> saga::SagaPolicy {
    saga::SagaPolicy {
        failure: config.saga.on_failure,
        retry: config.retry.policy(),
        deprovision_poll: config.saga.deprovision_poll,
        gate_poll: config.saga.gate_recheck,
        tenant_gone_poll: config.saga.tenant_gone_poll,
        replication_wait: config.saga.replication_wait,
        ..saga::SagaPolicy::default()
    }
}

/// The Graph client options the config asks for.
pub fn client_options(config: &Config) -> graph::ClientOptions {
    graph::ClientOptions {
        connect_timeout: config.limits.connect_timeout,
        request_timeout: config.limits.request_timeout,
        max_in_flight_per_tenant: config.limits.max_in_flight_per_tenant.get(),
        max_in_flight_total: config.limits.max_in_flight_total.get(),
        max_in_flight_partner_center: config.limits.max_in_flight_partner_center.get(),
        max_response_bytes: config.limits.max_response_bytes.get(),
        max_pages: config.limits.max_pages.get(),
        max_retry_after: config.retry.max_retry_after,
        ..graph::ClientOptions::default()
    }
}

impl Executor {
    /// Opens the store, rebuilds every saga from its snapshot and the events
    /// after it, and starts a task for each active one.
    pub async fn start(config: &Config) -> Result<Arc<Executor>, Error> {
        let dir = config.data_dir.clone();
        let cache = config.limits.store_cache_mb.get().saturating_mul(1 << 20);
        let store = tokio::task::spawn_blocking(move || Store::open_with_cache(&dir, Some(cache)))
            .await
            .map_err(|e| store::Error::WriterStopped(format!("open task failed: {e}")))??;
        let endpoints = graph::Endpoints {
            graph: config.endpoints.graph.clone(),
            login: config.endpoints.login.clone(),
            partner_center: config.endpoints.partner_center.clone(),
            cloud: config.cloud,
        };
        let graph = graph::Client::new(endpoints, client_options(config))?;
        let partner = match &config.partner_center {
            Some(pc) => {
                let secret = graph::read_credential_async(&pc.secret).await?;
                Some(graph.partner(&pc.tenant_id, &pc.client_id, secret))
            }
            None => None,
        };
        let (stopping, _) = watch::channel(false);
        let webhooks = crate::notify::Webhooks::new(&config.notify)?;
        let inner = Arc::new(Inner {
            store,
            data_dir: config.data_dir.clone(),
            graph,
            partner,
            settings: RwLock::new(Settings::of(config)),
            sagas: Mutex::new(HashMap::new()),
            working: Arc::new(Semaphore::new(config.limits.max_concurrent_sagas.get())),
            stopping,
            pulse: Heartbeat::default(),
            webhooks,
            batches: crate::notify::Batches::default(),
            reserving: Mutex::new(HashSet::new()),
        });
        let executor = Arc::new(Executor {
            inner,
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
        });
        executor.recover().await?;
        executor.inner.pulse.beat();
        tokio::spawn(pulse(Arc::clone(&executor.inner)));
        Ok(executor)
    }

    /// Rebuilds the sagas from the log and starts the active ones.
    async fn recover(&self) -> Result<(), Error> {
        let inner = Arc::clone(&self.inner);
        let recovered = tokio::task::spawn_blocking(move || load_all(&inner.store))
            .await
            .map_err(|e| store::Error::WriterStopped(format!("recovery task failed: {e}")))??;
        let active = recovered.iter().filter(|r| !r.state.is_terminal()).count();
        let in_doubt: usize = recovered.iter().map(|r| r.state.in_doubt().len()).sum();
        tracing::info!(
            sagas = recovered.len(),
            active,
            in_doubt,
            "recovered the event log"
        );
        for r in &recovered {
            if let Some((batch, size)) = &r.state.batch {
                let ending = r.state.ending.clone();
                let finished = r.state.batch_finished;
                (self.inner.batches).join(batch, &r.saga_id.0, *size, ending, finished);
            }
        }
        self.inner.batches.recovered();
        let mut unresolved = Vec::new();
        for r in recovered {
            if let (false, None, Some(h)) =
                (r.state.is_terminal(), &r.state.tenant_guid, &r.state.header)
            {
                unresolved.push((r.saga_id.0.clone(), h.spec.tenant_id.clone()));
            }
            self.adopt(r.saga_id, r.state, r.next_seq).await;
        }
        if !unresolved.is_empty() {
            tokio::spawn(resolve_recovered(Arc::clone(&self.inner), unresolved));
        }
        Ok(())
    }

    /// Registers a saga and, unless it is terminal, starts its task (under
    /// [`supervise`]).
    async fn adopt(&self, saga_id: SagaId, state: State, next_seq: u64) {
        let Some(header) = state.header.clone() else {
            return;
        };
        let terminal = state.is_terminal();
        crate::metrics::saga_gate(&saga_id.0, state.gate.as_ref().map(|g| g.0));
        let (tx, rx) = mpsc::channel(16);
        self.inner
            .sagas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                saga_id.0.clone(),
                Slot {
                    tenant_id: header.spec.tenant_id.clone(),
                    started: header.started_at,
                    status: state.status(),
                    commands: (!terminal).then_some(tx),
                    recovered_guid: None,
                    fault: state.task_stopped.clone(),
                    stopped: false,
                },
            );
        if state.task_stopped.is_some() {
            self.inner.count_dead();
        }
        let batch_end =
            (state.batch.as_ref()).is_some_and(|(b, _)| self.inner.batches.unrecorded_end(b));
        if terminal && !batch_end && !self.inner.webhooks.owed(&state) {
            return;
        }
        let span =
            tracing::info_span!("saga", saga_id = %saga_id, tenant_id = %header.spec.tenant_id);
        let runner = Runner::new(Arc::clone(&self.inner), saga_id, state, next_seq);
        self.tasks
            .lock()
            .await
            .spawn(supervise(runner, rx).instrument(span));
    }

    /// Sagas not yet terminal (for the summary line).
    fn counts(&self) -> (usize, usize, usize) {
        let sagas = self.inner.sagas.lock().unwrap_or_else(|p| p.into_inner());
        let active = (sagas.values())
            .filter(|s| s.commands.is_some() || s.stopped)
            .count();
        let waiting = sagas
            .values()
            .filter(|s| matches!(s.status.state, SagaState::Waiting))
            .count();
        (sagas.len(), active, waiting)
    }
}

/// Resolves the tenants of recovered sagas that recorded no GUID (written
/// before tenants were resolved), credential-free, so that they hold their
/// tenant by GUID even while paused; until then (or if the login service
/// cannot say) they hold it by their spelling, lowercased. In the background:
/// recovery does not wait on the network.
async fn resolve_recovered(inner: Arc<Inner>, sagas: Vec<(String, String)>) {
    let graph = inner.graph.clone();
    let found: Vec<_> = futures::stream::iter(sagas)
        .map(move |(saga, tenant)| {
            let graph = graph.clone();
            async move { (saga, tenant.clone(), graph.resolve_tenant(&tenant).await) }
        })
        .buffer_unordered(RESOLVE_AT_ONCE)
        .collect()
        .await;
    let mut slots = inner.sagas.lock().unwrap_or_else(|p| p.into_inner());
    for (saga, tenant, r) in found {
        match r {
            Ok(guid) => {
                if let Some(slot) = slots.get_mut(&saga) {
                    slot.recovered_guid = Some(guid);
                }
            }
            Err(e) => {
                tracing::warn!(saga_id = %saga, tenant_id = %tenant, error = %e.message, "cannot resolve a recovered saga's tenant: it holds the tenant by its spelling until it reads its organization")
            }
        }
    }
}

/// How often the pulse task checks that the event log still takes writes.
const PULSE_EVERY: Duration = Duration::from_secs(1);

/// The executor counts as unhealthy when its pulse is older than this.
const PULSE_STALE: Duration = Duration::from_secs(10);

/// Proves every [`PULSE_EVERY`] that the store's writer still flushes, and
/// beats the heartbeat when it does; ends at shutdown.
async fn pulse(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    loop {
        match tokio::time::timeout(PULSE_STALE, inner.store.flush()).await {
            Ok(Ok(())) => inner.pulse.beat(),
            Ok(Err(e)) => tracing::error!(error = %e, "the event log no longer takes writes"),
            Err(_) => tracing::error!("the event log did not flush within {PULSE_STALE:?}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PULSE_EVERY) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// A saga as read back from the log.
struct Recovered {
    /// Its id.
    saga_id: SagaId,
    /// Its state after its last record.
    state: State,
    /// The saga seq its next event gets.
    next_seq: u64,
}

/// Reads every saga's latest snapshot and the events after it (blocking).
fn load_all(store: &Store) -> Result<Vec<Recovered>, Error> {
    let mut out = Vec::new();
    for meta in store.list_sagas()? {
        let bad = |message: String| Error::Record {
            saga: meta.saga_id.0.clone(),
            message,
        };
        let (mut state, from) = match (&meta.snapshot, meta.snapshot_seq) {
            (Some(snap), Some(seq)) => match State::decode(&snap.state) {
                Ok(state) => (state, seq + 1),
                // An older snapshot version: replay the saga's events instead.
                Err(crate::codec::Error::UnknownVersion { .. }) => (State::default(), 0),
                Err(e) => return Err(bad(format!("snapshot at seq {seq}: {e}"))),
            },
            _ => (State::default(), 0),
        };
        // Nothing follows the snapshot: no event to read (most sagas).
        if from < meta.next_seq {
            for record in store.saga_records(&meta.saga_id, from) {
                let record = record?;
                let event = Event::decode(&record.payload).map_err(|e| {
                    bad(format!(
                        "record {} (global {}): {e}",
                        record.saga_seq, record.global_seq
                    ))
                })?;
                state = saga::apply_at(state, &event, record.at);
            }
        }
        out.push(Recovered {
            saga_id: meta.saga_id,
            state,
            next_seq: meta.next_seq,
        });
    }
    Ok(out)
}

/// One saga's task.
struct Runner {
    /// Shared executor state.
    inner: Arc<Inner>,
    /// The saga.
    saga_id: SagaId,
    /// Its state after its last record, staged ones included.
    state: State,
    /// The saga seq the first staged event gets (the next durable one).
    next_seq: u64,
    /// Events appended since the last snapshot.
    since_snapshot: u64,
    /// Its notifications on their way to the webhooks.
    outbox: crate::notify::Outbox,
    /// Encoded events already applied to `state` but not yet appended: the
    /// decisions and read or call outcomes since the last append. They are
    /// appended together (one group commit) before any call is made, before
    /// the saga sleeps, answers a command or stops, so that one append
    /// carries a whole decided batch instead of one append per decision.
    staged: Vec<Vec<u8>>,
    /// Whether a terminal event is durable (the saga's commands end then).
    durable_terminal: bool,
}

/// Why a saga task stopped early.
#[derive(Debug)]
enum Stop {
    /// Shutdown began.
    Shutdown,
    /// The log refused an append: nothing more may be done.
    Store(store::Error),
    /// An event or snapshot could not be encoded.
    Codec(String),
}

impl Runner {
    fn new(inner: Arc<Inner>, saga_id: SagaId, state: State, next_seq: u64) -> Runner {
        let durable_terminal = state.is_terminal();
        Runner {
            outbox: crate::notify::Outbox::new(Arc::clone(&inner.webhooks)).with_head({
                let store = inner.store.clone();
                crate::notify::HeadSource(Arc::new(move || {
                    let head = store.head().ok()?;
                    Some(crate::audit::verify::Anchor::of(&head).hash_hex())
                }))
            }),
            inner,
            saga_id,
            state,
            next_seq,
            since_snapshot: 0,
            staged: Vec::new(),
            durable_terminal,
        }
    }

    /// Drives the saga until it is terminal or the daemon stops; an error
    /// other than [`Stop::Shutdown`] (or a panic) is the supervisor's.
    async fn run(&mut self, commands: &mut mpsc::Receiver<Msg>) -> Result<(), Stop> {
        let Some(header) = self.state.header.clone() else {
            return Ok(());
        };
        let mut stopping = self.inner.stopping.subscribe();
        // What the log says is owed goes out now, not with the next record:
        // a saga adopted paused may record nothing until the operator acts.
        self.outbox.start_owed(&self.state);
        // A saga that had ended before it was adopted only settles its notifications.
        let mut result = if self.state.is_terminal() {
            Ok(())
        } else {
            let mut api = tenant::connect(&self.inner.graph, &header.spec).await;
            self.drive(&mut api, commands, &mut stopping).await
        };
        if result.is_ok() {
            if let Some(slot) = self.slot_mut().as_mut() {
                slot.commands = None;
            }
            result = self.after_end(&mut stopping).await;
        }
        match &result {
            Ok(()) => tracing::info!(state = ?self.state.status().state, "saga ended"),
            Err(Stop::Shutdown) => tracing::info!("saga task stopped for shutdown"),
            Err(_) => {}
        }
        if self.durable_terminal {
            if let Some(slot) = self.slot_mut().as_mut() {
                slot.commands = None;
            }
        }
        result
    }

    async fn drive(
        &mut self,
        api: &mut Api,
        commands: &mut mpsc::Receiver<Msg>,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        // This saga's turn among the sagas performing calls; released
        // whenever it sleeps.
        let mut turn: Option<tokio::sync::OwnedSemaphorePermit> = None;
        loop {
            if *stopping.borrow() {
                // Outcomes already received are recorded: a graceful stop
                // leaves nothing in doubt that it knows the answer to.
                self.flush().await?;
                return Err(Stop::Shutdown);
            }
            while let Ok(msg) = commands.try_recv() {
                self.command_then_reconnect(msg, api).await?;
            }
            while let Some(sent) = self.outbox.try_next() {
                self.record(vec![sent]).await?;
            }
            if self.state.is_terminal() {
                self.flush().await?;
                return Ok(());
            }
            let batch = Batch::from_actions(saga::decide(&self.state, now()));
            if !batch.perform.is_empty() && turn.is_none() {
                // Wait for a turn before recording anything: the decision
                // is made again once it comes, and commands, notifications
                // and shutdown are served meanwhile.
                tokio::select! {
                    t = Arc::clone(&self.inner.working).acquire_owned() => turn = t.ok(),
                    msg = commands.recv() => match msg {
                        Some(msg) => self.command_then_reconnect(msg, api).await?,
                        None => return Err(Stop::Shutdown),
                    },
                    sent = self.outbox.next() => self.record(vec![sent]).await?,
                    _ = stopping.changed() => {}
                }
                continue;
            }
            if !batch.record.is_empty() {
                self.stage(&batch.record)?;
            }
            if !batch.perform.is_empty() {
                // Always false in release builds (see `fault`).
                if fault::injected("panic", &self.inner, &self.saga_id) {
                    panic!("injected fault: saga task panics before its calls");
                }
                // Intents (and whatever was staged before) are durable
                // before any call is made.
                self.flush().await?;
                if self
                    .perform_all(&*api, &batch.perform, commands, stopping)
                    .await?
                {
                    // Resumed while its calls ran: the operator's fix may
                    // have been a new secret.
                    if let Some(header) = &self.state.header {
                        *api = tenant::connect(&self.inner.graph, &header.spec).await;
                    }
                }
                continue;
            }
            if !batch.record.is_empty() {
                // Decided without a call: decide again on the staged state;
                // the events reach the log with the next call or sleep.
                if self.staged.len() >= STAGE_LIMIT {
                    self.flush().await?;
                }
                continue;
            }
            self.flush().await?;
            turn = None;
            if batch.wake_at.is_none() && self.state.paused.is_none() {
                tracing::warn!(status = ?self.state.status(), "the saga decided nothing and set no timer: waiting for an operator command");
            }
            let sleep_for = batch.wake_at.map(|at| at.since(now()));
            if sleep_for == Some(Duration::ZERO) {
                continue;
            }
            let _timer = crate::metrics::timer_pending(sleep_for);
            tokio::select! {
                msg = commands.recv() => match msg {
                    Some(msg) => self.command_then_reconnect(msg, api).await?,
                    None => return Err(Stop::Shutdown),
                },
                _ = sleep_opt(sleep_for) => {}
                sent = self.outbox.next() => self.record(vec![sent]).await?,
                _ = stopping.changed() => return Err(Stop::Shutdown),
            }
        }
    }

    /// Performs independent calls concurrently and stages their outcomes
    /// (appended with the next decision's events; every [`STAGE_LIMIT`]
    /// outcomes while many calls run). Operator commands are served while
    /// the calls run: a pause or abort stops what was not yet sent (those
    /// calls come back "not sent", plainly transient) and lets what is on
    /// the wire finish. On shutdown the same halt happens, the calls on the
    /// wire get `[limits] stop_grace` to answer, and those that did not are
    /// recorded in doubt (read back at the next start). Returns whether a
    /// resume was accepted meanwhile.
    async fn perform_all(
        &mut self,
        api: &Api,
        calls: &[Call],
        commands: &mut mpsc::Receiver<Msg>,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<bool, Stop> {
        let (max_retry_after, grace) = {
            let s = self
                .inner
                .settings
                .read()
                .unwrap_or_else(|p| p.into_inner());
            (s.max_retry_after, s.stop_grace)
        };
        // `tenant_id` and `partner` are borrowed by the calls while outcomes
        // are recorded through `&mut self`. Partner Center names a customer
        // by its tenant GUID, whatever spelling the batch used.
        let tenant_id = self
            .state
            .tenant_guid
            .clone()
            .or_else(|| self.state.header.as_ref().map(|h| h.spec.tenant_id.clone()))
            .unwrap_or_default();
        let inner = Arc::clone(&self.inner);
        let partner = inner.partner.as_ref();
        // Partner Center's `MS-RequestId` of each change, fixed by the state
        // before the calls (see `State::request_id`).
        let mut request_ids = std::collections::HashMap::new();
        for call in calls {
            if let Call::Change {
                change:
                    change @ (saga::Change::SetSubscription { .. } | saga::Change::SetAutoRenew { .. }),
                targets,
                ..
            } = call
            {
                for t in targets {
                    request_ids.insert(
                        (saga::table_of(*change), t.clone()),
                        self.state.request_id(*change, t),
                    );
                }
            }
        }
        let request_id = |change: saga::Change, target: &str| {
            request_ids
                .get(&(saga::table_of(change), target.to_string()))
                .cloned()
        };
        let (halt, halted) = watch::channel(false);
        let mut running: FuturesUnordered<_> = (calls.iter().enumerate())
            .map(|(n, call)| {
                let call_done = perform_as(call, api, partner, &tenant_id, now(), &request_id);
                let halted = halted.clone();
                async move { (n, graph::throttle::halting(halted, call_done).await) }
            })
            .collect();
        let mut open: Vec<bool> = vec![true; calls.len()];
        let mut result = Ok(());
        let mut outcomes = Vec::new();
        let mut resumed = false;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if result.is_err() && deadline.is_none() {
                // The log refused: nothing more is sent, and the supervisor
                // hears of it within the grace.
                halt.send_replace(true);
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            tokio::select! {
                next = running.next() => {
                    let Some((n, mut events)) = next else { break };
                    open[n] = false;
                    if result.is_err() {
                        continue;
                    }
                    bound_retry_after(&mut events, max_retry_after);
                    outcomes.extend(events);
                    if outcomes.len() >= STAGE_LIMIT {
                        result = self.record(std::mem::take(&mut outcomes)).await;
                    }
                }
                msg = commands.recv(), if deadline.is_none() && result.is_ok() => match msg {
                    Some(msg) => {
                        let (was_paused, was_compensating) =
                            (self.state.paused.is_some(), self.state.compensating.is_some());
                        // Outcomes so far go to the log before the command's events.
                        if let Err(e) = self.stage(&std::mem::take(&mut outcomes)) {
                            result = Err(e);
                            continue;
                        }
                        result = self.command(msg).await;
                        if self.state.paused.is_some()
                            || self.state.compensating.is_some() != was_compensating
                        {
                            halt.send_replace(true);
                        }
                        resumed |= was_paused && self.state.paused.is_none();
                    }
                    None => {
                        halt.send_replace(true);
                        deadline = Some(tokio::time::Instant::now() + grace);
                    }
                },
                _ = stopping.changed(), if deadline.is_none() => {
                    halt.send_replace(true);
                    deadline = Some(tokio::time::Instant::now() + grace);
                }
                _ = sleep_until_opt(deadline) => {
                    let left = open.iter().filter(|o| **o).count();
                    tracing::warn!(calls = left, "stop grace over: calls still on the wire are left in doubt");
                    outcomes.extend(left_in_doubt(calls, &open));
                    break;
                }
            }
        }
        drop(running);
        result?;
        self.stage(&outcomes)?;
        Ok(resumed)
    }

    /// [`Runner::command`]; when it resumes a paused saga, the tenant's
    /// secret is read again: the operator's fix may have been a new secret.
    async fn command_then_reconnect(&mut self, msg: Msg, api: &mut Api) -> Result<(), Stop> {
        let was_paused = self.state.paused.is_some();
        self.command(msg).await?;
        if was_paused && self.state.paused.is_none() {
            if let Some(header) = &self.state.header {
                *api = tenant::connect(&self.inner.graph, &header.spec).await;
            }
        }
        Ok(())
    }

    /// Applies an operator command: records its events (or the refusal's),
    /// and answers the control socket.
    async fn command(&mut self, msg: Msg) -> Result<(), Stop> {
        match saga::handle(&self.state, msg.command, now()) {
            Ok(events) => {
                let r = self.record(events).await;
                let _ = msg.reply.send(match &r {
                    Ok(()) => Ok(()),
                    Err(e) => Err(EngineError::Unavailable(format!("{e:?}"))),
                });
                r
            }
            Err(refusal) => {
                let reason = refusal.reason.clone();
                let r = if refusal.record.is_empty() {
                    Ok(())
                } else {
                    self.record(refusal.record).await
                };
                let _ = msg.reply.send(Err(EngineError::Refused(reason)));
                r
            }
        }
    }

    /// Appends events durably, after any staged before them.
    async fn record(&mut self, events: Vec<Event>) -> Result<(), Stop> {
        self.stage(&events)?;
        self.flush().await
    }

    /// Applies events to the state and keeps their bytes for the next
    /// [`Runner::flush`]. Nothing is acknowledged, and no call made on their
    /// account, before that flush.
    fn stage(&mut self, events: &[Event]) -> Result<(), Stop> {
        let at = now();
        self.staged.reserve(events.len());
        for event in events {
            let bytes = event.encode().map_err(|e| Stop::Codec(e.to_string()))?;
            self.staged.push(bytes);
            self.state = saga::apply_at(std::mem::take(&mut self.state), event, at);
            tracing::debug!(kind = event.kind(), "staged");
        }
        crate::metrics::recorded(
            events,
            &self.saga_id.0,
            self.state.gate.as_ref().map(|g| g.0),
        );
        Ok(())
    }

    /// Appends the staged events durably (one group commit). A snapshot
    /// rides along every [`snapshot_every`] events (at least
    /// [`SNAPSHOT_EVERY`]) and with the terminal event.
    async fn flush(&mut self) -> Result<(), Stop> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let count = self.staged.len() as u64;
        let terminal = self.state.is_terminal();
        let snapshot = if terminal || self.since_snapshot + count >= snapshot_every(&self.state) {
            let state = self
                .state
                .encode()
                .map_err(|e| Stop::Codec(e.to_string()))?;
            Some(Snapshot {
                state,
                terminal,
                label: self
                    .state
                    .header
                    .as_ref()
                    .map(|h| h.spec.tenant_id.clone())
                    .unwrap_or_default(),
            })
        } else {
            None
        };
        let took_snapshot = snapshot.is_some();
        #[cfg(debug_assertions)]
        if fault::injected("refuse", &self.inner, &self.saga_id) {
            return Err(Stop::Store(store::Error::WriterStopped(
                "injected fault: append refused".into(),
            )));
        }
        let payloads = std::mem::take(&mut self.staged);
        crate::metrics::timed_append(self.inner.store.append(
            &self.saga_id,
            self.next_seq,
            payloads,
            snapshot,
        ))
        .await
        .map_err(Stop::Store)?;
        self.next_seq += count;
        self.since_snapshot = if took_snapshot {
            0
        } else {
            self.since_snapshot + count
        };
        self.durable_terminal = terminal;
        let status = self.state.status();
        let fault = self.state.task_stopped.clone();
        let fault_changed = match self.slot_mut().as_mut() {
            Some(slot) => {
                slot.status = status;
                let changed = slot.fault != fault;
                slot.fault = fault;
                changed
            }
            None => false,
        };
        if fault_changed {
            self.inner.count_dead();
        }
        self.outbox.start_owed(&self.state);
        Ok(())
    }

    /// Once the saga has ended: records that its batch finished if its end
    /// was the batch's last, then stays the saga's one writer until every
    /// notification it owes has an outcome recorded (or shutdown).
    async fn after_end(&mut self, stopping: &mut watch::Receiver<bool>) -> Result<(), Stop> {
        if let (Some((batch, _)), Some(ending)) = (&self.state.batch, &self.state.ending) {
            let batch_id = batch.clone();
            let claim = (self.inner.batches).end(&batch_id, &self.saga_id.0, ending.clone());
            if let (Some(t), false) = (claim, self.state.batch_finished) {
                let (completed, rolled_back, failed) = (t.completed, t.rolled_back, t.failed);
                let finished = Event::BatchFinished {
                    batch_id,
                    completed,
                    rolled_back,
                    failed,
                };
                self.record(vec![finished]).await?;
            }
        }
        self.outbox.start_owed(&self.state);
        while !self.outbox.is_idle() && !*stopping.borrow() {
            tokio::select! {
                sent = self.outbox.next() => self.record(vec![sent]).await?,
                _ = stopping.changed() => return Err(Stop::Shutdown),
            }
        }
        Ok(())
    }

    fn slot_mut(&self) -> SlotGuard<'_> {
        SlotGuard {
            map: self.inner.sagas.lock().unwrap_or_else(|p| p.into_inner()),
            key: &self.saga_id.0,
        }
    }
}

/// A locked view of one saga's slot.
struct SlotGuard<'a> {
    /// The locked map.
    map: std::sync::MutexGuard<'a, HashMap<String, Slot>>,
    /// The saga's key.
    key: &'a str,
}

impl SlotGuard<'_> {
    fn as_mut(&mut self) -> Option<&mut Slot> {
        self.map.get_mut(self.key)
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn row(saga_id: &str, slot: &Slot) -> StatusRow {
    let (state, last_error) = if slot.stopped {
        (SagaState::Stopped, slot.fault.clone())
    } else {
        (slot.status.state, slot.status.last_error.clone())
    };
    StatusRow {
        saga_id: saga_id.to_string(),
        tenant_id: slot.tenant_id.clone(),
        state,
        step: slot.status.step,
        progress: slot.status.progress,
        last_error,
        updated_at: slot.status.updated_at,
        waiting_for: slot.status.waiting_for.clone(),
        action_required: slot.status.action_required.clone(),
        tenant_guid: (slot.status.tenant_guid.clone()).or_else(|| slot.recovered_guid.clone()),
    }
}

impl Engine for Executor {
    fn event_log(&self) -> Option<(Store, std::path::PathBuf)> {
        Some((self.inner.store.clone(), self.inner.data_dir.clone()))
    }

    fn healthy(&self) -> bool {
        self.inner.pulse.age() < PULSE_STALE
    }

    fn dead_tasks(&self) -> Vec<(String, String)> {
        let sagas = self.inner.sagas.lock().unwrap_or_else(|p| p.into_inner());
        let mut dead: Vec<(String, String)> = (sagas.iter())
            .filter_map(|(id, s)| s.fault.clone().map(|f| (id.clone(), f)))
            .collect();
        dead.sort();
        dead
    }

    async fn submit(
        &self,
        tenants: Vec<TenantSpec>,
        who: Operator,
    ) -> Result<Vec<SagaSummary>, EngineError> {
        self.submit_finishing(tenants, Vec::new(), who).await
    }

    async fn doctor(
        &self,
        tenants: Vec<TenantSpec>,
        domains: Vec<Option<String>>,
    ) -> Result<Vec<super::doctor::Finding>, EngineError> {
        let mut out = Vec::with_capacity(tenants.len() + 1);
        for (i, spec) in tenants.iter().enumerate() {
            let domain = domains.get(i).cloned().flatten();
            out.push(super::doctor::tenant(&self.inner.graph, spec, domain.as_deref()).await);
        }
        if let Some(p) = &self.inner.partner {
            out.push(super::doctor::partner(p, p.token_source_thumbprint()).await);
        }
        Ok(out)
    }

    async fn submit_checked(
        &self,
        tenants: Vec<TenantSpec>,
        finish_with: Vec<Option<String>>,
        domains: Vec<Option<String>>,
        who: Operator,
    ) -> Result<Vec<SagaSummary>, EngineError> {
        if domains.iter().any(Option::is_some) {
            let guids = self.resolve(&tenants).await?;
            for (i, (spec, domain)) in tenants.iter().zip(&domains).enumerate() {
                let Some(domain) = domain else { continue };
                let entry = format!("entry {} (tenant {})", i + 1, spec.tenant_id);
                let credential = graph::read_credential_async(&spec.secret)
                    .await
                    .map_err(|e| EngineError::Invalid(format!("{entry}: {e}")))?;
                let api = self
                    .inner
                    .graph
                    .tenant(&spec.tenant_id, &spec.client_id, credential);
                match api.check_identity(&guids[i], domain).await {
                    Ok(()) => {}
                    Err(e) if e.code == "tenant_mismatch" => {
                        return Err(EngineError::Invalid(format!("{entry}: {}", e.message)))
                    }
                    Err(e) => {
                        return Err(EngineError::Unavailable(format!(
                            "{entry}: cannot confirm the organization: {} ({})",
                            e.message, e.code
                        )))
                    }
                }
            }
        }
        self.submit_finishing(tenants, finish_with, who).await
    }

    async fn submit_finishing(
        &self,
        tenants: Vec<TenantSpec>,
        finish_with: Vec<Option<String>>,
        who: Operator,
    ) -> Result<Vec<SagaSummary>, EngineError> {
        if *self.inner.stopping.borrow() {
            return Err(EngineError::Unavailable(
                "the daemon is shutting down and takes no new work".into(),
            ));
        }
        for spec in &tenants {
            // Read off the async workers: a FIFO or a hung mount named as a
            // secret fails this submission, not the daemon.
            if let Err(e) = graph::read_credential_async(&spec.secret).await {
                return Err(EngineError::Invalid(format!(
                    "tenant {}: {e}",
                    spec.tenant_id
                )));
            }
            self.check_submission(spec)?;
        }
        let guids = self.resolve(&tenants).await?;
        duplicates(&tenants, &guids, |i| format!("entry {}", i + 1))
            .map_err(EngineError::Invalid)?;
        // Held until every saga of the request is registered (or the append
        // failed): a concurrent submission of the same tenant is refused.
        let _reservation = self.reserve(&tenants, &guids)?;
        let (policy, mfa_scope, users_before_term_end, backup) = {
            let settings = self
                .inner
                .settings
                .read()
                .unwrap_or_else(|p| p.into_inner());
            (
                settings.policy.clone(),
                settings.mfa_scope,
                settings.users_before_term_end,
                settings.backup,
            )
        };
        let batch_id = uuid::Uuid::new_v4().to_string();
        let batch_size = u32::try_from(tenants.len()).unwrap_or(u32::MAX);
        // Every saga's first events are appended at once (one group commit
        // for the whole batch, not one flush per tenant).
        let mut started = Vec::with_capacity(tenants.len());
        for (i, (spec, guid)) in tenants.into_iter().zip(guids).enumerate() {
            let saga_id = SagaId(uuid::Uuid::new_v4().to_string());
            // The saga's first events: who asked for what, its tenant, and
            // the choices this daemon's config makes for it.
            let events = [
                Event::SagaStarted {
                    saga_id: saga_id.clone(),
                    spec: spec.clone(),
                    policy: policy.clone(),
                    at: now(),
                    submitted_by: who.name.clone(),
                },
                Event::TenantResolved {
                    tenant_guid: guid,
                    source: saga::IdentitySource::Discovery,
                },
                Event::ClosurePolicyRecorded {
                    mfa_scope,
                    finish_with: finish_with.get(i).cloned().flatten(),
                },
                Event::SchedulePolicyRecorded {
                    users_before_term_end,
                },
                Event::BackupPolicyRecorded { mode: backup },
                Event::BatchJoined {
                    batch_id: batch_id.clone(),
                    size: batch_size,
                },
            ];
            let payloads = (events.iter())
                .map(Event::encode)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| EngineError::Unavailable(format!("cannot encode event: {e}")))?;
            started.push((saga_id, spec, events, payloads));
        }
        let appends = started.iter_mut().map(|(saga_id, _, _, payloads)| {
            let payloads = std::mem::take(payloads);
            crate::metrics::timed_append(self.inner.store.append(
                saga_id,
                store::FIRST_SEQ,
                payloads,
                None,
            ))
        });
        let results = futures::future::join_all(appends).await;
        let mut out = Vec::with_capacity(started.len());
        let mut failed = None;
        for ((saga_id, spec, events, _), result) in started.into_iter().zip(results) {
            if let Err(e) = result {
                if failed.is_none() {
                    failed = Some(EngineError::Unavailable(format!("event log: {e}")));
                }
                continue;
            }
            let at = now();
            let state = (events.iter()).fold(State::default(), |s, e| saga::apply_at(s, e, at));
            tracing::info!(saga_id = %saga_id, tenant_id = %spec.tenant_id, operator = %who.name, "saga submitted");
            out.push(SagaSummary {
                saga_id: saga_id.0.clone(),
                tenant_id: spec.tenant_id.clone(),
            });
            (self.inner.batches).join(&batch_id, &saga_id.0, batch_size, None, false);
            self.adopt(saga_id, state, store::FIRST_SEQ + events.len() as u64)
                .await;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(out)
    }

    fn status(&self, saga: Option<&str>) -> Result<Vec<StatusRow>, EngineError> {
        let sagas = self.inner.sagas.lock().unwrap_or_else(|p| p.into_inner());
        match saga {
            Some(id) => sagas
                .get(id)
                .map(|slot| vec![row(id, slot)])
                .ok_or_else(|| EngineError::NotFound(format!("no saga {id}"))),
            None => {
                let mut rows: Vec<(Timestamp, StatusRow)> = sagas
                    .iter()
                    .map(|(id, slot)| (slot.started, row(id, slot)))
                    .collect();
                rows.sort_by(|a, b| (a.0, &a.1.saga_id).cmp(&(b.0, &b.1.saga_id)));
                Ok(rows.into_iter().map(|(_, r)| r).collect())
            }
        }
    }

    async fn command(
        &self,
        saga: &str,
        command: OperatorCommand,
        who: Operator,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        let sender = {
            let sagas = self.inner.sagas.lock().unwrap_or_else(|p| p.into_inner());
            let slot = sagas
                .get(saga)
                .ok_or_else(|| EngineError::NotFound(format!("no saga {saga}")))?;
            if slot.stopped {
                return Err(EngineError::Unavailable(format!(
                    "saga {saga} is stopped: {}; restart the daemon once the cause is fixed",
                    slot.fault.as_deref().unwrap_or("its task ended")
                )));
            }
            slot.commands.clone().ok_or_else(|| {
                EngineError::Refused(format!(
                    "saga {saga} has ended ({}): nothing to {}",
                    slot.status.state.as_str(),
                    command_name(command)
                ))
            })?
        };
        let (who, why) = (who.name, reason.unwrap_or_default());
        let command = match command {
            OperatorCommand::Pause => Command::Pause { who, why },
            OperatorCommand::Resume => Command::Resume { who, why },
            OperatorCommand::Abort => Command::Abort { who, why },
            OperatorCommand::Confirm => Command::ConfirmGate { who, why },
            OperatorCommand::ConfirmBackup => Command::AttestBackup { who, why },
        };
        let (reply, answer) = oneshot::channel();
        sender
            .send(Msg { command, reply })
            .await
            .map_err(|_| EngineError::Unavailable(format!("saga {saga} is not running")))?;
        answer
            .await
            .map_err(|_| EngineError::Unavailable(format!("saga {saga} stopped")))?
    }
}

fn command_name(c: OperatorCommand) -> &'static str {
    match c {
        OperatorCommand::Pause => "pause",
        OperatorCommand::Resume => "resume",
        OperatorCommand::Abort => "abort",
        OperatorCommand::Confirm => "confirm",
        OperatorCommand::ConfirmBackup => "confirm --backup",
    }
}

impl Executor {
    /// Refuses a tenant that cannot be started (its secret is checked by
    /// `submit` before): a partner-center tenant without a configured
    /// partner (a tenant that already has a saga is refused by
    /// [`Executor::reserve`]).
    fn check_submission(&self, spec: &TenantSpec) -> Result<(), EngineError> {
        if spec.subscriptions == SubscriptionMode::PartnerCenter && self.inner.partner.is_none() {
            return Err(EngineError::Invalid(format!(
                "tenant {}: subscriptions = \"partner-center\" needs [partner_center] in the daemon's config",
                spec.tenant_id
            )));
        }
        Ok(())
    }

    /// Every tenant's GUID, from its discovery document (no credentials),
    /// in request order. An unknown tenant is invalid input; an unreachable
    /// login service makes the daemon unavailable for the request.
    async fn resolve(&self, tenants: &[TenantSpec]) -> Result<Vec<String>, EngineError> {
        let graph = self.inner.graph.clone();
        let names: Vec<String> = tenants.iter().map(|t| t.tenant_id.clone()).collect();
        let found: Vec<_> = futures::stream::iter(names)
            .map(move |name| {
                let graph = graph.clone();
                async move { graph.resolve_tenant(&name).await }
            })
            .buffered(RESOLVE_AT_ONCE)
            .collect()
            .await;
        let mut out = Vec::with_capacity(found.len());
        for (i, (spec, r)) in tenants.iter().zip(found).enumerate() {
            match r {
                Ok(guid) => out.push(guid),
                Err(e) if e.class == crate::model::FailureClass::Permanent => {
                    return Err(EngineError::Invalid(format!(
                        "entry {} (tenant {}): {}",
                        i + 1,
                        spec.tenant_id,
                        e.message
                    )))
                }
                Err(e) => {
                    return Err(EngineError::Unavailable(format!(
                        "entry {} (tenant {}): cannot resolve the tenant: {}",
                        i + 1,
                        spec.tenant_id,
                        e.message
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Checks that no tenant of the request has a saga that is not terminal
    /// (recovered ones included) or is being submitted by another request,
    /// and reserves them all, in one step under the saga table's lock.
    fn reserve(
        &self,
        tenants: &[TenantSpec],
        guids: &[String],
    ) -> Result<Reservation<'_>, EngineError> {
        let sagas = self.inner.sagas.lock().unwrap_or_else(|p| p.into_inner());
        let mut reserving = self
            .inner
            .reserving
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut keys = Vec::new();
        for (spec, guid) in tenants.iter().zip(guids) {
            let mine = tenant_keys(&spec.tenant_id, Some(guid));
            let active = sagas.iter().find(|(_, s)| {
                let guid = s.status.tenant_guid.as_ref().or(s.recovered_guid.as_ref());
                !s.status.state.is_terminal()
                    && tenant_keys(&s.tenant_id, guid.map(String::as_str))
                        .iter()
                        .any(|k| mine.contains(k))
            });
            if let Some((id, slot)) = active {
                return Err(EngineError::Invalid(format!(
                    "tenant {} (tenant {guid}) already has an active saga {id} (submitted as {})",
                    spec.tenant_id, slot.tenant_id
                )));
            }
            if mine.iter().any(|k| reserving.contains(k)) {
                return Err(EngineError::Invalid(format!(
                    "tenant {} (tenant {guid}) is being submitted by another request",
                    spec.tenant_id
                )));
            }
            keys.extend(mine);
        }
        reserving.extend(keys.iter().cloned());
        Ok(Reservation {
            inner: &self.inner,
            keys,
        })
    }
}

/// Tenants resolved at once for one submission.
const RESOLVE_AT_ONCE: usize = 16;

/// The keys a tenant is reserved under: its GUID when known, and the
/// spelling the batch used, lowercased (a saga recorded before GUIDs were
/// holds its tenant by that spelling until it has read its GUID).
fn tenant_keys(raw: &str, guid: Option<&str>) -> Vec<String> {
    let mut keys = vec![raw.to_ascii_lowercase()];
    if let Some(g) = guid {
        keys.push(g.to_ascii_lowercase());
    }
    keys
}

/// Refuses a list of tenants that names one tenant twice, under any spelling
/// (GUID or domain, any case): the message names both entries (`name(i)`
/// for the i-th, 0-based) and the tenant.
pub fn duplicates(
    tenants: &[TenantSpec],
    guids: &[String],
    name: impl Fn(usize) -> String,
) -> Result<(), String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, (spec, guid)) in tenants.iter().zip(guids).enumerate() {
        for key in tenant_keys(&spec.tenant_id, Some(guid)) {
            match seen.get(&key) {
                Some(&j) if j != i => {
                    return Err(format!(
                        "{} (tenant_id {}) and {} (tenant_id {}) name the same tenant {guid}: one saga per tenant",
                        name(j),
                        tenants[j].tenant_id,
                        name(i),
                        spec.tenant_id
                    ))
                }
                _ => {
                    seen.insert(key, i);
                }
            }
        }
    }
    Ok(())
}

/// Tenant keys held for a submission until its sagas are registered.
struct Reservation<'a> {
    /// Where they are held.
    inner: &'a Inner,
    /// The keys.
    keys: Vec<String>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut reserving = (self.inner.reserving.lock()).unwrap_or_else(|p| p.into_inner());
        for k in &self.keys {
            reserving.remove(k);
        }
    }
}

impl Lifecycle for Executor {
    fn reload(&self, config: &Config) {
        let mut settings = self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *settings = Settings::of(config);
        tracing::info!("new sagas use the reloaded retry, failure and polling policy");
    }

    async fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
        if let Err(e) = self.inner.store.close().await {
            tracing::error!(error = %e, "closing the event log failed");
        }
    }

    fn summary(&self) -> String {
        let (all, active, waiting) = self.counts();
        format!("{active} sagas active ({waiting} waiting), {all} known")
    }
}
