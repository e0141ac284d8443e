//! Throttling as Entra ID documents it: token buckets per (app, tenant), per
//! app and per tenant for writes, a resource-unit bucket per (app, tenant) for
//! reads, and Conditional Access's ~1 request/s per tenant. A refused request
//! gets 429 with a `Retry-After` computed from the bucket's refill, rounded
//! up to whole seconds: HTTP's `delay-seconds` is "a non-negative decimal
//! integer" (RFC 9110, 10.2.3), and Graph's throttling page speaks of "the
//! number of seconds" (<https://learn.microsoft.com/en-us/graph/throttling>).

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// A `Retry-After` value for a wait of `d`: whole seconds, rounded up, at
/// least 1.
pub fn whole_seconds(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1).to_string()
}

/// A budget: `limit` units per `window`, refilled continuously.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Units the bucket holds when full.
    pub limit: f64,
    /// Time to refill from empty.
    pub window: Duration,
}

impl Budget {
    /// Parses `3000/150s` (humantime window).
    pub fn parse(s: &str) -> Result<Budget, String> {
        let (n, d) = s
            .split_once('/')
            .ok_or_else(|| format!("write limit {s:?}: expected N/DURATION"))?;
        let limit: f64 = n
            .trim()
            .parse()
            .map_err(|_| format!("write limit {s:?}: {n:?} is not a number"))?;
        let window =
            humantime::parse_duration(d.trim()).map_err(|e| format!("write limit {s:?}: {e}"))?;
        if limit <= 0.0 || window.is_zero() {
            return Err(format!("write limit {s:?}: must be positive"));
        }
        Ok(Budget { limit, window })
    }

    fn rate(&self) -> f64 {
        self.limit / self.window.as_secs_f64()
    }
}

/// One token bucket.
#[derive(Clone, Debug)]
struct Bucket {
    /// Units left now, refilled continuously up to the budget's limit.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// What a throttle check answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Go ahead; `percent` is the fullest budget's usage (for
    /// `x-ms-throttle-limit-percentage` above 80).
    Allowed { percent: u32 },
    /// 429: wait `retry_after` (None: the service omits the header); `scope`
    /// and `info` for the `x-ms-throttle-*` headers.
    Throttled {
        retry_after: Option<Duration>,
        scope: String,
        info: &'static str,
    },
}

/// Budgets in force.
#[derive(Clone, Debug)]
pub struct Budgets {
    /// Writes of one app in one tenant.
    pub app_tenant_writes: Budget,
    /// Writes of one app across tenants.
    pub app_writes: Budget,
    /// Writes of all apps in one tenant.
    pub tenant_writes: Budget,
    /// Conditional Access requests per tenant.
    pub conditional_access: Budget,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            app_tenant_writes: Budget {
                limit: 3000.0,
                window: Duration::from_secs(150),
            },
            app_writes: Budget {
                limit: 70000.0,
                window: Duration::from_secs(300),
            },
            tenant_writes: Budget {
                limit: 18000.0,
                window: Duration::from_secs(300),
            },
            conditional_access: Budget {
                limit: 2.0,
                window: Duration::from_secs(2),
            },
        }
    }
}

/// The buckets of every scope.
#[derive(Debug)]
pub struct Throttle {
    /// The budgets the buckets refill by.
    budgets: Budgets,
    /// Buckets keyed by scope string.
    buckets: HashMap<String, Bucket>,
    /// How many requests were answered 429 (`GET /_sim/faults`).
    pub throttled: u64,
}

/// The resource-unit budget of one app in one tenant per 10 s, by tenant size.
fn read_budget(users: usize) -> Budget {
    let limit = match users {
        0..=49 => 3500.0,
        50..=500 => 5000.0,
        _ => 8000.0,
    };
    Budget {
        limit,
        window: Duration::from_secs(10),
    }
}

impl Throttle {
    /// Buckets with these budgets, all full.
    pub fn new(budgets: Budgets) -> Throttle {
        Throttle {
            budgets,
            buckets: HashMap::new(),
            throttled: 0,
        }
    }

    /// Takes `cost` units from each (scope, budget); refuses with the longest wait
    /// if any cannot pay, taking nothing.
    fn take(
        &mut self,
        now: Instant,
        scopes: &[(String, Budget, &'static str)],
        cost: f64,
    ) -> Verdict {
        let mut worst: Option<(f64, usize)> = None;
        let mut percent = 0u32;
        for (i, (key, budget, _)) in scopes.iter().enumerate() {
            let b = self.buckets.entry(key.clone()).or_insert(Bucket {
                tokens: budget.limit,
                at: now,
            });
            let dt = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + dt * budget.rate()).min(budget.limit);
            b.at = now;
            if b.tokens < cost {
                let wait = (cost - b.tokens) / budget.rate();
                if worst.is_none_or(|(w, _)| wait > w) {
                    worst = Some((wait, i));
                }
            } else {
                let used = 1.0 - (b.tokens - cost) / budget.limit;
                percent = percent.max((used * 100.0) as u32);
            }
        }
        if let Some((wait, i)) = worst {
            self.throttled += 1;
            let (key, _, info) = &scopes[i];
            return Verdict::Throttled {
                retry_after: Some(Duration::from_secs_f64(wait.max(0.001))),
                scope: key.clone(),
                info,
            };
        }
        for (key, _, _) in scopes {
            if let Some(b) = self.buckets.get_mut(key) {
                b.tokens -= cost;
            }
        }
        Verdict::Allowed { percent }
    }

    /// A write (1 unit) by `app` in `tenant`.
    pub fn write(&mut self, now: Instant, app: &str, tenant: &str) -> Verdict {
        let b = self.budgets.clone();
        self.take(
            now,
            &[
                (
                    format!("Tenant_Application/ReadWrite/{app}/{tenant}"),
                    b.app_tenant_writes,
                    "WriteLimitExceeded",
                ),
                (
                    format!("Application/ReadWrite/{app}"),
                    b.app_writes,
                    "WriteLimitExceeded",
                ),
                (
                    format!("Tenant/ReadWrite/{tenant}"),
                    b.tenant_writes,
                    "WriteLimitExceeded",
                ),
            ],
            1.0,
        )
    }

    /// A read costing `cost` resource units by `app` in a tenant of `users` users.
    pub fn read(
        &mut self,
        now: Instant,
        app: &str,
        tenant: &str,
        users: usize,
        cost: f64,
    ) -> Verdict {
        self.take(
            now,
            &[(
                format!("Tenant_Application/ResourceUnits/{app}/{tenant}"),
                read_budget(users),
                "ResourceUnitLimitExceeded",
            )],
            cost,
        )
    }

    /// A Conditional Access request in `tenant`: 1 request per second per
    /// tenant for all apps, and its 429s carry no `Retry-After` ("The
    /// resources listed above do not return a `Retry-After` header on `429
    /// Too Many Requests` responses": graph/throttling-limits, identity
    /// protection and conditional access service limits).
    pub fn conditional_access(&mut self, now: Instant, tenant: &str) -> Verdict {
        let budget = self.budgets.conditional_access;
        match self.take(
            now,
            &[(
                format!("Tenant/ConditionalAccess/{tenant}"),
                budget,
                "RequestLimitExceeded",
            )],
            1.0,
        ) {
            Verdict::Throttled { scope, info, .. } => Verdict::Throttled {
                retry_after: None,
                scope,
                info,
            },
            ok => ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bucket_refuses_then_refills() {
        let budgets = Budgets {
            app_tenant_writes: Budget::parse("2/1s").unwrap(),
            ..Budgets::default()
        };
        let mut t = Throttle::new(budgets);
        let now = Instant::now();
        assert!(matches!(t.write(now, "a", "t"), Verdict::Allowed { .. }));
        assert!(matches!(t.write(now, "a", "t"), Verdict::Allowed { .. }));
        match t.write(now, "a", "t") {
            Verdict::Throttled {
                retry_after: Some(d),
                scope,
                ..
            } => {
                assert!((d.as_secs_f64() - 0.5).abs() < 0.01, "{d:?}");
                assert_eq!(scope, "Tenant_Application/ReadWrite/a/t");
            }
            v => panic!("not throttled: {v:?}"),
        }
        // another tenant has its own bucket
        assert!(matches!(t.write(now, "a", "u"), Verdict::Allowed { .. }));
        let later = now + Duration::from_millis(500);
        assert!(matches!(t.write(later, "a", "t"), Verdict::Allowed { .. }));
    }

    #[test]
    fn parse_rejects_nonsense() {
        assert!(Budget::parse("3000/150s").is_ok());
        assert!(Budget::parse("3000").is_err());
        assert!(Budget::parse("x/1s").is_err());
        assert!(Budget::parse("0/1s").is_err());
    }
}
