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
//! - `delete_users` / `restore_users` send each item once and return its
//!   outcome (items answered 429/5xx or lost are in doubt for the saga to
//!   read back: it alone decides resends, from its recorded intents).
//! - The throttle gate delays *new* requests of a tenant after a 429 until its
//!   `Retry-After` has passed and paces writes near the learnt refill rate.
#![forbid(unsafe_code)]

use closeout_auth::{cert, cloud};
use closeout_core::{model, saga};
use closeout_metrics as metrics;

pub mod ports;

pub mod auth;
pub mod batch;
pub mod bulk;
pub mod client;
pub mod discovery;
pub mod error;
pub mod identity;
pub mod paging;
pub mod partner;
pub mod redact;
pub mod reports;
pub mod tenant;
pub mod throttle;
pub mod wire;

pub use client::Client;
pub use partner::PartnerClient;
pub use tenant::TenantClient;

use crate::model::{Secret, SecretSource};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// A failure of the client's own setup (not of a call: those are
/// [`crate::model::CallError`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A secret file could not be read.
    #[error("cannot read client secret file {}: {source}", path.display())]
    SecretFile {
        /// The file named in the batch or config file.
        path: std::path::PathBuf,
        /// The error opening or reading the file returned.
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
        /// The credential's name, as in the unit's `LoadCredential=` (a file in
        /// `$CREDENTIALS_DIRECTORY`).
        name: String,
        /// Why reading failed: an invalid name, `CREDENTIALS_DIRECTORY` unset, or the
        /// file refused or unreadable.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the http client: {0}")]
    Build(#[source] reqwest::Error),
    /// A secret file exists but is not fit to hold a secret.
    #[error("refusing client secret file {}: it {reason}", path.display())]
    SecretRefused {
        /// The file named in the batch or config file.
        path: std::path::PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A certificate file is not a usable PEM key and certificate.
    #[error("refusing client certificate {what}: {reason}")]
    Certificate {
        /// The file or credential.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a secret took too long (a hung mount).
    #[error("cannot read client secret {what}: {after}")]
    SecretTimeout {
        /// The file or credential.
        what: String,
        /// What happened: no answer within the read timeout, or the reading task failed.
        after: String,
    },
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
    /// Partner Center's REST API (`/v1/customers/...`), where subscriptions are
    /// cancelled and deleted.
    #[serde(with = "url_text")]
    pub partner_center: Url,
    /// The cloud: the token scopes when a host is not one of Microsoft's
    /// (a simulator, a proxy); see [`crate::cloud`].
    pub cloud: crate::cloud::Cloud,
}

impl Endpoints {
    /// All three services at one base URL (the simulator serves them all).
    pub fn all_at(base: &Url) -> Endpoints {
        Endpoints {
            graph: base.clone(),
            login: base.clone(),
            partner_center: base.clone(),
            cloud: crate::cloud::Cloud::Global,
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
            cloud: crate::cloud::Cloud::Global,
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
    /// The longest `Retry-After` the throttle gates hold new requests for;
    /// a longer one is not waited on (the saga that received it pauses),
    /// so one bad reply cannot park a tenant, or every customer of the
    /// partner, for longer.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// A token is renewed when less than this (or a fifth of its lifetime,
    /// whichever is shorter) remains.
    #[serde(with = "humantime_serde")]
    pub token_renew_margin: Duration,
    /// After the first throttled write of a tenant, new writes wait at least
    /// this long (or the `Retry-After`, if longer) so the refill rate can be
    /// measured.
    #[serde(with = "humantime_serde")]
    pub throttle_probe_pause: Duration,
    /// The largest response body read; a larger one is abandoned at this
    /// many bytes and the call fails (`response_too_large`).
    pub max_response_bytes: u64,
    /// The most pages read for one collection (`@odata.nextLink`s
    /// followed); past it the listing fails (`too_many_pages`).
    pub max_pages: u32,
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
            max_retry_after: Duration::from_secs(3600),
            token_renew_margin: Duration::from_secs(300),
            throttle_probe_pause: Duration::from_millis(200),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }
}

/// The default of `[limits] max_response_bytes`: 64 MiB. A page of 999
/// users with every property closeout selects is about 1 MiB; a `$batch`
/// answer of 20 items is far less.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// The default of `[limits] max_pages`: 10,000 pages of up to 999 objects,
/// far above the largest tenant's listing.
pub const DEFAULT_MAX_PAGES: u32 = 10_000;

/// The largest secret file read: a client secret is about 40 bytes and a
/// PEM private key a few KiB; `/dev/zero` or a log file named by mistake is
/// refused instead of read into memory.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The longest a secret read may take (a hung network mount) before the
/// saga or submission that needs it fails.
pub const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a client secret from its source: a file (trailing newline trimmed) or
/// the systemd credential `$CREDENTIALS_DIRECTORY/<name>`. Errors name the
/// file or credential, never the content.
///
/// Only a regular file of at most [`MAX_SECRET_BYTES`] is read, opened
/// without blocking (a FIFO is refused, not waited on). A secret file must
/// not be readable or writable by group or others, as ssh demands of a
/// private key; systemd credentials are made 0400 by systemd itself. This
/// is blocking file I/O: from async code use [`read_credential_async`].
pub fn read_secret(source: &SecretSource) -> Result<Secret, Error> {
    match source {
        SecretSource::File(path) | SecretSource::CertificateFile(path) => {
            let text = secret_file::read(path, true).map_err(|e| e.into_error(path))?;
            trimmed(text, || format!("file {}", path.display()))
        }
        SecretSource::Credential(name) | SecretSource::CertificateCredential(name) => {
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
            let text = secret_file::read(&path, false).map_err(|e| Error::Credential {
                name: name.clone(),
                reason: e.into_error(&path).to_string(),
            })?;
            trimmed(text, || format!("credential {name}"))
        }
    }
}

/// What an app proves itself with at the token endpoint.
#[derive(Debug)]
pub enum Credential {
    /// A client secret, sent as `client_secret` in the token request
    /// (shared with the redaction of the replies, see [`redact`]).
    Secret(std::sync::Arc<Secret>),
    /// A certificate: a signed client assertion is sent instead.
    Certificate(std::sync::Arc<crate::cert::Certificate>),
}

impl From<Secret> for Credential {
    fn from(s: Secret) -> Credential {
        Credential::Secret(std::sync::Arc::new(s))
    }
}

impl Credential {
    /// The certificate's SHA-256 thumbprint (hex), for a certificate.
    pub fn thumbprint(&self) -> Option<String> {
        match self {
            Credential::Secret(_) => None,
            Credential::Certificate(c) => Some(c.public.thumbprint_hex()),
        }
    }
}

/// Reads the credential a source names: a secret, or a certificate PEM
/// (private key and certificate, checked to belong together). Errors name
/// the file or credential, never the content.
pub fn read_credential(source: &SecretSource) -> Result<Credential, Error> {
    let text = read_secret(source)?;
    if !source.is_certificate() {
        return Ok(Credential::Secret(std::sync::Arc::new(text)));
    }
    crate::cert::Certificate::from_pem(text.expose())
        .map(|c| Credential::Certificate(std::sync::Arc::new(c)))
        .map_err(|e| Error::Certificate {
            what: describe(source),
            reason: e.to_string(),
        })
}

/// [`read_credential`] on a blocking thread, abandoned after
/// [`SECRET_READ_TIMEOUT`]: a hung mount delays only the caller, never the
/// async workers every other saga runs on.
pub async fn read_credential_async(source: &SecretSource) -> Result<Credential, Error> {
    let owned = source.clone();
    let task = tokio::task::spawn_blocking(move || read_credential(&owned));
    match tokio::time::timeout(SECRET_READ_TIMEOUT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Error::SecretTimeout {
            what: describe(source),
            after: "the reading task failed".into(),
        }),
        Err(_) => Err(Error::SecretTimeout {
            what: describe(source),
            after: format!(
                "no answer after {}",
                humantime::format_duration(SECRET_READ_TIMEOUT)
            ),
        }),
    }
}

/// A source named for the operator.
fn describe(source: &SecretSource) -> String {
    match source {
        SecretSource::File(p) | SecretSource::CertificateFile(p) => {
            format!("file {}", p.display())
        }
        SecretSource::Credential(n) | SecretSource::CertificateCredential(n) => {
            format!("credential {n}")
        }
    }
}

fn trimmed(
    mut text: zeroize::Zeroizing<String>,
    what: impl Fn() -> String,
) -> Result<Secret, Error> {
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    if text.is_empty() {
        return Err(Error::EmptySecret { what: what() });
    }
    Ok(Secret::from_zeroizing(text))
}

/// Reading one secret file safely.
mod secret_file {
    use super::{Error, MAX_SECRET_BYTES};
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::path::Path;
    use zeroize::{Zeroize, Zeroizing};

    /// Why a secret file was not read.
    pub(super) enum Refused {
        /// Opening or reading failed.
        Io(std::io::Error),
        /// A FIFO, device, socket or directory.
        NotRegular(&'static str),
        /// Group or others may read or write it (the mode).
        Loose(u32),
        /// Longer than [`MAX_SECRET_BYTES`] (64 KiB).
        TooLarge,
        /// Not UTF-8 text.
        NotText,
    }

    impl Refused {
        pub(super) fn into_error(self, path: &Path) -> Error {
            let path = path.to_path_buf();
            match self {
                Refused::Io(source) => Error::SecretFile { path, source },
                Refused::NotRegular(kind) => Error::SecretRefused {
                    reason: format!("is a {kind}, not a regular file"),
                    path,
                },
                Refused::Loose(mode) => Error::SecretRefused {
                    reason: format!(
                        "has mode {mode:04o}: group or others may read it; run `chmod 600 {}` \
                         (and make it owned by the daemon's user)",
                        path.display()
                    ),
                    path,
                },
                Refused::TooLarge => Error::SecretRefused {
                    reason: format!("is longer than {MAX_SECRET_BYTES} bytes"),
                    path,
                },
                Refused::NotText => Error::SecretRefused {
                    reason: "is not UTF-8 text".into(),
                    path,
                },
            }
        }
    }

    /// The file's whole text. `O_NONBLOCK` makes opening a FIFO return at
    /// once; its type is then checked on the open descriptor (no race with
    /// a rename), before anything is read.
    pub(super) fn read(path: &Path, check_mode: bool) -> Result<Zeroizing<String>, Refused> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(path)
            .map_err(Refused::Io)?;
        let meta = file.metadata().map_err(Refused::Io)?;
        let ft = meta.file_type();
        if !ft.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_fifo() {
                "fifo"
            } else if ft.is_dir() {
                "directory"
            } else if ft.is_char_device() || ft.is_block_device() {
                "device"
            } else if ft.is_socket() {
                "socket"
            } else {
                "special file"
            };
            return Err(Refused::NotRegular(kind));
        }
        let mode = meta.mode() & 0o7777;
        if check_mode && mode & 0o077 != 0 {
            return Err(Refused::Loose(mode));
        }
        if meta.len() > MAX_SECRET_BYTES {
            return Err(Refused::TooLarge);
        }
        // Room for the whole cap up front: the vector never reallocates, so
        // no unzeroized copy of the secret is left behind.
        let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_SECRET_BYTES as usize + 1));
        file.take(MAX_SECRET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(Refused::Io)?;
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(Refused::TooLarge);
        }
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(Refused::NotText)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_file_trims_newline_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "hunter2\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
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
    fn a_certificate_file_is_read_checked_and_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pem");
        let good = include_str!("../../../tests/fixtures/certs/closeout.pem");
        std::fs::write(&path, good).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = read_credential(&SecretSource::CertificateFile(path.clone())).unwrap();
        assert_eq!(c.thumbprint().map(|t| t.len()), Some(64));
        assert!(!format!("{c:?}").contains("PRIVATE"));
        // Not a PEM key and certificate: refused, naming the file, not the text.
        std::fs::write(&path, "hunter2\n").unwrap();
        let e = read_credential(&SecretSource::CertificateFile(path.clone())).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("app.pem") && text.contains("no private key"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        // The same file as a secret source is a secret.
        assert!(read_credential(&SecretSource::File(path))
            .unwrap()
            .thumbprint()
            .is_none());
    }

    #[test]
    fn loose_special_and_oversized_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let loose = dir.path().join("loose");
        std::fs::write(&loose, "hunter2\n").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret(&SecretSource::File(loose.clone())).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("loose") && text.contains("chmod 600"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let e = read_secret(&SecretSource::File("/dev/zero".into())).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_secret(&SecretSource::File(big)).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
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
