//! `[metrics]`: where the daemon serves its Prometheus metrics, if anywhere.
//!
//! Off unless `listen` is set. The endpoint has no authentication, so an
//! address other than loopback is refused unless `allow_non_loopback = true`
//! says that the operator means it (and has a firewall in front).

use super::{locate, Error};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// The metrics endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `IP:PORT` to serve `GET /metrics` on (`127.0.0.1:9464`); `None`
    /// (default) serves nothing. Port 0 picks a free port (logged). A change
    /// takes effect at the next restart.
    pub listen: Option<SocketAddr>,
    /// Accept a `listen` address that is not loopback. Default false: the
    /// endpoint is unauthenticated.
    pub allow_non_loopback: bool,
}

/// Refuses a non-loopback `listen` unless allowed, naming the line of
/// `metrics.listen` in `text`.
pub(super) fn check(settings: &MetricsSettings, text: &str, file: &Path) -> Result<(), Error> {
    let Some(addr) = settings.listen else {
        return Ok(());
    };
    if addr.ip().is_loopback() || settings.allow_non_loopback {
        return Ok(());
    }
    /// Only the span of `metrics.listen`.
    #[derive(Deserialize)]
    struct Probe {
        /// The `[metrics]` table; `None` when the file has none.
        metrics: Option<ProbeMetrics>,
    }
    /// Only the span of `listen`.
    #[derive(Deserialize)]
    struct ProbeMetrics {
        /// The value and where it is.
        listen: Option<toml::Spanned<toml::Value>>,
    }
    let span = toml::from_str::<Probe>(text)
        .ok()
        .and_then(|p| p.metrics)
        .and_then(|m| m.listen)
        .map(|l| l.span())
        .unwrap_or(0..0);
    Err(locate::span_error(
        file,
        text,
        span,
        &format!(
            "{addr} is not a loopback address: the metrics endpoint has no authentication; \
             use 127.0.0.1 or [::1], or set allow_non_loopback = true behind a firewall"
        ),
    ))
}
