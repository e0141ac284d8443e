//! The tenant API a saga task performs its calls through: the Graph client
//! for the tenant, or — when the tenant's secret cannot be read (a file
//! removed while the daemon was down) — an API whose every call fails
//! permanently with that reason, so the saga records the failure and follows
//! its failure policy instead of the task dying silently.

use crate::graph::{self, TenantClient};
use crate::model::{
    Application, CaPolicy, CaPolicyState, CallError, DeletedUser, FailureClass, HttpInfo,
    PerUserMfaState, Subscription, TenantSpec, User, WriteOutcome,
};
use crate::ports::TenantApi;

/// A saga's way to its tenant.
pub enum Api {
    /// The tenant's Graph client.
    Ready(TenantClient),
    /// Every call fails with this error.
    Broken(CallError),
}

/// The API for a tenant: reads its secret and builds its client.
pub fn connect(client: &graph::Client, spec: &TenantSpec) -> Api {
    match graph::read_secret(&spec.secret) {
        Ok(secret) => Api::Ready(client.tenant(&spec.tenant_id, &spec.client_id, secret)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the tenant's client secret");
            Api::Broken(CallError {
                class: FailureClass::Permanent,
                code: "secret_unavailable".into(),
                message: format!("tenant {}: {e}", spec.tenant_id),
                retry_after: None,
            })
        }
    }
}

impl Api {
    fn fail<T>(e: &CallError) -> Result<T, CallError> {
        Err(e.clone())
    }

    fn fail_write(e: &CallError, method: &str, path: String) -> WriteOutcome {
        WriteOutcome {
            http: HttpInfo {
                method: method.into(),
                path,
                status: 0,
                request_id: String::new(),
            },
            result: Err(e.clone()),
        }
    }
}

impl TenantApi for Api {
    async fn read_preflight(&self) -> Result<crate::model::Preflight, CallError> {
        match self {
            Api::Ready(c) => c.read_preflight().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_users(&self) -> Result<Vec<User>, CallError> {
        match self {
            Api::Ready(c) => c.list_users().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, CallError> {
        match self {
            Api::Ready(c) => c.get_user(id).await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_global_admins(&self) -> Result<Vec<String>, CallError> {
        match self {
            Api::Ready(c) => c.list_global_admins().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, CallError> {
        match self {
            Api::Ready(c) => c.list_subscriptions().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_subscription_details(
        &self,
    ) -> Result<Vec<crate::model::SubscriptionDetail>, CallError> {
        match self {
            Api::Ready(c) => c.list_subscription_details().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn get_security_defaults(&self) -> Result<bool, CallError> {
        match self {
            Api::Ready(c) => c.get_security_defaults().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn set_security_defaults(&self, enabled: bool) -> WriteOutcome {
        match self {
            Api::Ready(c) => c.set_security_defaults(enabled).await,
            Api::Broken(e) => Self::fail_write(
                e,
                "PATCH",
                "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy".into(),
            ),
        }
    }

    async fn list_ca_policies(&self) -> Result<Vec<CaPolicy>, CallError> {
        match self {
            Api::Ready(c) => c.list_ca_policies().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn set_ca_policy_state(&self, id: &str, state: CaPolicyState) -> WriteOutcome {
        match self {
            Api::Ready(c) => c.set_ca_policy_state(id, state).await,
            Api::Broken(e) => Self::fail_write(
                e,
                "PATCH",
                format!("/v1.0/identity/conditionalAccess/policies/{id}"),
            ),
        }
    }

    async fn get_user_mfa(&self, user_id: &str) -> Result<PerUserMfaState, CallError> {
        match self {
            Api::Ready(c) => c.get_user_mfa(user_id).await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn set_user_mfa(&self, user_id: &str, state: PerUserMfaState) -> WriteOutcome {
        match self {
            Api::Ready(c) => c.set_user_mfa(user_id, state).await,
            Api::Broken(e) => Self::fail_write(
                e,
                "PATCH",
                format!("/beta/users/{user_id}/authentication/requirements"),
            ),
        }
    }

    async fn list_applications(&self) -> Result<Vec<Application>, CallError> {
        match self {
            Api::Ready(c) => c.list_applications().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn delete_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        match self {
            Api::Ready(c) => c.delete_users(ids).await,
            Api::Broken(e) => ids
                .iter()
                .map(|id| {
                    let o = Self::fail_write(e, "DELETE", format!("/v1.0/users/{id}"));
                    (id.clone(), o)
                })
                .collect(),
        }
    }

    async fn list_deleted_users(&self) -> Result<Vec<DeletedUser>, CallError> {
        match self {
            Api::Ready(c) => c.list_deleted_users().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn restore_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        match self {
            Api::Ready(c) => c.restore_users(ids).await,
            Api::Broken(e) => ids
                .iter()
                .map(|id| {
                    let path = format!("/v1.0/directory/deletedItems/{id}/restore");
                    (id.clone(), Self::fail_write(e, "POST", path))
                })
                .collect(),
        }
    }

    async fn tenant_exists(&self) -> Result<bool, CallError> {
        match self {
            Api::Ready(c) => c.tenant_exists().await,
            Api::Broken(e) => Self::fail(e),
        }
    }
}
