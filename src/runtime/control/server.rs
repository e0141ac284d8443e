//! The daemon's side of the control socket: binds it safely (mode 0660, a
//! stale file replaced, a live daemon left alone), accepts connections,
//! identifies the peer and dispatches requests to the [`Engine`].

use super::{Client, Engine, EngineError, Error, Health, Operator, Request, Response};
use crate::model::Timestamp;
use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// The longest request line accepted. The largest request is a submit: a
/// tenant's spec is about 300 bytes of JSON with a few keep entries, so
/// 2 MiB carries a batch of several thousand tenants, while a client that
/// never ends its line pins at most this much until `idle_timeout`.
const MAX_LINE: u64 = 2 * 1024 * 1024;

/// How many connections are served at once and how long one may wait
/// without sending a whole request (`[limits] max_connections`,
/// `idle_timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; at the cap a new connection closes the
    /// oldest idle one, or is refused when none is idle.
    pub max_connections: usize,
    /// A connection that sends no complete request for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The idle connections by age (a growing id), each with the sender that
/// closes it.
type IdleMap = BTreeMap<u64, tokio::sync::oneshot::Sender<()>>;

/// The open connections: how many, and how to close the idle ones (those
/// waiting for a request), oldest first.
#[derive(Debug, Default)]
struct Slots {
    /// Connections open now.
    open: AtomicUsize,
    /// The idle ones among them.
    idle: Mutex<IdleMap>,
}

impl Slots {
    fn idle(&self) -> MutexGuard<'_, IdleMap> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes room for one more connection under `max`: closes the oldest
    /// idle one if the cap is reached. False when every open connection is
    /// busy.
    fn admit(&self, max: usize) -> bool {
        if self.open.load(Ordering::SeqCst) >= max {
            match self.idle().pop_first() {
                Some((_, close)) => {
                    let _ = close.send(());
                }
                None => return false,
            }
        }
        self.open.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// Counts a connection out when its task ends.
struct Admitted(Arc<Slots>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A bound control socket, ready to serve.
#[derive(Debug)]
pub struct Server {
    /// The bound Unix socket that connections are accepted on.
    listener: UnixListener,
    /// Its path, removed again when serving ends.
    path: PathBuf,
    /// What `Health` answers.
    health: Health,
    /// Connection cap and idle timeout.
    limits: Limits,
}

impl Server {
    /// Binds the socket at `path` with mode 0660. A leftover socket file that
    /// nobody answers on is replaced; if a daemon answers, this fails with
    /// [`Error::AlreadyRunning`]. The socket is bound under a temporary name,
    /// given its mode, then renamed into place, so it is never reachable with
    /// looser permissions.
    pub async fn bind(path: &Path) -> Result<Server, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(Error::NotASocket {
                    path: path.to_path_buf(),
                })
            }
            // Whoever answers there (a daemon or not) is left alone.
            Ok(_) => match Client::connect(path).await {
                Ok(_) => {
                    return Err(Error::AlreadyRunning {
                        path: path.to_path_buf(),
                    })
                }
                Err(Error::NotRunning { .. }) => {
                    tracing::info!(socket = %path.display(), "removing a stale control socket");
                    std::fs::remove_file(path).map_err(io)?;
                }
                Err(e) => return Err(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(io)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(Server {
            listener,
            path: path.to_path_buf(),
            health: Health {
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: std::process::id(),
                started_at: Timestamp::from_system(std::time::SystemTime::now()),
                healthy: true,
                dead_tasks: Vec::new(),
            },
            limits: Limits::default(),
        })
    }

    /// The same server with other connection limits.
    pub fn with_limits(self, limits: Limits) -> Server {
        Server { limits, ..self }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` completes, then stops accepting, ends open
    /// connections after their current request, and removes the socket file.
    pub async fn serve<E: Engine>(
        self,
        engine: Arc<E>,
        shutdown: impl Future,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let health = Arc::new(self.health.clone());
        let slots = Arc::new(Slots::default());
        let limits = self.limits;
        let mut next_id = 0u64;
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        if !slots.admit(limits.max_connections.max(1)) {
                            tracing::warn!(max = limits.max_connections, "control socket: every connection busy; refusing one");
                            drop(stream);
                            continue;
                        }
                        let admitted = Admitted(Arc::clone(&slots));
                        next_id += 1;
                        // Idle from the moment it is accepted, not from when
                        // its task first runs: a burst of connections always
                        // leaves the oldest of them to close for the next.
                        let (close_tx, close_rx) = tokio::sync::oneshot::channel();
                        slots.idle().insert(next_id, close_tx);
                        let conn = Conn {
                            id: next_id,
                            slots: Arc::clone(&slots),
                            idle_timeout: limits.idle_timeout,
                            first_close: Some(close_rx),
                        };
                        let engine = Arc::clone(&engine);
                        let health = Arc::clone(&health);
                        let stop = stop_rx.clone();
                        tokio::spawn(async move {
                            let _admitted = admitted;
                            if let Err(e) = connection(stream, conn, engine, health, stop).await {
                                tracing::warn!(error = %e, "control connection failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                },
            }
        };
        let _ = stop_tx.send(true);
        let _ = std::fs::remove_file(&self.path);
        result
    }
}

/// The peer's identity from its socket credentials.
pub(crate) fn operator_of(stream: &UnixStream) -> std::io::Result<Operator> {
    let uid = stream.peer_cred()?.uid();
    Ok(Operator {
        uid,
        name: user_name(uid),
    })
}

/// The user name of `uid` (`uid:N` when the system has none).
pub(crate) fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid:{uid}"),
    }
}

/// One connection's place among the open ones.
struct Conn {
    /// Its age: lower ids are closed first when room is needed.
    id: u64,
    /// Where it registers itself while idle.
    slots: Arc<Slots>,
    /// How long it may wait for a whole request.
    idle_timeout: Duration,
    /// The closing signal of its registration at accept time, for its first
    /// wait.
    first_close: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Takes a connection off the idle list when it leaves the wait (a request
/// arrived, or it is closing).
struct IdleEntry<'a>(&'a Conn);

impl Drop for IdleEntry<'_> {
    fn drop(&mut self) {
        self.0.slots.idle().remove(&self.0.id);
    }
}

/// Takes a connection off the idle list when its task ends.
struct Leaves(u64, Arc<Slots>);

impl Drop for Leaves {
    fn drop(&mut self) {
        self.1.idle().remove(&self.0);
    }
}

async fn connection<E: Engine>(
    stream: UnixStream,
    mut conn: Conn,
    engine: Arc<E>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // However the connection ends, it leaves the idle list.
    let _leaves = Leaves(conn.id, Arc::clone(&conn.slots));
    let who = operator_of(&stream)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE);
        let close_rx = match conn.first_close.take() {
            Some(rx) => rx,
            None => {
                let (close_tx, close_rx) = tokio::sync::oneshot::channel();
                conn.slots.idle().insert(conn.id, close_tx);
                close_rx
            }
        };
        let entry = IdleEntry(&conn);
        let n = tokio::select! {
            n = limited.read_line(&mut line) => n?,
            _ = stop.changed() => return Ok(()),
            _ = close_rx => {
                tracing::debug!("control connection closed to make room for a new one");
                return Ok(());
            }
            _ = tokio::time::sleep(conn.idle_timeout) => {
                tracing::debug!("control connection idle too long; closed");
                return Ok(());
            }
        };
        drop(entry);
        if n == 0 {
            return Ok(());
        }
        let too_long = n as u64 >= MAX_LINE && !line.ends_with('\n');
        let request = if too_long {
            Err(format!("request longer than {MAX_LINE} bytes"))
        } else {
            serde_json::from_str::<Request>(line.trim_end())
                .map_err(|e| format!("not a request: {e}"))
        };
        let response = match request {
            Ok(Request::Audit {
                filter,
                format,
                inventory,
            }) => {
                tracing::info!(operator = %who.name, "audit");
                let mut chunks = super::audit::stream(engine.as_ref(), filter, format, inventory);
                while let Some(response) = chunks.recv().await {
                    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
                    out.push(b'\n');
                    write.write_all(&out).await?;
                }
                continue;
            }
            Ok(request) => dispatch(request, engine.as_ref(), &health, &who).await,
            Err(message) => Response::Error(EngineError::Invalid(message)),
        };
        let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
        if too_long {
            return Ok(());
        }
    }
}

async fn dispatch<E: Engine>(
    request: Request,
    engine: &E,
    health: &Health,
    who: &Operator,
) -> Response {
    let result = match request {
        Request::Audit { .. } => {
            return Response::Error(EngineError::Invalid(
                "an audit is streamed, not dispatched".into(),
            ))
        }
        Request::Doctor { tenants, domains } => {
            tracing::info!(operator = %who.name, tenants = tenants.len(), "doctor");
            engine
                .doctor(tenants, domains)
                .await
                .map(|findings| Response::Doctor { findings })
        }
        Request::Plan {
            tenants,
            lines,
            domains,
        } => {
            tracing::info!(operator = %who.name, tenants = tenants.len(), "plan");
            engine
                .plan(tenants, lines, domains)
                .await
                .map(|plans| Response::Plan { plans })
        }
        Request::Health => {
            let dead_tasks = engine.dead_tasks();
            return Response::Health(Health {
                healthy: engine.healthy() && dead_tasks.is_empty(),
                dead_tasks,
                ..health.clone()
            });
        }
        Request::Submit {
            tenants,
            finish_with,
            domains,
        } => {
            tracing::info!(operator = %who.name, tenants = tenants.len(), "submit");
            engine
                .submit_checked(tenants, finish_with, domains, who.clone())
                .await
                .map(|sagas| Response::Submitted { sagas })
        }
        Request::Status { saga } => engine
            .status(saga.as_deref())
            .map(|rows| Response::Status { rows }),
        Request::Command {
            saga,
            command,
            reason,
        } => {
            tracing::info!(operator = %who.name, saga_id = %saga, ?command, "operator command");
            engine
                .command(&saga, command, who.clone(), reason)
                .await
                .map(|()| Response::Done)
        }
    };
    result.unwrap_or_else(Response::Error)
}
