//! The runtime under hostile or heavy load, end to end: the real daemon
//! against a real `closeout sim`, behind a loopback proxy (axum, in the test)
//! where the simulator cannot give the hostile answer (its token answers
//! carry `expires_in` = u64::MAX, throughout). A decades-long
//! `Retry-After` pauses the saga with the reason; a throttle wait never
//! keeps `pause` or SIGTERM from acting; a crash in a large step 1 leaves
//! at most one window of intents in doubt; and SIGTERM under a tight write
//! budget exits 0 within the stop grace.

mod support;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{state_of, store_events, wait_status, Daemon, Env, Sim};

/// A proxy in front of the simulator that answers `$batch` requests holding
/// a DELETE with 429 and a chosen `Retry-After`, while `retry_after` is set.
struct Proxy {
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// The `Retry-After` to answer DELETE batches with; `None`: pass them on.
    retry_after: Arc<Mutex<Option<String>>>,
    /// DELETE batches seen.
    deletes: Arc<AtomicUsize>,
    /// While set, DELETE batches are held (never answered) instead.
    hang: Arc<std::sync::atomic::AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    fn start(sim: &Sim, retry_after: &str) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let rule = Arc::new(Mutex::new(Some(retry_after.to_string())));
        let deletes = Arc::new(AtomicUsize::new(0));
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (upstream, r, d, h) = (sim.url.clone(), rule.clone(), deletes.clone(), hang.clone());
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (upstream, rule, deletes, client, hang) =
                    (upstream.clone(), r.clone(), d.clone(), client.clone(), h.clone());
                async move {
                    let is_delete = uri.path() == "/v1.0/$batch"
                        && String::from_utf8_lossy(&body).contains("\"DELETE\"");
                    if is_delete {
                        deletes.fetch_add(1, Ordering::SeqCst);
                        if hang.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        let answer = rule.lock().unwrap().clone();
                        if let Some(ra) = answer {
                            return (
                                StatusCode::TOO_MANY_REQUESTS,
                                [("retry-after", ra), ("content-type", "application/json".into())],
                                r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#,
                            )
                                .into_response();
                        }
                    }
                    let token = uri.path().ends_with("/oauth2/v2.0/token");
                    let answer = forward(&client, &upstream, method, uri, headers, body).await;
                    if token {
                        return with_endless_token(answer).await;
                    }
                    answer
                }
            },
        );
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy {
            url,
            retry_after: rule,
            deletes,
            hang,
            _rt: rt,
        }
    }
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut req = client
        .request(method, format!("{upstream}{path}"))
        .body(body);
    for (k, v) in &headers {
        if !matches!(k.as_str(), "host" | "content-length") {
            req = req.header(k.as_str(), v.as_bytes());
        }
    }
    let Ok(resp) = req.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
                axum::http::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                out.insert(k, v);
            }
        }
    }
    let body = resp.bytes().await.unwrap_or_default();
    (status, out, body).into_response()
}

/// A token answer whose `expires_in` is the largest number JSON can carry
/// in a u64: far beyond what any clock can add.
async fn with_endless_token(answer: Response) -> Response {
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    if json.get("expires_in").is_some() {
        json["expires_in"] = Value::from(u64::MAX);
    }
    let mut answer = axum::Json(json).into_response();
    *answer.status_mut() = parts.status;
    answer
}

/// An env whose config points at `proxy` instead of the simulator.
fn env_behind(sim: &Sim, proxy: &Proxy) -> Env {
    let env = Env::new(sim, Default::default());
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace(&sim.url, &proxy.url)).unwrap();
    env
}

fn last_error(rows: &[Value], saga: &str) -> String {
    (rows.iter().find(|r| r["saga_id"] == saga))
        .and_then(|r| r["last_error"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Runs `closeout SUB --config CONFIG ARGS...`; panics if it takes more
/// than 10 s (a hung command fails the test instead of hanging it).
fn bounded(env: &Env, sub: &str, args: &[&str]) -> (i32, String) {
    let config = env.config.to_str().unwrap();
    let mut all = vec![sub, "--config", config];
    all.extend_from_slice(args);
    support::run_bounded(&all, Duration::from_secs(10))
}

#[test]
fn a_decades_long_retry_after_pauses_the_saga_and_every_command_still_acts() {
    let sim = Sim::start(&["--generate", "tenants=1,users=30", "--seed", "51"]);
    let proxy = Proxy::start(&sim, "1000000000");
    let env = env_behind(&sim, &proxy);
    let batch = env.write_batch("batch.toml", &sim.tenants());
    let mut daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();

    // Paused with the reason, instead of sleeping for 31 years.
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the saga paused",
        |rows| state_of(rows, &saga) == "paused",
    );
    let error = last_error(&rows, &saga);
    assert!(error.contains("max_retry_after"), "{error}");

    // Resume: the saga reads what is in doubt, sends again, meets the same
    // answer and pauses again; pause and resume answer within seconds.
    let before = proxy.deletes.load(Ordering::SeqCst);
    let asked = Instant::now();
    let out = env.cli("resume", &[&saga]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "paused again",
        |rows| state_of(rows, &saga) == "paused" && proxy.deletes.load(Ordering::SeqCst) > before,
    );
    // Already paused: answered (refused), not hung.
    let (code, err) = bounded(&env, "pause", &[&saga]);
    assert_ne!(code, 0, "{err}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "commands took {:?}",
        asked.elapsed()
    );
    // No hot loop: one attempt (its two DELETE batches) per resume.
    assert!(
        proxy.deletes.load(Ordering::SeqCst) <= 4,
        "{}",
        proxy.deletes.load(Ordering::SeqCst)
    );

    let asked = Instant::now();
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        daemon.tail()
    );
    assert!(asked.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_throttle_wait_is_ended_by_pause_and_by_sigterm() {
    let sim = Sim::start(&["--generate", "tenants=1,users=30", "--seed", "52"]);
    // Thirty minutes: within max_retry_after (1h), so honoured exactly.
    let proxy = Proxy::start(&sim, "1800");
    let env = env_behind(&sim, &proxy);
    let batch = env.write_batch("batch.toml", &sim.tenants());
    let mut daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    // The first DELETE batch is throttled; the saga schedules its retry.
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "a throttled delete",
        |rows| {
            proxy.deletes.load(Ordering::SeqCst) >= 1
                && last_error(rows, &saga).contains("TooManyRequests")
        },
    );
    assert_eq!(state_of(&env.status().unwrap(), &saga), "running");
    let sent = proxy.deletes.load(Ordering::SeqCst);
    // Pause, then resume: the saga reads the users back and sends its
    // deletes again, which now wait for the tenant's write gate (30 min).
    let out = env.cli("pause", &[&saga]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let out = env.cli("resume", &[&saga]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    std::thread::sleep(Duration::from_secs(2));
    // Pause answers within seconds although calls wait for the gate.
    let asked = Instant::now();
    let (code, err) = bounded(&env, "pause", &[&saga, "--reason", "enough"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "pause took {:?}",
        asked.elapsed()
    );
    wait_status(&env, &daemon, Duration::from_secs(10), "paused", |rows| {
        state_of(rows, &saga) == "paused"
    });
    assert_eq!(
        proxy.deletes.load(Ordering::SeqCst),
        sent,
        "nothing sent past the gate"
    );
    let out = env.cli("resume", &[&saga]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    std::thread::sleep(Duration::from_secs(2));
    let asked = Instant::now();
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        daemon.tail()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        asked.elapsed()
    );
    let _ = proxy.retry_after.lock().unwrap().take();
}

#[test]
fn a_large_throttled_step_one_leaves_one_window_in_doubt_and_stops_within_the_grace() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=3,users=3000",
        "--seed",
        "53",
        "--write-limit",
        "600/30s",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    env.submit(&batch);
    let busy = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["step"] == 1 && r["progress"]["done"].as_u64().unwrap_or(0) > 0)
            .count()
            == 3
    };
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(120),
        "step 1 under way",
        busy,
    );

    // A crash mid-step: at most one window of intents per saga is in doubt.
    daemon.kill();
    drop(daemon);
    let window = closeout::saga::INTENT_WINDOW * closeout::saga::SagaPolicy::default().intent_size;
    for (id, events) in store_events(&env.data_dir) {
        let state = closeout::saga::fold(&events).expect("the events begin with saga_started");
        let doubt = state.in_doubt().len();
        assert!(
            doubt <= window,
            "saga {id}: {doubt} in doubt, window {window}"
        );
    }

    // Restarted, mid-step again, then SIGTERM: exit 0 within the grace.
    let mut daemon = Daemon::start(&env);
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(120),
        "step 1 under way again",
        busy,
    );
    std::thread::sleep(Duration::from_secs(3));
    let asked = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(25));
    let took = asked.elapsed();
    assert!(status.success(), "exit {status}\n{}", daemon.tail());
    eprintln!("stop under a write budget took {took:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    for (id, events) in store_events(&env.data_dir) {
        let state = closeout::saga::fold(&events).expect("the events begin with saga_started");
        let doubt = state.in_doubt().len();
        assert!(
            doubt <= window,
            "saga {id}: {doubt} in doubt, window {window}"
        );
    }
}

/// SIGTERM while requests are on the wire and never answered: they get the
/// stop grace, then are recorded in doubt; the daemon exits 0 at once after,
/// and the next start reads them back and finishes.
#[test]
fn requests_unanswered_within_the_stop_grace_are_recorded_in_doubt() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=30",
        "--seed",
        "54",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ]);
    let proxy = Proxy::start(&sim, "1");
    let _ = proxy.retry_after.lock().unwrap().take();
    proxy.hang.store(true, Ordering::SeqCst);
    let env = env_behind(&sim, &proxy);
    // A grace shorter than the request timeout (2s), so the grace ends first.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replace("[limits]\n", "[limits]\nstop_grace = \"500ms\"\n");
    std::fs::write(&env.config, text).unwrap();
    let batch = env.write_batch("batch.toml", &sim.tenants());
    let mut daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.deletes.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no delete sent\n{}",
            daemon.tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        daemon.tail()
    );
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(1800), "stop took {took:?}");
    drop(daemon);
    let events = store_events(&env.data_dir);
    let (_, events) = &events[0];
    let stopped = (events.iter())
        .filter(|e| {
            matches!(e, closeout::saga::Event::ChangeFailed { error, .. } if error.code == "stopped_in_flight")
        })
        .count();
    assert!(stopped > 0, "in-flight deletes recorded in doubt");
    let state = closeout::saga::fold(events).expect("the events begin with saga_started");
    assert_eq!(state.in_doubt().len(), stopped);

    // The next start resolves them by reading, and finishes.
    proxy.hang.store(false, Ordering::SeqCst);
    let daemon = Daemon::start(&env);
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the saga done",
        |rows| state_of(rows, &saga) == "completed",
    );
}

/// A token answer with `expires_in` = u64::MAX (no clock can add it) neither
/// panics nor stops the saga: the token is used, and the closure completes.
#[test]
fn an_endless_token_lifetime_is_clamped_and_the_saga_completes() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=10",
        "--seed",
        "55",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ]);
    let proxy = Proxy::start(&sim, "1");
    let _ = proxy.retry_after.lock().unwrap().take();
    let env = env_behind(&sim, &proxy);
    let batch = env.write_batch("batch.toml", &sim.tenants());
    let daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the saga done",
        |rows| state_of(rows, &saga) == "completed",
    );
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(!log.contains("panicked"), "{}", daemon.tail());
}
