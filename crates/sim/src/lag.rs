//! Replication lag (`--replication-lag DURATION`, off by default): Microsoft
//! Entra ID is eventually consistent, so a read right after a write may not
//! show it yet ("Recently changed users may show up late"; Microsoft Graph
//! directory objects: https://learn.microsoft.com/graph/aad-advanced-queries
//! and the best-practices page,
//! https://learn.microsoft.com/graph/best-practices-concept#handling-expected-errors,
//! describe the replication delay; neither gives a bound). The simulator
//! shows the state from before a change to every read made within the lag of
//! it (the worst case "up to that long"), for users, deleted items, role
//! assignments, the organization's sync state, subscriptions and security
//! policies. Writes always act on the true state: a second delete of a user
//! already deleted answers 404, a restore of a user already restored 404.

use super::state::{DeletedUser, User};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The views reads show for a while after a change: for each changed thing,
/// until when, and what it read as before the change.
#[derive(Clone, Debug, Default)]
pub struct Lag {
    /// A user by id: `Some` present as it was, `None` absent.
    pub users: HashMap<String, (Instant, Option<User>)>,
    /// A recycle-bin entry by id: `Some` listed as it was, `None` not listed.
    pub bin: HashMap<String, (Instant, Option<DeletedUser>)>,
    /// Whether closeout's app held its role.
    pub app_privileged: Option<(Instant, bool)>,
    /// The organization's sync state and the users then synced.
    pub dir_sync: Option<(Instant, bool, Vec<String>)>,
    /// Security defaults: until when reads show the old value, and that value.
    pub security_defaults: Option<(Instant, bool)>,
    /// Conditional Access policy states by id.
    pub ca: HashMap<String, (Instant, String)>,
}

/// Notes `before` as what reads show of a thing until `now + lag`; an earlier
/// view still shown stays (reads lag the first of several quick changes).
fn note<T>(slot: &mut Option<(Instant, T)>, before: T, now: Instant, lag: Duration) {
    let until = now + lag;
    match slot {
        Some((u, _)) if *u > now => *u = until,
        _ => *slot = Some((until, before)),
    }
}

fn note_map<T>(
    map: &mut HashMap<String, (Instant, T)>,
    key: &str,
    before: T,
    now: Instant,
    lag: Duration,
) {
    let mut slot = map.remove(key);
    note(&mut slot, before, now, lag);
    if let Some(v) = slot {
        map.insert(key.to_string(), v);
    }
}

fn note3(
    slot: &mut Option<(Instant, bool, Vec<String>)>,
    before: (bool, Vec<String>),
    now: Instant,
    lag: Duration,
) {
    let until = now + lag;
    match slot {
        Some((u, _, _)) if *u > now => *u = until,
        _ => *slot = Some((until, before.0, before.1)),
    }
}

impl Lag {
    /// A user changed (deleted or restored): reads show `before` a while.
    pub fn user(&mut self, id: &str, before: Option<User>, now: Instant, lag: Duration) {
        if !lag.is_zero() {
            note_map(&mut self.users, id, before, now, lag);
        }
    }

    /// A recycle-bin entry changed.
    pub fn bin(&mut self, id: &str, before: Option<DeletedUser>, now: Instant, lag: Duration) {
        if !lag.is_zero() {
            note_map(&mut self.bin, id, before, now, lag);
        }
    }

    /// closeout's app was given its role.
    pub fn app_role(&mut self, before: bool, now: Instant, lag: Duration) {
        if !lag.is_zero() {
            note(&mut self.app_privileged, before, now, lag);
        }
    }

    /// Directory sync was turned off.
    pub fn dir_sync(&mut self, before: (bool, Vec<String>), now: Instant, lag: Duration) {
        if !lag.is_zero() {
            note3(&mut self.dir_sync, before, now, lag);
        }
    }

    /// Security defaults changed.
    pub fn security_defaults(&mut self, before: bool, now: Instant, lag: Duration) {
        if !lag.is_zero() {
            note(&mut self.security_defaults, before, now, lag);
        }
    }

    /// A Conditional Access policy's state changed.
    pub fn ca(&mut self, id: &str, before: String, now: Instant, lag: Duration) {
        if !lag.is_zero() {
            note_map(&mut self.ca, id, before, now, lag);
        }
    }

    /// A subscription's Graph status changed (its view lives on the
    /// subscription, which Partner Center's handlers change alone).
    pub fn sub(slot: &mut Option<(Instant, String)>, before: String, now: Instant, lag: Duration) {
        if !lag.is_zero() {
            note(slot, before, now, lag);
        }
    }

    /// Users as reads see them at `now`.
    pub fn users_view(
        &self,
        users: &std::collections::BTreeMap<String, User>,
        now: Instant,
    ) -> Option<std::collections::BTreeMap<String, User>> {
        let synced = self.dir_sync.as_ref().filter(|(u, _, _)| *u > now);
        if synced.is_none() && !self.users.values().any(|(u, _)| *u > now) {
            return None;
        }
        let mut view = users.clone();
        for (id, (until, before)) in &self.users {
            if *until > now {
                match before {
                    Some(u) => {
                        view.insert(id.clone(), u.clone());
                    }
                    None => {
                        view.remove(id);
                    }
                }
            }
        }
        if let Some((_, _, ids)) = synced {
            for (id, u) in &mut view {
                u.on_premises_sync_enabled = ids.contains(id);
            }
        }
        Some(view)
    }

    /// The recycle bin as reads see it at `now`.
    pub fn bin_view(
        &self,
        bin: &std::collections::BTreeMap<String, DeletedUser>,
        now: Instant,
    ) -> Option<std::collections::BTreeMap<String, DeletedUser>> {
        if !self.bin.values().any(|(u, _)| *u > now) {
            return None;
        }
        let mut view = bin.clone();
        for (id, (until, before)) in &self.bin {
            if *until > now {
                match before {
                    Some(d) => {
                        view.insert(id.clone(), d.clone());
                    }
                    None => {
                        view.remove(id);
                    }
                }
            }
        }
        Some(view)
    }

    /// A value as reads see it at `now`: the noted one while it lags.
    pub fn seen<T: Clone>(slot: &Option<(Instant, T)>, current: T, now: Instant) -> T {
        match slot {
            Some((until, before)) if *until > now => before.clone(),
            _ => current,
        }
    }

    /// A keyed value as reads see it at `now`.
    pub fn seen_in(
        map: &HashMap<String, (Instant, String)>,
        key: &str,
        current: &str,
        now: Instant,
    ) -> String {
        match map.get(key) {
            Some((until, before)) if *until > now => before.clone(),
            _ => current.to_string(),
        }
    }
}
