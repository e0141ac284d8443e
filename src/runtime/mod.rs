//! The daemon: the long-running shell around the saga executor.
//!
//! [`run`] binds the control socket (refusing to start beside a running
//! daemon), opens the event log and recovers the active sagas, tells systemd
//! it is ready, then serves the CLI until shutdown: SIGHUP reloads the config,
//! SIGTERM/SIGINT stop taking work, let the engine finish or record what is in
//! flight and flush, and return. The executor plugs in behind
//! [`control::Engine`]; everything here is independent of how sagas run.

pub mod control;
pub mod doctor;
pub mod executor;
pub mod logging;
pub mod perform;
pub mod plan;
pub mod signals;
pub mod systemd;
pub mod tenant;

use crate::config::{self, Config};
use control::{Engine, Server};
use signals::SignalEvent;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use systemd::{Heartbeat, Notifier};
use tokio::sync::mpsc;

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is invalid (startup only; a bad reload keeps the old one).
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] control::Error),
    /// The event log could not be opened or recovered (locked by another
    /// daemon, unwritable, of an unknown format, damaged).
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The engine could not be started.
    #[error("cannot start the saga engine on {}: {message}", data_dir.display())]
    Engine {
        /// The data directory from the config, where the event log lives.
        data_dir: PathBuf,
        /// What failed: the executor's start error, as text.
        message: String,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The metrics endpoint could not be served.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::Error),
}

/// What the engine must additionally offer to be run by the daemon shell.
pub trait Lifecycle: Engine {
    /// Applies a reloaded config (limits, retry policy, poll intervals, failure
    /// policy; `data_dir` and `control_socket` need a restart).
    fn reload(&self, config: &Config);

    /// Stops taking new work, lets in-flight calls finish or records them as
    /// in doubt, flushes the log. Completes when that is done.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;

    /// One line for `systemctl status` (e.g. "12 sagas active, 3 waiting").
    fn summary(&self) -> String;
}

/// Runs the daemon until `shutdown` completes. `reloads` delivers SIGHUP.
pub async fn run(
    config_path: PathBuf,
    config: Config,
    shutdown: impl Future,
    reloads: mpsc::Receiver<SignalEvent>,
) -> Result<(), Error> {
    let server = Server::bind(&config.control_socket)
        .await?
        .with_limits(control::Limits {
            max_connections: config.limits.max_connections.get(),
            idle_timeout: config.limits.idle_timeout,
        });
    tracing::info!(socket = %server.path().display(), data_dir = %config.data_dir.display(), "starting");
    let engine = match start_engine(&config).await {
        Ok(engine) => engine,
        Err(e) => {
            let _ = std::fs::remove_file(server.path());
            return Err(e);
        }
    };
    let _metrics = match config.metrics.listen {
        None => None,
        Some(addr) => match crate::metrics::serve_with(
            addr,
            {
                let engine = Arc::clone(&engine);
                move || {
                    let rows = engine.status(None).unwrap_or_default();
                    let sagas = rows.iter().map(|r| (r.state, r.step)).collect();
                    (sagas, engine.healthy())
                }
            },
            config.limits.max_connections.get(),
            config.limits.idle_timeout,
        )
        .await
        {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                engine.shutdown().await;
                let _ = std::fs::remove_file(server.path());
                return Err(e.into());
            }
        },
    };
    let daemon = Daemon {
        config_path,
        config,
        notifier: Notifier::from_env(),
    };
    daemon.serve(server, engine, shutdown, reloads).await
}

/// Opens the event log, rebuilds the active sagas and resolves in-doubt
/// actions: the executor's start.
async fn start_engine(config: &Config) -> Result<Arc<executor::Executor>, Error> {
    executor::Executor::start(config)
        .await
        .map_err(|e| Error::Engine {
            data_dir: config.data_dir.clone(),
            message: e.to_string(),
        })
}

/// The daemon shell around a started engine.
#[derive(Debug)]
pub struct Daemon {
    /// Where the config came from, re-read on SIGHUP.
    pub config_path: PathBuf,
    /// The config in force.
    pub config: Config,
    /// Tells systemd of readiness, status and the watchdog (`sd_notify`); does
    /// nothing outside systemd.
    pub notifier: Notifier,
}

impl Daemon {
    /// Serves the control socket with a started (recovered) engine: READY=1,
    /// the watchdog, reloads, and on shutdown STOPPING=1, then the engine's
    /// drain. The socket file is gone when this returns.
    pub async fn serve<E: Lifecycle>(
        mut self,
        server: Server,
        engine: Arc<E>,
        shutdown: impl Future,
        mut reloads: mpsc::Receiver<SignalEvent>,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let control = tokio::spawn(server.serve(Arc::clone(&engine), async move {
            let _ = stop_rx.await;
        }));
        let heartbeat = Heartbeat::default();
        heartbeat.beat();
        let watchdog = tokio::spawn(self.notifier.clone().watchdog_task(heartbeat.clone()));
        self.notifier.ready(&engine.summary());
        tracing::info!("ready");
        let beat_every = self
            .notifier
            .watchdog_period()
            .map(|p| p / 4)
            .unwrap_or(Duration::from_secs(5))
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(beat_every);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(SignalEvent::Reload) = reloads.recv() => {
                    self.reload(engine.as_ref());
                }
                _ = tick.tick() => {
                    if engine.healthy() {
                        heartbeat.beat();
                    }
                    self.notifier.status(&engine.summary());
                }
            }
        }
        self.notifier.stopping();
        tracing::info!("stopping: no new work; finishing in-flight calls");
        let _ = stop_tx.send(());
        let served = control.await;
        engine.shutdown().await;
        watchdog.abort();
        tracing::info!("stopped");
        match served {
            Ok(result) => result.map_err(Error::from),
            Err(e) => Err(Error::Control(control::Error::Io {
                path: self.config.control_socket.clone(),
                source: std::io::Error::other(e),
            })),
        }
    }

    /// Re-reads the config; an invalid one is reported and the old one kept.
    fn reload<E: Lifecycle>(&mut self, engine: &E) {
        match Config::load(&self.config_path) {
            Ok(new) => {
                for (key, old, new) in [
                    ("data_dir", &self.config.data_dir, &new.data_dir),
                    (
                        "control_socket",
                        &self.config.control_socket,
                        &new.control_socket,
                    ),
                ] {
                    if old != new {
                        tracing::warn!(
                            key,
                            "changed in the config: takes effect at the next restart"
                        );
                    }
                }
                engine.reload(&new);
                let (data_dir, control_socket) = (
                    self.config.data_dir.clone(),
                    self.config.control_socket.clone(),
                );
                self.config = Config {
                    data_dir,
                    control_socket,
                    ..new
                };
                tracing::info!(config = %self.config_path.display(), "config reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; keeping the running config");
            }
        }
    }
}
