//! Adaptive throttle control for one tenant: keeps under the service's budget
//! instead of running into it.
//!
//! Two controls work together:
//! - an AIMD window on requests in flight: +1/window per request answered
//!   without 429 (about +1 per round trip), halved on a 429 (at most once per
//!   round trip: only for requests sent after the last decrease), capped by
//!   the configured ceiling; while the budget hint
//!   (`x-ms-throttle-limit-percentage`, sent above 80% use) is present and no
//!   write rate is known yet, the window is 1 so a drained bucket costs at
//!   most one batch of 429s;
//! - a write pacer: the first throttled write marks the moment the tenant's
//!   write bucket is empty; every later throttled write measures the refill
//!   rate as (writes accepted since then) / (time since then), exact because
//!   the bucket is empty at both ends. Writes are then spaced at 97% of that
//!   rate, probing 1% higher per quiet second.
//!
//! After a 429 on a write, new writes of the tenant wait until its
//! `Retry-After` has passed; likewise reads after a read's 429 (the gates).
//! A `Retry-After` longer than the configured maximum closes no gate: the
//! saga that received it pauses instead, so one bad reply cannot park every
//! caller of the throttle (Partner Center's is shared by all customers).
//! Reads are not held up by a write budget. Time is `tokio::time::Instant`, so tests can pause it.
//!
//! A wait for the throttle is never a wait nobody can end: a saga runs its
//! calls inside [`halting`], and once its halt signal is raised (pause,
//! abort, shutdown) every call still waiting here returns [`Halted`] at
//! once, before anything is sent. The signal is carried task-locally so
//! that the ports traits stay free of runtime plumbing.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

tokio::task_local! {
    /// The halt signal of the saga whose calls are being polled.
    static HALT: watch::Receiver<bool>;
}

/// Runs `f` with `halt` as its halt signal: once `halt` reads `true`, every
/// [`Throttle::acquire`] inside `f` that has not yet let its request through
/// returns [`Halted`].
pub async fn halting<F: Future>(halt: watch::Receiver<bool>, f: F) -> F::Output {
    HALT.scope(halt, f).await
}

/// The caller's saga stopped sending while the request waited for a slot:
/// nothing was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Halted;

/// Resolves once the halt signal (if any) is raised; never when there is
/// none or its sender is gone.
async fn raised(halt: &mut Option<watch::Receiver<bool>>) {
    if let Some(h) = halt {
        if h.wait_for(|v| *v).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Sleeps until `t`; `false` when the halt signal came first.
async fn sleep_or_halt(t: Instant, halt: &mut Option<watch::Receiver<bool>>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(t) => true,
        _ = raised(halt) => false,
    }
}

/// Sleeps `wait` unless the calling saga's halt signal (see [`halting`])
/// comes first: `false` then.
pub(crate) async fn pause(wait: Duration) -> bool {
    let mut halt = HALT.try_with(Clone::clone).ok();
    sleep_or_halt(Instant::now() + wait, &mut halt).await
}

/// Shortest measuring period for a refill-rate estimate.
const MIN_ESTIMATE_SPAN: Duration = Duration::from_millis(200);
/// Fraction of the measured refill rate the pacer sends at.
const PACE_FRACTION: f64 = 0.97;
/// Growth of the paced rate per quiet second.
const PACE_PROBE: f64 = 1.01;

/// The throttle state of one tenant (shared by all its calls).
#[derive(Debug)]
pub struct Throttle {
    /// The mutable state; never held across an await.
    state: Mutex<State>,
    /// Wakes waiters when a slot frees or the state changes.
    changed: Notify,
    /// Most requests in flight (configured ceiling of the window).
    ceiling: f64,
    /// Least pause after the first throttled write, to measure the refill.
    probe_pause: Duration,
    /// The longest `Retry-After` that closes a gate.
    max_gate: Duration,
}

#[derive(Debug)]
struct State {
    /// AIMD window: requests allowed in flight.
    window: f64,
    /// Requests now in flight.
    in_flight: usize,
    /// No new write before this instant (a write's `Retry-After`).
    writes_blocked_until: Option<Instant>,
    /// No new read before this instant (a read's `Retry-After`).
    reads_blocked_until: Option<Instant>,
    /// When the window was last halved.
    last_decrease: Option<Instant>,
    /// The budget hint has been seen.
    hinted: bool,
    /// Paced write rate in items per second, once measured.
    rate: Option<f64>,
    /// The next instant a paced write may be sent.
    next_write: Instant,
    /// When the write bucket was first seen empty.
    drained_at: Option<Instant>,
    /// Write items accepted since `drained_at`.
    accepted_since_drain: u64,
    /// When the paced rate last changed.
    last_rate_change: Instant,
    /// Counters since the start.
    stats: Stats,
}

/// Counters of what the service answered, for benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items and requests answered (batch items counted one by one).
    pub answered: u64,
    /// Of those, answered 429.
    pub throttled: u64,
}

/// What a response said about the budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct Feedback {
    /// Items (or whole requests) answered (at least 1 is counted).
    pub answered: u32,
    /// Items (or whole requests) answered 429.
    pub throttled: u32,
    /// Whether the throttled ones were writes.
    pub write: bool,
    /// Write items the service accepted (answered other than 429).
    pub accepted_writes: u32,
    /// The longest `Retry-After` among the throttled ones.
    pub retry_after: Option<Duration>,
    /// The budget hint as a fraction of the budget used.
    pub hint: Option<f64>,
}

/// One request's slot in the window; released on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    /// The throttle to release into.
    throttle: &'a Throttle,
    /// When the request was let through.
    pub sent_at: Instant,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.throttle.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        // One slot freed: one waiter (the oldest) takes it. Waking every
        // waiter here made a throttle shared by many sagas (Partner Center's,
        // one per partner) quadratic: each release polled them all.
        self.throttle.changed.notify_one();
    }
}

enum Wait {
    Go(Instant),
    Until(Instant),
    Slot,
}

impl Throttle {
    /// A throttle starting with `initial` requests in flight, at most
    /// `ceiling`, whose gates honour a `Retry-After` up to `max_gate`.
    pub fn new(
        initial: usize,
        ceiling: usize,
        probe_pause: Duration,
        max_gate: Duration,
    ) -> Throttle {
        let ceiling = ceiling.max(1) as f64;
        let now = Instant::now();
        Throttle {
            state: Mutex::new(State {
                window: (initial.max(1) as f64).min(ceiling),
                in_flight: 0,
                writes_blocked_until: None,
                reads_blocked_until: None,
                last_decrease: None,
                hinted: false,
                rate: None,
                next_write: now,
                drained_at: None,
                accepted_since_drain: 0,
                last_rate_change: now,
                stats: Stats::default(),
            }),
            changed: Notify::new(),
            ceiling,
            probe_pause,
            max_gate,
        }
    }

    /// Waits for a slot (and, for writes, for the pacer) and takes it;
    /// [`Halted`] when the caller's halt signal (see [`halting`]) is raised
    /// first.
    pub async fn acquire(&self, write_items: u32) -> Result<Permit<'_>, Halted> {
        let mut halt = HALT.try_with(Clone::clone).ok();
        loop {
            if halt.as_ref().is_some_and(|h| *h.borrow()) {
                return Err(Halted);
            }
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (wait, free) = self.try_take(write_items);
            // Wake-ups are handed on one at a time: whoever takes a slot
            // and sees more free wakes the next waiter, and whoever cannot
            // send for another reason (a Retry-After) passes its wake-up on.
            match wait {
                Wait::Go(slot) => {
                    let permit = Permit {
                        throttle: self,
                        sent_at: slot,
                    };
                    if free {
                        self.changed.notify_one();
                    }
                    // Halted while paced: the permit's drop frees the slot.
                    if !sleep_or_halt(slot, &mut halt).await {
                        return Err(Halted);
                    }
                    return Ok(permit);
                }
                Wait::Until(t) => {
                    if free {
                        self.changed.notify_one();
                    }
                    if !sleep_or_halt(t, &mut halt).await {
                        return Err(Halted);
                    }
                }
                Wait::Slot => tokio::select! {
                    _ = notified => {}
                    _ = raised(&mut halt) => return Err(Halted),
                },
            }
        }
    }

    /// Takes a slot if one is free (returning when to send), or says what to
    /// wait for; and whether a slot is (still) free afterwards.
    fn try_take(&self, write_items: u32) -> (Wait, bool) {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        let window = Self::slots(&s);
        let gate = if write_items > 0 {
            s.writes_blocked_until
        } else {
            s.reads_blocked_until
        };
        let wait = match gate {
            Some(b) if b > now => Wait::Until(b),
            _ if s.in_flight >= window => Wait::Slot,
            _ => {
                s.in_flight += 1;
                let mut slot = now;
                if let (Some(rate), true) = (s.rate, write_items > 0) {
                    slot = s.next_write.max(now);
                    s.next_write = slot + Duration::from_secs_f64(write_items as f64 / rate);
                }
                Wait::Go(slot)
            }
        };
        (wait, s.in_flight < window)
    }

    /// The window's whole slots (what `try_take` admits).
    fn slots(s: &State) -> usize {
        if s.hinted && s.rate.is_none() {
            1
        } else {
            (s.window.floor() as usize).max(1)
        }
    }

    /// Learns from a response.
    pub fn record(&self, permit: &Permit<'_>, fb: Feedback) {
        let grew = {
            let mut s = match self.state.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            let before = Self::slots(&s);
            let now = Instant::now();
            if fb.hint.is_some_and(|h| h >= 0.8) {
                s.hinted = true;
            }
            s.accepted_since_drain += fb.accepted_writes as u64;
            s.stats.answered += fb.answered.max(1) as u64;
            s.stats.throttled += fb.throttled as u64;
            if fb.throttled > 0 {
                if s.last_decrease.is_none_or(|d| permit.sent_at >= d) {
                    s.window = (s.window / 2.0).max(1.0);
                    s.last_decrease = Some(now);
                }
                // Beyond the maximum the saga pauses instead; waiting on
                // it here would hold up every caller of this throttle.
                let mut pause = fb
                    .retry_after
                    .filter(|ra| *ra <= self.max_gate)
                    .unwrap_or(Duration::ZERO);
                if fb.write {
                    match s.drained_at {
                        None => {
                            s.drained_at = Some(now);
                            s.accepted_since_drain = 0;
                            pause = pause.max(self.probe_pause);
                        }
                        Some(t0) => {
                            let span = now.duration_since(t0);
                            if span >= MIN_ESTIMATE_SPAN {
                                let est = s.accepted_since_drain as f64 / span.as_secs_f64();
                                s.rate = Some((est * PACE_FRACTION).max(1.0));
                                s.last_rate_change = now;
                            }
                        }
                    }
                }
                let until = now.checked_add(pause).unwrap_or(now);
                let gate = if fb.write {
                    &mut s.writes_blocked_until
                } else {
                    &mut s.reads_blocked_until
                };
                *gate = Some(gate.map_or(until, |b| b.max(until)));
            } else {
                s.window = (s.window + 1.0 / s.window).min(self.ceiling);
                let near_empty = fb.hint.is_some_and(|h| h >= 0.97);
                if let Some(rate) = s.rate {
                    if !near_empty
                        && now.duration_since(s.last_rate_change) >= Duration::from_secs(1)
                    {
                        s.rate = Some(rate * PACE_PROBE);
                        s.last_rate_change = now;
                    }
                }
            }
            Self::slots(&s) > before
        };
        // A wider window admits one more now (whoever takes it wakes the
        // next if there is room for more); a narrower one admits no one.
        if grew {
            self.changed.notify_one();
        }
    }

    /// What the service answered so far.
    pub fn stats(&self) -> Stats {
        match self.state.lock() {
            Ok(s) => s.stats,
            Err(p) => p.into_inner().stats,
        }
    }

    /// The current window and paced write rate (for tests and diagnostics).
    pub fn snapshot(&self) -> (f64, Option<f64>) {
        match self.state.lock() {
            Ok(s) => (s.window, s.rate),
            Err(p) => {
                let s = p.into_inner();
                (s.window, s.rate)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// A `Retry-After` beyond the maximum closes no gate, and a halt ends a
    /// wait at once whatever it waits for.
    #[tokio::test(start_paused = true)]
    async fn an_overlong_retry_after_gates_nothing_and_a_halt_ends_any_wait() {
        let t = std::sync::Arc::new(Throttle::new(1, 1, Duration::from_millis(200), HOUR));
        let p = t.acquire(0).await.unwrap();
        t.record(
            &p,
            Feedback {
                answered: 1,
                throttled: 1,
                retry_after: Some(Duration::from_secs(1_000_000_000)),
                ..Feedback::default()
            },
        );
        drop(p);
        let start = Instant::now();
        let p = t.acquire(0).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "no decades-long gate");
        // Within the maximum the gate holds; a halt ends the wait.
        t.record(
            &p,
            Feedback {
                answered: 1,
                throttled: 1,
                retry_after: Some(Duration::from_secs(1800)),
                ..Feedback::default()
            },
        );
        drop(p);
        let (tx, rx) = watch::channel(false);
        let waiter = {
            let t = t.clone();
            tokio::spawn(halting(rx, async move { t.acquire(0).await.map(|_| ()) }))
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send_replace(true);
        assert_eq!(waiter.await.unwrap(), Err(Halted));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn aimd_grows_and_halves_and_gate_honours_retry_after() {
        let t = Throttle::new(4, 16, Duration::from_millis(200), HOUR);
        for _ in 0..40 {
            let p = t.acquire(0).await.unwrap();
            t.record(&p, Feedback::default());
        }
        let (w, _) = t.snapshot();
        assert!(w > 8.0 && w <= 16.0, "window {w}");
        let p = t.acquire(0).await.unwrap();
        t.record(
            &p,
            Feedback {
                answered: 1,
                throttled: 1,
                retry_after: Some(Duration::from_millis(2128)),
                ..Feedback::default()
            },
        );
        drop(p);
        assert!((t.snapshot().0 - w / 2.0).abs() < 1e-9);
        let before = Instant::now();
        let _p = t.acquire(0).await.unwrap();
        assert_eq!(before.elapsed(), Duration::from_millis(2128));
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_measures_refill_rate_between_drains() {
        let t = Throttle::new(4, 16, Duration::from_millis(200), HOUR);
        let throttled = |t: &Throttle, p: &Permit<'_>| {
            t.record(
                p,
                Feedback {
                    answered: 1,
                    throttled: 5,
                    write: true,
                    accepted_writes: 15,
                    retry_after: None,
                    hint: Some(1.0),
                },
            );
        };
        let p = t.acquire(20).await.unwrap();
        throttled(&t, &p);
        drop(p);
        // 200 writes accepted over one second, then the bucket is empty again.
        let start = Instant::now();
        let p = t.acquire(20).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(200), "probe pause");
        t.record(
            &p,
            Feedback {
                answered: 1,
                accepted_writes: 185,
                write: true,
                ..Feedback::default()
            },
        );
        drop(p);
        tokio::time::advance(Duration::from_millis(800)).await;
        let p = t.acquire(20).await.unwrap();
        throttled(&t, &p);
        drop(p);
        let rate = t.snapshot().1.unwrap();
        assert!((rate - 200.0 * PACE_FRACTION).abs() < 1.0, "rate {rate}");
        // Paced: 10 batches of 20 take about a second.
        tokio::time::advance(Duration::from_secs(1)).await;
        let start = Instant::now();
        for _ in 0..10 {
            let p = t.acquire(20).await.unwrap();
            t.record(&p, Feedback::default());
        }
        let el = start.elapsed().as_secs_f64();
        assert!(el > 0.85 && el < 1.0, "elapsed {el}");
    }

    /// Many callers on a narrow window: every one gets through, never more
    /// in flight than the window, with one wake-up per freed slot.
    #[tokio::test(start_paused = true)]
    async fn many_waiters_all_get_through_within_the_window() {
        let t = std::sync::Arc::new(Throttle::new(4, 4, Duration::from_millis(200), HOUR));
        let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let (t, in_flight, peak) = (t.clone(), in_flight.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let p = t.acquire((i % 3 == 0) as u32).await.unwrap();
                let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10 + i % 7)).await;
                in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                t.record(&p, Feedback::default());
            }));
        }
        let start = Instant::now();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 4);
        // 200 calls of 10-16 ms, 4 at a time: about 650 ms when no slot
        // stays idle.
        let el = start.elapsed();
        assert!(el < Duration::from_millis(700), "took {el:?}");
        assert_eq!(t.stats().answered, 200);
    }

    /// A woken waiter that may not send (its kind is held back by a
    /// Retry-After) hands the freed slot on to the next waiter.
    #[tokio::test(start_paused = true)]
    async fn a_gated_waiter_passes_its_wake_up_on() {
        let t = std::sync::Arc::new(Throttle::new(1, 1, Duration::from_millis(200), HOUR));
        let held = t.acquire(0).await.unwrap();
        let writer = {
            let t = t.clone();
            tokio::spawn(async move {
                let _p = t.acquire(1).await.unwrap();
                Instant::now()
            })
        };
        tokio::task::yield_now().await;
        let reader = {
            let t = t.clone();
            tokio::spawn(async move {
                let _p = t.acquire(0).await.unwrap();
                Instant::now()
            })
        };
        tokio::task::yield_now().await;
        // Writes are held back for 10 s; the slot is freed 5 ms later.
        t.record(
            &held,
            Feedback {
                answered: 1,
                throttled: 1,
                write: true,
                retry_after: Some(Duration::from_secs(10)),
                ..Feedback::default()
            },
        );
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(held);
        let read_at = reader.await.unwrap();
        assert_eq!(
            read_at - start,
            Duration::from_millis(5),
            "the reader went at once"
        );
        let write_at = writer.await.unwrap();
        assert!(
            write_at - start >= Duration::from_secs(10),
            "the writer waited"
        );
    }
}
