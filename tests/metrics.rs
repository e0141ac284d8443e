//! The daemon's Prometheus endpoint, end to end: the real daemon closes the
//! tenants of a real `closeout sim` (with throttling and 5xx faults) while
//! `/metrics` is scraped; every family is present, the exposition passes a
//! strict check of the text format, and the values are those of the closure
//! (calls made, sagas completed, appends timed, gates and timers seen while
//! the sagas wait and gone once they end). Also: `[metrics] listen` refuses a
//! non-loopback address with file, line and key.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{all_terminal, wait_status, ConfigOpts, Daemon, Env, Sim};

/// A sample's labels in order.
type Labels = Vec<(String, String)>;

/// One parsed sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    /// The sample's name (`closeout_sagas`, `..._bucket`, ...).
    name: String,
    /// Its labels in order.
    labels: Labels,
    /// Its value.
    value: f64,
}

/// A checked exposition.
#[derive(Debug, Default)]
struct Exposition {
    /// Family name → type.
    types: HashMap<String, String>,
    /// Every sample.
    samples: Vec<Sample>,
}

impl Exposition {
    /// The sum of the samples named `name` whose labels include `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .sum()
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{k="v",...}` strictly (escapes `\\`, `\"`, `\n`); returns the
/// labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let (key, r) = rest.split_once("=\"").ok_or("expected key=\"")?;
        if !valid_name(key) || key.starts_with("__") {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.iter().any(|(k, _)| k == key) {
            return Err(format!("duplicate label {key}"));
        }
        labels.push((key.to_string(), value));
        rest = &r[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Checks the Prometheus text format (0.0.4) line by line: HELP and TYPE
/// once per family and before its samples, valid names and labels, every
/// sample belonging to the family typed last, parseable values, no duplicate
/// series, and histograms whose buckets grow and end in `+Inf` = `_count`.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    let mut current: Option<(String, String)> = None;
    let mut series = HashSet::new();
    let mut helped = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !valid_name(name) || !helped.insert(name.to_string()) {
                return Err(bad("bad or repeated HELP".into()));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| bad("TYPE".into()))?;
            if !valid_name(name)
                || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                || exp
                    .types
                    .insert(name.to_string(), kind.to_string())
                    .is_some()
            {
                return Err(bad("bad or repeated TYPE".into()));
            }
            if !helped.contains(name) {
                return Err(bad("TYPE without HELP".into()));
            }
            current = Some((name.to_string(), kind.to_string()));
        } else if line.starts_with('#') || line.is_empty() {
            return Err(bad("unexpected comment or blank line".into()));
        } else {
            let split = line
                .find(['{', ' '])
                .ok_or_else(|| bad("no value".into()))?;
            let name = &line[..split];
            let (labels, rest) = if line[split..].starts_with('{') {
                parse_labels(&line[split..]).map_err(bad)?
            } else {
                (Vec::new(), &line[split..])
            };
            let value_text = rest
                .strip_prefix(' ')
                .ok_or_else(|| bad("no space before value".into()))?;
            let value: f64 = match value_text {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| bad("value".into()))?,
            };
            let (family, kind) = current
                .as_ref()
                .ok_or_else(|| bad("sample before TYPE".into()))?;
            let ok = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(family)),
                _ => name == family,
            };
            if !ok || !valid_name(name) {
                return Err(bad(format!("sample not of family {family}")));
            }
            if !series.insert(line[..line.len() - value_text.len()].to_string()) {
                return Err(bad("duplicate series".into()));
            }
            exp.samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
    }
    for (family, kind) in &exp.types {
        if kind != "histogram" {
            continue;
        }
        let buckets: Vec<&Sample> = exp
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
            .collect();
        let les: Vec<f64> = buckets
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .and_then(|(_, v)| {
                        if v == "+Inf" {
                            Some(f64::INFINITY)
                        } else {
                            v.parse().ok()
                        }
                    })
                    .ok_or(format!("{family}: bucket without le"))
            })
            .collect::<Result<_, _>>()?;
        if les.last() != Some(&f64::INFINITY) || les.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("{family}: buckets not increasing up to +Inf"));
        }
        if buckets.windows(2).any(|w| w[0].value > w[1].value) {
            return Err(format!("{family}: cumulative counts decrease"));
        }
        let count = exp.sum(&format!("{family}_count"), &[]);
        if buckets.last().map(|s| s.value) != Some(count) {
            return Err(format!("{family}: +Inf bucket is not _count"));
        }
    }
    Ok(exp)
}

/// `GET /metrics` (HTTP/1.0: the body ends at close); panics unless 200 with
/// the Prometheus text content type.
fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send the scrape");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read the scrape");
    let (head, body) = buf.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// The metrics address the daemon logged (`serving metrics at http://A/metrics`).
fn metrics_addr(daemon: &Daemon) -> String {
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    log.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("serving metrics at http://")?;
            Some(rest.split('/').next()?.to_string())
        })
        .unwrap_or_else(|| panic!("no metrics address in the daemon's log\n{}", daemon.tail()))
}

const FAMILIES: &[(&str, &str)] = &[
    ("closeout_sagas", "gauge"),
    ("closeout_operator_gates_open", "gauge"),
    ("closeout_timers_pending", "gauge"),
    ("closeout_saga_tasks_dead", "gauge"),
    ("closeout_graph_requests_total", "counter"),
    ("closeout_graph_batch_items_total", "counter"),
    ("closeout_graph_tenants", "gauge"),
    ("closeout_graph_throttled_total", "counter"),
    ("closeout_saga_retries_total", "counter"),
    ("closeout_in_doubt_resolved_total", "counter"),
    ("closeout_store_append_seconds", "histogram"),
    ("closeout_store_group_commit_size", "histogram"),
    ("closeout_healthy", "gauge"),
];

#[test]
fn metrics_during_and_after_a_closure() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=3,users=60,direct=0.5",
        "--seed",
        "11",
        "--auto-operator",
        "1s",
        "--deprovision-after",
        "1s",
        "--write-limit",
        "10/1s",
        "--error-rate",
        "0.1",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(
        &sim,
        ConfigOpts {
            extra: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
            ..Default::default()
        },
    );
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    let addr = metrics_addr(&daemon);

    let idle = parse(&scrape(&addr)).unwrap_or_else(|e| panic!("{e}"));
    // Labelled families whose labels come from what happens appear with
    // their first sample; the others are there from the start.
    let later = [
        "closeout_sagas",
        "closeout_graph_requests_total",
        "closeout_graph_batch_items_total",
    ];
    for (family, kind) in FAMILIES {
        let want = (!later.contains(family)).then_some(*kind);
        assert_eq!(
            idle.types.get(*family).map(String::as_str),
            want,
            "{family} before any saga"
        );
    }
    assert_eq!(idle.sum("closeout_sagas", &[]), 0.0);
    assert_eq!(idle.sum("closeout_healthy", &[]), 1.0);

    let sagas = env.submit(&batch);
    let n = sagas.len() as f64;
    assert_eq!(sagas.len(), tenants.len());

    // Scrape while the sagas run: every exposition is well formed, counts
    // every saga, and at some point shows sagas waiting at a gate and on timers.
    let (mut max_gates, mut max_timers, mut scrapes) = (0.0f64, 0.0f64, 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let exp = parse(&scrape(&addr)).unwrap_or_else(|e| panic!("{e}"));
        scrapes += 1;
        assert_eq!(exp.sum("closeout_sagas", &[]), n, "every saga counted");
        max_gates = max_gates.max(exp.sum("closeout_operator_gates_open", &[]));
        max_timers = max_timers.max(exp.sum("closeout_timers_pending", &[]));
        if exp.sum("closeout_sagas", &[("state", "completed")])
            + exp.sum("closeout_sagas", &[("state", "failed")])
            + exp.sum("closeout_sagas", &[("state", "rolled_back")])
            == n
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sagas not done in 90s\n{}",
            daemon.tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(10),
        "every saga terminal",
        all_terminal,
    );
    assert!(rows.iter().all(|r| r["state"] == "completed"), "{rows:?}");
    assert!(
        max_gates >= 1.0,
        "no open gate seen in {scrapes} scrapes (manual tenants wait 1s at each)"
    );
    assert!(
        max_timers >= 1.0,
        "no pending timer seen in {scrapes} scrapes"
    );

    let text = scrape(&addr);
    let done = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    for (family, kind) in FAMILIES {
        assert_eq!(
            done.types.get(*family).map(String::as_str),
            Some(*kind),
            "{family} missing or mistyped\n{text}"
        );
    }
    assert_eq!(
        done.sum("closeout_sagas", &[("state", "completed")]),
        n,
        "{text}"
    );
    assert!(
        done.samples
            .iter()
            .filter(|s| s.name == "closeout_sagas")
            .all(|s| s.labels.iter().any(|(k, v)| k == "step" && v != "0")),
        "completed sagas passed step 1\n{text}"
    );
    assert_eq!(done.sum("closeout_operator_gates_open", &[]), 0.0, "{text}");
    assert_eq!(done.sum("closeout_timers_pending", &[]), 0.0, "{text}");
    let calls = done.sum("closeout_graph_requests_total", &[]);
    let ok = done.sum("closeout_graph_requests_total", &[("status_class", "2xx")]);
    assert!(
        ok > 0.0 && calls >= ok,
        "graph requests {calls}, 2xx {ok}\n{text}"
    );
    assert!(
        done.sum(
            "closeout_graph_batch_items_total",
            &[("method", "DELETE"), ("status_class", "2xx")]
        ) >= n,
        "user deletions in $batch\n{text}"
    );
    assert!(
        done.sum("closeout_graph_tenants", &[]) >= n,
        "tenants called\n{text}"
    );
    assert!(
        done.sum("closeout_graph_throttled_total", &[("status", "429")]) > 0.0,
        "the sim's write limit throttles\n{text}"
    );
    assert!(
        done.sum("closeout_saga_retries_total", &[]) > 0.0,
        "5xx faults cause retries\n{text}"
    );
    let appends = done.sum("closeout_store_append_seconds_count", &[]);
    assert!(appends >= 10.0 * n, "appends timed: {appends}\n{text}");
    assert!(done.sum("closeout_store_append_seconds_sum", &[]) > 0.0);
    let groups = done.sum("closeout_store_group_commit_size_count", &[]);
    assert_eq!(groups, appends, "one size per append\n{text}");
    assert!(done.sum("closeout_store_group_commit_size_sum", &[]) >= groups);
    assert_eq!(done.sum("closeout_healthy", &[]), 1.0);
    eprintln!("scrapes during the closure: {scrapes}; final scrape:\n{text}");

    daemon.signal("TERM");
    let st = daemon.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "daemon exited {st}\n{}", daemon.tail());
    assert!(
        TcpStream::connect(&addr).is_err(),
        "the endpoint is gone with the daemon"
    );
}

#[test]
fn other_paths_are_not_found() {
    let sim = Sim::start(&["--generate", "tenants=1,users=2"]);
    let env = Env::new(
        &sim,
        ConfigOpts {
            extra: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
            ..Default::default()
        },
    );
    let daemon = Daemon::start(&env);
    let addr = metrics_addr(&daemon);
    let mut s = TcpStream::connect(&addr).expect("connect");
    write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    assert!(
        buf.starts_with("HTTP/1.0 404") || buf.starts_with("HTTP/1.1 404"),
        "{buf}"
    );
}

/// `closeout status --config FILE` on a config with `body`: (exit, stderr).
fn check_config(body: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"d\"\ncontrol_socket = \"c.sock\"\n{body}"),
    )
    .expect("write config");
    let out = std::process::Command::new(support::bin())
        .args(["status", "--config"])
        .arg(&path)
        .output()
        .expect("run closeout");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn listen_must_be_loopback_unless_allowed() {
    let (code, err) = check_config("\n[metrics]\nlisten = \"0.0.0.0:9464\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:5: metrics.listen:"), "{err}");
    assert!(err.contains("not a loopback address"), "{err}");

    let (code, err) = check_config("[metrics]\nlisten = \"localhost:9464\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:4: metrics.listen:"), "{err}");

    let (code, err) = check_config("[metrics]\nlisten = \"127.0.0.1:9464\"\nport = 1\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:5: metrics.port:"), "{err}");

    // Valid configs get past validation: the failure is then the missing
    // daemon (exit 1).
    for ok in [
        "[metrics]\nlisten = \"127.0.0.1:9464\"\n",
        "[metrics]\nlisten = \"[::1]:9464\"\n",
        "[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_non_loopback = true\n",
        "[metrics]\n",
    ] {
        let (code, err) = check_config(ok);
        assert_eq!(code, 1, "{ok}: {err}");
        assert!(err.contains("no closeout daemon"), "{ok}: {err}");
    }
}

#[test]
fn a_taken_metrics_address_stops_the_daemon_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let sim = Sim::start(&["--generate", "tenants=1,users=2"]);
    let env = Env::new(
        &sim,
        ConfigOpts {
            extra: format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
            ..Default::default()
        },
    );
    let mut daemon = Daemon::spawn(&env);
    let st = daemon.wait_exit(Duration::from_secs(20));
    assert!(!st.success());
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(
        log.contains(&format!("cannot serve metrics on 127.0.0.1:{port}")),
        "{log}"
    );
    assert!(
        !env.path("control.sock").exists(),
        "the control socket is removed"
    );
}
