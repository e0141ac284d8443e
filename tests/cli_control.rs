//! The control socket and the daemon shell, with an in-memory engine standing
//! in for the executor: the socket's mode and peer-credential identity, stale
//! and live sockets, the CLI (the real binary) talking to it, sd_notify
//! READY/STOPPING on a test socket, and config reload.

use closeout::config::Config;
use closeout::model::{SecretSource, SubscriptionMode, TenantSpec, Timestamp};
use closeout::runtime::control::{
    Client, Engine, EngineError, Error, Operator, OperatorCommand, Progress, Request, Response,
    SagaState, SagaStatus, SagaSummary, Server,
};
use closeout::runtime::signals::SignalEvent;
use closeout::runtime::systemd::Notifier;
use closeout::runtime::{Daemon, Lifecycle};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Records what it is asked; sagas are numbered `saga-1`, `saga-2`, ...
#[derive(Default)]
struct MemEngine {
    /// Status rows of the sagas submitted so far.
    rows: Mutex<Vec<SagaStatus>>,
    /// Every submit and command, with who and why.
    log: Mutex<Vec<String>>,
    /// Signalled after each reload.
    reloaded: tokio::sync::Notify,
    /// Set to play an engine whose loop has stalled.
    stalled: std::sync::atomic::AtomicBool,
}

impl Engine for MemEngine {
    fn healthy(&self) -> bool {
        !self.stalled.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn submit(
        &self,
        tenants: Vec<TenantSpec>,
        who: Operator,
    ) -> Result<Vec<SagaSummary>, EngineError> {
        let mut rows = self.rows.lock().unwrap();
        let mut out = Vec::new();
        for t in tenants {
            let saga_id = format!("saga-{}", rows.len() + 1);
            rows.push(SagaStatus {
                saga_id: saga_id.clone(),
                tenant_id: t.tenant_id.clone(),
                state: SagaState::Waiting,
                step: Some(2),
                progress: Progress { done: 3, total: 4 },
                last_error: None,
                updated_at: Timestamp(1_764_360_000_000),
                waiting_for: Some("cancel the subscriptions in the admin center".into()),
                action_required: None,
                tenant_guid: None,
            });
            self.log.lock().unwrap().push(format!(
                "submit {} by {}/{}",
                t.tenant_id, who.uid, who.name
            ));
            out.push(SagaSummary {
                saga_id,
                tenant_id: t.tenant_id,
            });
        }
        Ok(out)
    }

    fn status(&self, saga: Option<&str>) -> Result<Vec<SagaStatus>, EngineError> {
        let rows = self.rows.lock().unwrap();
        match saga {
            None => Ok(rows.clone()),
            Some(id) => rows
                .iter()
                .find(|r| r.saga_id == id)
                .map(|r| vec![r.clone()])
                .ok_or_else(|| EngineError::NotFound(format!("no saga {id}"))),
        }
    }

    async fn command(
        &self,
        saga: &str,
        command: OperatorCommand,
        who: Operator,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        self.status(Some(saga))?;
        if command == OperatorCommand::Confirm {
            let mut rows = self.rows.lock().unwrap();
            if let Some(r) = rows.iter_mut().find(|r| r.saga_id == saga) {
                r.state = SagaState::Completed;
                r.step = None;
                r.waiting_for = None;
            }
        }
        if command == OperatorCommand::Abort {
            return Err(EngineError::Refused(format!(
                "saga {saga} is past the point of no return"
            )));
        }
        self.log.lock().unwrap().push(format!(
            "{command:?} {saga} by {} because {}",
            who.name,
            reason.unwrap_or_default()
        ));
        Ok(())
    }
}

impl Lifecycle for MemEngine {
    fn reload(&self, config: &Config) {
        self.log
            .lock()
            .unwrap()
            .push(format!("reload level={}", config.log.level));
        self.reloaded.notify_one();
    }
    async fn shutdown(&self) {
        self.log.lock().unwrap().push("shutdown".into());
    }
    fn summary(&self) -> String {
        format!("{} sagas", self.rows.lock().unwrap().len())
    }
}

fn spec(tenant: &str) -> TenantSpec {
    TenantSpec {
        tenant_id: tenant.into(),
        client_id: "c".into(),
        secret: SecretSource::Credential("x".into()),
        keep: vec!["admin".into()],
        subscriptions: SubscriptionMode::Manual,
    }
}

fn me() -> (u32, String) {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid).unwrap().unwrap().name;
    (uid.as_raw(), name)
}

/// Serves `engine` on `path` until the returned sender fires.
async fn serve(
    path: &Path,
    engine: Arc<MemEngine>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let server = Server::bind(path).await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(engine, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (tx, task)
}

#[tokio::test]
async fn round_trip_with_peer_identity_and_mode_0660() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/control.sock");
    let engine = Arc::new(MemEngine::default());
    let (stop, task) = serve(&path, Arc::clone(&engine)).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    let mut client = Client::connect(&path).await.unwrap();
    let r = client
        .call(&Request::Submit {
            tenants: vec![spec("a.example"), spec("b.example")],
            finish_with: Vec::new(),
            domains: Vec::new(),
        })
        .await
        .unwrap();
    let Response::Submitted { sagas } = r else {
        panic!("{r:?}")
    };
    assert_eq!(sagas[1].saga_id, "saga-2");
    let (uid, name) = me();
    assert_eq!(
        engine.log.lock().unwrap()[0],
        format!("submit a.example by {uid}/{name}")
    );

    let r = client
        .call(&Request::Status {
            saga: Some("saga-1".into()),
        })
        .await
        .unwrap();
    let Response::Status { rows } = r else {
        panic!("{r:?}")
    };
    assert_eq!(rows.len(), 1);
    let r = client
        .call(&Request::Status {
            saga: Some("nope".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        r,
        Response::Error(EngineError::NotFound("no saga nope".into()))
    );
    let r = client
        .call(&Request::Command {
            saga: "saga-2".into(),
            command: OperatorCommand::Pause,
            reason: Some("change freeze".into()),
        })
        .await
        .unwrap();
    assert_eq!(r, Response::Done);
    assert_eq!(
        engine.log.lock().unwrap().last().unwrap(),
        &format!("Pause saga-2 by {name} because change freeze")
    );
    assert!(
        matches!(client.call(&Request::Health).await.unwrap(), Response::Health(h) if h.pid == std::process::id())
    );

    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(!path.exists(), "socket file removed on shutdown");
}

#[tokio::test]
async fn stale_socket_is_replaced_and_a_live_daemon_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    // A socket file nobody listens on, as left by a killed daemon.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert!(matches!(
        Client::connect(&path).await,
        Err(Error::NotRunning { .. })
    ));
    let (stop, task) = serve(&path, Arc::new(MemEngine::default())).await;
    let second = Server::bind(&path).await;
    assert!(
        matches!(second, Err(Error::AlreadyRunning { .. })),
        "{second:?}"
    );
    assert!(
        Client::connect(&path).await.is_ok(),
        "the first daemon still serves"
    );
    stop.send(()).unwrap();
    task.await.unwrap();

    std::fs::write(&path, "not a socket").unwrap();
    assert!(matches!(
        Server::bind(&path).await,
        Err(Error::NotASocket { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[tokio::test]
async fn garbage_gets_an_error_line_and_the_connection_goes_on() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (stop, task) = serve(&path, Arc::new(MemEngine::default())).await;
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"{\"request\":\"launch\"}\n{\"request\":\"status\",\"saga\":null}\n")
        .await
        .unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["response"], "error");
    assert_eq!(first["kind"], "invalid");
    let second: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        second,
        serde_json::json!({"response": "status", "rows": []})
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Runs the real binary (blocking) and returns (code, stdout, stderr).
async fn cli(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_talks_to_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("closeout.toml");
    std::fs::write(
        &config,
        // Login on a closed loopback port: the CLI cannot resolve the
        // tenant itself and leaves the check to the (fake) daemon.
        "data_dir = \"data\"\ncontrol_socket = \"control.sock\"\n[endpoints]\nlogin = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let batch = dir.path().join("batch.toml");
    std::fs::write(
        &batch,
        "[[tenant]]\ntenant_id = \"a.example\"\nclient_id = \"c\"\nclient_secret_credential = \"a\"\n\
         keep = [\"admin@a.example\"]\nsubscriptions = \"manual\"\n",
    )
    .unwrap();
    let engine = Arc::new(MemEngine::default());
    let (stop, task) = serve(&dir.path().join("control.sock"), Arc::clone(&engine)).await;
    let c = config.to_str().unwrap().to_string();
    let args = |a: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = a.iter().map(std::string::ToString::to_string).collect();
        v.insert(1, "--config".into());
        v.insert(2, c.clone());
        v
    };

    let (code, out, err) = cli(args(&["submit", batch.to_str().unwrap()])).await;
    assert_eq!((code, out.as_str()), (0, "saga-1\ta.example\n"), "{err}");

    let (code, out, err) = cli(args(&["status", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{
            "saga_id": "saga-1", "tenant_id": "a.example", "tenant_guid": null, "state": "waiting", "step": 2,
            "progress": {"done": 3, "total": 4}, "last_error": null,
            "updated_at": "2025-11-28T20:00:00.000Z",
            "waiting_for": "cancel the subscriptions in the admin center"
        }])
    );

    let (code, out, _) = cli(args(&["status"])).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("SAGA") && out.contains("waiting") && out.contains("3/4"),
        "{out}"
    );
    let (code, _, err) = cli(args(&["status", "nope"])).await;
    assert_eq!(code, 2, "unknown saga is bad input: {err}");
    assert!(err.contains("no saga nope"), "{err}");

    let (code, _, err) = cli(args(&[
        "resume",
        "saga-1",
        "--reason",
        "fixed the app role",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let (_, name) = me();
    assert_eq!(
        engine.log.lock().unwrap().last().unwrap(),
        &format!("Resume saga-1 by {name} because fixed the app role")
    );
    // Not a terminal: --watch prints plain lines and returns once every saga
    // shown is terminal.
    let (code, _, err) = cli(args(&["confirm", "saga-1"])).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(args(&["status", "--watch", "saga-1"])).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("saga-1") && out.contains("completed"),
        "{out}"
    );

    let (code, _, err) = cli(args(&["abort", "saga-1"])).await;
    assert_eq!(code, 1, "a refusal is not bad input");
    assert!(err.contains("past the point of no return"), "{err}");

    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_shell_notifies_ready_then_stopping_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify_rx = UnixDatagram::bind(&notify_path).unwrap();
    let config_path = dir.path().join("closeout.toml");
    std::fs::write(&config_path, "control_socket = \"control.sock\"\n").unwrap();
    let config = Config::load(&config_path).unwrap();
    let socket = config.control_socket.clone();
    let server = Server::bind(&socket).await.unwrap();
    let engine = Arc::new(MemEngine::default());
    let daemon = Daemon {
        config_path: config_path.clone(),
        config,
        notifier: Notifier::new(notify_path.to_str(), None),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let run = tokio::spawn(daemon.serve(
        server,
        Arc::clone(&engine),
        async {
            let _ = stop_rx.await;
        },
        reload_rx,
    ));

    let recv = |rx: &UnixDatagram| {
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = tokio::task::block_in_place(|| recv(&notify_rx));
    assert_eq!(first, "READY=1\nSTATUS=0 sagas");
    assert!(Client::connect(&socket).await.is_ok());

    // A bad config is refused and the old one kept: two reloads of it, and
    // once the second was taken from the channel (capacity 1) the first is
    // done; the file does not change meanwhile.
    let write = |body: &str| {
        let tmp = dir.path().join("next.toml");
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, &config_path).unwrap();
    };
    write("control_socket = 5\n");
    reload_tx.send(SignalEvent::Reload).await.unwrap();
    reload_tx.send(SignalEvent::Reload).await.unwrap();
    drop(reload_tx.reserve().await.unwrap());
    // A good one reaches the engine.
    write("control_socket = \"control.sock\"\n[log]\nlevel = \"debug\"\n");
    reload_tx.send(SignalEvent::Reload).await.unwrap();
    engine.reloaded.notified().await;

    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    let mut messages = Vec::new();
    notify_rx.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    while let Ok(n) = notify_rx.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(
        messages.last().map(String::as_str),
        Some("STOPPING=1\nSTATUS=stopping")
    );
    assert!(
        messages.iter().all(|m| !m.starts_with("READY=1")),
        "READY only once"
    );
    // The second bad reload may still be reading the file when the good one
    // is written, so the good config can arrive once or twice; the bad one
    // never reaches the engine.
    let mut log = engine.log.lock().unwrap().clone();
    log.dedup();
    assert_eq!(
        log,
        vec!["reload level=debug".to_string(), "shutdown".to_string()]
    );
    assert!(!socket.exists());
}

#[tokio::test]
async fn a_second_daemon_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("closeout.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\ncontrol_socket = \"control.sock\"\n",
    )
    .unwrap();
    let socket = dir.path().join("control.sock");
    let (stop, task) = serve(&socket, Arc::new(MemEngine::default())).await;
    let (code, _, err) = cli(vec![
        "daemon".into(),
        "--config".into(),
        config.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "another closeout daemon is already listening on {}",
            socket.display()
        )),
        "{err}"
    );
    assert!(
        Client::connect(&socket).await.is_ok(),
        "the running daemon is untouched"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_data_dir_held_by_another_process_stops_the_daemon_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("closeout.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\ncontrol_socket = \"control.sock\"\n",
    )
    .unwrap();
    let held = closeout::store::Store::open(&dir.path().join("data")).unwrap();
    let (code, _, err) = cli(vec![
        "daemon".into(),
        "--config".into(),
        config.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another closeout process"), "{err}");
    assert!(
        !dir.path().join("control.sock").exists(),
        "no socket left behind"
    );
    drop(held);
}

#[tokio::test]
async fn status_health_reflects_a_stalled_loop() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("closeout.toml");
    std::fs::write(&config, "control_socket = \"control.sock\"\n").unwrap();
    let engine = Arc::new(MemEngine::default());
    let (stop, task) = serve(&dir.path().join("control.sock"), Arc::clone(&engine)).await;
    let args = || -> Vec<String> {
        ["status", "--config", config.to_str().unwrap(), "--health"]
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    };
    let (code, out, err) = cli(args()).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": healthy"), "{out}");

    engine
        .stalled
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (code, out, err) = cli(args()).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": unhealthy"), "{out}");
    assert!(err.contains("the daemon is unhealthy"), "{err}");

    stop.send(()).unwrap();
    task.await.unwrap();
    let (code, _, err) = cli(args()).await;
    assert_eq!(code, 1);
    assert!(err.contains("no closeout daemon is listening"), "{err}");
}
