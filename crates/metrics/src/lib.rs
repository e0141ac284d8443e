//! The daemon's metrics in the Prometheus text format, served on a loopback
//! address when `[metrics] listen` is configured ([`server`]).
//!
//! The counters and histograms live in one process-wide [`Metrics`] value, so
//! that the code being measured (the Graph client, the executor) updates
//! them with a one-line call to a function of this module and needs no handle
//! passed around. What is cheaper to read than to track (sagas by state and
//! step, the daemon's health) is computed from the engine at scrape time
//! ([`render`]). The exposition is written by `prometheus-client`.
//!
//! Families (all prefixed `closeout_`):
//! - `sagas{state,step}`: sagas known to the daemon (gauge, at scrape time);
//! - `operator_gates_open{gate}`, `timers_pending`: what sagas wait for;
//! - `graph_requests_total{method,status_class}`: HTTP requests to login,
//!   Graph and Partner Center; `graph_batch_items_total{method,status_class}`:
//!   the requests inside `$batch`; `graph_tenants`: tenants called;
//! - `graph_throttled_total{status,retry_after}`: 429/503 answers (requests
//!   and batch items);
//! - `saga_retries_total`: retries scheduled by sagas (`RetryScheduled`);
//! - `in_doubt_resolved_total{outcome}`: objects of in-doubt changes resolved
//!   by reading, by what the read showed;
//! - `store_append_seconds`, `store_group_commit_size`: durable append latency
//!   as the executor waits for it, and how many appends shared each flush;
//! - `healthy`: 1 while the engine's loop turns and its log takes writes;
//! - `saga_tasks_dead`: sagas whose task ended without the saga ending, until
//!   an operator resumes or aborts them (kept by the executor's supervisor).
#![forbid(unsafe_code)]

use closeout_core::saga;
use closeout_store as store;

pub mod server;

pub use server::{serve, serve_with, Server};

use crate::saga::{Event, Gate};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Why the metrics endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address from `[metrics] listen`.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// Labels of a saga count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SagaLabels {
    /// `running`, `waiting`, `completed`, ... (as `status` prints it).
    state: &'static str,
    /// The step (`1`..`5`), `0` before step 1.
    step: u8,
}

/// Labels of an HTTP call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// `GET`, `POST`, `PATCH`, `DELETE`, ...
    method: String,
    /// `2xx` .. `5xx`, or `error` when no answer arrived.
    status_class: &'static str,
}

/// Labels of a throttled answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabels {
    /// The throttled answer's HTTP status: `429` or `503`.
    status: u16,
    /// Whether the answer said when to come back.
    retry_after: bool,
}

/// Labels of a single-label family.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    /// The gate's name (`cancel_subscriptions`, ...).
    gate: &'static str,
}

/// Labels of resolved in-doubt objects.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `applied` (the change had been made) or `not_applied` (it is made again).
    outcome: &'static str,
}

/// Every metric of the process, registered once.
pub struct Metrics {
    /// What is encoded on a scrape.
    registry: Registry,
    /// Sagas by state and step, refilled at each scrape.
    sagas: Family<SagaLabels, Gauge>,
    /// Open gates by kind, refilled at each scrape from `gates`.
    gates_open: Family<GateLabels, Gauge>,
    /// The open gate of each saga that has one (kept by [`saga_gate`]).
    gates: Mutex<HashMap<String, Gate>>,
    /// Saga tasks sleeping until a recorded timer.
    timers_pending: Gauge,
    /// HTTP requests by method and status class.
    graph_requests: Family<CallLabels, Counter>,
    /// Requests inside `$batch`, by method and status class.
    graph_batch_items: Family<CallLabels, Counter>,
    /// Tenants the Graph client has a throttle for (tenants called).
    graph_tenants: Gauge,
    /// 429 and 503 answers.
    throttled: Family<ThrottleLabels, Counter>,
    /// Retries scheduled by sagas.
    retries: Counter,
    /// Objects of in-doubt changes resolved by reading.
    in_doubt: Family<OutcomeLabels, Counter>,
    /// Durable append latency as seen by the caller.
    append_seconds: Histogram,
    /// Appends answered by one flush.
    group_size: Histogram,
    /// 1 while the engine is healthy, refilled at each scrape.
    healthy: Gauge,
    /// Sagas whose task died and no operator has acted on since.
    tasks_dead: Gauge,
    /// Serialises scrapes (they refill the scrape-time gauges).
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The process's metrics.
static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("closeout"),
            sagas: Family::default(),
            gates_open: Family::default(),
            gates: Mutex::new(HashMap::new()),
            timers_pending: Gauge::default(),
            graph_requests: Family::default(),
            graph_batch_items: Family::default(),
            graph_tenants: Gauge::default(),
            throttled: Family::default(),
            retries: Counter::default(),
            in_doubt: Family::default(),
            // 0.25 ms .. about 4 s.
            append_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            // 1 .. 512 appends per flush.
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            healthy: Gauge::default(),
            tasks_dead: Gauge::default(),
            scrape: Mutex::new(()),
        };
        // Known label values start at 0, so that rates exist before the
        // first event; `sagas` and the call families appear with their first
        // sample.
        for outcome in ["applied", "not_applied"] {
            let _ = m.in_doubt.get_or_create(&OutcomeLabels { outcome });
        }
        for (status, retry_after) in [(429, true), (429, false), (503, true), (503, false)] {
            let _ = m.throttled.get_or_create(&ThrottleLabels {
                status,
                retry_after,
            });
        }
        let r = &mut m.registry;
        r.register(
            "sagas",
            "Sagas known to the daemon, by state and current step (0: before step 1)",
            m.sagas.clone(),
        );
        r.register(
            "operator_gates_open",
            "Sagas waiting at an operator gate, by gate",
            m.gates_open.clone(),
        );
        r.register(
            "timers_pending",
            "Saga tasks sleeping until a recorded timer (retry, poll, gate re-check)",
            m.timers_pending.clone(),
        );
        r.register(
            "graph_requests",
            "HTTP requests to login, Graph and Partner Center, by method and status class",
            m.graph_requests.clone(),
        );
        r.register(
            "graph_batch_items",
            "Requests inside Graph $batch calls, by method and status class",
            m.graph_batch_items.clone(),
        );
        r.register(
            "graph_tenants",
            "Tenants the Graph client has called since the daemon started",
            m.graph_tenants.clone(),
        );
        r.register(
            "graph_throttled",
            "Answers 429 or 503 (requests and $batch items), by status and whether Retry-After came",
            m.throttled.clone(),
        );
        r.register(
            "saga_retries",
            "Retries scheduled by sagas after a transient failure",
            m.retries.clone(),
        );
        r.register(
            "in_doubt_resolved",
            "Objects of in-doubt changes resolved by reading, by what the read showed",
            m.in_doubt.clone(),
        );
        r.register_with_unit(
            "store_append",
            "Time from asking for a durable append to its acknowledgement (group commit, fsync)",
            prometheus_client::registry::Unit::Seconds,
            m.append_seconds.clone(),
        );
        r.register(
            "store_group_commit_size",
            "Appends made durable by one flush of the event log",
            m.group_size.clone(),
        );
        r.register(
            "healthy",
            "1 while the saga loop turns and the event log takes writes, else 0",
            m.healthy.clone(),
        );
        r.register(
            "saga_tasks_dead",
            "Sagas whose task ended without the saga ending (a panic, a refused append), until an operator resumes or aborts them",
            m.tasks_dead.clone(),
        );
        m
    }
}

/// Each saga's state and step at a scrape (the runtime's status, read by
/// the caller: metrics calls nothing back).
pub type SagaGauge = (crate::saga::SagaState, Option<u8>);

/// The exposition: refills the scrape-time gauges from `sagas` and `healthy`,
/// then encodes every family.
pub fn render(sagas: &[SagaGauge], healthy: bool) -> String {
    let m = &*METRICS;
    let _one_at_a_time = m
        .scrape
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.sagas.clear();
    for (state, step) in sagas {
        m.sagas
            .get_or_create(&SagaLabels {
                state: state.as_str(),
                step: step.unwrap_or(0),
            })
            .inc();
    }
    m.gates_open.clear();
    for gate in [
        Gate::CancelSubscriptions,
        Gate::DeleteSubscriptions,
        Gate::ReactivateSubscriptions,
        Gate::DeleteTenant,
        Gate::AssignAppRole,
        Gate::TurnOffDirectorySync,
        Gate::AttestBackup,
        Gate::GrantPermissions,
    ] {
        let _ = m.gates_open.get_or_create(&GateLabels {
            gate: gate_name(gate),
        });
    }
    for gate in m
        .gates
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
    {
        m.gates_open
            .get_or_create(&GateLabels {
                gate: gate_name(*gate),
            })
            .inc();
    }
    m.healthy.set(i64::from(healthy));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &m.registry);
    out
}

/// How many sagas have a dead task now (see the executor's supervisor).
pub fn saga_tasks_dead(n: usize) {
    METRICS.tasks_dead.set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

fn gate_name(gate: Gate) -> &'static str {
    match gate {
        Gate::CancelSubscriptions => "cancel_subscriptions",
        Gate::DeleteSubscriptions => "delete_subscriptions",
        Gate::ReactivateSubscriptions => "reactivate_subscriptions",
        Gate::DeleteTenant => "delete_tenant",
        Gate::AssignAppRole => "assign_app_role",
        Gate::TurnOffDirectorySync => "turn_off_directory_sync",
        Gate::EndSubscriptionsElsewhere => "end_subscriptions_elsewhere",
        Gate::AttestBackup => "attest_backup",
        Gate::GrantPermissions => "grant_permissions",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

fn call(family: &Family<CallLabels, Counter>, method: &str, status_class: &'static str) {
    family
        .get_or_create(&CallLabels {
            method: method.to_string(),
            status_class,
        })
        .inc();
}

fn answered(family: &Family<CallLabels, Counter>, method: &str, status: u16, retry_after: bool) {
    let m = &*METRICS;
    call(family, method, status_class(status));
    if matches!(status, 429 | 503) {
        m.throttled
            .get_or_create(&ThrottleLabels {
                status,
                retry_after,
            })
            .inc();
    }
}

/// Hook: an HTTP request to login, Graph or Partner Center was answered.
pub fn graph_answered(method: &str, status: u16, retry_after: bool) {
    answered(&METRICS.graph_requests, method, status, retry_after);
}

/// Hook: an HTTP request got no answer (connect, timeout, reset).
pub fn graph_unanswered(method: &str) {
    call(&METRICS.graph_requests, method, "error");
}

/// Hook: one item of a `$batch` answer.
pub fn batch_item_answered(method: &str, status: u16, retry_after: bool) {
    answered(&METRICS.graph_batch_items, method, status, retry_after);
}

/// Hook: the Graph client started tracking one more tenant.
pub fn graph_tenant_added() {
    METRICS.graph_tenants.inc();
}

/// Hook: `events` were recorded durably for a saga (retries, in-doubt
/// resolutions), after which its open gate is `gate`.
pub fn recorded(events: &[Event], saga_id: &str, gate: Option<Gate>) {
    saga_gate(saga_id, gate);
    let m = &*METRICS;
    for event in events {
        match event {
            Event::RetryScheduled { .. } => {
                m.retries.inc();
            }
            Event::InDoubtResolved {
                applied,
                not_applied,
                ..
            } => {
                for (outcome, n) in [
                    ("applied", applied.len()),
                    ("not_applied", not_applied.len()),
                ] {
                    m.in_doubt
                        .get_or_create(&OutcomeLabels { outcome })
                        .inc_by(n as u64);
                }
            }
            _ => {}
        }
    }
}

/// Hook: the saga's open operator gate after its latest record (or
/// recovery); `None` when no gate is open.
pub fn saga_gate(saga_id: &str, gate: Option<Gate>) {
    let mut gates = METRICS
        .gates
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match gate {
        Some(g) => {
            if gates.get(saga_id) != Some(&g) {
                gates.insert(saga_id.to_string(), g);
            }
        }
        None => {
            gates.remove(saga_id);
        }
    }
}

/// Hook: times a durable append (the future of `Store::append`) and records
/// how many appends shared its flush.
pub async fn timed_append<F>(append: F) -> F::Output
where
    F: std::future::Future<Output = Result<crate::store::Appended, crate::store::Error>>,
{
    let started = std::time::Instant::now();
    let result = append.await;
    if let Ok(appended) = &result {
        let m = &*METRICS;
        m.append_seconds.observe(started.elapsed().as_secs_f64());
        m.group_size.observe(appended.group_size as f64);
    }
    result
}

/// Counts a saga task as waiting on a timer while it lives.
#[derive(Debug)]
pub struct TimerPending {
    /// Whether it counted (dropping it uncounts).
    counted: bool,
}

/// Hook: a saga task is about to sleep; `timer` says whether until a recorded
/// timer (rather than only an operator command). Keep the guard alive for
/// the sleep.
pub fn timer_pending(timer: Option<Duration>) -> TimerPending {
    let counted = timer.is_some();
    if counted {
        METRICS.timers_pending.inc();
    }
    TimerPending { counted }
}

impl Drop for TimerPending {
    fn drop(&mut self) {
        if self.counted {
            METRICS.timers_pending.dec();
        }
    }
}

#[cfg(test)]
mod tests;
