//! The saga's policy: what to do on failure, how to retry and how often to
//! re-read while waiting. Fixed when the tenant is submitted and recorded in
//! the first event, so that replaying a saga decides exactly as it did live.

use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a permanent failure before the pivot leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Undo the completed work in reverse order, then end `rolled_back`.
    Compensate,
    /// Stop and wait for the operator.
    Pause,
}

/// Everything the saga's decisions depend on besides its events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SagaPolicy {
    /// Compensate or pause on a permanent failure before the pivot.
    pub failure: FailurePolicy,
    /// Backoff, jitter and give-up time for transient failures.
    pub retry: RetryPolicy,
    /// How often subscriptions are re-read while they deprovision (step 3).
    #[serde(with = "humantime_serde")]
    pub deprovision_poll: Duration,
    /// How often the tenant is re-read while an operator gate is open.
    #[serde(with = "humantime_serde")]
    pub gate_poll: Duration,
    /// How often the token endpoint is asked whether the tenant is gone (step 5).
    #[serde(with = "humantime_serde")]
    pub tenant_gone_poll: Duration,
    /// How long to wait before re-reading when a change already applied does
    /// not show in a read yet (replication delay).
    #[serde(with = "humantime_serde")]
    pub replication_wait: Duration,
    /// How many objects one intent event names (a batch of user deletes).
    pub intent_size: usize,
}

impl Default for SagaPolicy {
    fn default() -> Self {
        SagaPolicy {
            failure: FailurePolicy::Compensate,
            retry: RetryPolicy::default(),
            deprovision_poll: Duration::from_secs(3600),
            gate_poll: Duration::from_secs(300),
            tenant_gone_poll: Duration::from_secs(300),
            replication_wait: Duration::from_secs(30),
            intent_size: 100,
        }
    }
}
