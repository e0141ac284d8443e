//! The effects ledger: every state change the simulator applied, in order, as
//! `GET /_sim/effects` reports it. Clients' changes carry their own path
//! (`/v1.0/users/{id}`, also inside `$batch`); changes made by the operator
//! API, the auto-operator or the sim's own clock carry a `/_sim/...` path.
//! Reads, token requests and rejected calls are not recorded.

use serde::Serialize;

/// One applied change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Effect {
    /// Position in the ledger, from 1.
    pub seq: u64,
    /// When it was applied (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// The tenant changed (the customer tenant for Partner Center calls).
    pub tenant_id: String,
    /// HTTP method of the call that made it (`POST` for clock and operator).
    pub method: String,
    /// URL path without query, version prefix included.
    pub path: String,
    /// The status the simulator answered: a ghost failure's 429/5xx, 0 when it
    /// dropped or hung the connection after applying the change.
    pub status: u16,
}

/// The ledger: an append-only vector (recording is a push).
#[derive(Debug, Default)]
pub struct Ledger {
    /// Effects in order; `entries[i].seq == i + 1`.
    entries: Vec<Effect>,
}

impl Ledger {
    /// Appends an effect and returns its sequence number.
    pub fn record(
        &mut self,
        at: String,
        tenant_id: &str,
        method: &str,
        path: &str,
        status: u16,
    ) -> u64 {
        let seq = self.entries.len() as u64 + 1;
        self.entries.push(Effect {
            seq,
            at,
            tenant_id: tenant_id.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            status,
        });
        seq
    }

    /// Changes the status of an effect already recorded (a ghost or a drop
    /// decided after the change was applied).
    pub fn set_status(&mut self, seq: u64, status: u16) {
        if let Some(e) = seq
            .checked_sub(1)
            .and_then(|i| self.entries.get_mut(i as usize))
        {
            e.status = status;
        }
    }

    /// The effects after `since` (all with 0).
    pub fn since(&self, since: u64) -> &[Effect] {
        let start = (since as usize).min(self.entries.len());
        &self.entries[start..]
    }

    /// The sequence number of the last effect (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.entries.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_skips_earlier_effects_and_status_can_change() {
        let mut l = Ledger::default();
        assert_eq!(l.record("t".into(), "a", "DELETE", "/v1.0/users/1", 204), 1);
        assert_eq!(l.record("t".into(), "a", "DELETE", "/v1.0/users/2", 204), 2);
        l.set_status(2, 503);
        assert_eq!(l.since(1).len(), 1);
        assert_eq!(l.since(1)[0].status, 503);
        assert_eq!(l.since(0).len(), 2);
        assert!(l.since(9).is_empty());
    }
}
