//! The daemon's configuration file (`closeout.toml`) and the batch files an
//! operator submits: parsing and validation.
//!
//! Both are TOML. Unknown keys are errors, and every error names the file, the
//! line and the key (`batch.toml:7: tenant[2].keep: ...`), so that an operator
//! can fix a file without guessing. Relative paths inside a file resolve
//! against that file's directory. Secrets are never accepted inline: a file is
//! copied, mailed and committed far more often than a secret should be.
//!
//! Where the config file is looked for when `--config` is not given: the
//! environment variable `CLOSEOUT_CONFIG`, then `/etc/closeout/closeout.toml`
//! (what the systemd unit uses), then `config/closeout.toml` in the current
//! directory (a checkout of the repository, set up for `closeout sim`).

mod batch;
mod locate;
mod metrics;
mod read;

pub use batch::BatchFile;
pub use metrics::MetricsSettings;
pub use read::{MAX_BATCH_BYTES, MAX_CONFIG_BYTES};

use crate::model::SecretSource;
use crate::retry::RetryPolicy;
use serde::{Deserialize, Deserializer};
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The system-wide config path, used by the systemd unit.
pub const SYSTEM_CONFIG: &str = "/etc/closeout/closeout.toml";
/// The config of a repository checkout, for local runs against `closeout sim`.
pub const LOCAL_CONFIG: &str = "config/closeout.toml";

/// A config or batch file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The config file's path, as given.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not one to read: not a regular file (a FIFO, device or
    /// directory), or larger than the cap of its kind.
    #[error("{}: {message}", path.display())]
    Unusable {
        /// The file's path, as given.
        path: PathBuf,
        /// What it is and why it was refused.
        message: String,
    },
    /// The file was read but its content is wrong.
    #[error("{}:{line}: {key}: {message}", file.display())]
    Invalid {
        /// The config file's path, as given.
        file: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// The key, as a dotted path (`limits.max_concurrent_sagas`,
        /// `tenant[2].keep`).
        key: String,
        /// What is wrong and, where it helps, how to fix it.
        message: String,
    },
    /// A secret could not be read from its source.
    #[error("cannot read the client secret from {what}: {source}")]
    Secret {
        /// The source (a path or a credential name; never the secret).
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// The daemon's configuration (`config/closeout.toml` documents every key).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the event log lives (sled). Default `/var/lib/closeout`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The Unix socket the CLI talks to the daemon through.
    /// Default `/run/closeout/control.sock`.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// The Microsoft cloud the tenants live in (`global`, `usgov`,
    /// `usgov-dod`, `china`): the default hosts of `[endpoints]` and the
    /// token scopes. Default `global`.
    #[serde(default)]
    pub cloud: crate::cloud::Cloud,
    /// `[endpoints]` as written: the hosts given explicitly.
    #[serde(default, rename = "endpoints")]
    pub endpoints_given: EndpointsGiven,
    /// Base URLs of the services: those `[endpoints]` gives, the cloud's
    /// hosts for the others; tests and the demo point them at the simulator.
    #[serde(skip)]
    pub endpoints: Endpoints,
    /// The partner's own app, needed only for `subscriptions = "partner-center"`.
    #[serde(default, deserialize_with = "partner_center")]
    pub partner_center: Option<PartnerCenter>,
    /// Backoff for failed calls, when to give up on them, and the longest
    /// `Retry-After` waited on.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Concurrency limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// How sagas behave on failure and how often they re-read slow state.
    #[serde(default)]
    pub saga: SagaSettings,
    /// The daemon's own log output.
    #[serde(default)]
    pub log: LogSettings,
    /// The Prometheus metrics endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Webhooks told when a person is needed (`[notify]`; off when empty).
    #[serde(default)]
    pub notify: crate::notify::Settings,
}

/// Base URLs of the Microsoft services (no trailing slash needed).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoints {
    /// Microsoft Graph. Default `https://graph.microsoft.com`.
    #[serde(deserialize_with = "base_url")]
    pub graph: url::Url,
    /// The Entra ID token service. Default `https://login.microsoftonline.com`.
    #[serde(deserialize_with = "base_url")]
    pub login: url::Url,
    /// Partner Center. Default `https://api.partnercenter.microsoft.com`.
    #[serde(deserialize_with = "base_url")]
    pub partner_center: url::Url,
}

/// `[endpoints]` as written: each host given explicitly, or `None` for the
/// cloud's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsGiven {
    /// Microsoft Graph's base URL; `None`: the cloud's.
    #[serde(default, deserialize_with = "some_base_url")]
    pub graph: Option<url::Url>,
    /// The Entra ID token service's base URL; `None`: the cloud's.
    #[serde(default, deserialize_with = "some_base_url")]
    pub login: Option<url::Url>,
    /// Partner Center's base URL; `None`: the cloud's.
    #[serde(default, deserialize_with = "some_base_url")]
    pub partner_center: Option<url::Url>,
}

impl Endpoints {
    /// The cloud's hosts, except where `[endpoints]` names one.
    fn resolve(cloud: crate::cloud::Cloud, given: &EndpointsGiven) -> Endpoints {
        Endpoints {
            graph: given.graph.clone().unwrap_or_else(|| cloud.graph()),
            login: given.login.clone().unwrap_or_else(|| cloud.login()),
            partner_center: given
                .partner_center
                .clone()
                .unwrap_or_else(|| cloud.partner_center()),
        }
    }
}

fn some_base_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<url::Url>, D::Error> {
    base_url(d).map(Some)
}

/// The partner's own application in its own tenant, used to call Partner Center.
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerCenter {
    /// The partner's tenant id.
    pub tenant_id: String,
    /// The partner's application (client) id.
    pub client_id: String,
    /// Where its client secret or certificate is read from.
    pub secret: SecretSource,
}

/// Concurrency limits and network timeouts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How many sagas run at once; more wait their turn. Default 64.
    pub max_concurrent_sagas: NonZeroUsize,
    /// Calls in flight at once against one tenant (Graph throttles per app and
    /// tenant). Default 8.
    pub max_in_flight_per_tenant: NonZeroUsize,
    /// Calls in flight at once overall. Default 256.
    pub max_in_flight_total: NonZeroUsize,
    /// Calls in flight at once to Partner Center, over all the partner's
    /// customers (Partner Center throttles the partner's app). Default 64.
    pub max_in_flight_partner_center: NonZeroUsize,
    /// Time allowed to open a connection. Default `10s`.
    #[serde(deserialize_with = "positive_duration")]
    pub connect_timeout: Duration,
    /// Time allowed for one request, response included. Default `60s`.
    #[serde(deserialize_with = "positive_duration")]
    pub request_timeout: Duration,
    /// The largest response body the daemon reads from login, Graph or
    /// Partner Center; a larger one fails the call at this many bytes.
    /// Default 64 MiB (a page of 999 users is about 1 MiB).
    pub max_response_bytes: NonZeroU64,
    /// The most pages followed for one listing; a longer chain of
    /// `@odata.nextLink`s fails the read. Default 10,000.
    pub max_pages: NonZeroU32,
    /// Connections served at once by the control socket, and again by the
    /// metrics endpoint: past it the oldest idle connection is closed (control
    /// socket) or the new one refused (metrics), so that a flood of idle
    /// connections cannot exhaust the daemon's file descriptors. Default 64.
    pub max_connections: NonZeroUsize,
    /// How long a connection may stay open without sending a complete
    /// request before it is closed. Default `30s`.
    #[serde(deserialize_with = "positive_duration")]
    pub idle_timeout: Duration,
    /// On SIGTERM, how long requests already sent are awaited before their
    /// outcome is left in doubt (resolved by a read at the next start). Work
    /// not yet sent is never started. Default `10s`: well inside the unit's
    /// `TimeoutStopSec=30s`, so a stop under any load ends with exit 0.
    #[serde(deserialize_with = "positive_duration")]
    pub stop_grace: Duration,
    /// The event log's page cache (sled's), in MiB: the daemon's memory
    /// grows with the log up to it. Default 64.
    pub store_cache_mb: NonZeroU64,
}

/// `[retry]`: the backoff of every saga (recorded in its first event) and
/// the longest `Retry-After` honoured.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// The delay before the first retry (before jitter): longer than 0s, at
    /// most `max_interval`. Default `500ms`.
    #[serde(deserialize_with = "retry_interval")]
    pub initial_interval: Duration,
    /// Each further retry waits this many times longer: a finite number, at
    /// least 1. Default 2.
    #[serde(deserialize_with = "multiplier")]
    pub multiplier: f64,
    /// No computed delay exceeds this (a `Retry-After` may): longer than 0s,
    /// at most [`MAX_RETRY_INTERVAL`] (1 day). Default `60s`.
    #[serde(deserialize_with = "retry_interval")]
    pub max_interval: Duration,
    /// How the delay is randomised: `full` (default), `equal` or `none`.
    pub jitter: crate::retry::Jitter,
    /// After failing this long since its first failure, a call's failure
    /// counts as permanent: longer than 0s. Default `30m`.
    #[serde(deserialize_with = "positive_duration")]
    pub give_up_after: Duration,
    /// The longest `Retry-After` a saga waits on. A service asking for more
    /// pauses the saga with the reason, for the operator, instead of parking
    /// it (and the tenant's or partner's throttle) for that long. Default `1h`.
    #[serde(deserialize_with = "positive_duration")]
    pub max_retry_after: Duration,
}

/// The longest `[retry] initial_interval` and `max_interval`: one day. A
/// computed delay longer than that is no backoff but a saga parked for good
/// (a service's `Retry-After` is bounded by `max_retry_after` instead).
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(24 * 3600);

impl Default for RetrySettings {
    fn default() -> Self {
        let p = RetryPolicy::default();
        RetrySettings {
            initial_interval: p.initial_interval,
            multiplier: p.multiplier,
            max_interval: p.max_interval,
            jitter: p.jitter,
            give_up_after: p.give_up_after,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl RetrySettings {
    /// The backoff part, as sagas record it.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial_interval: self.initial_interval,
            multiplier: self.multiplier,
            max_interval: self.max_interval,
            jitter: self.jitter,
            give_up_after: self.give_up_after,
        }
    }
}

pub use crate::saga::FailurePolicy;

/// Saga behaviour.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SagaSettings {
    /// Permanent failure before the pivot: `compensate` (default) or `pause`.
    pub on_failure: FailurePolicy,
    /// How often step 3 re-reads subscriptions while they deprovision (about
    /// 72 hours in the real service). Default `1h`.
    #[serde(deserialize_with = "positive_duration")]
    pub deprovision_poll: Duration,
    /// How often an open operator gate is re-checked by reading the tenant.
    /// Default `5m`.
    #[serde(deserialize_with = "positive_duration")]
    pub gate_recheck: Duration,
    /// How often step 5 checks whether the tenant is gone. Default `5m`.
    #[serde(deserialize_with = "positive_duration")]
    pub tenant_gone_poll: Duration,
    /// How long to wait before re-reading a change that a read does not show
    /// yet (Entra ID replicates with a delay). Default `30s`.
    #[serde(deserialize_with = "positive_duration")]
    pub replication_wait: Duration,
    /// What step 4 turns off: `article` (default: per-user MFA of every
    /// remaining account except the Global Administrator who finishes the
    /// closure, as "Close your account" says) or `all` (also security
    /// defaults and the Conditional Access policies requiring MFA).
    pub mfa_scope: crate::saga::closure::MfaScope,
    /// In partner-center mode, when subscriptions must run to the end of
    /// their term (new commerce past its cancellation window), step 1 starts
    /// this long before the last such term ends, so that the deleted users
    /// can still be restored when it ends (the restore window is 30 days).
    /// Default `7days`; `0s` deletes them at the term's end.
    #[serde(with = "humantime_serde")]
    pub users_before_term_end: Duration,
    /// The backup gate before step 1: `attest` (default: each saga waits,
    /// deleting no one, until an operator attests through the control
    /// socket that the tenant's data is backed up outside the tenant) or
    /// `off` (no attestation asked for; recorded as a deliberate choice).
    pub backup: crate::saga::stake::BackupMode,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    Text,
    /// One JSON object per line, for journald or a log shipper.
    Json,
}

/// The daemon's own logs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A tracing filter: `info` (default), `debug`, `closeout=debug,warn`, ...
    /// `RUST_LOG` overrides it.
    #[serde(deserialize_with = "log_level")]
    pub level: String,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/closeout")
}

fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/closeout/control.sock")
}

impl Default for Endpoints {
    fn default() -> Self {
        let url = |s: &str| url::Url::parse(s).unwrap_or_else(|_| unreachable!("constant url"));
        Endpoints {
            graph: url("https://graph.microsoft.com"),
            login: url("https://login.microsoftonline.com"),
            partner_center: url("https://api.partnercenter.microsoft.com"),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let n = |v| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        Limits {
            max_concurrent_sagas: n(64),
            max_in_flight_per_tenant: n(8),
            max_in_flight_total: n(256),
            max_in_flight_partner_center: n(64),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_response_bytes: NonZeroU64::new(crate::graph::DEFAULT_MAX_RESPONSE_BYTES)
                .unwrap_or(NonZeroU64::MIN),
            max_pages: NonZeroU32::new(crate::graph::DEFAULT_MAX_PAGES).unwrap_or(NonZeroU32::MIN),
            max_connections: n(64),
            idle_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            store_cache_mb: NonZeroU64::new(64).unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl Default for SagaSettings {
    fn default() -> Self {
        SagaSettings {
            on_failure: FailurePolicy::Compensate,
            deprovision_poll: Duration::from_secs(3600),
            gate_recheck: Duration::from_secs(300),
            tenant_gone_poll: Duration::from_secs(300),
            replication_wait: Duration::from_secs(30),
            mfa_scope: crate::saga::closure::MfaScope::Article,
            users_before_term_end: crate::saga::subscriptions::DEFAULT_USERS_BEFORE_TERM_END,
            backup: crate::saga::stake::BackupMode::Attest,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

impl Config {
    /// The config path to use when `--config` is not given (see the module doc).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("CLOSEOUT_CONFIG").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if Path::new(SYSTEM_CONFIG).exists() {
            return PathBuf::from(SYSTEM_CONFIG);
        }
        PathBuf::from(LOCAL_CONFIG)
    }

    /// Reads and validates a config file; relative paths in it resolve
    /// against its directory. Only a regular file of at most
    /// [`MAX_CONFIG_BYTES`] is read.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = read::read_capped(path, "config file", MAX_CONFIG_BYTES)?;
        Config::parse(&text, path)
    }

    /// Validates config text read from `file` (named in errors; its directory
    /// anchors relative paths).
    pub fn parse(text: &str, file: &Path) -> Result<Config, Error> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| locate::toml_error(file, text, &e))?;
        metrics::check(&config.metrics, text, file)?;
        check_retry(&config.retry, text, file)?;
        config.endpoints = Endpoints::resolve(config.cloud, &config.endpoints_given);
        let dir = locate::base_dir(file);
        config.data_dir = locate::anchor(&dir, &config.data_dir);
        config.control_socket = locate::anchor(&dir, &config.control_socket);
        if let Some(pc) = &mut config.partner_center {
            match &pc.secret {
                SecretSource::File(p) => pc.secret = SecretSource::File(locate::anchor(&dir, p)),
                SecretSource::CertificateFile(p) => {
                    pc.secret = SecretSource::CertificateFile(locate::anchor(&dir, p));
                }
                _ => {}
            }
        }
        Ok(config)
    }
}

fn base_url<'de, D: Deserializer<'de>>(d: D) -> Result<url::Url, D::Error> {
    let s = String::deserialize(d)?;
    let url = url::Url::parse(&s).map_err(|e| serde::de::Error::custom(format!("{e}: {s:?}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(serde::de::Error::custom(format!(
            "expected an http:// or https:// base URL, found {s:?}"
        )));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(serde::de::Error::custom(format!(
            "{s:?} is plain http on a host that is not loopback: client secrets and tokens \
             would cross the network unencrypted; use https:// (http:// is accepted for \
             127.0.0.1, [::1] and localhost only)"
        )));
    }
    Ok(url)
}

pub use crate::model::is_loopback;

fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v: Duration = humantime_serde::deserialize(d)?;
    if v.is_zero() {
        return Err(serde::de::Error::custom("must be longer than 0s"));
    }
    Ok(v)
}

/// `[retry] initial_interval` and `max_interval`: longer than 0s, at most
/// [`MAX_RETRY_INTERVAL`].
fn retry_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = positive_duration(d)?;
    if v > MAX_RETRY_INTERVAL {
        return Err(serde::de::Error::custom(format!(
            "{} is longer than 1 day, the most a retry interval may be: a failed call is \
             tried again within a day at the latest (a longer wait asked by the service \
             is bounded by max_retry_after)",
            humantime::format_duration(v)
        )));
    }
    Ok(v)
}

/// `[retry] multiplier`: finite and at least 1.
fn multiplier<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || v < 1.0 {
        return Err(serde::de::Error::custom(format!(
            "{v} is not a backoff multiplier: it must be a finite number of at least 1 \
             (1 retries every initial_interval, 2 doubles the delay each time)"
        )));
    }
    Ok(v)
}

/// `[retry] initial_interval` at most `max_interval`, naming the line of
/// `initial_interval` (of `max_interval` when only that is given).
fn check_retry(retry: &RetrySettings, text: &str, file: &Path) -> Result<(), Error> {
    if retry.initial_interval <= retry.max_interval {
        return Ok(());
    }
    /// Only the spans of the two keys.
    #[derive(Deserialize)]
    struct Probe {
        /// The `[retry]` table; `None` when the file has none.
        retry: Option<ProbeRetry>,
    }
    /// Only the spans of the two intervals.
    #[derive(Deserialize)]
    struct ProbeRetry {
        /// `initial_interval`, where it is.
        initial_interval: Option<toml::Spanned<toml::Value>>,
        /// `max_interval`, where it is.
        max_interval: Option<toml::Spanned<toml::Value>>,
    }
    let span = toml::from_str::<Probe>(text)
        .ok()
        .and_then(|p| p.retry)
        .and_then(|r| r.initial_interval.or(r.max_interval))
        .map(|v| v.span())
        .unwrap_or(0..0);
    Err(locate::span_error(
        file,
        text,
        span,
        &format!(
            "initial_interval ({}) is longer than max_interval ({}): no delay may exceed \
             max_interval; lower initial_interval or raise max_interval",
            humantime::format_duration(retry.initial_interval),
            humantime::format_duration(retry.max_interval)
        ),
    ))
}

fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    tracing_subscriber::EnvFilter::try_new(&s)
        .map_err(|e| serde::de::Error::custom(format!("not a log filter: {e}")))?;
    Ok(s)
}

/// A tenant id as the login service is asked about it: a GUID or a domain
/// name (`partner.onmicrosoft.com`), never control characters, spaces or a
/// path. Its error shows it as a Rust string literal (control characters
/// escaped).
struct TenantName(String);

impl<'de> Deserialize<'de> for TenantName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !crate::graph::identity::is_tenant_name(&s) {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a tenant id: give the partner's tenant GUID or its domain \
                 name (e.g. \"partner.onmicrosoft.com\"; letters, digits, '-' and '.')"
            )));
        }
        Ok(TenantName(s))
    }
}

/// `[partner_center]`: its secret, exactly one source, never inline.
fn partner_center<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PartnerCenter>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        tenant_id: TenantName,
        client_id: batch::NonEmpty,
        client_secret: Option<batch::InlineSecret>,
        client_secret_file: Option<PathBuf>,
        client_secret_credential: Option<batch::CredentialName>,
        client_certificate_file: Option<PathBuf>,
        client_certificate_credential: Option<batch::CredentialName>,
    }
    let raw = Raw::deserialize(d)?;
    let _ = raw.client_secret;
    let secret = batch::secret_source(
        raw.client_secret_file,
        raw.client_secret_credential,
        raw.client_certificate_file,
        raw.client_certificate_credential,
    )
    .map_err(serde::de::Error::custom)?
    .ok_or_else(|| serde::de::Error::custom(batch::NO_CREDENTIAL))?;
    Ok(Some(PartnerCenter {
        tenant_id: raw.tenant_id.0,
        client_id: raw.client_id.0,
        secret,
    }))
}

#[cfg(test)]
mod notify_tests {
    use super::Config;
    use std::path::Path;

    #[test]
    fn webhooks_and_delays_are_validated_with_file_line_and_key() {
        let ok = Config::parse(
            "[notify]\nwebhooks = [\"https://hooks.example/x?token=t\"]\nbackoff_max = \"1m\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(ok.notify.webhooks.len(), 1);
        assert_eq!(ok.notify.backoff_max, std::time::Duration::from_secs(60));
        assert!(Config::parse("", Path::new("c.toml"))
            .unwrap()
            .notify
            .webhooks
            .is_empty());
        for (text, key) in [
            (
                "[notify]\nwebhooks = [\"ftp://x\"]\n",
                "c.toml:2: notify.webhooks",
            ),
            (
                "[notify]\nwebhooks = [\"http://hooks.example/x?token=t\"]\n",
                "c.toml:2: notify.webhooks",
            ),
            ("[notify]\n\ntimeout = \"0s\"\n", "c.toml:3: notify.timeout"),
            ("[notify]\nwebhook = []\n", "c.toml:2: notify"),
        ] {
            let err = Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{text:?}: {err}");
        }
    }
}
