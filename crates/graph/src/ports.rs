//! The operations closeout needs from Microsoft's services, as a trait: the
//! runtime performs saga actions through it, `graph::Client` implements it over
//! HTTP, and tests may substitute an in-memory fake.
//!
//! Reads return the value or a classified error. Writes return a
//! [`WriteOutcome`] per object, carrying the HTTP description the audit log
//! records. None of these methods sleeps to retry (`pause` is the waiting, for
//! the caller to use): a transient failure is
//! reported (with the service's `Retry-After`, if any) and the saga records the
//! schedule.

use crate::model::{
    Application, CaPolicy, CaPolicyState, CallError, DeletedUser, PartnerStatus,
    PartnerSubscription, PerUserMfaState, Preflight, RoleMember, Subscription, SubscriptionDetail,
    User, WriteOutcome,
};
use std::future::Future;

/// Everything closeout reads and changes in one customer tenant. One value per
/// tenant: it holds (or can obtain) that tenant's token.
pub trait TenantApi: Send + Sync {
    /// `GET /v1.0/users` with `$select` and `$top=999`, every page.
    fn list_users(&self) -> impl Future<Output = Result<Vec<User>, CallError>> + Send;

    /// One user by id; `Ok(None)` on 404. Used to resolve an in-doubt delete.
    fn get_user(&self, id: &str) -> impl Future<Output = Result<Option<User>, CallError>> + Send;

    /// Object ids of the members of the Global Administrator role.
    fn list_global_admins(&self) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;

    /// `GET /v1.0/directory/subscriptions`, every page.
    fn list_subscriptions(
        &self,
    ) -> impl Future<Output = Result<Vec<Subscription>, CallError>> + Send;

    /// `GET /v1.0/directory/subscriptions` with who sold each subscription
    /// (`ownerTenantId`) and its lifecycle dates. An implementation that
    /// cannot tell the seller says `None` (closeout then sends the
    /// subscription to no API, only to an operator gate).
    fn list_subscription_details(
        &self,
    ) -> impl Future<Output = Result<Vec<SubscriptionDetail>, CallError>> + Send {
        async {
            Ok(self
                .list_subscriptions()
                .await?
                .into_iter()
                .map(|base| SubscriptionDetail {
                    base,
                    owner_tenant_id: None,
                    next_lifecycle: None,
                    created: None,
                })
                .collect())
        }
    }

    /// Whether security defaults are enabled.
    fn get_security_defaults(&self) -> impl Future<Output = Result<bool, CallError>> + Send;

    /// `PATCH /v1.0/policies/identitySecurityDefaultsEnforcementPolicy`.
    fn set_security_defaults(&self, enabled: bool) -> impl Future<Output = WriteOutcome> + Send;

    /// `GET /v1.0/identity/conditionalAccess/policies`, every page.
    fn list_ca_policies(&self) -> impl Future<Output = Result<Vec<CaPolicy>, CallError>> + Send;

    /// `PATCH /v1.0/identity/conditionalAccess/policies/{id}` `{"state": ...}`.
    fn set_ca_policy_state(
        &self,
        id: &str,
        state: CaPolicyState,
    ) -> impl Future<Output = WriteOutcome> + Send;

    /// `GET /beta/users/{id}/authentication/requirements`.
    fn get_user_mfa(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<PerUserMfaState, CallError>> + Send;

    /// `PATCH /beta/users/{id}/authentication/requirements`.
    fn set_user_mfa(
        &self,
        user_id: &str,
        state: PerUserMfaState,
    ) -> impl Future<Output = WriteOutcome> + Send;

    /// `GET /v1.0/applications`, every page.
    fn list_applications(&self)
        -> impl Future<Output = Result<Vec<Application>, CallError>> + Send;

    /// `DELETE /v1.0/users/{id}` for each id, grouped into `$batch` requests of
    /// up to 20, run concurrently within the client's throttle control. One
    /// outcome per id, in the order given; a 404 is `Applied::AlreadyDone`.
    fn delete_users(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Vec<(String, WriteOutcome)>> + Send;

    /// `GET /v1.0/directory/deletedItems/microsoft.graph.user`, every page.
    fn list_deleted_users(
        &self,
    ) -> impl Future<Output = Result<Vec<DeletedUser>, CallError>> + Send;

    /// `POST /v1.0/directory/deletedItems/{id}/restore` for each id (batched
    /// like `delete_users`). One outcome per id, in order.
    fn restore_users(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Vec<(String, WriteOutcome)>> + Send;

    /// Whether the tenant still exists: asks the token endpoint for a fresh
    /// token; `Ok(false)` when it answers `AADSTS90002` (tenant not found).
    fn tenant_exists(&self) -> impl Future<Output = Result<bool, CallError>> + Send;

    /// Step 1's preflight: every directory role assignment, the users synced
    /// from on-premises, the organization's sync state and closeout's own
    /// service principal.
    fn read_preflight(&self) -> impl Future<Output = Result<Preflight, CallError>> + Send;

    /// The SHA-256 thumbprint (hex) of the certificate the app signs in
    /// with, or `None` for a client secret.
    fn certificate_thumbprint(&self) -> Option<String> {
        None
    }

    /// The Microsoft Graph application permissions (app role ids) granted to
    /// closeout's own service principal.
    fn app_permissions(&self) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;

    /// `GET /v1.0/organization`: the tenant's GUID (lowercase) as the
    /// tenant's own token sees it.
    fn organization_id(&self) -> impl Future<Output = Result<String, CallError>> + Send;

    /// The Global Administrator role's members with `accountEnabled`, read
    /// now. By default from [`TenantApi::list_global_admins`] and a lookup
    /// of each member.
    fn global_admin_members(
        &self,
    ) -> impl Future<Output = Result<Vec<RoleMember>, CallError>> + Send {
        async {
            let mut out = Vec::new();
            for id in self.list_global_admins().await? {
                if let Some(u) = self.get_user(&id).await? {
                    out.push(RoleMember {
                        id: u.id,
                        user_principal_name: u.user_principal_name,
                        account_enabled: u.account_enabled,
                    });
                }
            }
            Ok(out)
        }
    }

    /// [`TenantApi::delete_users`] behind the keep invariant's last-line
    /// guard, with the keep-admin check it made (`None`: no check made).
    /// By default no guard: an implementation that sends deletes to a real
    /// tenant overrides it (`runtime::tenant::Api` does).
    fn delete_users_checked(
        &self,
        ids: &[String],
    ) -> impl Future<Output = (Option<KeepCheck>, Vec<(String, WriteOutcome)>)> + Send {
        async { (None, self.delete_users(ids).await) }
    }

    /// Step 5's preflight: users, app registrations, service principals,
    /// subscriptions (trials and self-service included) and the initial domain.
    fn deletion_check(
        &self,
    ) -> impl Future<Output = Result<crate::saga::closure::DeletionCheck, CallError>> + Send;

    /// The data at stake before step 1: the mailbox and OneDrive usage
    /// reports, the report settings and the Microsoft 365 Backup protection
    /// policies (`graph::reports`). By default nothing is read, and the
    /// record says so (an in-memory fake has no reports).
    fn data_at_stake(
        &self,
    ) -> impl Future<Output = Result<crate::saga::stake::DataAtStake, CallError>> + Send {
        async {
            Ok(crate::saga::stake::DataAtStake::unavailable(
                "not read by this implementation",
            ))
        }
    }

    /// The tenant's OpenID discovery document for `name` (tenant id or
    /// domain), read without credentials.
    fn discovery(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<crate::saga::closure::Answer, CallError>> + Send;
}

/// A keep-admin check made just before user deletes: the members of the
/// Global Administrator role as read, and the keep accounts among them that
/// are enabled, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepCheck {
    /// Every member of the role as read.
    pub admin_ids: Vec<String>,
    /// The enabled keep Global Administrators, or why there is none.
    pub verdict: Result<Vec<String>, String>,
}

/// The partner's Partner Center API: one value for the whole daemon.
pub trait PartnerApi: Send + Sync {
    /// `PATCH /v1/customers/{customer}/subscriptions/{id}` with `status`.
    /// `subscription_id` is the commerce subscription id.
    fn set_subscription_status(
        &self,
        customer_tenant_id: &str,
        subscription_id: &str,
        status: PartnerStatus,
    ) -> impl Future<Output = WriteOutcome> + Send;

    /// The partner's own tenant id (what Graph's `ownerTenantId` names for
    /// the partner's subscriptions); `None` when not known.
    fn partner_tenant_id(&self) -> Option<&str> {
        None
    }

    /// [`PartnerApi::set_subscription_status`] sent with this `MS-RequestId`
    /// (the same value on every try of one intended change, so that Partner
    /// Center treats a retry after a timeout as the same request).
    fn set_subscription_status_as(
        &self,
        customer_tenant_id: &str,
        subscription_id: &str,
        status: PartnerStatus,
        request_id: &str,
    ) -> impl Future<Output = WriteOutcome> + Send {
        let _ = request_id;
        self.set_subscription_status(customer_tenant_id, subscription_id, status)
    }

    /// `PATCH /v1/customers/{customer}/subscriptions/{id}` with
    /// `autoRenewEnabled`, sent with this `MS-RequestId`.
    fn set_auto_renew(
        &self,
        customer_tenant_id: &str,
        subscription_id: &str,
        enabled: bool,
        request_id: &str,
    ) -> impl Future<Output = WriteOutcome> + Send {
        let _ = (enabled, request_id);
        let path = format!("/v1/customers/{customer_tenant_id}/subscriptions/{subscription_id}");
        async move {
            WriteOutcome {
                http: crate::model::HttpInfo {
                    method: "PATCH".into(),
                    path: path.clone(),
                    status: 0,
                    request_id: String::new(),
                },
                result: Err(CallError {
                    class: crate::model::FailureClass::Permanent,
                    code: "not_supported".into(),
                    message: format!("PATCH {path}: auto-renew is not supported here"),
                    retry_after: None,
                }),
            }
        }
    }

    /// `GET /v1/customers/{customer}/subscriptions`: what the partner itself
    /// sells the customer. `Ok(None)` when the customer is not the
    /// partner's (Partner Center answers 404).
    fn list_customer_subscriptions(
        &self,
        customer_tenant_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<PartnerSubscription>>, CallError>> + Send {
        let _ = customer_tenant_id;
        async { Ok(None) }
    }
}
