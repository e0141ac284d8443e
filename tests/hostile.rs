//! The hostile catalogue: a broken or malicious server, a neighbour on the
//! same machine, and tenant-controlled names, each against what closeout
//! must hold. Loopback only, every wait bounded.
//!
//! - a redirect from login or Graph never carries the secret or the token
//!   to the host it names (the call fails `redirect_refused`);
//! - a 500 MB body and an endless chain of `@odata.nextLink`s end in clear
//!   errors, with the process's peak RSS under 300 MB;
//! - a flood of idle connections on the metrics port and the control socket
//!   leaves `status` and `status --health` working;
//! - a FIFO named as a secret is refused at once, without hanging the daemon
//!   or the saga already running; a 0644 secret is refused with `chmod 600`;
//! - an ESC byte or a newline in tenant names appears escaped in `plan`,
//!   `status` and the text audit, and csv formula cells are quoted;
//! - the data dir, its lock and the exports are private under `umask 000`;
//! - a data dir rolled back to an older copy fails `verify --expect-head`,
//!   and the HTML report carries the head it is checked against.

mod support;

use axum::body::Body;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use closeout::graph::{Client, ClientOptions, Endpoints};
use closeout::model::{FailureClass, Secret};
use closeout::ports::TenantApi;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{state_of, wait_status, Daemon, Env, Sim};

const SECRET: &str = "hostile-test-secret-value";
const TOKEN: &str = "hostile-test-token-value";

/// What a loopback server received: every request line and body.
type Seen = Arc<Mutex<Vec<String>>>;

/// Serves `handler` on a fresh loopback port; returns its base URL and what
/// it received.
async fn serve(
    handler: impl Fn(&Method, &Uri, &str) -> Response + Send + Sync + 'static,
) -> (url::Url, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let seen: Seen = Arc::default();
    let handler = Arc::new(handler);
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (seen, handler) = (s.clone(), handler.clone());
            async move {
                let body = String::from_utf8_lossy(&body).to_string();
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                seen.lock()
                    .unwrap()
                    .push(format!("{method} {uri} {auth} {body}"));
                handler(&method, &uri, &body)
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn token() -> Response {
    axum::Json(serde_json::json!({
        "token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN
    }))
    .into_response()
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [("location", to.to_string())],
    )
        .into_response()
}

fn client(base: &url::Url, tweak: impl FnOnce(&mut ClientOptions)) -> Client {
    let mut o = ClientOptions::default();
    tweak(&mut o);
    Client::new(Endpoints::all_at(base), o).unwrap()
}

/// A server that would gladly take whatever is sent to it (it answers like
/// the real services), named by `localhost` so that messages can tell it
/// from the first server.
async fn thief() -> (url::Url, Seen) {
    let (mut base, seen) = serve(|_, uri, _| {
        if uri.path().ends_with("/token") {
            token()
        } else {
            axum::Json(serde_json::json!({"value": []})).into_response()
        }
    })
    .await;
    base.set_host(Some("localhost")).unwrap();
    (base, seen)
}

#[tokio::test]
async fn a_redirect_from_login_never_carries_the_secret() {
    let (evil, stolen) = thief().await;
    let to = evil.join("/steal/oauth2/v2.0/token").unwrap().to_string();
    let (base, _) = serve(move |_, _, _| redirect(&to)).await;
    let t = client(&base, |_| {}).tenant("t1", "app", Secret::new(SECRET));
    let e = t.list_users().await.unwrap_err();
    assert_eq!(e.code, "redirect_refused", "{e:?}");
    assert_eq!(e.class, FailureClass::Permanent, "{e:?}");
    assert!(
        e.message.contains("localhost") && e.message.contains("127.0.0.1"),
        "the message names both hosts: {}",
        e.message
    );
    let stolen = stolen.lock().unwrap();
    assert!(
        stolen.is_empty(),
        "the redirect target received: {stolen:?}"
    );
}

#[tokio::test]
async fn a_redirect_from_graph_never_carries_the_token() {
    let (evil, stolen) = thief().await;
    let to = evil.join("/v1.0/users").unwrap().to_string();
    let (base, _) = serve(move |_, uri, _| {
        if uri.path().ends_with("/token") {
            token()
        } else {
            redirect(&to)
        }
    })
    .await;
    let t = client(&base, |_| {}).tenant("t1", "app", Secret::new(SECRET));
    let e = t.list_users().await.unwrap_err();
    assert_eq!(e.code, "redirect_refused", "{e:?}");
    assert!(e.message.contains("localhost"), "{}", e.message);
    let stolen = stolen.lock().unwrap();
    assert!(
        stolen.is_empty(),
        "the redirect target received: {stolen:?}"
    );
}

/// The process's peak resident set, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_500_mb_body_ends_in_a_clear_error_with_bounded_memory() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 500;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let (base, _) = serve(move |_, uri, _| {
        if uri.path().ends_with("/token") {
            return token();
        }
        // No Content-Length: the body streams until the reader stops.
        let counter = counter.clone();
        let chunks = futures::stream::iter(0..CHUNKS).map(move |_| {
            counter.fetch_add(CHUNK, Ordering::Relaxed);
            Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; CHUNK]))
        });
        (
            [("content-type", "application/json")],
            Body::from_stream(chunks),
        )
            .into_response()
    })
    .await;
    let t = client(&base, |o| o.request_timeout = Duration::from_secs(120)).tenant(
        "t1",
        "app",
        Secret::new(SECRET),
    );
    let e = t.list_users().await.unwrap_err();
    assert_eq!(e.code, "response_too_large", "{e:?}");
    assert_eq!(e.class, FailureClass::Permanent, "{e:?}");
    assert!(
        e.message.contains("max_response_bytes"),
        "the message names the limit: {}",
        e.message
    );
    let rss = peak_rss_mib();
    eprintln!(
        "peak RSS {rss} MiB after {} MiB sent",
        sent.load(Ordering::Relaxed) >> 20
    );
    assert!(rss < 300, "peak RSS {rss} MiB");
    assert!(
        sent.load(Ordering::Relaxed) < CHUNKS * CHUNK,
        "the whole body was read"
    );
}

use futures::StreamExt;

#[tokio::test]
async fn an_endless_chain_of_next_links_ends_in_a_clear_error() {
    let (graph, pages) = endless_pages().await;
    let t = client(&graph, |o| o.max_pages = 50).tenant("t1", "app", Secret::new(SECRET));
    let started = Instant::now();
    let e = t.list_users().await.unwrap_err();
    assert_eq!(e.code, "too_many_pages", "{e:?}");
    assert_eq!(e.class, FailureClass::Permanent, "{e:?}");
    assert!(e.message.contains("max_pages"), "{}", e.message);
    let pages = pages.load(Ordering::Relaxed);
    assert_eq!(pages, 50, "pages read");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A Graph whose every page of users links to a new next page.
async fn endless_pages() -> (url::Url, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let pages = Arc::new(AtomicUsize::new(0));
    let (count, link_base) = (pages.clone(), base.clone());
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let (count, link_base) = (count.clone(), link_base.clone());
        async move {
            if uri.path().ends_with("/token") {
                return token();
            }
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            axum::Json(serde_json::json!({
                "value": [],
                "@odata.nextLink": format!("{link_base}/v1.0/users?$skiptoken={n}"),
            }))
            .into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url::Url::parse(&base).unwrap(), pages)
}

/// Runs `closeout SUB --config CONFIG ARGS...`, failing the test if it is
/// still running after `within`. Returns the exit code, stdout and stderr.
fn cli_bounded(env: &Env, sub: &str, args: &[&str], within: Duration) -> (i32, String, String) {
    let out_path = env.path(&format!("{sub}.{}.out", std::process::id()));
    let err_path = env.path(&format!("{sub}.{}.err", std::process::id()));
    let mut child = Command::new(support::bin())
        .arg(sub)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run closeout");
    let deadline = Instant::now() + within;
    let code = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "closeout {sub} {args:?} still running after {within:?}: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (code, read(&out_path), read(&err_path))
}

/// A config for `sim` with `limits` added to its `[limits]` table.
fn env_with_limits(sim: &Sim, limits: &str, extra: &str) -> Env {
    let env = Env::new(
        sim,
        support::ConfigOpts {
            extra: extra.to_string(),
            ..Default::default()
        },
    );
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen("[limits]\n", &format!("[limits]\n{limits}\n"), 1);
    std::fs::write(&env.config, text).unwrap();
    env
}

fn metrics_addr(daemon: &Daemon) -> String {
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    log.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("serving metrics at http://")?;
            Some(rest.split('/').next()?.to_string())
        })
        .unwrap_or_else(|| panic!("no metrics address in the daemon's log\n{}", daemon.tail()))
}

fn sim_one_partner_tenant() -> Sim {
    Sim::start(&[
        "--generate",
        "tenants=2,users=5,direct=0",
        "--seed",
        "17",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ])
}

#[test]
fn a_connection_flood_leaves_status_and_health_working() {
    let sim = sim_one_partner_tenant();
    let env = env_with_limits(
        &sim,
        "max_connections = 16\nidle_timeout = \"60s\"",
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut daemon = Daemon::start(&env);
    // Fewer descriptors than the flood: without caps, accepting it all
    // exhausts them (as 600 metrics connections did under a default limit).
    let pid = daemon.child.id().to_string();
    let st = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=256:256"])
        .status()
        .expect("run prlimit");
    assert!(st.success(), "prlimit failed");
    let metrics = metrics_addr(&daemon);
    let socket = env.dir.path().join("control.sock");
    // The flood runs on its own thread: against a daemon without caps its
    // connects can block once the accept queue is full.
    let (tx, rx) = std::sync::mpsc::channel();
    let flooder = std::thread::spawn(move || {
        let mut held = Vec::new();
        let mut held_unix = Vec::new();
        let addr: std::net::SocketAddr = metrics.parse().unwrap();
        for _ in 0..600 {
            if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                held.push(s);
            }
        }
        for _ in 0..300 {
            if let Ok(s) = std::os::unix::net::UnixStream::connect(&socket) {
                held_unix.push(s);
            }
        }
        let _ = tx.send((held.len(), held_unix.len()));
        // Held open until the test ends.
        std::thread::park_timeout(Duration::from_secs(60));
        drop((held, held_unix));
    });
    let (tcp, unix) = rx.recv_timeout(Duration::from_secs(30)).unwrap_or((0, 0));
    eprintln!("flood: {tcp} metrics connections, {unix} control connections opened");
    let (code, out, err) = cli_bounded(&env, "status", &["--health"], Duration::from_secs(15));
    assert_eq!(code, 0, "status --health: {out}{err}\n{}", daemon.tail());
    assert!(out.contains("healthy"), "{out}");
    let (code, out, err) = cli_bounded(&env, "status", &["--json"], Duration::from_secs(15));
    assert_eq!(code, 0, "status: {out}{err}\n{}", daemon.tail());
    // A request line longer than any real command is answered with an
    // error, and the connection closed, without reading it all.
    let mut s =
        std::os::unix::net::UnixStream::connect(env.dir.path().join("control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&vec![b'x'; 3 << 20]);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.contains("request longer than"), "{answer:?}");
    // The metrics endpoint serves again once the flood is gone.
    flooder.thread().unpark();
    let _ = flooder.join();
    let addr: std::net::SocketAddr = metrics_addr(&daemon).parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        if body.contains("closeout_healthy") {
            break;
        }
        assert!(Instant::now() < deadline, "metrics never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );
    daemon.kill();
}

/// Writes a one-tenant batch for `t` whose secret is read from `secret`.
fn batch_with_secret(env: &Env, name: &str, t: &Value, secret: &Path) -> std::path::PathBuf {
    let path = env.path(name);
    std::fs::write(
        &path,
        format!(
            "[[tenant]]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\nkeep = {}\nsubscriptions = \"partner-center\"\n",
            t["tenant_id"].as_str().unwrap(),
            t["client_id"].as_str().unwrap(),
            secret.display(),
            t["keep"],
        ),
    )
    .unwrap();
    path
}

/// Submits `t` with its secret read from `secret` straight over the control
/// socket (past the CLI's own checks, as any client of the socket may);
/// returns the daemon's answer line.
fn raw_submit(env: &Env, t: &Value, secret: &Path) -> String {
    use closeout::model::{SecretSource, SubscriptionMode, TenantSpec};
    let request = closeout::runtime::control::Request::Submit {
        tenants: vec![TenantSpec {
            tenant_id: t["tenant_id"].as_str().unwrap().into(),
            client_id: t["client_id"].as_str().unwrap().into(),
            secret: SecretSource::File(secret.to_path_buf()),
            keep: serde_json::from_value(t["keep"].clone()).unwrap(),
            subscriptions: SubscriptionMode::PartnerCenter,
        }],
        finish_with: Vec::new(),
        domains: Vec::new(),
    };
    let mut line = serde_json::to_string(&request).unwrap();
    line.push('\n');
    let mut s =
        std::os::unix::net::UnixStream::connect(env.dir.path().join("control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while s
        .read(&mut byte)
        .unwrap_or_else(|e| panic!("no answer to a raw submit: {e}"))
        == 1
    {
        if byte[0] == b'\n' {
            break;
        }
        answer.push(byte[0]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_fifo_secret_is_refused_without_hanging_other_sagas() {
    let sim = sim_one_partner_tenant();
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let daemon = Daemon::start(&env);
    let running = env.write_batch("running.toml", &tenants[..1]);
    let saga = env.submit(&running)[0].0.clone();
    let fifo = env.path("fifo_secret");
    let st = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(st.success());
    let batch = batch_with_secret(&env, "fifo.toml", &tenants[1], &fifo);
    let (code, out, err) = cli_bounded(
        &env,
        "submit",
        &[batch.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "submit with a fifo secret: {out}{err}");
    assert!(
        err.contains("fifo_secret") && err.contains("not a regular file"),
        "the refusal names the file and why: {err}"
    );
    // The daemon's own check, past the CLI's: refused at once too.
    let answer = raw_submit(&env, &tenants[1], &fifo);
    assert!(
        answer.contains("fifo") && answer.contains("fifo_secret"),
        "the daemon's refusal names the file and why: {answer}"
    );
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the other saga to complete",
        |rows| state_of(rows, &saga) == "completed",
    );
    assert_eq!(rows.len(), 1, "only the first saga was started: {rows:?}");
}

#[test]
fn a_world_readable_secret_is_refused() {
    let sim = sim_one_partner_tenant();
    let t = sim.tenants()[0].clone();
    let env = Env::new(&sim, Default::default());
    let _daemon = Daemon::start(&env);
    let secret = env.path("loose_secret");
    support::write_secret(&secret, t["client_secret"].as_str().unwrap());
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let batch = batch_with_secret(&env, "loose.toml", &t, &secret);
    let (code, out, err) = cli_bounded(
        &env,
        "submit",
        &[batch.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "submit with a 0644 secret: {out}{err}");
    assert!(
        err.contains("loose_secret") && err.contains("chmod 600"),
        "the refusal names the file and the fix: {err}"
    );
    assert!(!err.contains(t["client_secret"].as_str().unwrap()));
    let answer = raw_submit(&env, &t, &secret);
    assert!(
        answer.contains("loose_secret") && answer.contains("chmod 600"),
        "the daemon's refusal names the file and the fix: {answer}"
    );
    let rows = env.status().unwrap();
    assert!(rows.is_empty(), "a saga was started: {rows:?}");
}

/// A direct-billing tenant whose names carry terminal escapes, line breaks
/// and a spreadsheet formula.
const HOSTILE_FIXTURE: &str = r#"
[[tenant]]
tenant_id = "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b"
domain = "evil.onmicrosoft.com"
client_id = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
client_secret = "evil-example-secret"
billing = "direct"
keep = ["admin@evil.onmicrosoft.com"]
security_defaults = false

[[tenant.user]]
id = "66666666-6666-4666-8666-666666666661"
upn = "admin@evil.onmicrosoft.com"
roles = ["global_administrator"]

[[tenant.user]]
id = "66666666-6666-4666-8666-666666666662"
upn = "mallory\u001b]0;pwned\u0007\u001b[2J@evil.onmicrosoft.com"
display_name = "Mallory\u001b[31m"

[[tenant.user]]
id = "66666666-6666-4666-8666-666666666663"
upn = "x\noperator root: abort (reason: forged)@evil.onmicrosoft.com"

[[tenant.user]]
id = "66666666-6666-4666-8666-666666666664"
upn = "=HYPERLINK(\"http://x\")@evil.onmicrosoft.com"

[[tenant.subscription]]
id = "e5e5e5e5-0000-4000-8000-000000000001"
commerce_id = "f5f5f5f5-0000-4000-8000-000000000001"
sku = "SKU\u001b[2J\nforged: all subscriptions cancelled"

[[tenant.ca_policy]]
id = "ca000000-0000-4000-8000-0000000000e1"
name = "MFA\u001b]2;retitled\u0007\nforged policy line"
state = "enabled"
mfa = true
"#;

/// No raw control character (but the line breaks between records), and no
/// line that a name started.
fn assert_neutral(what: &str, out: &str) {
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "{what} carries a raw control character:\n{out}"
    );
    for line in out.lines() {
        let l = line.trim_start();
        assert!(
            !l.starts_with("operator root")
                && !l.starts_with("forged")
                && !l.starts_with("(reason: forged)"),
            "{what} has a forged line {line:?}:\n{out}"
        );
    }
}

#[test]
fn escapes_and_newlines_in_names_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("hostile.toml");
    std::fs::write(&fixture, HOSTILE_FIXTURE).unwrap();
    let sim = Sim::start(&["--fixture", fixture.to_str().unwrap()]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);

    let (code, plan, err) = cli_bounded(
        &env,
        "plan",
        &[batch.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "plan: {plan}{err}");
    assert_neutral("plan", &plan);
    assert!(plan.contains("mallory\\x1b]0;pwned\\x07"), "plan:\n{plan}");
    assert!(plan.contains("x\\noperator root: abort"), "plan:\n{plan}");
    assert!(
        plan.contains("MFA\\x1b]2;retitled\\x07\\nforged policy line"),
        "plan:\n{plan}"
    );

    let daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the subscription gate",
        |rows| {
            rows.iter()
                .any(|r| r["saga_id"] == saga && !r["action_required"].is_null())
        },
    );
    let (code, status, err) = cli_bounded(&env, "status", &[], Duration::from_secs(15));
    assert_eq!(code, 0, "status: {status}{err}");
    assert_neutral("status", &status);
    assert!(
        status.contains("SKU\\x1b[2J\\nforged: all subscriptions cancelled"),
        "status:\n{status}"
    );

    let (code, audit, err) = cli_bounded(
        &env,
        "audit",
        &["--format", "text"],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "audit: {audit}{err}");
    assert_neutral("audit --format text", &audit);
    assert!(
        audit.contains("SKU\\x1b[2J\\nforged: all subscriptions cancelled"),
        "audit:\n{audit}"
    );

    let (code, csv, err) =
        cli_bounded(&env, "audit", &["--format", "csv"], Duration::from_secs(30));
    assert_eq!(code, 0, "audit csv: {csv}{err}");
    // The csv rows name objects by id; formula quoting of names is in the
    // unit tests of `closeout::escape`.
    assert_neutral("audit --format csv", &csv);
}

/// `closeout verify --data-dir DIR ARGS...`: exit code, stdout, stderr.
fn verify(env: &Env, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(support::bin())
        .arg("verify")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run closeout verify");
    let _ = env;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The head hash `verify` printed.
fn head_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("head: "))
        .and_then(|h| h.split_whitespace().next())
        .unwrap_or_else(|| panic!("no head in {out}"))
        .to_string()
}

/// Runs the daemon until the saga of `tenant` completes, then stops it.
fn close_one(env: &Env, name: &str, tenant: &Value) {
    let mut daemon = Daemon::start(env);
    let batch = env.write_batch(name, std::slice::from_ref(tenant));
    let saga = env.submit(&batch)[0].0.clone();
    wait_status(
        env,
        &daemon,
        Duration::from_secs(60),
        "the saga to complete",
        |rows| state_of(rows, &saga) == "completed",
    );
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
}

#[test]
fn a_rolled_back_data_dir_fails_verify_expect_head() {
    let sim = sim_one_partner_tenant();
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    close_one(&env, "first.toml", &tenants[0]);
    let (code, out, err) = verify(&env, &env.data_dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let old_head = head_of(&out);
    let old_copy = env.path("data-old");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&env.data_dir)
        .arg(&old_copy)
        .status()
        .unwrap();
    assert!(st.success());

    close_one(&env, "second.toml", &tenants[1]);
    let (code, out, err) = verify(&env, &env.data_dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let head = head_of(&out);
    assert_ne!(head, old_head);
    assert!(
        out.contains("head: ") && out.contains("(record "),
        "verify prints hash, record and time: {out}"
    );

    // The HTML report carries the same head.
    let out = Command::new(support::bin())
        .args(["audit", "--format", "html", "--data-dir"])
        .arg(&env.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8_lossy(&out.stdout);
    assert!(html.contains(&head), "the report names the head {head}");

    // The log grew from the older anchor: it holds it.
    let (code, out, err) = verify(&env, &env.data_dir, &["--expect-head", &old_head]);
    assert_eq!(code, 0, "the current log holds the older head: {out}{err}");

    // The older copy, put back in place of the data dir, verifies as a
    // sound chain on its own, but not against the anchor kept elsewhere.
    let (code, out, _) = verify(&env, &old_copy, &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = verify(&env, &old_copy, &["--expect-head", &head]);
    assert_eq!(code, 1, "a rolled-back log must fail: {out}{err}");
    assert!(
        err.contains("does not contain the expected head") && err.contains(&head),
        "{err}"
    );

    let (code, _, err) = verify(&env, &old_copy, &["--expect-head", "not-a-hash"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn the_data_dir_lock_and_exports_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let st = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" demo --tenants 1 --users 5 --no-faults --dir \"$1\"")
        .arg(support::bin())
        .arg(&demo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run closeout demo");
    assert!(st.success(), "demo failed");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data = demo.join("data");
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join(closeout::store::LOCK_FILE)), 0o600, "lock");
    assert_eq!(
        mode(&data.join(closeout::store::FORMAT_FILE)),
        0o600,
        "format file"
    );
    assert_eq!(mode(&demo.join("audit.html")), 0o600, "html export");
    assert_eq!(mode(&demo.join("audit.txt")), 0o600, "text export");
    for secret in std::fs::read_dir(demo.join("secrets")).unwrap() {
        assert_eq!(mode(&secret.unwrap().path()), 0o600, "secret");
    }
}

/// The usage reports answer with a redirect to a pre-authenticated
/// download: closeout follows it only to the documented host or the Graph
/// endpoint's own origin, and never with its token; a report redirected
/// anywhere else is recorded as unavailable, naming the host.
#[tokio::test]
async fn a_usage_report_download_is_followed_only_home_and_never_with_the_token() {
    let (evil, stolen) = thief().await;
    let to = evil.join("/data/download/elsewhere").unwrap().to_string();
    let (base, seen) = serve(move |_, uri, _| {
        let p = uri.path();
        if p.ends_with("/token") {
            token()
        } else if p.contains("getMailboxUsageDetail") {
            redirect(&to)
        } else if p.contains("getOneDriveUsageAccountDetail") {
            redirect("/data/download/home")
        } else if p.starts_with("/data/download/") {
            (
                StatusCode::OK,
                "Report Refresh Date,Owner Principal Name,File Count,Storage Used (Byte),Report Period\n\
                 2026-12-01,a@contoso.com,2,100,7\n",
            )
                .into_response()
        } else {
            axum::Json(serde_json::json!({"value": []})).into_response()
        }
    })
    .await;
    let t = client(&base, |_| {}).tenant("t1", "app", Secret::new(SECRET));
    let stake = t.data_at_stake().await.unwrap();
    let why = stake.mailbox.unavailable.clone().unwrap_or_default();
    assert!(
        why.contains("localhost") && why.contains("not followed"),
        "{why}"
    );
    assert_eq!(stake.onedrive.unavailable, None);
    assert_eq!((stake.onedrive.rows, stake.onedrive.total_bytes), (1, 100));
    assert!(
        stolen.lock().unwrap().is_empty(),
        "the redirect target received a request"
    );
    let seen = seen.lock().unwrap();
    let download = seen
        .iter()
        .find(|l| l.contains("/data/download/home"))
        .expect("the download was fetched");
    assert!(!download.contains(TOKEN), "sent with the token: {download}");
    assert!(seen
        .iter()
        .any(|l| l.contains("getOneDriveUsageAccountDetail") && l.contains(TOKEN)));
}
