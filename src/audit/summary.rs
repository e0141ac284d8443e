//! What a person asks of one closure first, folded from its entries in one
//! pass: the outcome, the tenant, who submitted it and when, how long each
//! step and each wait took, what was deleted, cancelled and weakened (with
//! the values before), every operator action with who, when and why, the
//! step-5 evidence that the tenant is gone, and the retries in one number.
//!
//! Operator actions are every [`Fact::Operator`] of the log, whatever event
//! states it: an event the adapter maps to that fact (a gate confirmed, a
//! pause, an attestation) is listed without a change here.
//!
//! Bounded: counts are exact; at most [`MAX_LISTED`] users, subscriptions,
//! operator actions and step-5 signals are kept by name.

use super::changes::{Change, Joiner};
use super::names::Names;
use super::timeline::Timeline;
use super::verify::Anchor;
use super::{Entry, Error, Fact, Filter, Log, OutcomeResult, SagaInfo};
use crate::model::Timestamp;
use rustc_hash::FxHashMap as HashMap;
use serde_json::Value;
use std::time::Duration;

/// Most objects, actions or signals kept by name per list.
pub const MAX_LISTED: usize = 200;

/// One saga, summarised.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The saga's id, as the log's records carry it.
    pub saga_id: String,
    /// The tenant as the batch named it.
    pub tenant_id: String,
    /// The tenant's GUID, once resolved (empty before).
    pub tenant_guid: String,
    /// Its initial domain (`*.onmicrosoft.com`), from step 5's reads or the
    /// batch's own name for it.
    pub initial_domain: Option<String>,
    /// Who submitted the closure (the control socket peer's user).
    pub submitted_by: String,
    /// When it was submitted.
    pub submitted_at: Option<Timestamp>,
    /// The saga's state as last recorded (`completed`, `failed`...).
    pub state: String,
    /// Why it failed, was rolled back or paused itself, when recorded.
    pub reason: String,
    /// Steps, waits, gates, retries over time.
    pub timeline: Timeline,
    /// What was changed, counted.
    pub counts: Counts,
    /// The accounts kept (never deleted), by name, from the keep list check.
    pub kept: Vec<String>,
    /// When a kept account was last verified an enabled Global
    /// Administrator before users were deleted.
    pub keep_verified: Option<Timestamp>,
    /// The backup policy and the data at stake as recorded before step 1
    /// (the attestation itself is an operator action).
    pub data_protection: Vec<String>,
    /// Users deleted, by name (at most [`MAX_LISTED`]).
    pub users_deleted: Vec<String>,
    /// Subscription changes made, by name (at most [`MAX_LISTED`]).
    pub subscriptions: Vec<Changed>,
    /// MFA settings changed, with the value each had before.
    pub mfa: Vec<Changed>,
    /// Every operator action, in order (at most [`MAX_LISTED`]).
    pub operators: Vec<OperatorAction>,
    /// Step 5's evidence that the tenant is gone, in order (the first
    /// [`MAX_LISTED`], the last always kept).
    pub verification: Vec<Signal>,
    /// Step-5 signals seen in all.
    pub verification_seen: u64,
    /// Reads of the tenant's discovery document (step 5 polls it; only the
    /// count and the last are kept, the baseline and the observations of
    /// its absence are in `verification`).
    pub discovery_reads: u64,
    /// The last discovery document read.
    pub last_discovery: Option<Signal>,
    /// The saga's last record: its hash covers every record before it, so
    /// `closeout verify --expect-head` with it checks what this summarises.
    pub head: Option<Anchor>,
    /// The saga's records read.
    pub records: u64,
}

/// Changes that took effect (applied, found already done, or found applied
/// by a read), by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Users deleted (step 1).
    pub users_deleted: u64,
    /// Users restored from the recycle bin (rollback).
    pub users_restored: u64,
    /// Subscriptions cancelled (set to suspended, step 2).
    pub subscriptions_cancelled: u64,
    /// Subscriptions deleted (step 3).
    pub subscriptions_deleted: u64,
    /// Subscriptions set back to active (rollback, undoing step 2).
    pub subscriptions_reactivated: u64,
    /// Subscriptions whose auto-renew was turned off or on.
    pub auto_renew_changed: u64,
    /// MFA settings disabled (step 4).
    pub mfa_changed: u64,
    /// Changes that failed for good.
    pub failed: u64,
    /// Changes whose outcome was never recorded.
    pub in_doubt: u64,
}

/// One change of a named object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// What was done (`disable conditional access policy`).
    pub action: String,
    /// The object's name, else its id.
    pub name: String,
    /// The object's id (user object id, subscription id, policy id): the key of `--object`.
    pub id: String,
    /// The value before, when the inventory or a read recorded it.
    pub before: Option<String>,
    /// How it ended (`applied`, `failed (...)`).
    pub result: String,
    /// When the outcome was recorded.
    pub at: Option<Timestamp>,
}

/// One thing a person did to the saga.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorAction {
    /// When it was recorded.
    pub at: Timestamp,
    /// Who: the control socket peer's user name (`closeout` when closeout acted on its own).
    pub who: String,
    /// What (`confirmed the gate`, `paused`...).
    pub action: String,
    /// Why, as they said.
    pub why: String,
    /// What the gate open at the time asked, if one was.
    pub gate: Option<String>,
}

/// Waits or gates in a row with the same reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// An operator gate (else a timer wait).
    pub gate: bool,
    /// The wait's reason or the gate's instructions, as recorded.
    pub label: String,
    /// When the first began.
    pub start: Timestamp,
    /// Their durations added up (the last's up to now if still open).
    pub total: Duration,
    /// How many in a row.
    pub count: u32,
    /// Whether the last is still open.
    pub open: bool,
}

/// One step-5 observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// When it was recorded.
    pub at: Timestamp,
    /// What was seen, in words.
    pub text: String,
}

/// The event kinds that are step 5's evidence that the tenant is gone.
const SIGNALS: [&str; 7] = [
    "deletion_checked",
    "credentials_refused",
    "discovery_baseline_recorded",
    "discovery_read",
    "tenant_observed_gone",
    "tenant_checked",
    "tenant_found_gone",
];

impl Summary {
    /// Reads the saga once and summarises it, naming objects with `names`
    /// and taking the MFA settings' values before from `inventory`.
    pub fn build(
        log: &dyn Log,
        saga: &SagaInfo,
        names: &Names,
        inventory: Option<&Value>,
    ) -> Result<Summary, Error> {
        let mut s = Summary {
            saga_id: saga.saga_id.clone(),
            tenant_id: saga.tenant_id.clone(),
            ..Summary::default()
        };
        if saga
            .tenant_id
            .to_ascii_lowercase()
            .ends_with(".onmicrosoft.com")
        {
            s.initial_domain = Some(saga.tenant_id.clone());
        }
        let mut before = priors(inventory);
        let mut joiner = Joiner::new();
        let all = Filter::default();
        let mut open_gate: Option<String> = None;
        for e in log.saga_entries(&saga.saga_id) {
            let e = e?;
            if e.item.is_none_or(|i| i.index == 0) {
                s.records += 1;
            }
            if e.item.is_none_or(|i| i.index + 1 == i.count) {
                s.head = Some(Anchor {
                    seq: e.seq,
                    hash: e.hash,
                    at: e.at,
                });
            }
            if !e.tenant_guid.is_empty() {
                s.tenant_guid.clone_from(&e.tenant_guid);
            }
            s.timeline.push(&e);
            if let Some(c) = joiner.push(&e, &all) {
                s.count(&c, names, &before);
            }
            if matches!(&e.fact, Fact::Operator { action, .. } if action == "resumed") {
                s.reason.clear();
            }
            match &e.fact {
                Fact::SagaStarted { submitted_by, .. } => {
                    s.submitted_by.clone_from(submitted_by);
                    s.submitted_at = Some(e.at);
                }
                Fact::GateOpened { instructions } => open_gate = Some(instructions.clone()),
                Fact::WaitEnded { .. } => open_gate = None,
                Fact::Operator { action, who, why } if s.operators.len() < MAX_LISTED => {
                    s.operators.push(OperatorAction {
                        at: e.at,
                        who: who.clone(),
                        action: action.clone(),
                        why: why.clone(),
                        gate: open_gate.clone(),
                    });
                }
                // The reason of the state the saga is in: a pause it came
                // out of explains nothing about how it ended.
                Fact::State { state, reason } => {
                    if state == "completed" {
                        s.reason.clear();
                    } else {
                        s.reason.clone_from(reason);
                    }
                }
                Fact::Other { summary } if e.kind == "discovery_read" => {
                    s.verification_seen += 1;
                    s.discovery_reads += 1;
                    s.last_discovery = Some(Signal {
                        at: e.at,
                        text: summary.clone(),
                    });
                    s.learn_domain(&e);
                }
                Fact::Other { summary } if SIGNALS.contains(&e.kind.as_ref()) => {
                    s.verification_seen += 1;
                    let signal = Signal {
                        at: e.at,
                        text: summary.clone(),
                    };
                    if s.verification.len() < MAX_LISTED {
                        s.verification.push(signal);
                    } else if let Some(last) = s.verification.last_mut() {
                        *last = signal;
                    }
                    s.learn_domain(&e);
                }
                Fact::Other { summary }
                    if (e.kind == "backup_policy_recorded"
                        || e.kind == "data_at_stake_recorded")
                        && s.data_protection.len() < MAX_LISTED =>
                {
                    s.data_protection.push(summary.clone());
                }
                Fact::Other { .. } if e.kind == "mfa_read" => learn_mfa(&e, &mut before),
                Fact::Other { .. } if e.kind == "keep_list_checked" => {
                    s.kept = ids_in(&e.details, "/keep_ids")
                        .iter()
                        .take(MAX_LISTED)
                        .map(|id| names.label(id))
                        .collect();
                }
                Fact::Other { .. } if e.kind == "keep_admin_verified" => {
                    s.keep_verified = Some(e.at);
                }
                _ => {}
            }
        }
        s.counts.in_doubt = joiner.finish_saga().len() as u64;
        s.state = saga
            .state
            .clone()
            .or_else(|| s.timeline.state.clone())
            .unwrap_or_else(|| "unknown".into());
        Ok(s)
    }

    /// Counts one joined change.
    fn count(&mut self, c: &Change, names: &Names, before: &HashMap<String, String>) {
        let Some(result) = &c.result else { return };
        let id = c.object.clone().unwrap_or_default();
        if let OutcomeResult::Failed { class, .. } = result {
            if class == "permanent" {
                self.counts.failed += 1;
            }
        }
        let changed = || Changed {
            action: c.action.clone(),
            name: names.of(&id).unwrap_or(&id).to_string(),
            id: id.clone(),
            before: before.get(&id).cloned(),
            result: result.label(),
            at: c.outcome_at,
        };
        let c_action = c.action.as_str();
        let subscription =
            c_action.starts_with("set subscription") || c_action.starts_with("turn subscription");
        let mfa = c_action.starts_with("disable ");
        if !result.succeeded() {
            // A failure of a named object is worth a line; the retry that
            // follows gets its own.
            if (subscription || mfa)
                && matches!(result, OutcomeResult::Failed { class, .. } if class == "permanent")
            {
                let list = if mfa {
                    &mut self.mfa
                } else {
                    &mut self.subscriptions
                };
                if list.len() < MAX_LISTED {
                    list.push(changed());
                }
            }
            return;
        }
        match c_action {
            "delete user" => {
                self.counts.users_deleted += 1;
                if self.users_deleted.len() < MAX_LISTED {
                    self.users_deleted.push(names.label(&id));
                }
            }
            "restore user" => self.counts.users_restored += 1,
            "set subscription to suspended" => self.counts.subscriptions_cancelled += 1,
            "set subscription to deleted" => self.counts.subscriptions_deleted += 1,
            "set subscription to active" => self.counts.subscriptions_reactivated += 1,
            a if a.starts_with("turn subscription") => self.counts.auto_renew_changed += 1,
            _ if mfa => self.counts.mfa_changed += 1,
            _ => {}
        }
        if subscription && self.subscriptions.len() < MAX_LISTED {
            self.subscriptions.push(changed());
        }
        if mfa && self.mfa.len() < MAX_LISTED {
            self.mfa.push(changed());
        }
    }

    /// Takes the initial domain from a step-5 read that names it.
    fn learn_domain(&mut self, e: &Entry) {
        let Ok(v) = serde_json::from_str::<Value>(&e.details) else {
            return;
        };
        let domain = v
            .pointer("/check/initial_domain")
            .or_else(|| v.pointer("/observation/domain_name"))
            .and_then(Value::as_str);
        if let Some(d) = domain.filter(|d| !d.is_empty()) {
            self.initial_domain = Some(d.to_string());
        }
    }

    /// When the saga ran: from its submission to its last record.
    pub fn duration(&self) -> Option<Duration> {
        match (self.timeline.first, self.timeline.last) {
            (Some(a), Some(b)) => Some(b.since(a)),
            _ => None,
        }
    }

    /// The waits and gates, consecutive ones with the same reason taken
    /// together (a saga polls in short waits).
    pub fn waits(&self) -> Vec<Wait> {
        let mut out: Vec<Wait> = Vec::new();
        for w in &self.timeline.spans {
            let took = w.end.map(|e| e.since(w.start));
            match out.last_mut() {
                Some(last) if last.gate == w.gate && last.label == w.label => {
                    last.count += 1;
                    last.total += took.unwrap_or_default();
                    last.open = took.is_none();
                }
                _ => out.push(Wait {
                    gate: w.gate,
                    label: w.label.clone(),
                    start: w.start,
                    total: took.unwrap_or_default(),
                    count: 1,
                    open: took.is_none(),
                }),
            }
        }
        out
    }

    /// The discovery document's reads in one line, if any.
    pub fn discovery_line(&self) -> Option<String> {
        self.last_discovery.as_ref().map(|d| {
            format!(
                "discovery document read {} times; the last, at {}: {}",
                self.discovery_reads,
                d.at,
                d.text.trim_start_matches("discovery document read: ")
            )
        })
    }

    /// The step the saga is in or ended in, with its name.
    pub fn step(&self) -> String {
        match self.timeline.bars.last() {
            Some(b) => format!("{} ({})", b.step, super::entry::step_name(b.step)),
            None => "-".into(),
        }
    }

    /// The retries in one line.
    pub fn retries_line(&self) -> String {
        let t = &self.timeline;
        if t.retries == 0 {
            "no call was retried".into()
        } else {
            format!(
                "{} calls retried, {} of them after the service throttled",
                t.retries, t.throttles
            )
        }
    }

    /// The counts in one line.
    pub fn counts_line(&self) -> String {
        let c = &self.counts;
        let mut parts = vec![
            format!("{} users deleted", c.users_deleted),
            format!(
                "{} subscriptions cancelled, {} deleted",
                c.subscriptions_cancelled, c.subscriptions_deleted
            ),
            format!("{} MFA settings disabled", c.mfa_changed),
        ];
        if c.users_restored > 0 {
            parts.push(format!("{} users restored", c.users_restored));
        }
        if c.subscriptions_reactivated > 0 {
            parts.push(format!(
                "{} subscriptions reactivated",
                c.subscriptions_reactivated
            ));
        }
        if c.auto_renew_changed > 0 {
            parts.push(format!(
                "{} auto-renew settings changed",
                c.auto_renew_changed
            ));
        }
        if c.failed > 0 {
            parts.push(format!("{} changes failed", c.failed));
        }
        if c.in_doubt > 0 {
            parts.push(format!("{} changes in doubt", c.in_doubt));
        }
        parts.join("; ")
    }

    /// The backup policy and the data at stake in one line.
    pub fn data_line(&self) -> Option<String> {
        (!self.data_protection.is_empty()).then(|| self.data_protection.join("; "))
    }

    /// The kept accounts in one line.
    pub fn kept_line(&self) -> Option<String> {
        if self.kept.is_empty() {
            return None;
        }
        let mut out = self.kept.join(", ");
        if let Some(at) = self.keep_verified {
            out.push_str(&format!(
                "; verified an enabled Global Administrator before deleting (last at {at})"
            ));
        }
        Some(out)
    }

    /// Who submitted the saga (`(not recorded)` for a saga recorded before
    /// submitters were), and when, with how long until its last record.
    pub fn submitted_line(&self) -> (&str, String) {
        let who = if self.submitted_by.is_empty() {
            "(not recorded)"
        } else {
            &self.submitted_by
        };
        let when = format!(
            "{}{}",
            self.submitted_at.map(|t| t.to_string()).unwrap_or_default(),
            self.duration()
                .map(|d| format!("; {} until its last record", human(d)))
                .unwrap_or_default()
        );
        (who, when)
    }

    /// The tenant in one line: as named, its GUID and initial domain.
    pub fn tenant_line(&self) -> String {
        let mut out = self.tenant_id.clone();
        if !self.tenant_guid.is_empty() && self.tenant_guid != self.tenant_id {
            out.push_str(&format!(", id {}", self.tenant_guid));
        }
        if let Some(d) = self
            .initial_domain
            .as_ref()
            .filter(|d| *d != &self.tenant_id)
        {
            out.push_str(&format!(", initial domain {d}"));
        }
        out
    }
}

/// A duration as a person reads it, to the second.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{} ms", d.as_millis());
    }
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The MFA settings' values before step 4, from the inventory: security
/// defaults on or off, each policy's state.
fn priors(inventory: Option<&Value>) -> HashMap<String, String> {
    let mut out = HashMap::default();
    let Some(inv) = inventory else { return out };
    if let Some(on) = inv.get("security_defaults").and_then(Value::as_bool) {
        out.insert(
            crate::saga::SECURITY_DEFAULTS.to_string(),
            if on { "on" } else { "off" }.to_string(),
        );
    }
    for p in inv
        .get("ca_policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(state)) = (
            p.get("id").and_then(Value::as_str),
            p.get("state").and_then(Value::as_str),
        ) {
            out.insert(id.to_string(), state.to_string());
        }
    }
    out
}

/// Per-user MFA states as the first read of step 4 found them (the
/// inventory does not hold them).
fn learn_mfa(e: &Entry, before: &mut HashMap<String, String>) {
    let Ok(v) = serde_json::from_str::<Value>(&e.details) else {
        return;
    };
    for pair in v
        .pointer("/mfa/per_user")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(state)) = (
            pair.get(0).and_then(Value::as_str),
            pair.get(1).and_then(Value::as_str),
        ) {
            before
                .entry(id.to_string())
                .or_insert_with(|| state.to_string());
        }
    }
}

/// The strings of the array at `pointer` in an event's JSON.
pub fn ids_in(details: &str, pointer: &str) -> Vec<String> {
    serde_json::from_str::<Value>(details)
        .ok()
        .and_then(|v| v.pointer(pointer).and_then(Value::as_array).cloned())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The names and the inventory of one saga (read before its summary).
pub fn names_of(log: &dyn Log, saga_id: &str) -> Result<(Names, Option<Value>), Error> {
    let inventory = log.inventory(saga_id)?;
    Ok((Names::from_inventory(inventory.as_ref()), inventory))
}
