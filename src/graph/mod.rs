//! The HTTP client for Microsoft's login endpoint, Graph and Partner Center.
//!
//! It implements [`crate::ports::TenantApi`] ([`TenantClient`]) and
//! [`crate::ports::PartnerApi`] ([`PartnerClient`]) over one shared
//! [`Client`]: tokens ([`auth`]), classification of every outcome
//! ([`error`]), per-tenant throttle control ([`throttle`]), `$batch`
//! ([`batch`]) and paging ([`paging`]). It holds no saga logic.
//!
//! What it retries by itself, and what it returns as data:
//! - A 401 from Graph triggers one token renewal and one resend, never a loop.
//! - Single calls (reads, PATCHes) are never retried: a transient failure is
//!   returned with the service's `Retry-After` so the saga records the schedule.
//! - Inside one `delete_users` / `restore_users` call (one logical operation),
//!   items answered 429/5xx or lost to a timeout/reset are *in doubt*: after
//!   the longest `Retry-After` among them (or a backoff from
//!   [`ClientOptions::retry`] when none was given, bounded by
//!   [`ClientOptions::batch_retry_max_wait`]) the client reads each one
//!   (`GET /v1.0/users/{id}`, batched) and resends only those the read shows
//!   unapplied, for at most [`ClientOptions::batch_retry_rounds`] rounds.
//!   What is left is returned: read-as-unapplied → `Transient` with
//!   `retry_after`; unreadable → `InDoubt`.
//! - The throttle gate delays *new* requests of a tenant after a 429 until its
//!   `Retry-After` has passed and paces writes near the learnt refill rate.

pub mod auth;
pub mod batch;
pub mod bulk;
pub mod client;
pub mod discovery;
pub mod error;
pub mod paging;
pub mod partner;
pub mod tenant;
pub mod throttle;
pub mod wire;

pub use client::Client;
pub use partner::PartnerClient;
pub use tenant::TenantClient;

use crate::model::{Secret, SecretSource};
use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// A failure of the client's own setup (not of a call: those are
/// [`crate::model::CallError`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A secret file could not be read.
    #[error("cannot read client secret file {path}: {source}")]
    SecretFile {
        /// The file named in the batch or config file.
        path: std::path::PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// A secret file or credential is empty.
    #[error("client secret {what} is empty")]
    EmptySecret {
        /// The file or credential, named for the operator.
        what: String,
    },
    /// A systemd credential could not be found or read.
    #[error("cannot read systemd credential {name}: {reason}")]
    Credential {
        /// The credential's name.
        name: String,
        /// Why reading failed.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the http client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Base URLs of the services. Defaults: the real Microsoft hosts; tests and the
/// demo point them at `closeout sim`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoints {
    /// Microsoft Graph (`/v1.0/...`, `/beta/...`).
    #[serde(with = "url_text")]
    pub graph: Url,
    /// The Entra ID login endpoint (`/{tenant}/oauth2/v2.0/token`).
    #[serde(with = "url_text")]
    pub login: Url,
    /// Partner Center (`/v1/customers/...`).
    #[serde(with = "url_text")]
    pub partner_center: Url,
}

impl Endpoints {
    /// All three services at one base URL (the simulator serves them all).
    pub fn all_at(base: &Url) -> Endpoints {
        Endpoints {
            graph: base.clone(),
            login: base.clone(),
            partner_center: base.clone(),
        }
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        // These literals are valid URLs; parsing cannot fail.
        let parse = |s: &str| Url::parse(s).unwrap_or_else(|_| unreachable!());
        Endpoints {
            graph: parse("https://graph.microsoft.com"),
            login: parse("https://login.microsoftonline.com"),
            partner_center: parse("https://api.partnercenter.microsoft.com"),
        }
    }
}

/// Serde of a `Url` as its text (the `url` crate's serde feature is off).
mod url_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use url::Url;

    pub fn serialize<S: Serializer>(u: &Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
        let text = String::deserialize(d)?;
        Url::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid url {text:?}: {e}")))
    }
}

/// Tuning of the client, embedded in the daemon config (humantime durations).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientOptions {
    /// Longest wait for a TCP+TLS connection: a dead host fails fast.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for a whole request (a hung request becomes a timeout,
    /// in doubt for a write).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most requests in flight to one tenant (the AIMD window's ceiling).
    pub max_in_flight_per_tenant: usize,
    /// Most requests in flight over all tenants.
    pub max_in_flight_total: usize,
    /// Most requests in flight to Partner Center (the AIMD window's ceiling):
    /// one window for every customer of the partner, since Partner Center
    /// throttles the partner's app, not the customer.
    pub max_in_flight_partner_center: usize,
    /// The AIMD window a tenant starts with.
    pub initial_in_flight_per_tenant: usize,
    /// Rounds of read-then-resend for in-doubt items inside one
    /// `delete_users` / `restore_users` call (0: return them at once).
    pub batch_retry_rounds: u32,
    /// Longest the client waits between such rounds; a longer `Retry-After`
    /// is returned to the caller instead.
    #[serde(with = "humantime_serde")]
    pub batch_retry_max_wait: Duration,
    /// Backoff between such rounds when no `Retry-After` was given.
    pub retry: RetryPolicy,
    /// A token is renewed when less than this (or a fifth of its lifetime,
    /// whichever is shorter) remains.
    #[serde(with = "humantime_serde")]
    pub token_renew_margin: Duration,
    /// After the first throttled write of a tenant, new writes wait at least
    /// this long (or the `Retry-After`, if longer) so the refill rate can be
    /// measured.
    #[serde(with = "humantime_serde")]
    pub throttle_probe_pause: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_in_flight_per_tenant: 16,
            max_in_flight_total: 256,
            max_in_flight_partner_center: 64,
            initial_in_flight_per_tenant: 4,
            batch_retry_rounds: 3,
            batch_retry_max_wait: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            token_renew_margin: Duration::from_secs(300),
            throttle_probe_pause: Duration::from_millis(200),
        }
    }
}

/// Reads a client secret from its source: a file (trailing newline trimmed) or
/// the systemd credential `$CREDENTIALS_DIRECTORY/<name>`. Errors name the
/// file or credential, never the content.
pub fn read_secret(source: &SecretSource) -> Result<Secret, Error> {
    match source {
        SecretSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::SecretFile {
                path: path.clone(),
                source,
            })?;
            trimmed(text, || format!("file {}", path.display()))
        }
        SecretSource::Credential(name) => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(Error::Credential {
                    name: name.clone(),
                    reason: "not a valid credential name".into(),
                });
            }
            let dir =
                std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| Error::Credential {
                    name: name.clone(),
                    reason: "CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit?)"
                        .into(),
                })?;
            let path = std::path::Path::new(&dir).join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Credential {
                name: name.clone(),
                reason: format!("{}: {e}", path.display()),
            })?;
            trimmed(text, || format!("credential {name}"))
        }
    }
}

fn trimmed(mut text: String, what: impl Fn() -> String) -> Result<Secret, Error> {
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    if text.is_empty() {
        return Err(Error::EmptySecret { what: what() });
    }
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_trims_newline_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "hunter2\n").unwrap();
        let s = read_secret(&SecretSource::File(path.clone())).unwrap();
        assert_eq!(s.expose(), "hunter2");
        std::fs::write(&path, "\n").unwrap();
        let e = read_secret(&SecretSource::File(path.clone())).unwrap_err();
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        let missing = dir.path().join("nope");
        let e = read_secret(&SecretSource::File(missing.clone())).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn credential_name_is_checked() {
        let e = read_secret(&SecretSource::Credential("../etc".into())).unwrap_err();
        assert!(e.to_string().contains("../etc"), "{e}");
    }

    #[test]
    fn options_parse_from_toml_with_humantime() {
        let o: ClientOptions =
            toml::from_str("connect_timeout = \"2s\"\nmax_in_flight_per_tenant = 8\n").unwrap();
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!(o.max_in_flight_per_tenant, 8);
        assert!(toml::from_str::<ClientOptions>("bogus = 1").is_err());
        let e: Endpoints = toml::from_str("graph = \"http://127.0.0.1:9\"").unwrap();
        assert_eq!(e.login.as_str(), "https://login.microsoftonline.com/");
    }
}
