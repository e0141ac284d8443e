//! Webhook notifications end to end: the real daemon against a real
//! `closeout sim`, and a webhook receiver on loopback (axum, in the test).
//! A gate, a pause, a rollback, a failure and the batch's end each reach the
//! receiver once, also when it refused connections for a while (the sagas
//! went on meanwhile), and a SIGKILL after a gate opened re-sends after the
//! restart. The deliveries are recorded and appear in `audit --format jsonl`.

mod support;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{state_of, wait_status, ConfigOpts, Daemon, Env, Sim};

/// A webhook receiver on a loopback port that can be down (nothing
/// listening: connections refused) or up.
struct Receiver {
    /// The port it listens on when up.
    port: u16,
    /// Every message received: (Idempotency-Key header, body).
    got: Arc<Mutex<Vec<(String, Value)>>>,
    /// Runs the server.
    rt: tokio::runtime::Runtime,
    /// The server task while up.
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Reserves a port and stays down.
    fn down() -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("reserve a port")
            .port();
        Receiver {
            port,
            got: Arc::default(),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime"),
            server: None,
        }
    }

    /// Starts listening on the reserved port.
    fn up(&mut self) {
        let got = Arc::clone(&self.got);
        let port = self.port;
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("listen on the reserved port");
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                    let got = Arc::clone(&got);
                    async move {
                        let key = headers
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        got.lock().unwrap().push((key, body));
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        self.server = Some(self.rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// The URL for the config, with a token in the query that must never be
    /// recorded.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook?token=SECRET-TOKEN", self.port)
    }

    fn messages(&self) -> Vec<(String, Value)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done(messages)`; panics with what came otherwise.
    fn wait(&self, within: Duration, what: &str, done: impl Fn(&[(String, Value)]) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if done(&self.messages()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {what} within {within:?}; got {:#?}", self.messages());
    }
}

fn config(receiver: &Receiver) -> ConfigOpts {
    ConfigOpts {
        extra: format!(
            "[notify]\nwebhooks = [\"{}\"]\ntimeout = \"1s\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n",
            receiver.url()
        ),
        ..Default::default()
    }
}

/// The kinds received for `saga`, in order.
fn kinds(got: &[(String, Value)], saga: &str) -> Vec<String> {
    got.iter()
        .filter(|(_, m)| m["saga_id"] == saga)
        .map(|(_, m)| m["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn gates_pauses_rollbacks_and_failures_reach_a_webhook_that_was_down() {
    // Three direct-billed tenants: 0's last user cannot be deleted (step 1
    // fails for good: rolled back), 1 waits at the step 2 gate, 2's keep
    // list names nobody (fails before any change).
    let sim = Sim::start(&[
        "--generate",
        "tenants=3,users=8,admins=2,restricted=1,direct=1",
        "--seed",
        "11",
    ]);
    let mut tenants = sim.tenants();
    tenants[2]["keep"] = json!(["nobody@nowhere.example"]);
    let mut receiver = Receiver::down();
    let env = Env::new(&sim, config(&receiver));
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    let (rolled, gated, failed) = (&sagas[0].0, &sagas[1].0, &sagas[2].0);

    // The receiver refuses connections: the sagas go on regardless.
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the gate, the rollback and the failure",
        |rows| {
            state_of(rows, rolled) == "rolled_back"
                && state_of(rows, failed) == "failed"
                && rows
                    .iter()
                    .any(|r| r["saga_id"] == *gated && r["state"] == "waiting" && r["step"] == 2)
        },
    );
    assert!(receiver.messages().is_empty());

    // What the person must do, item by item.
    let row = rows.iter().find(|r| r["saga_id"] == *gated).unwrap();
    let required = &row["action_required"];
    assert_eq!(required["where"], closeout::saga::ADMIN_CENTER, "{row}");
    let subs = required["subscriptions"].as_array().expect("subscriptions");
    assert!(!subs.is_empty(), "{row}");
    assert!(
        subs.iter()
            .all(|s| s["action"] == "cancel" && s["id"].is_string() && s["sku"].is_string()),
        "{row}"
    );
    let table = env.cli("status", &[]);
    let table = String::from_utf8_lossy(&table.stdout);
    let first = subs[0]["id"].as_str().unwrap();
    assert!(
        table.contains("action required: cancel") && table.contains(first),
        "{table}"
    );
    let done_row = rows.iter().find(|r| r["saga_id"] == *rolled).unwrap();
    assert!(done_row.get("action_required").is_none(), "{done_row}");

    // The receiver comes up: what was owed arrives.
    receiver.up();
    receiver.wait(
        Duration::from_secs(20),
        "gate, rollback and failure",
        |got| {
            kinds(got, gated) == ["gate_opened"]
                && kinds(got, rolled) == ["rolled_back"]
                && kinds(got, failed) == ["failed"]
        },
    );

    // A pause, then an abort: the gated saga rolls back, and the batch ends.
    let out = env.cli("pause", &[gated, "--reason", "checking with the customer"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    receiver.wait(Duration::from_secs(20), "the pause", |got| {
        kinds(got, gated).len() == 2
    });
    let out = env.cli("abort", &[gated, "--reason", "customer keeps the tenant"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    receiver.wait(Duration::from_secs(60), "the batch's end", |got| {
        got.iter().any(|(_, m)| m["kind"] == "batch_finished")
    });
    let got = receiver.messages();
    // The batch's end is told by the saga that ended last (the gated one).
    // Its end and the batch's are delivered concurrently: either may
    // arrive first.
    let mut told = kinds(&got, gated);
    assert_eq!(told.len(), 4, "{told:?}");
    told[2..].sort_unstable();
    assert_eq!(
        told,
        ["gate_opened", "paused", "batch_finished", "rolled_back"]
    );
    let batch_ends: Vec<&Value> = got
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m["kind"] == "batch_finished")
        .collect();
    assert_eq!(batch_ends.len(), 1, "{got:#?}");
    let head = batch_ends[0]["log_head"].as_str().unwrap_or("");
    assert!(
        head.len() == 64 && head.bytes().all(|b| b.is_ascii_hexdigit()),
        "the batch's end carries the log head as an anchor: {got:#?}"
    );
    assert!(
        batch_ends[0]["summary"]
            .as_str()
            .unwrap()
            .contains("0 completed, 2 rolled back, 1 failed"),
        "{got:#?}"
    );

    // Each message: its header is its id, ids are unique, the fields are there.
    let mut ids: Vec<&str> = got.iter().map(|(_, m)| m["id"].as_str().unwrap()).collect();
    for (key, m) in &got {
        assert_eq!(key, m["id"].as_str().unwrap());
        assert!(m["tenant_id"].is_string() && m["action"].is_string(), "{m}");
        let summary = m["summary"].as_str().unwrap();
        assert!(
            !summary.contains("://") && summary.contains(m["saga_id"].as_str().unwrap()),
            "{m}"
        );
    }
    let gate = got
        .iter()
        .map(|(_, m)| m)
        .find(|m| m["kind"] == "gate_opened")
        .unwrap();
    eprintln!("sample notification: {gate:#}");
    assert_eq!(gate["step"], 2);
    assert!(
        gate["action_required"]["subscriptions"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{gate}"
    );
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        got.len(),
        "a message was delivered twice: {got:#?}"
    );

    // Every delivery is recorded (index and host, never the URL's token).
    let out = env.cli("audit", &["--format", "jsonl"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let audit = String::from_utf8_lossy(&out.stdout);
    let sent: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "notification_sent")
        .collect();
    assert_eq!(
        sent.len(),
        got.len(),
        "one notification_sent per message:\n{audit}"
    );
    assert!(!audit.contains("notification_abandoned"));
    assert!(!audit.contains("SECRET-TOKEN"));
    let text = env.cli("audit", &["--format", "text"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("sent to webhook 0 (127.0.0.1)"), "{text}");
    // The HTML report (timelines and changes) reads past the new events.
    let html = env.cli("audit", &["--format", "html"]);
    assert!(html.status.success(), "{}", support::stderr(&html));
    let html = String::from_utf8_lossy(&html.stdout);
    assert!(html.contains(gated.as_str()) && !html.contains("SECRET-TOKEN"));
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(
        !log.contains("SECRET-TOKEN"),
        "the webhook's token reached the log"
    );
}

#[test]
fn a_gate_opened_before_a_sigkill_is_notified_after_the_restart() {
    let sim = Sim::start(&["--generate", "tenants=1,users=6,direct=1", "--seed", "12"]);
    let tenants = sim.tenants();
    let mut receiver = Receiver::down();
    let env = Env::new(&sim, config(&receiver));
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    let saga = env.submit(&batch)[0].0.clone();
    wait_status(&env, &daemon, Duration::from_secs(60), "the gate", |rows| {
        rows.iter()
            .any(|r| r["saga_id"] == saga && r["state"] == "waiting" && r["step"] == 2)
    });
    daemon.kill();
    assert!(receiver.messages().is_empty());

    receiver.up();
    let daemon = Daemon::start(&env);
    receiver.wait(
        Duration::from_secs(20),
        "the gate after the restart",
        |got| kinds(got, &saga) == ["gate_opened"],
    );
    let id = receiver.messages()[0].1["id"].as_str().unwrap().to_string();
    assert_eq!(id, format!("{saga}/0"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = env.cli("audit", &["--format", "jsonl", "--saga", &saga]);
        let audit = String::from_utf8_lossy(&out.stdout).into_owned();
        if audit.contains("notification_sent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no notification_sent recorded:\n{audit}\n{}",
            daemon.tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_saga_snapshotted_before_notifications_existed_is_replayed_from_its_events() {
    // A data dir written before state version 2: a failed saga whose
    // snapshot has version 1. The daemon replays its events instead of
    // refusing to start, and owes the failure's notification.
    use closeout::model::{SagaId, SecretSource, SubscriptionMode, TenantSpec, Timestamp};
    use closeout::saga::{Event, SagaPolicy};
    let sim = Sim::start(&["--generate", "tenants=1,users=3", "--seed", "13"]);
    let mut receiver = Receiver::down();
    receiver.up();
    let env = Env::new(&sim, config(&receiver));
    let saga = SagaId("old-saga".into());
    let events = [
        Event::SagaStarted {
            saga_id: saga.clone(),
            spec: TenantSpec {
                tenant_id: "old-tenant".into(),
                client_id: "c".into(),
                secret: SecretSource::File(env.path("gone")),
                keep: vec!["admin@old".into()],
                subscriptions: SubscriptionMode::Manual,
            },
            policy: SagaPolicy::default(),
            at: Timestamp(1_764_000_000_000),
            submitted_by: "op".into(),
        },
        Event::SagaFailed {
            reason: "keep list names nobody".into(),
        },
    ];
    {
        let store = closeout::store::Store::open(&env.data_dir).expect("open the store");
        let payloads = events.iter().map(|e| e.encode().unwrap()).collect();
        // Version 1 bytes the new state cannot decode.
        let old = closeout::codec::encode_versioned(1, &("an old", "state")).unwrap();
        let snapshot = closeout::store::Snapshot {
            state: old,
            terminal: true,
            label: "old-tenant".into(),
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            (store
                .append(&saga, closeout::store::FIRST_SEQ, payloads, Some(snapshot))
                .await)
                .expect("append");
            store.close().await.expect("close");
        });
    }
    let daemon = Daemon::start(&env);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(20),
        "the old saga",
        |rows| state_of(rows, "old-saga") == "failed",
    );
    assert_eq!(rows.len(), 1);
    receiver.wait(Duration::from_secs(20), "the old saga's failure", |got| {
        kinds(got, "old-saga") == ["failed"]
    });
}
