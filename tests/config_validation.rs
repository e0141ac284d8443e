//! Config and batch validation through the real binary: good files pass, each
//! bad one exits 2 with a message naming the file, the line and the key.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_closeout");

/// A good minimal config whose socket nobody listens on.
fn good_config(dir: &Path) -> PathBuf {
    let p = dir.join("closeout.toml");
    std::fs::write(
        &p,
        "data_dir = \"data\"\ncontrol_socket = \"control.sock\"\n",
    )
    .unwrap();
    p
}

const TENANT: &str = "[[tenant]]\ntenant_id = \"a.onmicrosoft.com\"\nclient_id = \"c\"\n\
client_secret_credential = \"a\"\nkeep = [\"admin@a.onmicrosoft.com\"]\nsubscriptions = \"manual\"\n\n";

/// Runs `closeout ARGS` in `dir`; returns (exit code, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CLOSEOUT_CONFIG")
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_invalid(dir: &Path, args: &[&str], located: &str, says: &str) {
    let (code, err) = run(dir, args);
    assert_eq!(code, 2, "exit 2 expected for {args:?}; stderr: {err}");
    assert!(err.contains(located), "{located:?} not in: {err}");
    assert!(err.contains(says), "{says:?} not in: {err}");
    assert!(!err.contains("hunter2"), "secret echoed: {err}");
}

/// Validates a config through `closeout status --config FILE`.
fn config_case(body: &str, located: &str, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), body).unwrap();
    expect_invalid(
        dir.path(),
        &["status", "--config", "bad.toml"],
        located,
        says,
    );
}

/// Validates a batch through `closeout submit` (before any daemon is asked).
fn batch_case(body: &str, located: &str, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = good_config(dir.path());
    std::fs::write(dir.path().join("batch.toml"), body).unwrap();
    let config = config.to_str().unwrap();
    expect_invalid(
        dir.path(),
        &["submit", "--config", config, "batch.toml"],
        located,
        says,
    );
}

#[test]
fn shipped_files_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = closeout::config::Config::load(&root.join("config/closeout.toml")).unwrap();
    assert_eq!(config.endpoints.graph.as_str(), "http://127.0.0.1:8640/");
    assert!(config.data_dir.is_absolute() && config.data_dir.ends_with("target/closeout/data"));
    let batch = closeout::config::BatchFile::load(&root.join("config/batch.example.toml")).unwrap();
    assert_eq!(batch.tenants.len(), 2);
    assert_eq!(batch.lines, vec![21, 47]);
    // The first entry takes its app and certificate from [defaults].
    assert!(batch.tenants[0].secret.is_certificate());
    assert_eq!(
        batch.tenants[0].client_id,
        "6731de76-14a6-49ae-97bc-6eba6914391e"
    );
    assert_eq!(batch.domains[0].as_deref(), Some("contoso.onmicrosoft.com"));
    assert!(!batch.tenants[1].secret.is_certificate());
}

#[test]
fn a_cloud_sets_the_hosts_an_endpoint_overrides() {
    let c = closeout::config::Config::parse(
        "cloud = \"usgov-dod\"\n[endpoints]\nlogin = \"https://proxy.example\"\n",
        Path::new("/etc/closeout/closeout.toml"),
    )
    .unwrap();
    assert_eq!(
        c.endpoints.graph.as_str(),
        "https://dod-graph.microsoft.us/"
    );
    assert_eq!(c.endpoints.login.as_str(), "https://proxy.example/");
    assert_eq!(
        c.endpoints.partner_center.as_str(),
        "https://api.partnercenter.microsoft.com/"
    );
    config_case("cloud = \"mars\"\n", "bad.toml:1", "unknown variant");
}

#[test]
fn a_tenant_without_a_client_id_anywhere_is_refused() {
    batch_case(
        "[defaults]\nclient_certificate_file = \"k.pem\"\n\n[[tenant]]\ntenant_id = \"b\"\nkeep = [\"x\"]\nsubscriptions = \"manual\"\n",
        "batch.toml:4: tenant[1]",
        "no client_id",
    );
    batch_case(
        "[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_file = \"s\"\ndomain = \"not a domain\"\nkeep = [\"x\"]\nsubscriptions = \"manual\"\n",
        "batch.toml:5",
        "is not a domain name",
    );
}

#[test]
fn defaults_are_the_real_hosts() {
    let c = closeout::config::Config::parse("", Path::new("/etc/closeout/closeout.toml")).unwrap();
    assert_eq!(
        c.endpoints.login.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert_eq!(c.control_socket, Path::new("/run/closeout/control.sock"));
    assert_eq!(c.limits.max_in_flight_per_tenant.get(), 8);
    assert_eq!(c.limits.max_in_flight_partner_center.get(), 64);
}

#[test]
fn partner_center_limit_is_read_and_checked() {
    let path = Path::new("/etc/closeout/closeout.toml");
    let c = closeout::config::Config::parse("[limits]\nmax_in_flight_partner_center = 12\n", path)
        .unwrap();
    assert_eq!(c.limits.max_in_flight_partner_center.get(), 12);
    let e = closeout::config::Config::parse("[limits]\nmax_in_flight_partner_center = 0\n", path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_in_flight_partner_center"), "{e}");
}

#[test]
fn malformed_toml() {
    config_case("data_dir = \"x\n", "bad.toml:1: data_dir", "string");
}

/// `[retry] max_retry_after` and `[limits] stop_grace` are humantime
/// durations longer than zero, located by file, line and key.
#[test]
fn retry_after_ceiling_and_stop_grace_are_validated() {
    config_case(
        "data_dir = \"d\"\n\n[retry]\nmax_retry_after = \"0s\"\n",
        "bad.toml:4: retry.max_retry_after",
        "longer than 0s",
    );
    config_case(
        "data_dir = \"d\"\n[retry]\ninitial_interval = \"1s\"\nmax_retry_after = \"soon\"\n",
        "bad.toml:4: retry.max_retry_after",
        "soon",
    );
    config_case(
        "data_dir = \"d\"\n[limits]\nstop_grace = \"ten seconds\"\n",
        "bad.toml:3: limits.stop_grace",
        "ten seconds",
    );
}

#[test]
fn unknown_config_key() {
    config_case(
        "data_dir = \"d\"\n\n[limits]\nmax_sagas = 3\n",
        "bad.toml:4: limits.max_sagas",
        "unknown field",
    );
}

#[test]
fn bad_duration() {
    config_case(
        "[saga]\ngate_recheck = \"soon\"\n",
        "bad.toml:2: saga.gate_recheck",
        "duration",
    );
    config_case(
        "[retry]\nmax_interval = 5\n",
        "bad.toml:2: retry.max_interval",
        "invalid type",
    );
    config_case(
        "[saga]\ntenant_gone_poll = \"0s\"\n",
        "bad.toml:2: saga.tenant_gone_poll",
        "longer than 0s",
    );
}

/// `[retry]` settings that make no backoff: a multiplier that is not a
/// finite number of at least 1, a zero or astronomically long interval
/// (a saga would wait 185 million years), a first delay past the cap, a
/// zero give-up time. Each exits 2 naming the file, line and key.
#[test]
fn nonsensical_retry_settings_are_refused() {
    for (value, says) in [
        ("nan", "NaN is not a backoff multiplier"),
        ("-3.0", "-3 is not a backoff multiplier"),
        ("inf", "inf is not a backoff multiplier"),
        ("0.5", "finite number of at least 1"),
    ] {
        config_case(
            &format!("data_dir = \"d\"\n[retry]\nmultiplier = {value}\n"),
            "bad.toml:3: retry.multiplier",
            says,
        );
    }
    config_case(
        "[retry]\nmultiplier = 1e308\nmax_interval = \"500000000years\"\n",
        "bad.toml:3: retry.max_interval",
        "longer than 1 day, the most a retry interval may be",
    );
    config_case(
        "[retry]\ninitial_interval = \"2days\"\n",
        "bad.toml:2: retry.initial_interval",
        "longer than 1 day",
    );
    config_case(
        "[retry]\nmax_interval = \"0s\"\n",
        "bad.toml:2: retry.max_interval",
        "longer than 0s",
    );
    config_case(
        "[retry]\ninitial_interval = \"0s\"\n",
        "bad.toml:2: retry.initial_interval",
        "longer than 0s",
    );
    config_case(
        "[retry]\n\ngive_up_after = \"0s\"\n",
        "bad.toml:3: retry.give_up_after",
        "longer than 0s",
    );
    config_case(
        "[retry]\ninitial_interval = \"2m\"\nmax_interval = \"1m\"\n",
        "bad.toml:2: retry.initial_interval",
        "initial_interval (2m) is longer than max_interval (1m)",
    );
    // Only the cap given: the default first delay (500ms) above it.
    config_case(
        "[retry]\nmax_interval = \"100ms\"\n",
        "bad.toml:2: retry.max_interval",
        "initial_interval (500ms) is longer than max_interval (100ms)",
    );
    // The bounds themselves, and a multiplier of exactly 1, are accepted.
    let c = closeout::config::Config::parse(
        "[retry]\ninitial_interval = \"1day\"\nmultiplier = 1\nmax_interval = \"24h\"\n",
        Path::new("ok.toml"),
    )
    .unwrap();
    assert_eq!(c.retry.max_interval, closeout::config::MAX_RETRY_INTERVAL);
    assert_eq!(c.retry.multiplier, 1.0);
}

/// The partner's tenant id is a GUID or a domain name, as the tenants' are:
/// a control character (here an ANSI colour) is refused, and not echoed raw.
#[test]
fn partner_tenant_id_is_a_guid_or_a_domain() {
    for bad in ["not a guid\\u001b[31m", "", "../etc", "p\\u0000"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            format!(
                "[partner_center]\ntenant_id = \"{bad}\"\nclient_id = \"c\"\n\
                 client_secret_credential = \"p\"\n"
            ),
        )
        .unwrap();
        let (code, err) = run(dir.path(), &["status", "--config", "bad.toml"]);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(
            err.contains("bad.toml:2: partner_center.tenant_id") && err.contains("not a tenant id"),
            "{bad:?}: {err}"
        );
        assert!(
            !err.chars().any(|c| c.is_control() && c != '\n'),
            "{bad:?}: raw control characters in {err:?}"
        );
    }
    for good in [
        "partner.onmicrosoft.com",
        "8EAEF023-2b34-4da1-9baa-8bc8c9d6a490",
    ] {
        let text = format!(
            "[partner_center]\ntenant_id = \"{good}\"\nclient_id = \"c\"\n\
             client_secret_credential = \"p\"\n"
        );
        let c = closeout::config::Config::parse(&text, Path::new("ok.toml")).unwrap();
        assert_eq!(c.partner_center.unwrap().tenant_id, good);
    }
}

#[test]
fn bad_policy_limit_level_and_url() {
    config_case(
        "[saga]\non_failure = \"retry\"\n",
        "bad.toml:2: saga.on_failure",
        "unknown variant",
    );
    config_case(
        "[limits]\nmax_concurrent_sagas = 0\n",
        "bad.toml:2: limits.max_concurrent_sagas",
        "nonzero",
    );
    config_case(
        "[log]\nformat = \"xml\"\n",
        "bad.toml:2: log.format",
        "unknown variant",
    );
    config_case(
        "[endpoints]\ngraph = \"ftp://x\"\n",
        "bad.toml:2: endpoints.graph",
        "http",
    );
}

#[test]
fn plain_http_endpoint_off_loopback_is_refused() {
    config_case(
        "[endpoints]\ngraph = \"http://127.0.0.1:8640\"\nlogin = \"http://login.example.com\"\n",
        "bad.toml:3: endpoints.login",
        "use https://",
    );
    for ok in [
        "http://127.0.0.1:9",
        "http://[::1]:9",
        "http://localhost:9",
        "https://graph.example.com",
    ] {
        let text = format!("[endpoints]\ngraph = \"{ok}\"\n");
        closeout::config::Config::parse(&text, Path::new("ok.toml"))
            .unwrap_or_else(|e| panic!("{ok} refused: {e}"));
    }
}

#[test]
fn inline_secret_in_config_is_refused_with_the_reason() {
    config_case(
        "[partner_center]\ntenant_id = \"p\"\nclient_id = \"c\"\nclient_secret = \"hunter2\"\n",
        "bad.toml:4: partner_center.client_secret",
        "client_secret_file",
    );
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run(dir.path(), &["status", "--config", "nowhere.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("nowhere.toml"), "{err}");
    // The cause once, not once per link of the error chain.
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn inline_secret_in_batch() {
    batch_case(
        &format!("{TENANT}[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret = \"hunter2\"\nkeep = [\"x\"]\nsubscriptions = \"manual\"\n"),
        "batch.toml:11: tenant[2].client_secret",
        "inline client secret is refused",
    );
}

#[test]
fn both_secret_sources() {
    batch_case(
        &format!("{TENANT}[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_file = \"s\"\nclient_secret_credential = \"s\"\nkeep = [\"x\"]\nsubscriptions = \"manual\"\n"),
        "batch.toml:8: tenant[2]",
        "more than one credential is given",
    );
}

#[test]
fn no_secret_source() {
    batch_case(
        "[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nkeep = [\"x\"]\nsubscriptions = \"manual\"\n",
        "batch.toml:1: tenant[1]",
        "no credential: give client_secret_file",
    );
}

#[test]
fn empty_keep() {
    batch_case(
        "[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_credential = \"s\"\nkeep = []\nsubscriptions = \"manual\"\n",
        "batch.toml:5: tenant[1].keep",
        "keep list is empty",
    );
}

#[test]
fn bad_subscription_mode() {
    batch_case(
        &format!("{TENANT}[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_credential = \"s\"\nkeep = [\"x\"]\nsubscriptions = \"portal\"\n"),
        "batch.toml:13: tenant[2].subscriptions",
        "expected `partner-center` or `manual`",
    );
}

#[test]
fn unknown_batch_key_duplicate_tenant_and_empty_batch() {
    batch_case(
        &format!("{TENANT}colour = 1\n"),
        "batch.toml:8: tenant[1].colour",
        "unknown field",
    );
    batch_case(
        &format!("{TENANT}{TENANT}"),
        "batch.toml:8: tenant[2]",
        "listed twice",
    );
    batch_case("# nothing\n", "batch.toml:1", "no [[tenant]] entries");
    batch_case(
        &format!("tenants = 1\n{TENANT}"),
        "batch.toml:1: tenants",
        "unknown field",
    );
}

#[test]
fn missing_secret_file() {
    batch_case(
        "[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_file = \"secrets/b\"\nkeep = [\"x\"]\nsubscriptions = \"manual\"\n",
        "batch.toml:1: tenant[1].client_secret_file",
        "secrets/b does not exist",
    );
}

#[test]
fn relative_secret_paths_resolve_against_the_batch_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let body = "[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_file = \"s\"\nkeep = [\"x\"]\nsubscriptions = \"partner-center\"\n";
    let file = dir.path().join("sub/batch.toml");
    std::fs::write(&file, body).unwrap();
    let batch = closeout::config::BatchFile::load(&file).unwrap();
    assert_eq!(
        batch.tenants[0].secret,
        closeout::model::SecretSource::File(dir.path().join("sub/s"))
    );
}

#[test]
fn cli_without_a_daemon_exits_1_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = good_config(dir.path());
    let config = config.to_str().unwrap();
    std::fs::write(dir.path().join("batch.toml"), TENANT).unwrap();
    for args in [
        vec!["status", "--config", config],
        vec!["status", "--config", config, "--json"],
        vec![
            "pause",
            "--config",
            config,
            "some-saga",
            "--reason",
            "lunch",
        ],
        vec!["submit", "--config", config, "batch.toml"],
    ] {
        let (code, err) = run(dir.path(), &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let socket = dir.path().join("control.sock");
        assert!(
            err.contains(&format!(
                "no closeout daemon is listening on {}",
                socket.display()
            )) && err.contains("closeout daemon"),
            "{err}"
        );
    }
}

#[test]
fn finish_with_must_be_a_keep_account() {
    batch_case(
        "[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_credential = \"s\"\nkeep = [\"x\"]\nsubscriptions = \"manual\"\nfinish_with = \"y\"\n",
        "batch.toml:1: tenant[1]",
        "finish_with \"y\" is not in the keep list",
    );
}

#[test]
fn finish_with_and_mfa_scope_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.toml");
    let body = "[[tenant]]\ntenant_id = \"b\"\nclient_id = \"c\"\nclient_secret_credential = \"s\"\nkeep = [\"x\", \"Y\"]\nsubscriptions = \"manual\"\nfinish_with = \"y\"\n";
    let batch = closeout::config::BatchFile::parse(body, &file).unwrap();
    assert_eq!(batch.finish_with, vec![Some("y".to_string())]);
    let config = dir.path().join("closeout.toml");
    std::fs::write(&config, "[saga]\nmfa_scope = \"all\"\n").unwrap();
    let c = closeout::config::Config::load(&config).unwrap();
    assert_eq!(c.saga.mfa_scope, closeout::saga::closure::MfaScope::All);
    std::fs::write(&config, "[saga]\nmfa_scope = \"some\"\n").unwrap();
    assert!(closeout::config::Config::load(&config).is_err());
}
