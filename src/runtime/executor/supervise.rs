//! The supervisor of saga tasks: notices at once a task that ends while its
//! saga has not (a panic, a refused append, a record that cannot be
//! encoded), records why (`TaskStopped`) where the log still takes writes,
//! and otherwise shows the saga `stopped`; either way the daemon reports
//! itself unhealthy and the webhooks hear of it (`saga_stopped`). Also the
//! faults a test can inject into a task (debug builds only).

use super::recovery::Recovered;
use super::runner::Stop;
use super::{load_all, now, Error, Inner, Msg, Runner};
use crate::model::SagaId;
use crate::runtime::control::EngineError;
use crate::saga::{self, Event, State};
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Runs a saga's task and watches it: a task that ends without its saga
/// ending (a panic, a refused append, a record that cannot be encoded) is
/// noticed here at once. The saga is then read back from the log and a
/// `TaskStopped` recorded with the reason, and it goes on paused, waiting
/// for the operator (its `saga_stopped` notice goes out like any other). If
/// the log takes no write, or the saga had already stopped so and nobody
/// acted since, it is shown `stopped` (never terminal: its tenant stays
/// reserved) and a best-effort `saga_stopped` webhook is sent. Either way
/// the daemon reports itself unhealthy until an operator acts.
pub(super) async fn supervise(mut runner: Runner, mut commands: mpsc::Receiver<Msg>) {
    use futures::FutureExt;
    let inner = Arc::clone(&runner.inner);
    let saga_id = runner.saga_id.clone();
    loop {
        let ran = std::panic::AssertUnwindSafe(runner.run(&mut commands))
            .catch_unwind()
            .await;
        let reason = match ran {
            Ok(Ok(()) | Err(Stop::Shutdown)) => return,
            Ok(Err(Stop::Store(e))) => format!("the event log refused an append: {e}"),
            Ok(Err(Stop::Codec(e))) => format!("cannot encode its record: {e}"),
            Err(panic) => format!("it panicked: {}", panic_text(panic.as_ref())),
        };
        tracing::error!(%reason, "saga task stopped without the saga ending");
        let live = runner.state.clone();
        drop(runner);
        match record_stop(&inner, &saga_id, &reason).await {
            Ok(recovered) => {
                tracing::warn!("saga paused for the operator after its task stopped");
                runner = Runner::new(
                    Arc::clone(&inner),
                    saga_id.clone(),
                    recovered.state,
                    recovered.next_seq,
                );
                if let Some(slot) = (inner
                    .sagas
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner))
                .get_mut(&saga_id.0)
                {
                    slot.status = runner.state.status();
                    slot.fault = runner.state.task_stopped.clone();
                }
                inner.count_dead();
            }
            Err(why) => {
                let reason = format!("{reason} (not recorded: {why})");
                tracing::error!(%reason, "saga shown stopped until the daemon restarts");
                inner.show_stopped(&saga_id, &live, &reason);
                // Commands get a clear answer instead of "not running".
                while let Some(msg) = commands.recv().await {
                    let _ = msg.reply.send(Err(EngineError::Unavailable(format!(
                        "saga {saga_id} is stopped: {reason}; restart the daemon once the cause is fixed"
                    ))));
                }
                return;
            }
        }
    }
}

/// The message of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Reads a saga back from the log and records `TaskStopped` for it. Refused
/// (the reason) when the log takes no read or write, when the saga has
/// ended (nothing to pause: it was settling its notifications), or when it
/// had already stopped so without an operator acting since: recording it
/// again would only loop on the same fault.
async fn record_stop(
    inner: &Arc<Inner>,
    saga_id: &SagaId,
    reason: &str,
) -> Result<Recovered, String> {
    if fault::injected("refuse-all", inner, saga_id) {
        return Err("injected fault: the event log refuses every append".into());
    }
    let store = inner.store.clone();
    let id = saga_id.clone();
    let mut r = tokio::task::spawn_blocking(move || load_one(&store, &id))
        .await
        .map_err(|e| format!("reading it back failed: {e}"))?
        .map_err(|e| format!("reading it back failed: {e}"))?
        .ok_or_else(|| "the log does not hold it".to_string())?;
    if r.state.is_terminal() {
        return Err("it had ended and was settling its notifications".into());
    }
    if let Some(before) = &r.state.task_stopped {
        return Err(format!(
            "it had stopped before ({before}) and nobody resumed it since"
        ));
    }
    let event = Event::TaskStopped {
        reason: reason.to_string(),
    };
    let payload = event.encode().map_err(|e| e.to_string())?;
    inner
        .store
        .append(saga_id, r.next_seq, vec![payload], None)
        .await
        .map_err(|e| format!("the event log refused it: {e}"))?;
    r.state.apply_at(&event, now());
    r.next_seq += 1;
    Ok(r)
}

/// Faults a test can inject into a saga task (debug builds only): the
/// variable `CLOSEOUT_INJECT_FAULT` holds `KIND:TENANT`, with KIND `panic`
/// (the task panics before its next call), `refuse` (its next append is
/// refused) or `refuse-all` (`refuse`, and the supervisor's record too).
/// Each kind fires once per saga per process. Release builds compile none
/// of it.
pub(super) mod fault {
    use super::super::Inner;
    use crate::model::SagaId;

    #[cfg(debug_assertions)]
    pub fn injected(kind: &str, inner: &Inner, saga_id: &SagaId) -> bool {
        let Ok(spec) = std::env::var("CLOSEOUT_INJECT_FAULT") else {
            return false;
        };
        let Some((k, tenant)) = spec.split_once(':') else {
            return false;
        };
        let ours = (inner
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
        .get(&saga_id.0)
        .is_some_and(|s| s.tenant_id == tenant);
        // `refuse-all` refuses the task's append too.
        let wanted = k == kind || (kind == "refuse" && k == "refuse-all");
        static FIRED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let key = format!("{kind}:{}", saga_id.0);
        let mut fired = FIRED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !ours || !wanted || fired.contains(&key) {
            return false;
        }
        fired.push(key);
        true
    }

    #[cfg(not(debug_assertions))]
    pub fn injected(_: &str, _: &Inner, _: &SagaId) -> bool {
        false
    }
}

impl Inner {
    /// Publishes how many sagas have a dead task (metric).
    pub(super) fn count_dead(&self) {
        let n = (self
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
        .values()
        .filter(|s| s.fault.is_some())
        .count();
        crate::metrics::saga_tasks_dead(n);
    }

    /// Shows a saga whose death could not be recorded as `stopped`, and
    /// tells the webhooks (best effort: nothing records the delivery).
    fn show_stopped(&self, saga_id: &SagaId, state: &State, reason: &str) {
        if let Some(slot) = (self
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
        .get_mut(&saga_id.0)
        {
            slot.commands = None;
            slot.stopped = true;
            slot.fault = Some(reason.to_string());
        }
        self.count_dead();
        let mut shown = state.clone();
        let number = shown.owe(saga::Told::SagaStopped {
            reason: reason.to_string(),
        });
        let message = crate::notify::Message::build(&shown, number, &shown.notices[&number]);
        let webhooks = Arc::clone(&self.webhooks);
        tokio::spawn(async move {
            for index in 0..webhooks.count() {
                let _ = webhooks.deliver(index, number, &message).await;
            }
        });
    }
}

/// Reads one saga's latest snapshot and the events after it (blocking).
fn load_one(store: &Store, saga_id: &SagaId) -> Result<Option<Recovered>, Error> {
    Ok(load_all(store)?.into_iter().find(|r| &r.saga_id == saga_id))
}
