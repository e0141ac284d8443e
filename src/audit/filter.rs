//! Which entries an audit shows: `--saga`, `--tenant`, `--since`, `--until`,
//! `--kind` and `--object`, all of which must hold (an empty filter shows
//! everything). Times are RFC 3339 (`2026-11-28T20:00:00Z`, an offset such as
//! `+01:00`, or a bare date) or a humantime age such as `2h` (before now).

use super::{Entry, Error};
use crate::model::Timestamp;
use std::time::{Duration, SystemTime};

/// The selection made by the audit's filter options.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    /// `--saga`: only the saga with exactly this id.
    pub saga: Option<String>,
    /// Only sagas closing this tenant (compared without regard to case).
    pub tenant: Option<String>,
    /// Only events recorded at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events recorded at or before this instant.
    pub until: Option<Timestamp>,
    /// Only events of these kinds (snake_case names); empty means all.
    pub kinds: Vec<String>,
    /// Only events about this object id: its whole history across sagas.
    pub object: Option<String>,
}

impl Filter {
    /// Whether a saga (by id and tenant) can hold selected entries at all.
    pub fn wants_saga(&self, saga_id: &str, tenant_id: &str) -> bool {
        self.saga.as_deref().is_none_or(|s| s == saga_id)
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(tenant_id))
    }

    /// Whether an entry is selected.
    pub fn matches(&self, e: &Entry) -> bool {
        self.wants_saga(&e.saga_id, &e.tenant_id)
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at <= u)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == e.kind.as_ref()))
            && self
                .object
                .as_deref()
                .is_none_or(|o| e.object.as_deref() == Some(o))
    }

    /// Whether the filter only restricts whole sagas (so that per-saga
    /// summaries such as the timeline stay complete).
    pub fn is_saga_only(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.kinds.is_empty()
            && self.object.is_none()
    }
}

/// Parses `--since`/`--until`: RFC 3339 (with `Z`, an offset, or a bare date)
/// or a humantime age (`90s`, `2h`, `3days`) counted back from `now`.
pub fn parse_time(s: &str, now: SystemTime) -> Result<Timestamp, Error> {
    let s = s.trim();
    if let Ok(age) = humantime::parse_duration(s) {
        let t = now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        return Ok(Timestamp::from_system(t));
    }
    parse_rfc3339(s).ok_or_else(|| {
        Error::Filter(format!(
            "time {s:?} is neither RFC 3339 (2026-11-28T20:00:00Z) nor an age such as 2h"
        ))
    })
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    if s.len() == 10 {
        return humantime::parse_rfc3339_weak(&format!("{s}T00:00:00Z"))
            .ok()
            .map(Timestamp::from_system);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Some(Timestamp::from_system(t));
    }
    // An explicit offset `+hh:mm` / `-hh:mm` after the time of day.
    let split = s.len().checked_sub(6)?;
    let (local, offset) = (s.get(..split)?, s.get(split..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1i64,
        b'-' => -1i64,
        _ => return None,
    };
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(4..6)?.parse().ok()?;
    if offset.get(3..4)? != ":" || hours > 23 || minutes > 59 {
        return None;
    }
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    let shift = Duration::from_secs(((hours * 60 + minutes) * 60).unsigned_abs());
    let utc = if sign > 0 {
        t.checked_sub(shift)?
    } else {
        t.checked_add(shift)?
    };
    Some(Timestamp::from_system(utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        parse_time(s, SystemTime::UNIX_EPOCH + Duration::from_secs(10_000))
            .map(|t| t.0)
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn parses_rfc3339_offsets_dates_and_ages() {
        assert_eq!(at("1970-01-01T01:00:00Z"), 3_600_000);
        assert_eq!(at("1970-01-01T01:00:00.250Z"), 3_600_250);
        assert_eq!(at("1970-01-01T02:00:00+01:00"), 3_600_000);
        assert_eq!(at("1970-01-01T00:00:00-01:00"), 3_600_000);
        assert_eq!(at("1970-01-02"), 86_400_000);
        assert_eq!(at("2h"), 2_800_000);
        assert_eq!(at("5h"), 0);
        assert_eq!(at("1000s"), 9_000_000);
        assert!(parse_time("yesterday-ish", SystemTime::now()).is_err());
        assert!(parse_time("1970-01-01T00:00:00+25:00", SystemTime::now()).is_err());
    }
}
