//! The control socket: how the CLI talks to the running daemon.
//!
//! A Unix stream socket, mode 0660 (the daemon's user and group only). The
//! protocol is one JSON [`Request`] per line, answered by one JSON [`Response`]
//! per line; a connection may carry several requests. The operator recorded
//! in events is taken from the peer's credentials (uid → user name), never
//! from anything the client says.
//!
//! The server dispatches to an [`Engine`]: the executor implements it; the
//! socket knows nothing about sagas beyond these shapes.

mod audit;
mod client;
mod server;

pub use client::Client;
pub use server::{Limits, Server};

use crate::model::{TenantSpec, Timestamp};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;

/// A failure of the control socket itself (not of the request).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing answers on the socket.
    #[error(
        "no closeout daemon is listening on {}: start it with `closeout daemon` \
         (or `systemctl start closeout`), or point --config at the daemon's config",
        path.display()
    )]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
    },
    /// The socket exists but this user may not use it.
    #[error(
        "permission denied on the control socket {}: it is open to the daemon's user and \
         group only (add yourself to that group)",
        path.display()
    )]
    PermissionDenied {
        /// The control socket the CLI tried to connect to.
        path: PathBuf,
    },
    /// Another daemon already answers on the socket.
    #[error("another closeout daemon is already listening on {}", path.display())]
    AlreadyRunning {
        /// The control socket the new daemon wanted to bind.
        path: PathBuf,
    },
    /// The path is taken by something that is not a socket.
    #[error("{} exists and is not a socket: refusing to replace it", path.display())]
    NotASocket {
        /// The path the control socket was to be bound at.
        path: PathBuf,
    },
    /// Any other I/O failure on the socket.
    #[error("control socket {}: {source}", path.display())]
    Io {
        /// The control socket being read, written or bound.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The other side sent something that is not the protocol.
    #[error("control socket {}: bad message: {message}", path.display())]
    Protocol {
        /// The control socket the message came over.
        path: PathBuf,
        /// What in the message did not follow the protocol.
        message: String,
    },
}

/// One request from the CLI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Start one saga per tenant.
    Submit {
        /// The tenants, validated by the CLI (and again by the engine).
        tenants: Vec<TenantSpec>,
        /// Each tenant's `finish_with` by position (empty: none named).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        finish_with: Vec<Option<String>>,
        /// Each tenant's initial domain by position (empty: none named):
        /// the organization must match it and the id, or the request is
        /// refused before any saga starts.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        domains: Vec<Option<String>>,
    },
    /// Where sagas stand: one, or all.
    Status {
        /// A saga id, or none for every saga.
        saga: Option<String>,
    },
    /// Pause, resume, abort or confirm a gate.
    Command {
        /// The id of the saga the command is for.
        saga: String,
        /// Pause, resume, abort or confirm one gate.
        command: OperatorCommand,
        /// The operator's reason, recorded with the event.
        reason: Option<String>,
    },
    /// Is the daemon up, and which one is it.
    Health,
    /// `closeout doctor --daemon`: check these tenants (and the partner)
    /// with the daemon's own credentials, changing nothing.
    Doctor {
        /// The tenants, as the batch gives them.
        tenants: Vec<TenantSpec>,
        /// Each tenant's initial domain by position, if named.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        domains: Vec<Option<String>>,
    },
    /// `closeout plan --daemon`: what closing these tenants would do, read
    /// with the daemon's own credentials, changing nothing; a named
    /// `domain` that is not the organization's is invalid input.
    Plan {
        /// The tenants, as the batch gives them.
        tenants: Vec<TenantSpec>,
        /// Each tenant's batch line, for the output.
        #[serde(default)]
        lines: Vec<usize>,
        /// Each tenant's initial domain by position, if named.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        domains: Vec<Option<String>>,
    },
    /// The audit log, rendered by the daemon from its own store (sled
    /// admits one process): answered by `Chunk`s, then `Done` or `Error`.
    Audit {
        /// Which events: saga, time range and kinds.
        filter: crate::audit::Filter,
        /// How to render them.
        format: crate::audit::Format,
        /// The saga's recorded inventory instead (needs `filter.saga`).
        inventory: bool,
    },
}

/// One answer from the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// The sagas started, one per submitted tenant, in order.
    Submitted {
        /// Saga and tenant ids.
        sagas: Vec<SagaSummary>,
    },
    /// Where the asked-for sagas stand.
    Status {
        /// One row per saga.
        rows: Vec<SagaStatus>,
    },
    /// The command was recorded.
    Done,
    /// The daemon is up.
    Health(Health),
    /// A piece of an audit's output, in order.
    Chunk {
        /// UTF-8 text of the rendering.
        data: String,
    },
    /// The request was refused or failed: why, and how the CLI exits.
    Error(EngineError),
    /// What `Doctor` found: one per tenant, then the partner's.
    Doctor {
        /// One finding per tenant in batch order, then the partner's.
        findings: Vec<super::doctor::Finding>,
    },
    /// What `Plan` found: one per tenant, in batch order.
    Plan {
        /// One plan per tenant, in batch order.
        plans: Vec<super::plan::TenantPlan>,
    },
}

/// The operator commands (recorded as events with who and why).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorCommand {
    /// Stop taking steps until resumed.
    Pause,
    /// Continue a paused saga.
    Resume,
    /// Give up and compensate (refused after the pivot).
    Abort,
    /// A person did what a gate asks: re-check the tenant now.
    Confirm,
    /// A person attests that the tenant's data is backed up outside the
    /// tenant (`confirm --backup`): closes the backup gate on their word.
    ConfirmBackup,
}

/// Who gave an order, from the socket peer's credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The peer's uid, from the socket's peer credentials (`SO_PEERCRED`).
    pub uid: u32,
    /// Its user name (`uid:N` when the uid has no name).
    pub name: String,
}

/// A started saga.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaSummary {
    /// The new saga's id.
    pub saga_id: String,
    /// The tenant it closes.
    pub tenant_id: String,
}

/// A `status --json` element, its `state` and its `progress` are the
/// saga's own types (a contract: README, "Using it").
pub use crate::saga::{Progress, SagaState, SagaStatus};

/// The daemon's answer to `Health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Its process id, for signals and the systemd unit.
    pub pid: u32,
    /// When this daemon process started serving.
    #[serde(with = "crate::model::rfc3339")]
    pub started_at: Timestamp,
    /// Recovered, its event log writable, its loop alive, and no saga task
    /// dead.
    #[serde(default)]
    pub healthy: bool,
    /// Sagas whose task ended without the saga ending: (saga id, reason).
    #[serde(default)]
    pub dead_tasks: Vec<(String, String)>,
}

/// Why the engine refused or failed a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum EngineError {
    /// The request itself is wrong (a tenant already being closed, a batch
    /// needing `[partner_center]` that is not configured): the CLI exits 2.
    #[error("{0}")]
    Invalid(String),
    /// No such saga: the CLI exits 2.
    #[error("{0}")]
    NotFound(String),
    /// Refused by policy (abort after the pivot): the CLI exits 1.
    #[error("{0}")]
    Refused(String),
    /// The daemon cannot do it now (shutting down, store failed): exit 1.
    #[error("{0}")]
    Unavailable(String),
}

/// What the control socket asks of the daemon; the executor implements it.
pub trait Engine: Send + Sync + 'static {
    /// Starts one saga per tenant (recorded before this returns), in order.
    fn submit(
        &self,
        tenants: Vec<TenantSpec>,
        who: Operator,
    ) -> impl Future<Output = Result<Vec<SagaSummary>, EngineError>> + Send;

    /// As [`Engine::submit`], with the keep account who finishes each
    /// tenant's closure (by position; missing or `None`: the first keep
    /// Global Administrator).
    fn submit_finishing(
        &self,
        tenants: Vec<TenantSpec>,
        finish_with: Vec<Option<String>>,
        who: Operator,
    ) -> impl Future<Output = Result<Vec<SagaSummary>, EngineError>> + Send {
        let _ = finish_with;
        self.submit(tenants, who)
    }

    /// As [`Engine::submit_finishing`], first refusing the whole request
    /// when a tenant's organization is not the id and initial domain the
    /// batch names (by position; missing or `None`: not checked).
    fn submit_checked(
        &self,
        tenants: Vec<TenantSpec>,
        finish_with: Vec<Option<String>>,
        domains: Vec<Option<String>>,
        who: Operator,
    ) -> impl Future<Output = Result<Vec<SagaSummary>, EngineError>> + Send {
        let _ = domains;
        self.submit_finishing(tenants, finish_with, who)
    }

    /// `closeout doctor` with the daemon's credentials: one finding per
    /// tenant, then the partner's; changes nothing.
    fn doctor(
        &self,
        tenants: Vec<TenantSpec>,
        domains: Vec<Option<String>>,
    ) -> impl Future<Output = Result<Vec<super::doctor::Finding>, EngineError>> + Send {
        let _ = (tenants, domains);
        async {
            Err(EngineError::Unavailable(
                "this daemon does not run doctor checks".into(),
            ))
        }
    }

    /// `closeout plan` with the daemon's credentials; changes nothing.
    fn plan(
        &self,
        tenants: Vec<TenantSpec>,
        lines: Vec<usize>,
        domains: Vec<Option<String>>,
    ) -> impl Future<Output = Result<Vec<super::plan::TenantPlan>, EngineError>> + Send {
        let _ = (tenants, lines, domains);
        async { Err(EngineError::Unavailable("this daemon does not plan".into())) }
    }

    /// Status of one saga (`NotFound` if unknown) or of all, oldest first.
    fn status(&self, saga: Option<&str>) -> Result<Vec<SagaStatus>, EngineError>;

    /// Records an operator command with who and why, and acts on it.
    fn command(
        &self,
        saga: &str,
        command: OperatorCommand,
        who: Operator,
        reason: Option<String>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Whether the engine's own loop has turned recently and its event log
    /// still takes writes (e.g. a [`super::systemd::Heartbeat`] it beats,
    /// younger than a few periods). While it is not, the watchdog pings stop
    /// (systemd restarts the daemon) and `status --health` fails.
    fn healthy(&self) -> bool;

    /// Sagas whose task ended without the saga ending, with the reason, until
    /// an operator resumes or aborts them: `status --health` fails while there
    /// are any (the watchdog, about the daemon's own loop, does not).
    fn dead_tasks(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The event log this engine holds open and its data dir, so that the
    /// control socket can serve audits while the daemon runs; `None` when it
    /// has none.
    fn event_log(&self) -> Option<(crate::store::Store, PathBuf)> {
        None
    }
}
