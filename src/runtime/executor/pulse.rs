//! The health pulse: proof that the event log still takes writes.

use super::*;

/// How often the pulse task checks that the event log still takes writes.
pub(super) const PULSE_EVERY: Duration = Duration::from_secs(1);

/// The executor counts as unhealthy when its pulse is older than this.
pub(super) const PULSE_STALE: Duration = Duration::from_secs(10);

/// Proves every [`PULSE_EVERY`] that the store's writer still flushes, and
/// beats the heartbeat when it does; ends at shutdown.
pub(super) async fn pulse(inner: Arc<Inner>) {
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
