//! Process signals, turned into daemon events (signal-hook): SIGTERM or
//! SIGINT asks for a graceful shutdown, a second one exits at once (status
//! 1, as an interrupted shutdown); SIGHUP asks for a config reload.

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::{mpsc, watch};

/// What a signal asks the daemon to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalEvent {
    /// Reload the config (SIGHUP).
    Reload,
}

/// Receivers of the daemon's signal events.
#[derive(Debug)]
pub struct Signals {
    /// Becomes `true` on the first SIGTERM/SIGINT.
    pub shutdown: watch::Receiver<bool>,
    /// Signal events after start-up: a SIGHUP asks for a config reload.
    pub events: mpsc::Receiver<SignalEvent>,
}

/// Installs the handlers and spawns the task that turns signals into events.
/// Must be called inside a tokio runtime.
pub fn install() -> std::io::Result<Signals> {
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (events_tx, events) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => {
                    tracing::info!("SIGHUP: reloading the config");
                    let _ = events_tx.try_send(SignalEvent::Reload);
                }
                _ if *shutdown_tx.borrow() => {
                    tracing::warn!(signal, "second shutdown signal: exiting at once");
                    std::process::exit(1);
                }
                _ => {
                    tracing::info!(
                        signal,
                        "shutting down: finishing in-flight work (signal again to exit at once)"
                    );
                    let _ = shutdown_tx.send(true);
                }
            }
        }
    });
    Ok(Signals { shutdown, events })
}

/// Completes when `shutdown` turns `true` (or its sender is gone).
pub async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}
