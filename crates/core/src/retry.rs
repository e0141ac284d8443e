//! The retry policy: how long to wait before trying a failed call again, and
//! when to give up. Pure (the randomness for jitter is passed in), so the saga
//! core and the Graph client share it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the backoff delay is randomised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Uniform in `[0, delay]` (AWS "full jitter"): spreads retries best.
    Full,
    /// Uniform in `[delay/2, delay]`.
    Equal,
    /// Exactly the computed delay.
    None,
}

/// Exponential backoff with jitter and a give-up time. Durations are written in
/// humantime form in the config (`"500ms"`, `"30s"`, `"2h"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// The delay before the first retry (before jitter).
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Each further retry waits this many times longer.
    pub multiplier: f64,
    /// No computed delay exceeds this (a `Retry-After` may).
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// How the delay is randomised.
    pub jitter: Jitter,
    /// After failing this long since its first failure, a call's failure counts
    /// as permanent.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_millis(500),
            multiplier: 2.0,
            max_interval: Duration::from_secs(60),
            jitter: Jitter::Full,
            give_up_after: Duration::from_secs(30 * 60),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1 for the first retry).
    /// `unit` is a uniform random number in `[0, 1)` supplied by the caller.
    /// A `retry_after` from the service wins and is honoured exactly.
    pub fn delay(&self, attempt: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra;
        }
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let base = self.initial_interval.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let capped = base.min(self.max_interval.as_secs_f64()).max(0.0);
        let unit = unit.clamp(0.0, 1.0);
        let secs = match self.jitter {
            Jitter::Full => capped * unit,
            Jitter::Equal => capped / 2.0 + capped / 2.0 * unit,
            Jitter::None => capped,
        };
        Duration::from_secs_f64(secs)
    }

    /// Whether a call first failing `failing_for` ago should now count as
    /// permanently failed.
    pub fn gives_up(&self, failing_for: Duration) -> bool {
        failing_for >= self.give_up_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_exactly() {
        let p = RetryPolicy::default();
        let ra = Duration::from_secs_f64(2.128);
        assert_eq!(p.delay(5, 0.3, Some(ra)), ra);
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_caps() {
        let p = RetryPolicy {
            initial_interval: Duration::from_secs(1),
            multiplier: 2.0,
            max_interval: Duration::from_secs(10),
            jitter: Jitter::Full,
            give_up_after: Duration::from_secs(100),
        };
        assert_eq!(p.delay(1, 0.999_999, None).as_millis(), 999);
        assert_eq!(p.delay(3, 0.5, None), Duration::from_secs(2));
        assert!(p.delay(30, 0.999_999, None) <= Duration::from_secs(10));
        assert_eq!(p.delay(4, 0.0, None), Duration::ZERO);
    }

    #[test]
    fn equal_and_no_jitter() {
        let mut p = RetryPolicy {
            jitter: Jitter::Equal,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1, 0.0, None), Duration::from_millis(250));
        p.jitter = Jitter::None;
        assert_eq!(p.delay(2, 0.7, None), Duration::from_secs(1));
    }

    #[test]
    fn gives_up_after_configured_time() {
        let p = RetryPolicy::default();
        assert!(!p.gives_up(Duration::from_secs(60)));
        assert!(p.gives_up(Duration::from_secs(1800)));
    }
}
