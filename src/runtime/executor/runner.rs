//! One saga's task (`Runner`): `decide → record → perform → record` until the
//! saga ends, with its snapshots and staged appends.

use super::*;

/// A snapshot is written with the append that brings a saga this many events
/// past its previous one (and always with a terminal event), so recovery
/// replays at most this many events per saga; for a large saga at most a
/// quarter of its objects (see [`snapshot_every`]).
pub(super) const SNAPSHOT_EVERY: u64 = 32;

/// Events between snapshots for a saga in this state: [`SNAPSHOT_EVERY`],
/// or a quarter of the objects it holds (users of the inventory, entries of
/// its tables) when that is more. A snapshot costs time in proportion to the
/// state, so this keeps the snapshots of a 100,000-user tenant from costing
/// more than its events, while recovery still replays no more events than
/// the snapshot holds objects: its cost follows the state, not the history.
pub(super) fn snapshot_every(state: &State) -> u64 {
    let users = state.inventory.as_ref().map_or(0, |i| i.users.len());
    let entries: usize = state
        .tables
        .values()
        .map(std::collections::BTreeMap::len)
        .sum();
    SNAPSHOT_EVERY.max(((users + entries) / 4) as u64)
}

/// Staged events are appended at the latest once this many are waiting, so
/// a long run of decisions or outcomes still reaches the log in pieces.
pub(super) const STAGE_LIMIT: usize = 512;

/// One saga's task.
pub(super) struct Runner {
    /// Shared executor state.
    pub(super) inner: Arc<Inner>,
    /// The id of the saga this task runs.
    pub(super) saga_id: SagaId,
    /// Its state after its last record, staged ones included.
    pub(super) state: State,
    /// The saga seq the first staged event gets (the next durable one).
    pub(super) next_seq: u64,
    /// Events appended since the last snapshot.
    pub(super) since_snapshot: u64,
    /// Its notifications on their way to the webhooks.
    pub(super) outbox: crate::notify::Outbox,
    /// Encoded events already applied to `state` but not yet appended: the
    /// decisions and read or call outcomes since the last append. They are
    /// appended together (one group commit) before any call is made, before
    /// the saga sleeps, answers a command or stops, so that one append
    /// carries a whole decided batch instead of one append per decision.
    pub(super) staged: Vec<Vec<u8>>,
    /// Whether a terminal event is durable (the saga's commands end then).
    pub(super) durable_terminal: bool,
}

/// Why a saga task stopped early.
#[derive(Debug)]
pub(super) enum Stop {
    /// The daemon is shutting down; the saga carries on from its log at the next start.
    Shutdown,
    /// The log refused an append: nothing more may be done.
    Store(store::Error),
    /// An event or snapshot could not be encoded.
    Codec(String),
}

impl Runner {
    pub(super) fn new(inner: Arc<Inner>, saga_id: SagaId, state: State, next_seq: u64) -> Runner {
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
    pub(super) async fn run(&mut self, commands: &mut mpsc::Receiver<Msg>) -> Result<(), Stop> {
        let header = self.state.header.clone();
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

    pub(super) async fn drive(
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
            let decision = saga::decide(&self.state, now());
            if !decision.perform.is_empty() && turn.is_none() {
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
            if !decision.record.is_empty() {
                self.stage(&decision.record)?;
            }
            if !decision.perform.is_empty() {
                // Always false in release builds (see `fault`).
                if fault::injected("panic", &self.inner, &self.saga_id) {
                    panic!("injected fault: saga task panics before its calls");
                }
                // Intents (and whatever was staged before) are durable
                // before any call is made.
                self.flush().await?;
                if self
                    .perform_all(&*api, &decision.perform, commands, stopping)
                    .await?
                {
                    // Resumed while its calls ran: the operator's fix may
                    // have been a new secret.
                    *api = tenant::connect(&self.inner.graph, &self.state.header.spec).await;
                }
                continue;
            }
            if !decision.record.is_empty() {
                // Decided without a call: decide again on the staged state;
                // the events reach the log with the next call or sleep.
                if self.staged.len() >= STAGE_LIMIT {
                    self.flush().await?;
                }
                continue;
            }
            self.flush().await?;
            turn = None;
            if decision.wake_at.is_none() && self.state.paused.is_none() {
                tracing::warn!(status = ?self.state.status(), "the saga decided nothing and set no timer: waiting for an operator command");
            }
            let sleep_for = decision.wake_at.map(|at| at.since(now()));
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
    pub(super) async fn perform_all(
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
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (s.max_retry_after, s.stop_grace)
        };
        // `tenant_id` and `partner` are borrowed by the calls while outcomes
        // are recorded through `&mut self`. Partner Center names a customer
        // by its tenant GUID, whatever spelling the batch used.
        let tenant_id = self
            .state
            .tenant_guid
            .clone()
            .unwrap_or_else(|| self.state.header.spec.tenant_id.clone());
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
                    request_ids.insert((*change, t.clone()), self.state.request_id(*change, t));
                }
            }
        }
        let request_id = |change: saga::Change, target: &str| {
            request_ids.get(&(change, target.to_string())).cloned()
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
                            (self.state.paused.is_some(), self.state.compensating().is_some());
                        // Outcomes so far go to the log before the command's events.
                        if let Err(e) = self.stage(&std::mem::take(&mut outcomes)) {
                            result = Err(e);
                            continue;
                        }
                        result = self.command(msg).await;
                        if self.state.paused.is_some()
                            || self.state.compensating().is_some() != was_compensating
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
    pub(super) async fn command_then_reconnect(
        &mut self,
        msg: Msg,
        api: &mut Api,
    ) -> Result<(), Stop> {
        let was_paused = self.state.paused.is_some();
        self.command(msg).await?;
        if was_paused && self.state.paused.is_none() {
            *api = tenant::connect(&self.inner.graph, &self.state.header.spec).await;
        }
        Ok(())
    }

    /// Applies an operator command: records its events (or the refusal's),
    /// and answers the control socket.
    pub(super) async fn command(&mut self, msg: Msg) -> Result<(), Stop> {
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
    pub(super) async fn record(&mut self, events: Vec<Event>) -> Result<(), Stop> {
        self.stage(&events)?;
        self.flush().await
    }

    /// Applies events to the state and keeps their bytes for the next
    /// [`Runner::flush`]. Nothing is acknowledged, and no call made on their
    /// account, before that flush.
    pub(super) fn stage(&mut self, events: &[Event]) -> Result<(), Stop> {
        let at = now();
        self.staged.reserve(events.len());
        for event in events {
            let bytes = event.encode().map_err(|e| Stop::Codec(e.to_string()))?;
            self.staged.push(bytes);
            self.state.apply_at(event, at);
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
    pub(super) async fn flush(&mut self) -> Result<(), Stop> {
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
                label: self.state.header.spec.tenant_id.clone(),
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
    pub(super) async fn after_end(
        &mut self,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        if let (Some((batch, _)), Some(ending)) = (&self.state.batch, self.state.ending()) {
            let batch_id = batch.clone();
            let claim = (self.inner.batches).end(&batch_id, &self.saga_id.0, (*ending).clone());
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

    pub(super) fn slot_mut(&self) -> SlotGuard<'_> {
        SlotGuard {
            map: self
                .inner
                .sagas
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            key: &self.saga_id.0,
        }
    }
}

/// A locked view of one saga's slot.
pub(super) struct SlotGuard<'a> {
    /// The executor's saga slots, locked for the guard's life.
    pub(super) map: std::sync::MutexGuard<'a, HashMap<String, Slot>>,
    /// The saga's id: its slot's key in `map`.
    pub(super) key: &'a str,
}

impl SlotGuard<'_> {
    pub(super) fn as_mut(&mut self) -> Option<&mut Slot> {
        self.map.get_mut(self.key)
    }
}

pub(super) async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
