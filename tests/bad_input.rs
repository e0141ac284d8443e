//! The bad-input catalogue: each case gives the real binary one kind of bad
//! input — a config, a batch file, a Graph answer from a fake server, a
//! damaged or tampered log or export, wrong permissions, a full disk — and
//! states the exact exit status and a fragment of the message. No case may
//! panic (stderr never says "panicked") and none may lose data: the log the
//! damaged-log cases copy still verifies afterwards, and the cases that run
//! against a good log leave it verifying.
//!
//! Cases already covered elsewhere and counted in the catalogue's listing
//! (`CATALOGUED_ELSEWHERE`), not repeated here: tests/config_validation.rs,
//! tests/daemon_input.rs and tests/hostile.rs.

mod support;

use closeout::store::blocks;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The bad inputs of the other test files, counted in the catalogue.
const CATALOGUED_ELSEWHERE: &[&str] = &[
    "config_validation::malformed_toml (exit 2, \"string\")",
    "config_validation::unknown_config_key (exit 2, \"unknown field\")",
    "config_validation::bad_duration x3 (exit 2, \"duration\", \"invalid type\", \"longer than 0s\")",
    "config_validation::bad_policy_limit_level_and_url (exit 2)",
    "config_validation::inline_secret_in_config_is_refused_with_the_reason (exit 2)",
    "config_validation::missing_config_file (exit 2, the file name)",
    "config_validation::inline_secret_in_batch (exit 2)",
    "config_validation::both_secret_sources (exit 2)",
    "config_validation::no_secret_source (exit 2)",
    "config_validation::empty_keep (exit 2)",
    "config_validation::bad_subscription_mode (exit 2)",
    "config_validation::unknown_batch_key_duplicate_tenant_and_empty_batch x3 (exit 2)",
    "config_validation::missing_secret_file (exit 2)",
    "daemon_input::wrong_secret_fails_before_any_change (saga failed)",
    "daemon_input::unknown_tenant_fails_before_any_change (saga failed)",
    "daemon_input::keep_list_without_a_global_administrator_fails_before_any_change",
    "daemon_input::data_dir_held_by_another_daemon (exit 1, \"lock\")",
    "daemon_input::unwritable_data_dir",
    "config_validation::plain_http_endpoint_off_loopback_is_refused (exit 2, \"use https://\")",
    "hostile::a_redirect_from_login_never_carries_the_secret (redirect_refused)",
    "hostile::a_redirect_from_graph_never_carries_the_token (redirect_refused)",
    "hostile::a_500_mb_body_ends_in_a_clear_error_with_bounded_memory (response_too_large)",
    "hostile::an_endless_chain_of_next_links_ends_in_a_clear_error (too_many_pages)",
    "hostile::a_fifo_secret_is_refused_without_hanging_other_sagas (exit 2, \"fifo\")",
    "hostile::a_world_readable_secret_is_refused (exit 2, \"chmod 600\")",
    "hostile::escapes_and_newlines_in_names_are_shown_escaped",
    "hostile::a_rolled_back_data_dir_fails_verify_expect_head (exit 1)",
];

/// What a run of the binary gave.
struct Ran {
    /// Exit code (-1: killed by a signal).
    code: i32,
    /// stdout.
    out: String,
    /// stderr.
    err: String,
}

/// Runs the binary in `dir` with `args`, stdout to `stdout` if given.
fn run_in(dir: &Path, args: &[&str], stdout: Option<fs::File>) -> Ran {
    let mut cmd = Command::new(support::bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("CLOSEOUT_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null());
    let capture = stdout.is_none();
    if let Some(f) = stdout {
        cmd.stdout(f);
    }
    let o = cmd.output().expect("run closeout");
    Ran {
        code: o.status.code().unwrap_or(-1),
        out: if capture {
            String::from_utf8_lossy(&o.stdout).into_owned()
        } else {
            String::new()
        },
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The catalogue's bookkeeping: every case checked, failures collected so
/// one run shows them all.
#[derive(Default)]
struct Catalogue {
    /// Cases run.
    tried: usize,
    /// What went wrong.
    failures: Vec<String>,
}

impl Catalogue {
    /// Checks one case's exit code and message fragment, and that nothing
    /// panicked.
    fn check(&mut self, name: &str, ran: &Ran, code: i32, fragment: &str) {
        self.tried += 1;
        let all = format!("{}{}", ran.err, ran.out);
        if ran.code != code || !all.contains(fragment) || all.contains("panicked") {
            self.failures.push(format!(
                "{name}: expected exit {code} with {fragment:?}, got exit {}: {}",
                ran.code,
                all.chars().take(600).collect::<String>()
            ));
        }
    }

    fn finish(self, what: &str) {
        eprintln!("bad-input catalogue, {what}: {} cases tried", self.tried);
        assert!(
            self.failures.is_empty(),
            "{} of {} {what} cases failed:\n{}",
            self.failures.len(),
            self.tried,
            self.failures.join("\n")
        );
    }
}

const GOOD_CONFIG: &str = "data_dir = \"data\"\ncontrol_socket = \"control.sock\"\n";

/// A batch entry with a secret file `secret` (written, 0600).
fn tenant_entry(dir: &Path, extra: &str) -> String {
    support::write_secret(&dir.join("secret"), "hunter2");
    format!(
        "[[tenant]]\ntenant_id = \"a.onmicrosoft.com\"\nclient_id = \"c\"\n\
         client_secret_file = \"secret\"\nkeep = [\"admin@a.onmicrosoft.com\"]\n\
         subscriptions = \"manual\"\n{extra}\n"
    )
}

#[test]
fn configs_and_batch_files() {
    let mut cat = Catalogue::default();
    let config_case = |cat: &mut Catalogue, name: &str, body: &[u8], code: i32, fragment: &str| {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.toml"), body).unwrap();
        let ran = run_in(dir.path(), &["status", "--config", "bad.toml"], None);
        cat.check(name, &ran, code, fragment);
        assert!(!ran.err.contains("hunter2"), "{name}: secret echoed");
    };
    config_case(
        &mut cat,
        "config: data_dir of the wrong type",
        b"data_dir = 5\n",
        2,
        "bad.toml:1: data_dir",
    );
    config_case(
        &mut cat,
        "config: a table where a string goes",
        b"[data_dir]\nx = 1\n",
        2,
        "data_dir",
    );
    config_case(
        &mut cat,
        "config: duplicate key",
        b"data_dir = \"a\"\ndata_dir = \"b\"\n",
        2,
        "bad.toml:2",
    );
    config_case(
        &mut cat,
        "config: unterminated table header",
        b"[retry\n",
        2,
        "bad.toml:1",
    );
    config_case(
        &mut cat,
        "config: unknown top-level table",
        b"[cluster]\nnodes = 3\n",
        2,
        "unknown field",
    );
    config_case(
        &mut cat,
        "config: not UTF-8",
        b"data_dir = \"\xff\xfe\"\n",
        2,
        "bad.toml",
    );
    config_case(
        &mut cat,
        "config: retry multiplier a string",
        b"[retry]\nmultiplier = \"2\"\n",
        2,
        "retry.multiplier",
    );
    config_case(
        &mut cat,
        "config: jitter not a known mode",
        b"[retry]\njitter = \"some\"\n",
        2,
        "retry.jitter",
    );
    config_case(
        &mut cat,
        "config: negative duration",
        b"[limits]\nrequest_timeout = \"-5s\"\n",
        2,
        "limits.request_timeout",
    );
    config_case(
        &mut cat,
        "config: duration without a unit",
        b"[saga]\ngate_recheck = \"10\"\n",
        2,
        "saga.gate_recheck",
    );
    config_case(
        &mut cat,
        "config: endpoint not a URL",
        b"[endpoints]\ngraph = \"not a url\"\n",
        2,
        "endpoints.graph",
    );
    config_case(&mut cat, "config: NUL bytes", b"\0\0\0\0", 2, "bad.toml");
    {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bad.toml")).unwrap();
        let ran = run_in(dir.path(), &["status", "--config", "bad.toml"], None);
        cat.check("config: a directory", &ran, 2, "bad.toml");
    }

    let batch_case = |cat: &mut Catalogue,
                      name: &str,
                      body: &dyn Fn(&Path) -> String,
                      code: i32,
                      fragment: &str| {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("closeout.toml"), GOOD_CONFIG).unwrap();
        let text = body(dir.path());
        fs::write(dir.path().join("batch.toml"), text).unwrap();
        let ran = run_in(
            dir.path(),
            &["submit", "--config", "closeout.toml", "batch.toml"],
            None,
        );
        cat.check(name, &ran, code, fragment);
        assert!(!ran.err.contains("hunter2"), "{name}: secret echoed");
    };
    batch_case(
        &mut cat,
        "batch: keep a string, not a list",
        &|d| {
            tenant_entry(d, "").replace(
                "keep = [\"admin@a.onmicrosoft.com\"]",
                "keep = \"admin@a.onmicrosoft.com\"",
            )
        },
        2,
        "batch.toml:5: tenant[1].keep",
    );
    batch_case(
        &mut cat,
        "batch: empty tenant id",
        &|d| tenant_entry(d, "").replace("tenant_id = \"a.onmicrosoft.com\"", "tenant_id = \"\""),
        2,
        "tenant_id",
    );
    batch_case(
        &mut cat,
        "batch: subscriptions mode a number",
        &|d| tenant_entry(d, "").replace("subscriptions = \"manual\"", "subscriptions = 3"),
        2,
        "subscriptions",
    );
    batch_case(
        &mut cat,
        "batch: [tenant] a table, not an array",
        &|d| tenant_entry(d, "").replace("[[tenant]]", "[tenant]"),
        2,
        "batch.toml",
    );
    batch_case(
        &mut cat,
        "batch: binary garbage",
        &|_| "\u{1}\u{2}PK\u{3}\u{4}".to_string(),
        2,
        "batch.toml",
    );
    batch_case(
        &mut cat,
        "batch: keep of numbers",
        &|d| tenant_entry(d, "").replace("[\"admin@a.onmicrosoft.com\"]", "[1, 2]"),
        2,
        "tenant[1].keep",
    );
    batch_case(
        &mut cat,
        "batch: client_id missing",
        &|d| tenant_entry(d, "").replace("client_id = \"c\"\n", ""),
        2,
        "client_id",
    );
    batch_case(
        &mut cat,
        "batch: keep list of an empty string",
        &|d| tenant_entry(d, "").replace("[\"admin@a.onmicrosoft.com\"]", "[\"\"]"),
        2,
        "keep",
    );
    {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("closeout.toml"), GOOD_CONFIG).unwrap();
        let ran = run_in(
            dir.path(),
            &["submit", "--config", "closeout.toml", "nowhere.toml"],
            None,
        );
        cat.check("batch: missing file", &ran, 2, "nowhere.toml");
    }
    cat.finish("configs and batch files");
}

/// Runs the binary in `dir` with `args` and kills it past `within` (exit
/// -1, "killed" on stderr): a read that never ends is a failure, not a hang.
fn run_bounded(dir: &Path, args: &[&str], within: Duration) -> Ran {
    let out = dir.join(".bounded.out");
    let err = dir.join(".bounded.err");
    let mut child = Command::new(support::bin())
        .args(args)
        .current_dir(dir)
        .env_remove("CLOSEOUT_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("run closeout");
    let deadline = std::time::Instant::now() + within;
    let code = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut ran = Ran {
        code,
        out: fs::read_to_string(&out).unwrap_or_default(),
        err: fs::read_to_string(&err).unwrap_or_default(),
    };
    if code == -1 {
        ran.err
            .push_str(&format!("\n(killed: still running after {within:?})"));
    }
    ran
}

/// Config and batch files that are not regular files, or too large: each
/// refused at once (exit 2) naming the file, what it is and the cap, never
/// read without end (`/dev/zero`) nor waited on (a FIFO with no writer).
#[test]
fn unbounded_config_and_batch_files_are_refused_at_once() {
    let mut cat = Catalogue::default();
    let within = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("closeout.toml"), GOOD_CONFIG).unwrap();
    for fifo in ["fifo.toml", "fifo-batch.toml"] {
        let st = Command::new("mkfifo").arg(d.join(fifo)).status().unwrap();
        assert!(st.success());
    }
    fs::create_dir(d.join("dir.toml")).unwrap();
    // Comments only: valid TOML, just too much of it.
    let mut big = fs::File::create(d.join("big.toml")).unwrap();
    let line = format!("#{}\n", "x".repeat(1023));
    for _ in 0..(2 << 10) {
        big.write_all(line.as_bytes()).unwrap();
    }
    drop(big);
    let mut huge = fs::File::create(d.join("huge-batch.toml")).unwrap();
    huge.write_all(tenant_entry(d, "").as_bytes()).unwrap();
    for _ in 0..(17 << 10) {
        huge.write_all(line.as_bytes()).unwrap();
    }
    drop(huge);
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "config: /dev/zero",
            &["status", "--config", "/dev/zero"],
            "/dev/zero: is a character device, not a regular file: a config file",
        ),
        (
            "config: a FIFO with no writer",
            &["status", "--config", "fifo.toml"],
            "fifo.toml: is a FIFO (named pipe), not a regular file: a config file",
        ),
        (
            "config: larger than 1 MiB",
            &["status", "--config", "big.toml"],
            "big.toml: is larger than 1 MiB, the most a config file may be",
        ),
        (
            "batch: /dev/zero",
            &["plan", "--config", "closeout.toml", "/dev/zero"],
            "/dev/zero: is a character device, not a regular file: a batch file",
        ),
        (
            "batch: a FIFO with no writer",
            &["submit", "--config", "closeout.toml", "fifo-batch.toml"],
            "fifo-batch.toml: is a FIFO (named pipe), not a regular file: a batch file",
        ),
        (
            "batch: a directory",
            &["doctor", "--config", "closeout.toml", "dir.toml"],
            "dir.toml: is a directory, not a regular file: a batch file",
        ),
        (
            "batch: larger than 16 MiB",
            &["plan", "--config", "closeout.toml", "huge-batch.toml"],
            "huge-batch.toml: is larger than 16 MiB, the most a batch file may be",
        ),
    ];
    for (name, args, fragment) in cases {
        let ran = run_bounded(d, args, within);
        cat.check(name, &ran, 2, fragment);
    }
    cat.finish("unbounded files");
}

/// A fake Graph and login: the token endpoint answers, every path not
/// overridden answers a one-admin tenant, `bad` answers the overridden path
/// prefix with raw HTTP bytes.
struct Fake {
    /// `http://127.0.0.1:PORT`.
    url: String,
}

const ADMIN: &str = "11111111-1111-4111-8111-111111111111";

fn good_answer(path: &str) -> String {
    let body = if path.contains("/oauth2/v2.0/token") {
        r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#.to_string()
    } else if path.ends_with("/v2.0/.well-known/openid-configuration") {
        let t = "22222222-2222-4222-8222-222222222222";
        format!(
            r#"{{"issuer":"https://login.example/{t}/v2.0","token_endpoint":"https://login.example/{t}/oauth2/v2.0/token"}}"#
        )
    } else if path.starts_with("/v1.0/users") {
        format!(
            r#"{{"value":[{{"id":"{ADMIN}","userPrincipalName":"admin@a.onmicrosoft.com","accountEnabled":true,"userType":"Member"}}]}}"#
        )
    } else if path.contains("directoryRoles") {
        format!(r#"{{"value":[{{"id":"{ADMIN}"}}]}}"#)
    } else if path.contains("identitySecurityDefaultsEnforcementPolicy") {
        r#"{"isEnabled":false}"#.to_string()
    } else if path.contains("authentication/requirements") {
        r#"{"perUserMfaState":"disabled"}"#.to_string()
    } else {
        r#"{"value":[]}"#.to_string()
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Fake {
    fn start(prefix: &'static str, bad: Answer) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { return };
                let bad = bad.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let answer = if path.starts_with(prefix) {
                        bad()
                    } else {
                        good_answer(&path).into_bytes()
                    };
                    let _ = s.write_all(&answer);
                    let _ = s.flush();
                });
            }
        });
        Fake { url }
    }
}

/// A canned raw HTTP answer.
type Answer = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

fn raw(status: &str, ctype: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `closeout plan` of one manual tenant against a fake answering `prefix`
/// with `bad`.
fn plan_against(prefix: &'static str, bad: Answer) -> Ran {
    let fake = Fake::start(prefix, bad);
    let dir = tempfile::tempdir().unwrap();
    let url = &fake.url;
    fs::write(
        dir.path().join("closeout.toml"),
        format!(
            "{GOOD_CONFIG}[endpoints]\ngraph = \"{url}\"\nlogin = \"{url}\"\npartner_center = \"{url}\"\n\
             [retry]\ninitial_interval = \"10ms\"\nmax_interval = \"50ms\"\ngive_up_after = \"1s\"\n\
             [limits]\nconnect_timeout = \"1s\"\nrequest_timeout = \"2s\"\n"
        ),
    )
    .unwrap();
    let batch = tenant_entry(dir.path(), "");
    fs::write(dir.path().join("batch.toml"), batch).unwrap();
    run_in(
        dir.path(),
        &["plan", "--config", "closeout.toml", "batch.toml"],
        None,
    )
}

#[test]
fn graph_answers_from_a_fake_server() {
    let mut cat = Catalogue::default();
    // The fake itself: a good tenant plans fine (exit 0).
    let ran = plan_against("/nothing", Arc::new(Vec::new));
    cat.check("api: the good fake plans", &ran, 0, "a.onmicrosoft.com");
    let cases: Vec<(&str, &'static str, Answer, i32, &str)> = vec![
        (
            "api: truncated JSON",
            "/v1.0/users",
            Arc::new(|| raw("200 OK", "application/json", r#"{"value":[{"id":"1111"#)),
            1,
            "/v1.0/users",
        ),
        (
            "api: wrong types (value a string)",
            "/v1.0/users",
            Arc::new(|| raw("200 OK", "application/json", r#"{"value":"many"}"#)),
            1,
            "/v1.0/users",
        ),
        (
            "api: missing field (user without id)",
            "/v1.0/users",
            Arc::new(|| {
                raw(
                    "200 OK",
                    "application/json",
                    r#"{"value":[{"userPrincipalName":"x@a.onmicrosoft.com"}]}"#,
                )
            }),
            1,
            "/v1.0/users",
        ),
        (
            "api: a listing without its value array",
            "/v1.0/directory/subscriptions",
            Arc::new(|| raw("200 OK", "application/json", "{}")),
            1,
            "/v1.0/directory/subscriptions for tenant a.onmicrosoft.com answered with",
        ),
        (
            "api: HTML error page (502 from a proxy)",
            "/v1.0/users",
            Arc::new(|| {
                raw(
                    "502 Bad Gateway",
                    "text/html",
                    "<html><body><h1>502 Bad Gateway</h1></body></html>",
                )
            }),
            1,
            "502",
        ),
        (
            "api: HTML page with 200",
            "/v1.0/directoryRoles",
            Arc::new(|| raw("200 OK", "text/html", "<html>sign in</html>")),
            1,
            "directoryRoles",
        ),
        (
            "api: wrong content-type with JSON body",
            "/v1.0/directory/subscriptions",
            Arc::new(|| raw("200 OK", "text/plain", r#"{"value":[]}"#)),
            0,
            "a.onmicrosoft.com",
        ),
        (
            "api: huge page (16 MiB of users)",
            "/v1.0/users",
            Arc::new(|| {
                let mut body = String::from("{\"value\":[");
                body.push_str(&format!(
                    r#"{{"id":"{ADMIN}","userPrincipalName":"admin@a.onmicrosoft.com"}},"#
                ));
                let one = r#"{"id":"22222222-2222-4222-8222-222222222222","userPrincipalName":"u@a.onmicrosoft.com"},"#;
                while body.len() < 16 << 20 {
                    body.push_str(one);
                }
                body.pop();
                body.push_str("]}");
                raw("200 OK", "application/json", &body)
            }),
            0,
            "a.onmicrosoft.com",
        ),
        (
            "api: next link to a foreign host",
            "/v1.0/applications",
            Arc::new(|| {
                raw(
                    "200 OK",
                    "application/json",
                    r#"{"value":[],"@odata.nextLink":"http://evil.example/v1.0/applications?page=2"}"#,
                )
            }),
            1,
            "applications",
        ),
        (
            "api: security defaults body empty",
            "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy",
            Arc::new(|| raw("200 OK", "application/json", "")),
            1,
            "identitySecurityDefaultsEnforcementPolicy",
        ),
        (
            "api: token answer without access_token",
            "/a.onmicrosoft.com/oauth2",
            Arc::new(|| raw("200 OK", "application/json", r#"{"token_type":"Bearer"}"#)),
            1,
            "token",
        ),
        (
            "api: connection closed without an answer",
            "/v1.0/users",
            Arc::new(Vec::new),
            1,
            "/v1.0/users",
        ),
        (
            "api: garbage instead of HTTP",
            "/v1.0/users",
            Arc::new(|| b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
            1,
            "/v1.0/users",
        ),
    ];
    for (name, prefix, bad, code, fragment) in cases {
        let ran = plan_against(prefix, bad);
        cat.check(name, &ran, code, fragment);
    }
    cat.finish("Graph answers");
}

/// A data dir with a real closure of one small tenant (the daemon stopped).
fn closed_log() -> (support::Sim, support::Env) {
    let sim = support::Sim::start(&[
        "--generate",
        "tenants=1,users=6",
        "--seed",
        "3",
        "--auto-operator",
        "50ms",
        "--deprovision-after",
        "100ms",
    ]);
    let env = support::Env::new(&sim, Default::default());
    let tenants = sim.tenants();
    let batch = env.write_batch("batch.toml", &tenants);
    let mut d = support::Daemon::start(&env);
    env.submit(&batch);
    support::wait_status(
        &env,
        &d,
        Duration::from_secs(60),
        "the closure",
        support::all_terminal,
    );
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success());
    (sim, env)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of `data` in a fresh temp dir, tampered with through sled.
fn tampered(data: &Path, tamper: impl FnOnce(&sled::Db)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("data");
    copy_dir(data, &copy);
    {
        let db = closeout::store::open_sled(&copy.join(closeout::store::SLED_DIR), None).unwrap();
        tamper(&db);
        db.flush().unwrap();
    }
    (tmp, copy)
}

fn verify_dir(dir: &Path) -> Ran {
    run_in(
        Path::new("/"),
        &["verify", "--data-dir", dir.to_str().unwrap()],
        None,
    )
}

#[test]
fn damaged_logs_exports_permissions_and_a_full_disk() {
    let mut cat = Catalogue::default();
    let (_sim, env) = closed_log();
    let data = env.data_dir.clone();
    assert_eq!(verify_dir(&data).code, 0, "the fresh log verifies");

    // The log.
    let (_t, d) = tampered(&data, |db| {
        let mut v = blocks::get_record(db, 3).unwrap().unwrap();
        let n = v.len() / 2;
        v[n] ^= 0x20;
        assert!(blocks::put_record(db, 3, &v).unwrap());
    });
    cat.check(
        "log: a changed byte in record 3",
        &verify_dir(&d),
        1,
        "record 3",
    );
    let (_t, d) = tampered(&data, |db| {
        let (last, _) = blocks::last_record(db).unwrap().unwrap();
        assert!(blocks::remove_record(db, last).unwrap());
    });
    cat.check(
        "log: cut tail (last record removed)",
        &verify_dir(&d),
        1,
        "tail was cut",
    );
    let (_t, d) = tampered(&data, |db| {
        assert!(blocks::remove_record(db, 2).unwrap());
    });
    cat.check(
        "log: a record removed in the middle",
        &verify_dir(&d),
        1,
        "record 2",
    );
    let (_t, d) = tampered(&data, |db| {
        db.insert(closeout::store::layout::VERSION, &99u16.to_be_bytes())
            .unwrap();
    });
    cat.check("log: unknown format version", &verify_dir(&d), 1, "version");
    let (_t, d) = tampered(&data, |_| {});
    let audit = run_in(
        Path::new("/"),
        &["audit", "--data-dir", d.to_str().unwrap()],
        None,
    );
    cat.check("log: untampered copy audits", &audit, 0, "");
    {
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("data");
        copy_dir(&data, &copy);
        fs::remove_dir_all(copy.join(closeout::store::SLED_DIR)).unwrap();
        cat.check(
            "log: the database removed (verify)",
            &verify_dir(&copy),
            1,
            "is missing",
        );
        let ran = run_in(
            Path::new("/"),
            &["audit", "--data-dir", copy.to_str().unwrap()],
            None,
        );
        cat.check("log: the database removed (audit)", &ran, 1, "is missing");
        assert!(
            !copy.join(closeout::store::SLED_DIR).exists(),
            "verify or audit created a database"
        );
    }
    {
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("data");
        copy_dir(&data, &copy);
        fs::remove_file(copy.join(closeout::store::FORMAT_FILE)).unwrap();
        cat.check(
            "log: the FORMAT file removed",
            &verify_dir(&copy),
            1,
            "FORMAT missing",
        );
    }
    {
        let ran = verify_dir(Path::new("/nonexistent/closeout-data"));
        cat.check(
            "log: the data dir does not exist",
            &ran,
            1,
            "/nonexistent/closeout-data",
        );
    }

    // The jsonl export.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("audit.jsonl");
    let d = data.to_str().unwrap();
    let ran = run_in(
        dir.path(),
        &[
            "audit",
            "--data-dir",
            d,
            "--format",
            "jsonl",
            "-o",
            "audit.jsonl",
        ],
        None,
    );
    assert_eq!(ran.code, 0, "{}", ran.err);
    let text = fs::read_to_string(&export).unwrap();
    let verify_export = |body: &str| {
        fs::write(dir.path().join("bad.jsonl"), body).unwrap();
        run_in(
            dir.path(),
            &["verify", "--data-dir", d, "--export", "bad.jsonl"],
            None,
        )
    };
    cat.check("export: untouched verifies", &verify_export(&text), 0, "");
    let changed = text.replacen("\"kind\":\"saga_started\"", "\"kind\":\"saga_startee\"", 1);
    assert_ne!(changed, text);
    cat.check(
        "export: a changed field",
        &verify_export(&changed),
        1,
        "line 1",
    );
    let cut = &text[..text.len() * 2 / 3];
    cat.check("export: cut mid-line", &verify_export(cut), 1, "line");
    let lines: Vec<&str> = text.lines().collect();
    // A line left out is a filtered export (accepted by design); a line
    // repeated is not.
    let mut repeated: Vec<&str> = lines.clone();
    repeated.insert(5, lines[4]);
    cat.check(
        "export: a line repeated",
        &verify_export(&repeated.join("\n")),
        1,
        "repeated",
    );
    {
        let ran = run_in(
            dir.path(),
            &["verify", "--data-dir", d, "--export", "gone.jsonl"],
            None,
        );
        cat.check("export: the file removed", &ran, 1, "gone.jsonl");
    }
    // A full disk: stdout and `-o` onto /dev/full.
    if Path::new("/dev/full").exists() {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let ran = run_in(
            dir.path(),
            &["audit", "--data-dir", d, "--format", "jsonl"],
            Some(full),
        );
        cat.check("disk full: audit to stdout on /dev/full", &ran, 1, "");
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let ran = run_in(
            dir.path(),
            &["audit", "--data-dir", d, "--format", "csv"],
            Some(full),
        );
        cat.check("disk full: csv audit on /dev/full", &ran, 1, "");
    }
    // Permissions: root reads anything, so these only apply to other users.
    let root = nix::unistd::geteuid().is_root();
    if !root {
        let secret = dir.path().join("secret");
        support::write_secret(&secret, "hunter2");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
        fs::write(dir.path().join("closeout.toml"), GOOD_CONFIG).unwrap();
        fs::write(dir.path().join("batch.toml"), tenant_entry(dir.path(), "")).unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
        let ran = run_in(
            dir.path(),
            &["submit", "--config", "closeout.toml", "batch.toml"],
            None,
        );
        cat.check("permissions: unreadable secret", &ran, 2, "secret");
        fs::set_permissions(
            dir.path().join("closeout.toml"),
            fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let ran = run_in(dir.path(), &["status", "--config", "closeout.toml"], None);
        cat.check("permissions: unreadable config", &ran, 2, "closeout.toml");
    } else {
        eprintln!(
            "bad-input catalogue: running as root, the unreadable secret/config cases do not apply"
        );
    }
    // Nothing lost: the original log still verifies.
    assert_eq!(verify_dir(&data).code, 0, "the log no longer verifies");
    cat.finish("logs, exports, permissions, disk");
    eprintln!(
        "bad-input catalogue: {} more cases in other test files:\n  {}",
        CATALOGUED_ELSEWHERE.len(),
        CATALOGUED_ELSEWHERE.join("\n  ")
    );
}
