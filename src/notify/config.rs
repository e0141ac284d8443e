//! `[notify]` in `closeout.toml`: where notifications go and how hard
//! delivery tries. Parsed and validated with the rest of the config (errors
//! name the file, line and key).

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The `[notify]` section.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Webhook URLs every notification is POSTed to. Empty (the default)
    /// turns notifications off. A URL may carry a token; closeout never logs
    /// or records more of it than its host.
    #[serde(deserialize_with = "webhooks")]
    pub webhooks: Vec<url::Url>,
    /// Time allowed for one delivery attempt. Default `10s`.
    #[serde(deserialize_with = "positive_duration")]
    pub timeout: Duration,
    /// The pause after the first failed attempt; doubled after each further
    /// one. Default `1s`.
    #[serde(deserialize_with = "positive_duration")]
    pub backoff_initial: Duration,
    /// The longest pause between attempts. Default `5m`.
    #[serde(deserialize_with = "positive_duration")]
    pub backoff_max: Duration,
    /// Delivery is abandoned (and recorded so) when it has failed for this
    /// long. Default `24h`.
    #[serde(deserialize_with = "positive_duration")]
    pub give_up_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            webhooks: Vec::new(),
            timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl Settings {
    /// The delivery backoff as the project's retry policy: doubling from
    /// `backoff_initial` up to `backoff_max`, no jitter, `give_up_after`.
    pub fn backoff(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            initial_interval: self.backoff_initial,
            multiplier: 2.0,
            max_interval: self.backoff_max,
            jitter: crate::retry::Jitter::None,
            give_up_after: self.give_up_after,
        }
    }
}

fn webhooks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<url::Url>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    if raw.len() > usize::from(u16::MAX) {
        return Err(serde::de::Error::custom("too many webhooks"));
    }
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let url = url::Url::parse(s)
                .map_err(|e| serde::de::Error::custom(format!("webhook {i} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(serde::de::Error::custom(format!(
                    "webhook {i}: expected an http:// or https:// URL with a host"
                )));
            }
            // A webhook URL often carries its token: plain http only to this
            // machine.
            if url.scheme() == "http" && !crate::model::is_loopback(&url) {
                return Err(serde::de::Error::custom(format!(
                    "webhook {i}: plain http to a host that is not loopback; use https://"
                )));
            }
            Ok(url)
        })
        .collect()
}

fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v: Duration = humantime_serde::deserialize(d)?;
    if v.is_zero() {
        return Err(serde::de::Error::custom("must be longer than 0s"));
    }
    Ok(v)
}
