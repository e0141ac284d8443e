//! Supervised saga tasks, end to end: the real daemon against a real
//! `closeout sim`, with a fault injected into one saga's task (debug builds
//! read `CLOSEOUT_INJECT_FAULT`). A task that panics leaves its saga paused
//! with the reason (recorded), `status --health` failing, and a
//! `saga_stopped` webhook; a task whose appends the log refuses shows its
//! saga `stopped`, keeps the tenant reserved, answers commands clearly, and
//! the next start runs it again. The other sagas go on meanwhile.

mod support;

use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{state_of, wait_status, ConfigOpts, Daemon, Env, Sim};

/// A webhook receiver on loopback: every message body it was sent.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = Arc::clone(&got);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let sink = Arc::clone(&sink);
                async move {
                    sink.lock().unwrap().push(body);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, got, _rt: rt }
    }

    fn config(&self) -> ConfigOpts {
        ConfigOpts {
            extra: format!(
                "[notify]\nwebhooks = [\"{}\"]\ntimeout = \"1s\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
                self.url
            ),
            ..Default::default()
        }
    }

    /// Waits for a message of `kind` about `saga`; returns it.
    fn wait(&self, saga: &str, kind: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let found = (self.got.lock().unwrap().iter())
                .find(|m| m["saga_id"] == saga && m["kind"] == kind)
                .cloned();
            if let Some(m) = found {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no {kind} message for {saga} within {within:?}; got {:#?}",
            self.got.lock().unwrap()
        );
    }
}

fn row<'a>(rows: &'a [Value], saga: &str) -> &'a Value {
    rows.iter().find(|r| r["saga_id"] == saga).unwrap()
}

/// The `closeout_saga_tasks_dead` sample of a scrape of the daemon's metrics.
fn tasks_dead(daemon: &Daemon) -> String {
    use std::io::{Read, Write};
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    let addr = (log.lines())
        .find_map(|l| {
            let (_, rest) = l.split_once("serving metrics at http://")?;
            Some(rest.split('/').next()?.to_string())
        })
        .expect("the metrics address in the log");
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    (buf.lines())
        .find(|l| l.starts_with("closeout_saga_tasks_dead "))
        .unwrap_or("closeout_saga_tasks_dead missing")
        .to_string()
}

fn health(env: &Env) -> (Option<i32>, String) {
    let out = env.cli("status", &["--health"]);
    (out.status.code(), support::stderr(&out))
}

#[test]
fn a_panicking_saga_task_pauses_its_saga_with_the_reason_and_says_so() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=2,users=12",
        "--seed",
        "41",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let victim = tenants[0]["tenant_id"].as_str().unwrap().to_string();
    let receiver = Receiver::start();
    let env = Env::new(&sim, receiver.config());
    let batch = env.write_batch("batch.toml", &tenants);
    let fault = format!("panic:{victim}");
    let daemon = Daemon::spawn_with(&env, &[("CLOSEOUT_INJECT_FAULT", &fault)]);
    let mut daemon = daemon;
    daemon.wait_for_message("READY=1", Duration::from_secs(20));
    let sagas = env.submit(&batch);
    let saga = (sagas.iter().find(|(_, t)| *t == victim))
        .map(|(s, _)| s.clone())
        .unwrap();

    // Noticed at once: paused, with the reason, not "running".
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the saga paused",
        |rows| state_of(rows, &saga) == "paused",
    );
    let error = row(&rows, &saga)["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        error.contains("saga task stopped") && error.contains("injected fault"),
        "{error}"
    );
    let (code, err) = health(&env);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&saga) && err.contains("panicked"), "{err}");
    assert_eq!(tasks_dead(&daemon), "closeout_saga_tasks_dead 1");
    let message = receiver.wait(&saga, "saga_stopped", Duration::from_secs(10));
    assert!(
        message["summary"]
            .as_str()
            .unwrap_or("")
            .contains("injected fault"),
        "{message}"
    );

    // The other saga went on meanwhile.
    let other = (sagas.iter().find(|(_, t)| *t != victim))
        .map(|(s, _)| s.clone())
        .unwrap();
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the other saga done",
        |rows| state_of(rows, &other) == "completed",
    );
    assert_eq!(state_of(&env.status().unwrap(), &saga), "paused");

    // The operator resumes it (the fault fires once): it finishes, and the
    // daemon is healthy again.
    let out = env.cli("resume", &[&saga, "--reason", "looked at it"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the saga done",
        |rows| state_of(rows, &saga) == "completed",
    );
    let (code, err) = health(&env);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(tasks_dead(&daemon), "closeout_saga_tasks_dead 0");
}

#[test]
fn a_saga_whose_appends_are_refused_shows_stopped_and_keeps_its_tenant() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=8",
        "--seed",
        "43",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let victim = tenants[0]["tenant_id"].as_str().unwrap().to_string();
    let receiver = Receiver::start();
    let env = Env::new(&sim, receiver.config());
    let batch = env.write_batch("batch.toml", &tenants);
    let fault = format!("refuse-all:{victim}");
    let mut daemon = Daemon::spawn_with(&env, &[("CLOSEOUT_INJECT_FAULT", &fault)]);
    daemon.wait_for_message("READY=1", Duration::from_secs(20));
    let sagas = env.submit(&batch);
    let saga = sagas[0].0.clone();

    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the saga stopped",
        |rows| state_of(rows, &saga) == "stopped",
    );
    let error = row(&rows, &saga)["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("refused"), "{error}");
    let (code, err) = health(&env);
    assert_eq!(code, Some(1), "{err}");
    receiver.wait(&saga, "saga_stopped", Duration::from_secs(10));
    // Commands answer at once, naming the state.
    let asked = Instant::now();
    let out = env.cli("pause", &[&saga]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("stopped"),
        "{}",
        support::stderr(&out)
    );
    assert!(asked.elapsed() < Duration::from_secs(5));
    // Never terminal: the tenant stays reserved.
    let out = env.cli("submit", &[batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));

    // A graceful stop still works, and the next start runs the saga again.
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(15)).success(),
        "{}",
        daemon.tail()
    );
    drop(daemon);
    let daemon = Daemon::start(&env);
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the saga done",
        |rows| state_of(rows, &saga) == "completed",
    );
    let (code, err) = health(&env);
    assert_eq!(code, Some(0), "{err}");
}
