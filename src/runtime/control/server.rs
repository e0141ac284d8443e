//! The daemon's side of the control socket: binds it safely (mode 0660, a
//! stale file replaced, a live daemon left alone), accepts connections,
//! identifies the peer and dispatches requests to the [`Engine`].

use super::{Client, Engine, EngineError, Error, Health, Operator, Request, Response};
use crate::model::Timestamp;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// The longest request line accepted (a batch of thousands of tenants fits).
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// A bound control socket, ready to serve.
#[derive(Debug)]
pub struct Server {
    /// The listening socket.
    listener: UnixListener,
    /// Its path, removed again when serving ends.
    path: PathBuf,
    /// What `Health` answers.
    health: Health,
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
            },
        })
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
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let engine = Arc::clone(&engine);
                        let health = Arc::clone(&health);
                        let stop = stop_rx.clone();
                        tokio::spawn(async move {
                            if let Err(e) = connection(stream, engine, health, stop).await {
                                tracing::warn!(error = %e, "control connection failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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

async fn connection<E: Engine>(
    stream: UnixStream,
    engine: Arc<E>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let who = operator_of(&stream)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE);
        let n = tokio::select! {
            n = limited.read_line(&mut line) => n?,
            _ = stop.changed() => return Ok(()),
        };
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
        Request::Health => {
            return Response::Health(Health {
                healthy: engine.healthy(),
                ..health.clone()
            })
        }
        Request::Submit {
            tenants,
            finish_with,
        } => {
            tracing::info!(operator = %who.name, tenants = tenants.len(), "submit");
            engine
                .submit_finishing(tenants, finish_with, who.clone())
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
