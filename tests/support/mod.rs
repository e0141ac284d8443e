//! Shared helpers for the end-to-end tests that run the real `closeout`
//! binary: a `closeout sim` process on loopback, a daemon started with a test
//! `NOTIFY_SOCKET`, the config and batch files in a temp dir, and the CLI
//! (`submit`, `status --json`, ...). Every wait is bounded by a deadline and
//! fails with the status JSON and the daemon's stderr tail.
#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_closeout")
}

/// A `closeout sim` process, killed on drop.
pub struct Sim {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `host:port` for raw requests.
    addr: String,
}

impl Sim {
    /// Starts `closeout sim --listen 127.0.0.1:0 ARGS...` and reads its URL.
    pub fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(bin())
            .args(["sim", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn closeout sim");
        let stdout = child.stdout.take().expect("sim stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the sim's first line");
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .unwrap_or_else(|| panic!("unexpected first line of closeout sim: {line:?}"))
            .to_string();
        let addr = url.trim_start_matches("http://").to_string();
        Sim { child, url, addr }
    }

    /// One request on a fresh connection (HTTP/1.0: the body ends at close).
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).expect("connect to the sim");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            self.addr
        )
        .expect("write to the sim");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read the sim's answer");
        let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }

    /// `GET path` as JSON (panics unless 200).
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path);
        assert_eq!(status, 200, "GET {path} answered {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// `POST path` (no body): status and JSON body.
    pub fn post(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.request("POST", path);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `GET /_sim/tenants`.
    pub fn tenants(&self) -> Vec<Value> {
        self.get("/_sim/tenants")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `GET /_sim/tenants/{id}` (status and body).
    pub fn tenant(&self, id: &str) -> (u16, Value) {
        let (status, body) = self.request("GET", &format!("/_sim/tenants/{id}"));
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The effects ledger made by clients (`/_sim/...` paths left out).
    pub fn client_effects(&self) -> Vec<Effect> {
        let all: Vec<Effect> =
            serde_json::from_value(self.get("/_sim/effects")).expect("effects ledger");
        all.into_iter()
            .filter(|e| !e.path.starts_with("/_sim/"))
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the sim's effects ledger.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Effect {
    /// Position in the ledger.
    pub seq: u64,
    /// The tenant changed.
    pub tenant_id: String,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// What the sim answered (ghosts: 429/5xx; 0: dropped).
    pub status: u16,
}

/// A temp dir with the config, secrets and batch of one test.
pub struct Env {
    /// Kept alive for the test.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The data dir.
    pub data_dir: PathBuf,
}

/// Tuning of the written config.
#[derive(Clone, Debug)]
pub struct ConfigOpts {
    /// `[saga] on_failure`.
    pub on_failure: &'static str,
    /// `[retry] give_up_after`.
    pub give_up_after: &'static str,
    /// Extra TOML appended verbatim.
    pub extra: String,
    /// Extra `[saga]` keys, appended to that table verbatim.
    pub saga: String,
    /// `[saga] backup`: `off` by default here, so that a test closes its
    /// tenants without an operator; the backup gate's own tests set
    /// `attest` (the daemon's default).
    pub backup: &'static str,
}

impl Default for ConfigOpts {
    fn default() -> Self {
        ConfigOpts {
            on_failure: "compensate",
            give_up_after: "5m",
            extra: String::new(),
            saga: String::new(),
            backup: "off",
        }
    }
}

impl Env {
    /// A temp dir and a config pointing at `sim` (partner credentials from
    /// `/_sim/partner`).
    pub fn new(sim: &Sim, opts: ConfigOpts) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let partner = sim.get("/_sim/partner");
        let psecret = dir.path().join("partner_secret");
        write_secret(&psecret, partner["client_secret"].as_str().unwrap_or(""));
        let config = dir.path().join("closeout.toml");
        let url = &sim.url;
        let text = format!(
            r#"data_dir = "{data}"
control_socket = "{sock}"
[endpoints]
graph = "{url}"
login = "{url}"
partner_center = "{url}"
[partner_center]
tenant_id = "{ptid}"
client_id = "{pcid}"
client_secret_file = "{psecret}"
[retry]
initial_interval = "50ms"
max_interval = "500ms"
give_up_after = "{give_up}"
[limits]
connect_timeout = "1s"
request_timeout = "2s"
[saga]
on_failure = "{on_failure}"
deprovision_poll = "300ms"
gate_recheck = "300ms"
tenant_gone_poll = "300ms"
replication_wait = "300ms"
{saga}
backup = "{backup}"
[log]
level = "closeout=debug"
{extra}
"#,
            data = data_dir.display(),
            sock = dir.path().join("control.sock").display(),
            ptid = partner["tenant_id"].as_str().unwrap_or(""),
            pcid = partner["client_id"].as_str().unwrap_or(""),
            psecret = psecret.display(),
            saga = opts.saga,
            give_up = opts.give_up_after,
            on_failure = opts.on_failure,
            backup = opts.backup,
            extra = opts.extra,
        );
        fs::write(&config, text).expect("write config");
        Env {
            dir,
            config,
            data_dir,
        }
    }

    /// A path in the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a batch of `tenants` (as listed by `/_sim/tenants`): secrets in
    /// 0600 files, `partner-center` for partner-billed tenants, `manual` for
    /// direct ones. Returns the batch path.
    pub fn write_batch(&self, name: &str, tenants: &[Value]) -> PathBuf {
        let mut out = String::new();
        for t in tenants {
            let id = t["tenant_id"].as_str().expect("tenant_id");
            let secret = self.path(&format!("secret_{id}"));
            write_secret(&secret, t["client_secret"].as_str().unwrap_or(""));
            let mode = if t["billing"] == "partner" {
                "partner-center"
            } else {
                "manual"
            };
            out.push_str(&format!(
                "[[tenant]]\ntenant_id = \"{id}\"\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\nkeep = {}\nsubscriptions = \"{mode}\"\n\n",
                t["client_id"].as_str().unwrap_or(""),
                secret.display(),
                t["keep"],
            ));
        }
        let path = self.path(name);
        fs::write(&path, out).expect("write batch");
        path
    }

    /// Runs `closeout ARGS... --config CONFIG` (the config flag is added
    /// after the subcommand).
    pub fn cli(&self, sub: &str, args: &[&str]) -> Output {
        Command::new(bin())
            .arg(sub)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run closeout")
    }

    /// `closeout submit BATCH`: the saga ids (panics on failure).
    pub fn submit(&self, batch: &Path) -> Vec<(String, String)> {
        let out = self.cli("submit", &[batch.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "submit failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(s, t)| (s.to_string(), t.to_string()))
            .collect()
    }

    /// `closeout status --json`, or the failure's stderr.
    pub fn status(&self) -> Result<Vec<Value>, String> {
        let out = self.cli("status", &["--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
    }
}

/// Writes a secret file with mode 0600.
pub fn write_secret(path: &Path, secret: &str) {
    fs::write(path, secret).expect("write secret");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod secret");
}

/// A running `closeout daemon`, killed on drop. Its `NOTIFY_SOCKET` is
/// drained continuously by a thread, as systemd does (a full datagram queue
/// would block the daemon's sends).
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Its stderr (appended across restarts).
    pub log: PathBuf,
    /// The notify messages received, in order.
    notify: mpsc::Receiver<String>,
    /// Every notify message seen so far.
    pub messages: Vec<String>,
    /// Tells the draining thread to stop.
    stop: Arc<AtomicBool>,
}

impl Daemon {
    /// Spawns the daemon without waiting for readiness.
    pub fn spawn(env: &Env) -> Daemon {
        Daemon::spawn_with(env, &[])
    }

    /// Spawns the daemon with extra environment variables.
    pub fn spawn_with(env: &Env, vars: &[(&str, &str)]) -> Daemon {
        let log = env.path("daemon.log");
        let notify_path = env.path("notify.sock");
        let _ = fs::remove_file(&notify_path);
        let sock = UnixDatagram::bind(&notify_path).expect("bind NOTIFY_SOCKET");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("notify socket timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, notify) = mpsc::channel();
        {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("daemon log");
        let child = Command::new(bin())
            .arg("daemon")
            .arg("--config")
            .arg(&env.config)
            .env("NOTIFY_SOCKET", &notify_path)
            // A test that writes systemd credentials puts them in `creds/`.
            .env("CREDENTIALS_DIRECTORY", env.path("creds"))
            .env_remove("RUST_LOG")
            .env_remove("WATCHDOG_USEC")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn closeout daemon");
        Daemon {
            child,
            log,
            notify,
            messages: Vec::new(),
            stop,
        }
    }

    /// Spawns the daemon and waits for `READY=1` on the notify socket.
    pub fn start(env: &Env) -> Daemon {
        let mut d = Daemon::spawn(env);
        d.wait_for_message("READY=1", Duration::from_secs(20));
        d
    }

    /// Waits for a notify message with the line `needle`. Panics with the
    /// daemon's log on timeout or exit.
    pub fn wait_for_message(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let mut exited = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || exited.is_some() {
                panic!(
                    "no {needle:?} from the daemon within {within:?} (exit: {exited:?}; got {:?})\n{}",
                    self.messages,
                    self.tail()
                );
            }
            match self
                .notify
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(msg) => {
                    let hit = msg.lines().any(|l| l == needle);
                    self.messages.push(msg);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    // One more round to read what came before the exit.
                    if let Ok(Some(st)) = self.child.try_wait() {
                        if self.notify.try_recv().is_err() {
                            exited = Some(st);
                        }
                    }
                }
            }
        }
    }

    /// The last lines of the daemon's stderr.
    pub fn tail(&self) -> String {
        tail(&self.log, 25)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal (`"TERM"`, `"INT"`, ...) to the daemon via kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Waits for the daemon to exit within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                panic!("daemon still running after {within:?}\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" DEBUG ")).collect();
    let start = lines.len().saturating_sub(n);
    format!(
        "--- {} (last {n} lines, DEBUG left out) ---\n{}",
        path.display(),
        lines[start..].join("\n")
    )
}

/// Polls `status --json` until `done(rows)` or the deadline; returns the rows.
pub fn wait_status(
    env: &Env,
    daemon: &Daemon,
    within: Duration,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut last = Err(String::from("never asked"));
    while Instant::now() < deadline {
        last = env.status();
        if let Ok(rows) = &last {
            if done(rows) {
                return rows.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out after {within:?} waiting for {what}; last status: {}\n{}",
        match &last {
            Ok(rows) => rows
                .iter()
                .map(|r| format!("\n  {}", row_line(r)))
                .collect::<String>(),
            Err(e) => e.clone(),
        },
        daemon.tail()
    );
}

/// Whether every row's state is terminal.
pub fn all_terminal(rows: &[Value]) -> bool {
    !rows.is_empty()
        && rows.iter().all(|r| {
            matches!(
                r["state"].as_str(),
                Some("completed" | "rolled_back" | "failed")
            )
        })
}

/// The state of saga `id` in `rows`.
pub fn state_of<'a>(rows: &'a [Value], id: &str) -> &'a str {
    rows.iter()
        .find(|r| r["saga_id"] == id)
        .and_then(|r| r["state"].as_str())
        .unwrap_or("missing")
}

/// stderr of an output, lossy.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every saga in the data dir (the daemon must not be running) with its
/// decoded events in order.
pub fn store_events(data_dir: &Path) -> Vec<(closeout::model::SagaId, Vec<closeout::saga::Event>)> {
    let store = closeout::store::Store::open(data_dir).expect("open the store");
    let mut out = Vec::new();
    for meta in store.list_sagas().expect("list sagas") {
        let events = store
            .saga_records(&meta.saga_id, closeout::store::FIRST_SEQ)
            .map(|r| {
                let r = r.expect("read a record");
                closeout::saga::Event::decode(&r.payload).expect("decode an event")
            })
            .collect();
        out.push((meta.saga_id, events));
    }
    out
}

/// How many sagas in the data dir are not terminal per their snapshot
/// (the daemon must not be running).
pub fn active_sagas(data_dir: &Path) -> usize {
    let Ok(store) = closeout::store::Store::open(data_dir) else {
        return 0;
    };
    store
        .list_sagas()
        .map(|l| {
            l.iter()
                .filter(|m| !m.snapshot.as_ref().is_some_and(|s| s.terminal))
                .count()
        })
        .unwrap_or(0)
}

/// One status row on one line, long errors shortened in the middle.
pub fn row_line(r: &Value) -> String {
    let err = r["last_error"].as_str().unwrap_or("");
    let err = if err.len() > 300 {
        let head: String = err.chars().take(120).collect();
        let tail: String = err
            .chars()
            .rev()
            .take(180)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{head} ... {tail}")
    } else {
        err.to_string()
    };
    format!(
        "saga {} tenant {} state {} step {} progress {}/{} waiting_for {} last_error {err}",
        r["saga_id"],
        r["tenant_id"],
        r["state"],
        r["step"],
        r["progress"]["done"],
        r["progress"]["total"],
        r["waiting_for"]
    )
}

impl Drop for Env {
    /// On a failed test, keeps the daemon's log for a look.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let keep = std::env::temp_dir().join(format!(
                "closeout-e2e-{}.log",
                self.dir
                    .path()
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("x")
            ));
            if fs::copy(self.path("daemon.log"), &keep).is_ok() {
                eprintln!("daemon log kept in {}", keep.display());
            }
        }
    }
}

/// Runs the binary with `args`, failing the test if it is still running after
/// `within` (a daemon that should have refused to start). Returns the exit
/// code and stderr.
pub fn run_bounded(args: &[&str], within: Duration) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let err_path = dir.path().join("stderr");
    let err_file = fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .expect("run closeout");
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let err = fs::read_to_string(&err_path).unwrap_or_default();
            return (st.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "closeout {args:?} still running after {within:?}: {}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
