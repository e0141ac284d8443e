//! The tenant API a saga task performs its calls through: the Graph client
//! for the tenant, or — when the tenant's secret cannot be read (a file
//! removed while the daemon was down) — an API whose every call fails
//! permanently with that reason, so the saga records the failure and follows
//! its failure policy instead of the task dying silently.
//!
//! It is also the keep invariant's last line: whatever the saga decided,
//! every user delete sent through it is preceded by a fresh read of the
//! Global Administrator role; a keep account is never sent for deletion, and
//! a Global Administrator only while a keep account is read to be an enabled
//! Global Administrator.

use crate::graph::{self, TenantClient};
use crate::model::{
    Application, CaPolicy, CaPolicyState, CallError, DeletedUser, FailureClass, HttpInfo,
    PerUserMfaState, RoleMember, Subscription, TenantSpec, User, WriteOutcome,
};
use crate::ports::{KeepCheck, TenantApi};

/// A saga's way to its tenant.
// One per saga, built once and never moved in a loop: boxing the client
// would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Api {
    /// The tenant's Graph client, and its keep entries (object ids or UPNs,
    /// as the batch gave them) for the delete guard.
    Ready(TenantClient, Vec<String>),
    /// Every call fails with this error.
    Broken(CallError),
}

/// The API for a tenant: reads its secret (off the async workers, bounded
/// in time) and builds its client.
pub async fn connect(client: &graph::Client, spec: &TenantSpec) -> Api {
    match graph::read_credential_async(&spec.secret).await {
        Ok(secret) => Api::Ready(
            client.tenant(&spec.tenant_id, &spec.client_id, secret),
            spec.keep.clone(),
        ),
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
    async fn deletion_check(&self) -> Result<crate::saga::closure::DeletionCheck, CallError> {
        match self {
            Api::Ready(c, _) => c.deletion_check().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn discovery(&self, name: &str) -> Result<crate::saga::closure::Answer, CallError> {
        match self {
            Api::Ready(c, _) => c.discovery(name).await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn data_at_stake(&self) -> Result<crate::saga::stake::DataAtStake, CallError> {
        match self {
            Api::Ready(c, _) => c.data_at_stake().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn read_preflight(&self) -> Result<crate::model::Preflight, CallError> {
        match self {
            Api::Ready(c, _) => c.read_preflight().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    fn certificate_thumbprint(&self) -> Option<String> {
        match self {
            Api::Ready(c, _) => c.certificate_thumbprint(),
            Api::Broken(_) => None,
        }
    }

    async fn app_permissions(&self) -> Result<Vec<String>, CallError> {
        match self {
            Api::Ready(c, _) => c.app_permissions().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_users(&self) -> Result<Vec<User>, CallError> {
        match self {
            Api::Ready(c, _) => c.list_users().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, CallError> {
        match self {
            Api::Ready(c, _) => c.get_user(id).await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_global_admins(&self) -> Result<Vec<String>, CallError> {
        match self {
            Api::Ready(c, _) => c.list_global_admins().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, CallError> {
        match self {
            Api::Ready(c, _) => c.list_subscriptions().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn list_subscription_details(
        &self,
    ) -> Result<Vec<crate::model::SubscriptionDetail>, CallError> {
        match self {
            Api::Ready(c, _) => c.list_subscription_details().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn get_security_defaults(&self) -> Result<bool, CallError> {
        match self {
            Api::Ready(c, _) => c.get_security_defaults().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn set_security_defaults(&self, enabled: bool) -> WriteOutcome {
        match self {
            Api::Ready(c, _) => c.set_security_defaults(enabled).await,
            Api::Broken(e) => Self::fail_write(
                e,
                "PATCH",
                "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy".into(),
            ),
        }
    }

    async fn list_ca_policies(&self) -> Result<Vec<CaPolicy>, CallError> {
        match self {
            Api::Ready(c, _) => c.list_ca_policies().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn set_ca_policy_state(&self, id: &str, state: CaPolicyState) -> WriteOutcome {
        match self {
            Api::Ready(c, _) => c.set_ca_policy_state(id, state).await,
            Api::Broken(e) => Self::fail_write(
                e,
                "PATCH",
                format!("/v1.0/identity/conditionalAccess/policies/{id}"),
            ),
        }
    }

    async fn get_user_mfa(&self, user_id: &str) -> Result<PerUserMfaState, CallError> {
        match self {
            Api::Ready(c, _) => c.get_user_mfa(user_id).await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn set_user_mfa(&self, user_id: &str, state: PerUserMfaState) -> WriteOutcome {
        match self {
            Api::Ready(c, _) => c.set_user_mfa(user_id, state).await,
            Api::Broken(e) => Self::fail_write(
                e,
                "PATCH",
                format!("/beta/users/{user_id}/authentication/requirements"),
            ),
        }
    }

    async fn list_applications(&self) -> Result<Vec<Application>, CallError> {
        match self {
            Api::Ready(c, _) => c.list_applications().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn delete_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        self.delete_users_checked(ids).await.1
    }

    async fn delete_users_checked(
        &self,
        ids: &[String],
    ) -> (Option<KeepCheck>, Vec<(String, WriteOutcome)>) {
        match self {
            Api::Ready(c, keep) => guarded_delete(c, keep, ids).await,
            Api::Broken(e) => (
                None,
                ids.iter()
                    .map(|id| {
                        let o = Self::fail_write(e, "DELETE", format!("/v1.0/users/{id}"));
                        (id.clone(), o)
                    })
                    .collect(),
            ),
        }
    }

    async fn list_deleted_users(&self) -> Result<Vec<DeletedUser>, CallError> {
        match self {
            Api::Ready(c, _) => c.list_deleted_users().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn restore_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        match self {
            Api::Ready(c, _) => c.restore_users(ids).await,
            Api::Broken(e) => ids
                .iter()
                .map(|id| {
                    let path = format!("/v1.0/directory/deletedItems/{id}/restore");
                    (id.clone(), Self::fail_write(e, "POST", path))
                })
                .collect(),
        }
    }

    async fn organization_id(&self) -> Result<String, CallError> {
        match self {
            Api::Ready(c, _) => c.organization_id().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn global_admin_members(&self) -> Result<Vec<RoleMember>, CallError> {
        match self {
            Api::Ready(c, _) => c.global_admin_members().await,
            Api::Broken(e) => Self::fail(e),
        }
    }

    async fn tenant_exists(&self) -> Result<bool, CallError> {
        match self {
            Api::Ready(c, _) => c.tenant_exists().await,
            Api::Broken(e) => Self::fail(e),
        }
    }
}

/// The keep invariant's last line before `DELETE /v1.0/users/{id}`: reads
/// the Global Administrator role fresh (one read per call, however many
/// users it deletes), refuses every target that is a keep account, and
/// refuses every target holding the role unless a keep account is read to
/// be an enabled member. Refused targets fail permanently without a request;
/// the rest are sent. A failed read sends nothing (the failure is
/// transient: nothing is in doubt).
async fn guarded_delete(
    c: &TenantClient,
    keep: &[String],
    ids: &[String],
) -> (Option<KeepCheck>, Vec<(String, WriteOutcome)>) {
    let tenant = c.tenant_id().to_string();
    let members = match c.global_admin_members().await {
        Ok(m) => m,
        Err(mut e) => {
            if e.class == FailureClass::InDoubt {
                e.class = FailureClass::Transient;
            }
            e.message = format!(
                "tenant {tenant}: no user deleted: the Global Administrator role could not be read: {}",
                e.message
            );
            let out = ids.iter().map(|id| (id.clone(), refusal(&e, id))).collect();
            return (None, out);
        }
    };
    let verdict = crate::saga::keep::judge(&tenant, &[], keep, &members);
    // Keep accounts by id: the entries themselves, and the role members
    // they name by UPN; a UPN entry naming no member is looked up.
    let mut keep_ids: Vec<String> = keep.to_vec();
    for k in keep {
        match members
            .iter()
            .find(|m| m.user_principal_name.eq_ignore_ascii_case(k))
        {
            Some(m) => keep_ids.push(m.id.clone()),
            None if k.contains('@') => match c.get_user(k).await {
                Ok(Some(u)) => keep_ids.push(u.id),
                // Not a user (or not a name Graph can look up): nothing a
                // target could be.
                Ok(None) => {}
                Err(e) if e.class == FailureClass::Permanent => {}
                Err(mut e) => {
                    e.class = FailureClass::Transient;
                    e.message = format!(
                        "tenant {tenant}: no user deleted: keep account {k} could not be looked up: {}",
                        e.message
                    );
                    let out = ids.iter().map(|id| (id.clone(), refusal(&e, id))).collect();
                    return (None, out);
                }
            },
            None => {}
        }
    }
    let admin_ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let mut refused = Vec::new();
    let mut send = Vec::new();
    for id in ids {
        if keep_ids.iter().any(|k| k.eq_ignore_ascii_case(id)) {
            let e = CallError {
                class: FailureClass::Permanent,
                code: "keep_account_refused".into(),
                message: format!("tenant {tenant}: user {id} is a keep account: never deleted"),
                retry_after: None,
            };
            refused.push((id.clone(), refusal(&e, id)));
        } else if let (true, Err(why)) = (admin_ids.contains(id), &verdict) {
            let e = CallError {
                class: FailureClass::Permanent,
                code: "keep_admin_missing".into(),
                message: format!("tenant {tenant}: Global Administrator {id} not deleted: {why}"),
                retry_after: None,
            };
            refused.push((id.clone(), refusal(&e, id)));
        } else {
            send.push(id.clone());
        }
    }
    if !refused.is_empty() {
        tracing::warn!(tenant = %tenant, refused = refused.len(), "user deletes refused by the keep guard");
    }
    let mut sent = if send.is_empty() {
        Vec::new()
    } else {
        c.delete_users(&send).await
    };
    // One outcome per id, in the order given.
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(i) = refused.iter().position(|(r, _)| r == id) {
            out.push(refused.swap_remove(i));
        } else if let Some(i) = sent.iter().position(|(s, _)| s == id) {
            out.push(sent.swap_remove(i));
        }
    }
    let check = KeepCheck { admin_ids, verdict };
    (Some(check), out)
}

/// The outcome of a delete refused before any request.
fn refusal(e: &CallError, id: &str) -> WriteOutcome {
    Api::fail_write(e, "DELETE", format!("/v1.0/users/{id}"))
}
