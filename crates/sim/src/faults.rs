//! Seeded, reproducible fault injection: latency and jitter, 5xx errors,
//! dropped connections, hung requests and ghost failures (the change is
//! applied but the answer says 429/5xx). Faults apply to Graph and Partner
//! Center; to the token endpoint only when asked; never to `/_sim/`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// The fault rates in force.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    /// Fixed delay before answering.
    pub latency: Duration,
    /// Up to this much more, uniformly.
    pub jitter: Duration,
    /// Fraction answered 500/502/503/504 without applying.
    pub error: f64,
    /// Fraction whose connection is dropped without an answer.
    pub reset: f64,
    /// Fraction never answered, half of them after applying the change.
    pub hang: f64,
    /// Fraction applied but answered 429/5xx.
    pub ghost: f64,
}

impl Rates {
    /// Whether any fault is configured (the fast path skips the rng).
    pub fn any(&self) -> bool {
        !self.latency.is_zero()
            || !self.jitter.is_zero()
            || self.error > 0.0
            || self.reset > 0.0
            || self.hang > 0.0
            || self.ghost > 0.0
    }
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No fault: the request is handled and answered normally.
    None,
    /// Answer this 5xx without applying.
    Error(u16),
    /// Drop the connection; apply the change first if `applied`.
    Reset {
        /// Whether the change is applied before the drop.
        applied: bool,
    },
    /// Never answer; apply the change first if `applied`.
    Hang {
        /// Whether the change is applied before hanging.
        applied: bool,
    },
    /// Apply the change, then answer this 429/5xx.
    Ghost(u16),
}

/// How many faults of each kind were injected (`GET /_sim/faults`), so a
/// test can report and check what it survived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Requests answered 5xx without applying.
    pub errors: u64,
    /// Connections dropped without an answer, applied or not.
    pub resets: u64,
    /// Requests never answered, applied or not.
    pub hangs: u64,
    /// Changes applied but answered 429/5xx.
    pub ghosts: u64,
    /// Requests answered 429 by the throttle (filled in by the server).
    pub throttled: u64,
}

/// The seeded decision maker.
#[derive(Debug)]
pub struct Faults {
    /// The fault rates, each a fraction of requests.
    pub rates: Rates,
    /// The seeded generator (every draw comes from it).
    rng: ChaCha8Rng,
    /// What was injected so far.
    pub counts: Counts,
}

impl Faults {
    /// Faults drawn from `seed`.
    pub fn new(rates: Rates, seed: u64) -> Faults {
        Faults {
            rates,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xfa17),
            counts: Counts::default(),
        }
    }

    /// The delay before answering.
    pub fn delay(&mut self) -> Duration {
        let r = &self.rates;
        if r.jitter.is_zero() {
            return r.latency;
        }
        let j = self.rng.gen_range(0..=r.jitter.as_micros() as u64);
        r.latency + Duration::from_micros(j)
    }

    /// Decides the fate of a top-level request (and counts it).
    pub fn decide(&mut self, with_transport: bool) -> Fault {
        let fault = self.draw(with_transport);
        let c = &mut self.counts;
        match fault {
            Fault::None => {}
            Fault::Error(_) => c.errors += 1,
            Fault::Reset { .. } => c.resets += 1,
            Fault::Hang { .. } => c.hangs += 1,
            Fault::Ghost(_) => c.ghosts += 1,
        }
        fault
    }

    fn draw(&mut self, with_transport: bool) -> Fault {
        let r = self.rates.clone();
        if r.error == 0.0 && r.reset == 0.0 && r.hang == 0.0 && r.ghost == 0.0 {
            return Fault::None;
        }
        let x: f64 = self.rng.gen();
        let mut edge = 0.0;
        if with_transport {
            edge += r.hang;
            if x < edge {
                return Fault::Hang {
                    applied: self.rng.gen_bool(0.5),
                };
            }
            edge += r.reset;
            if x < edge {
                return Fault::Reset {
                    applied: self.rng.gen_bool(0.5),
                };
            }
        }
        edge += r.error;
        if x < edge {
            return Fault::Error(self.pick_5xx());
        }
        edge += r.ghost;
        if x < edge {
            let status = if self.rng.gen_bool(0.5) {
                429
            } else {
                self.pick_5xx()
            };
            return Fault::Ghost(status);
        }
        Fault::None
    }

    /// Draws `n` values in 0..n for shuffling a batch's responses.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        use rand::seq::SliceRandom;
        items.shuffle(&mut self.rng);
    }

    fn pick_5xx(&mut self) -> u16 {
        [500, 502, 503, 504][self.rng.gen_range(0..4usize)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_rates_roughly_honoured() {
        let rates = Rates {
            error: 0.1,
            reset: 0.05,
            hang: 0.05,
            ghost: 0.1,
            ..Rates::default()
        };
        let mut a = Faults::new(rates.clone(), 7);
        let mut b = Faults::new(rates, 7);
        let xs: Vec<Fault> = (0..10_000).map(|_| a.decide(true)).collect();
        let ys: Vec<Fault> = (0..10_000).map(|_| b.decide(true)).collect();
        assert_eq!(xs, ys);
        let errors = xs.iter().filter(|f| matches!(f, Fault::Error(_))).count();
        let ghosts = xs.iter().filter(|f| matches!(f, Fault::Ghost(_))).count();
        let hangs = xs
            .iter()
            .filter(|f| matches!(f, Fault::Hang { .. }))
            .count();
        assert!((850..1150).contains(&errors), "{errors}");
        assert!((850..1150).contains(&ghosts), "{ghosts}");
        assert!((400..600).contains(&hangs), "{hangs}");
    }
}
