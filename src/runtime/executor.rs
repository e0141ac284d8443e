//! The executor: runs every saga of the daemon. For each saga one task loops
//! `decide → record → perform → record`: it appends the events `decide` asks
//! for durably (and only then applies them), performs the external calls
//! through the Graph client, appends their outcomes, and sleeps until the next
//! recorded timer or an operator command. Replaying is folding: on start the
//! executor rebuilds each active saga from its latest snapshot plus the events
//! after it, performs nothing while doing so, and lets `decide` resolve
//! intents left without outcome by reading first.

use super::control::{Engine, EngineError, Operator, OperatorCommand, SagaStatus, SagaSummary};
use super::perform::{bound_retry_after, left_in_doubt, perform_as};
use super::systemd::Heartbeat;
use super::tenant::{self, Api};
use super::Lifecycle;
use crate::config::Config;
use crate::graph::{self, PartnerClient};
use crate::model::{SagaId, SubscriptionMode, TenantSpec, Timestamp};
use crate::saga::{self, Call, Command, Event, SagaState, State};
use crate::store::{self, Snapshot, Store};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

mod pulse;
mod recovery;
mod runner;
mod settings;
mod submit;
mod supervise;

use pulse::{pulse, PULSE_STALE};
use recovery::{load_all, resolve_recovered};
use runner::Runner;
use settings::Settings;
pub use settings::{client_options, now, policy_of};
pub use submit::duplicates;
use submit::RESOLVE_AT_ONCE;
use supervise::{fault, supervise};

/// The daemon's engine: owns the store, the Graph client and the saga tasks.
pub struct Executor {
    /// Shared with every saga task.
    inner: Arc<Inner>,
    /// The saga tasks; joined on shutdown.
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

/// What the saga tasks share.
struct Inner {
    /// The event log every saga's task appends to (and recovery reads).
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

/// One saga as the executor tracks it.
struct Slot {
    /// The tenant it closes.
    tenant_id: String,
    /// When it was submitted (status lists oldest first).
    started: Timestamp,
    /// The status as of its latest record.
    status: saga::SagaStatus,
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
                let ending = r.state.ending().cloned();
                let finished = r.state.batch_finished;
                (self.inner.batches).join(batch, &r.saga_id.0, *size, ending, finished);
            }
        }
        self.inner.batches.recovered();
        let mut unresolved = Vec::new();
        for r in recovered {
            if !r.state.is_terminal() && r.state.tenant_guid.is_none() {
                unresolved.push((r.saga_id.0.clone(), r.state.header.spec.tenant_id.clone()));
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
        let header = state.header.clone();
        let terminal = state.is_terminal();
        crate::metrics::saga_gate(&saga_id.0, state.gate.as_ref().map(|g| g.0));
        let (tx, rx) = mpsc::channel(16);
        self.inner
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let sagas = self
            .inner
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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

fn row(saga_id: &str, slot: &Slot) -> SagaStatus {
    let mut row = slot.status.clone();
    saga_id.clone_into(&mut row.saga_id);
    row.tenant_id.clone_from(&slot.tenant_id);
    if slot.stopped {
        row.state = SagaState::Stopped;
        row.last_error.clone_from(&slot.fault);
    }
    if row.tenant_guid.is_none() {
        row.tenant_guid.clone_from(&slot.recovered_guid);
    }
    row
}

impl Engine for Executor {
    fn event_log(&self) -> Option<(Store, std::path::PathBuf)> {
        Some((self.inner.store.clone(), self.inner.data_dir.clone()))
    }

    fn healthy(&self) -> bool {
        self.inner.pulse.age() < PULSE_STALE
    }

    fn dead_tasks(&self) -> Vec<(String, String)> {
        let sagas = self
            .inner
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        self.check_domains(&tenants, &domains).await?;
        self.submit_finishing(tenants, finish_with, who).await
    }

    async fn plan(
        &self,
        tenants: Vec<TenantSpec>,
        lines: Vec<usize>,
        domains: Vec<Option<String>>,
    ) -> Result<Vec<super::plan::TenantPlan>, EngineError> {
        self.check_domains(&tenants, &domains).await?;
        let (users_before_term_end, backup) = {
            let settings =
                (self.inner.settings.read()).unwrap_or_else(std::sync::PoisonError::into_inner);
            (settings.users_before_term_end, settings.backup)
        };
        let ctx = super::plan::PlanContext {
            client: &self.inner.graph,
            partner: self.inner.partner.as_ref(),
            users_before_term_end,
            backup,
        };
        let lines = if lines.len() == tenants.len() {
            lines
        } else {
            (1..=tenants.len()).collect()
        };
        Ok(super::plan::plan_tenants(&ctx, &tenants, &lines).await)
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
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
            let state = match saga::fold_at(&events, at) {
                Ok(state) => state,
                Err(e) => {
                    failed.get_or_insert(EngineError::Unavailable(format!(
                        "saga {saga_id}: its first events: {e}"
                    )));
                    continue;
                }
            };
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

    fn status(&self, saga: Option<&str>) -> Result<Vec<SagaStatus>, EngineError> {
        let sagas = self
            .inner
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match saga {
            Some(id) => sagas
                .get(id)
                .map(|slot| vec![row(id, slot)])
                .ok_or_else(|| EngineError::NotFound(format!("no saga {id}"))),
            None => {
                let mut rows: Vec<(Timestamp, SagaStatus)> = sagas
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
            let sagas = self
                .inner
                .sagas
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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

impl Lifecycle for Executor {
    fn reload(&self, config: &Config) {
        let mut settings = self
            .inner
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
