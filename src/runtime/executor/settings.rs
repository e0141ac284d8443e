//! What the executor takes from the config: the reloadable settings, the
//! policy recorded with each new saga, the Graph client's options, the clock.

use super::*;

/// The reloadable part of the config, as the executor uses it.
#[derive(Clone)]
pub(super) struct Settings {
    /// The policy recorded in the first event of each new saga.
    pub(super) policy: saga::SagaPolicy,
    /// `[retry] max_retry_after`: a longer `Retry-After` pauses the saga.
    pub(super) max_retry_after: Duration,
    /// `[limits] stop_grace`: how long a stopping saga awaits its calls on
    /// the wire.
    pub(super) stop_grace: Duration,
    /// What step 4 of each new saga turns off (recorded next to its policy).
    pub(super) mfa_scope: saga::closure::MfaScope,
    /// When step 1 of each new saga starts before a running-out term ends.
    pub(super) users_before_term_end: Duration,
    /// `[saga] backup`: whether each new saga waits for a backup
    /// attestation before step 1 (recorded next to its policy).
    pub(super) backup: saga::stake::BackupMode,
}

impl Settings {
    pub(super) fn of(config: &Config) -> Settings {
        Settings {
            policy: policy_of(config),
            max_retry_after: config.retry.max_retry_after,
            stop_grace: config.limits.stop_grace,
            mfa_scope: config.saga.mfa_scope,
            users_before_term_end: config.saga.users_before_term_end,
            backup: config.saga.backup,
        }
    }
}

/// The wall clock, in the saga core's terms. Only the runtime reads it.
pub fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// The saga policy the config asks for.
pub fn policy_of(config: &Config) -> saga::SagaPolicy {
    saga::SagaPolicy {
        failure: config.saga.on_failure,
        retry: config.retry.policy(),
        deprovision_poll: config.saga.deprovision_poll,
        gate_poll: config.saga.gate_recheck,
        tenant_gone_poll: config.saga.tenant_gone_poll,
        replication_wait: config.saga.replication_wait,
        ..saga::SagaPolicy::default()
    }
}

/// The Graph client options the config asks for.
pub fn client_options(config: &Config) -> graph::ClientOptions {
    graph::ClientOptions {
        connect_timeout: config.limits.connect_timeout,
        request_timeout: config.limits.request_timeout,
        max_in_flight_per_tenant: config.limits.max_in_flight_per_tenant.get(),
        max_in_flight_total: config.limits.max_in_flight_total.get(),
        max_in_flight_partner_center: config.limits.max_in_flight_partner_center.get(),
        max_response_bytes: config.limits.max_response_bytes.get(),
        max_pages: config.limits.max_pages.get(),
        max_retry_after: config.retry.max_retry_after,
        ..graph::ClientOptions::default()
    }
}
