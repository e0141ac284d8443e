//! [`TenantClient`]: the [`TenantApi`] of one customer tenant over Graph. Every
//! call goes through the tenant's throttle, carries a cached token (renewed
//! once on a 401) and is classified by [`super::error`].

use super::auth::TokenSource;
use super::bulk::{self, Op};
use super::client::{Reply, Shared};
use super::error::{self, CallCtx};
use super::paging;
use super::throttle::{Feedback, Permit, Throttle};
use super::wire;
use crate::model::{
    Application, CaPolicy, CaPolicyState, CallError, DeletedUser, HttpInfo, PerUserMfaState,
    Subscription, SubscriptionDetail, User, WriteOutcome, GLOBAL_ADMIN_ROLE_TEMPLATE,
};
use crate::ports::TenantApi;
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use url::Url;

/// The fields of a user closeout reads.
/// Attempts one `GET` gets in [`TenantClient::get_json`].
const READ_ATTEMPTS: u32 = 3;

/// The longest `Retry-After` a read waits out itself before repeating; a
/// longer one is the saga's to wait (recorded, and bounded by
/// `[retry] max_retry_after`).
const READ_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

const USER_SELECT: &str =
    "id,userPrincipalName,displayName,accountEnabled,onPremisesSyncEnabled,userType";

/// The Graph client of one customer tenant. Its `Debug` never shows the
/// secret or a token.
#[derive(Debug)]
pub struct TenantClient {
    /// The shared HTTP client.
    pub(crate) shared: Arc<Shared>,
    /// The customer tenant's id.
    pub(crate) tenant: String,
    /// Its tokens: one per tenant, renewed before expiry and once on a 401.
    pub(crate) tokens: TokenSource,
    /// Its throttle, shared by every call to this tenant.
    pub(crate) throttle: Arc<Throttle>,
    /// closeout's app (client) id, to find its own service principal.
    pub(crate) client_id: String,
}

impl TenantClient {
    /// Asks the token endpoint for a token now (`closeout doctor`): the
    /// token endpoint's clock skew in seconds, when its answer had a `Date`.
    pub async fn check_token(&self) -> Result<Option<i64>, CallError> {
        self.tokens.fresh().await.map(|t| t.skew_secs)
    }

    /// The scope tokens are asked for.
    pub fn token_scope(&self) -> &str {
        self.tokens.scope()
    }

    pub(crate) fn new(
        shared: Arc<Shared>,
        tenant: &str,
        client_id: &str,
        credential: super::Credential,
    ) -> TenantClient {
        let scope = shared.endpoints.cloud.graph_scope(&shared.endpoints.graph);
        TenantClient {
            tokens: TokenSource::new(shared.clone(), tenant, client_id, credential, &scope),
            throttle: shared.throttle(tenant),
            shared,
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
        }
    }

    /// The tenant this client works on.
    pub fn tenant_id(&self) -> &str {
        &self.tenant
    }

    /// What the service answered this tenant so far (429s counted per item).
    pub fn stats(&self) -> super::throttle::Stats {
        self.throttle.stats()
    }

    /// The current AIMD window and paced write rate (diagnostics, benches).
    pub fn throttle_state(&self) -> (f64, Option<f64>) {
        self.throttle.snapshot()
    }

    /// A Graph URL from a path (with query) such as `/v1.0/users?$top=999`.
    pub(crate) fn url(&self, path_and_query: &str) -> Result<Url, CallError> {
        self.shared
            .endpoints
            .graph
            .join(path_and_query)
            .map_err(|e| CallError {
                class: crate::model::FailureClass::Permanent,
                code: "bad_url".into(),
                message: format!(
                    "cannot build url {path_and_query} for tenant {}: {e}",
                    self.tenant
                ),
                retry_after: None,
            })
    }

    pub(crate) fn ctx(&self, method: &Method, url: &Url) -> CallCtx {
        CallCtx {
            tenant: self.tenant.clone(),
            method: method.as_str().to_string(),
            path: url.path().to_string(),
            redact: self.tokens.redact(),
        }
    }

    /// Sends one request through the throttle with a token, renewing the token
    /// once on a 401. The caller judges the reply and reports to the throttle.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        write_items: u32,
    ) -> Result<(Reply, Permit<'_>), CallError> {
        let ctx = self.ctx(&method, &url);
        let permit =
            (self.throttle.acquire(write_items).await).map_err(|_| error::not_sent(&ctx))?;
        match (self.tokens).send(method, url, body, &[], false).await? {
            Err((kind, detail)) => {
                let detail = ctx.redact.apply(&detail);
                tracing::debug!(tenant = %self.tenant, method = %ctx.method, path = %ctx.path, %detail, "no response");
                Err(error::transport_error(&ctx, kind, &detail))
            }
            Ok(reply) => {
                tracing::debug!(tenant = %self.tenant, method = %ctx.method, path = %ctx.path, status = reply.status, request_id = %reply.request_id(), "graph call");
                Ok((reply, permit))
            }
        }
    }

    /// One call judged on its status, reported to the throttle.
    async fn single(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> (CallCtx, Result<Reply, CallError>) {
        let ctx = self.ctx(&method, &url);
        let write = ctx.is_write();
        match self.send(method, url, body, write as u32).await {
            Err(e) => (ctx, Err(e)),
            Ok((reply, permit)) => {
                let throttled = reply.status == 429;
                self.throttle.record(
                    &permit,
                    Feedback {
                        answered: 1,
                        throttled: throttled as u32,
                        write,
                        accepted_writes: (write && !throttled) as u32,
                        retry_after: reply.retry_after(),
                        hint: reply.limit_hint(),
                    },
                );
                (ctx, Ok(reply))
            }
        }
    }

    /// `GET` a JSON value; `Ok(None)` on 404.
    ///
    /// A read changes nothing, so a transient failure of one `GET` is
    /// repeated here, up to [`READ_ATTEMPTS`] times: at once when it got no
    /// answer, after the service's short `Retry-After` (a 429's is also kept
    /// by the throttle), or after a short exponential backoff when an answer
    /// had none (see [`error::repeatable_read`]); a longer wait, a permanent
    /// failure or a halted saga is returned to the saga, which records it and schedules the read's retry. Without
    /// this a read made of several requests (step 1's preflight, step 5's
    /// deletion check, every page of a listing) is redone from its first
    /// request whenever any one of them fails: at a 30% failure rate
    /// (tests/soak.rs) a read of eight requests succeeds one time in
    /// seventeen. Writes are never repeated here (ARCHITECTURE.md).
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<Option<T>, CallError> {
        let mut attempt = 1;
        loop {
            let e = match self.get_json_once(url.clone()).await {
                Err(e) if attempt < READ_ATTEMPTS => e,
                other => return other,
            };
            let Some(wait) = error::repeatable_read(&e, attempt, READ_MAX_WAIT) else {
                return Err(e);
            };
            tracing::debug!(tenant = %self.tenant, path = %url.path(), attempt, code = %e.code, "read repeated");
            if !super::throttle::pause(wait).await {
                return Err(e);
            }
            attempt += 1;
        }
    }

    async fn get_json_once<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, CallError> {
        let (ctx, reply) = self.single(Method::GET, url, None).await;
        let reply = reply?;
        if reply.status == 404 {
            return Ok(None);
        }
        // A success is not parsed for an error code: the body is read once.
        judge_reply(&ctx, &reply, &reply.request_id())?;
        serde_json::from_slice(&reply.body).map(Some).map_err(|e| {
            error::bad_response(
                &ctx,
                &reply.request_id(),
                &format!("{} ({e})", reply.body_hint()),
            )
        })
    }

    /// `GET` a JSON value that must exist.
    pub(crate) async fn get_required<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, CallError> {
        let url = self.url(path)?;
        let ctx = self.ctx(&Method::GET, &url);
        self.get_json(url).await?.ok_or_else(|| {
            error::status_error(
                &ctx,
                404,
                Some(("Request_ResourceNotFound".into(), "not found".into())),
                "",
                "",
                None,
            )
        })
    }

    /// One write (PATCH/POST/DELETE), judged.
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> WriteOutcome {
        let url = match self.url(path) {
            Ok(u) => u,
            Err(e) => {
                return WriteOutcome {
                    http: HttpInfo {
                        method: method.to_string(),
                        path: path.to_string(),
                        status: 0,
                        request_id: String::new(),
                    },
                    result: Err(e),
                }
            }
        };
        let (ctx, reply) = self.single(method, url, body).await;
        let mut http = HttpInfo {
            method: ctx.method.clone(),
            path: ctx.path.clone(),
            status: 0,
            request_id: String::new(),
        };
        let result = match reply {
            Err(e) => Err(e),
            Ok(reply) => {
                http.status = reply.status;
                http.request_id = reply.request_id();
                judge_reply(&ctx, &reply, &http.request_id)
            }
        };
        WriteOutcome { http, result }
    }

    /// `DELETE /v1.0/users/{id}` alone, without `$batch` (one call, no retry).
    pub async fn delete_user(&self, id: &str) -> WriteOutcome {
        if let Some(e) = bulk::invalid_id(&self.tenant, id) {
            return e;
        }
        self.write(
            Method::DELETE,
            &format!("/v1.0/users/{}", bulk::segment(id)),
            None,
        )
        .await
    }

    /// Every item of a collection, following `@odata.nextLink`.
    pub(crate) async fn all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, CallError> {
        paging::get_all(self, self.url(path)?).await
    }
}

impl TenantApi for TenantClient {
    fn certificate_thumbprint(&self) -> Option<String> {
        self.tokens.thumbprint()
    }

    async fn app_permissions(&self) -> Result<Vec<String>, CallError> {
        TenantClient::app_permissions(self).await
    }

    /// Role assignments: https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments
    /// (built-in roles' `roleDefinitionId` is their template id); the
    /// organization's `onPremisesSyncEnabled`:
    /// https://learn.microsoft.com/graph/api/organization-get; closeout's own
    /// service principal by its app id:
    /// https://learn.microsoft.com/graph/api/serviceprincipal-get.
    async fn read_preflight(&self) -> Result<crate::model::Preflight, CallError> {
        let role_assignments: Vec<wire::RoleAssignment> = self
            .all("/v1.0/roleManagement/directory/roleAssignments?$select=principalId,roleDefinitionId")
            .await?;
        let orgs: Vec<wire::Organization> = self
            .all("/v1.0/organization?$select=id,onPremisesSyncEnabled")
            .await?;
        let sp: wire::DirectoryObject = self
            .get_required(&format!(
                "/v1.0/servicePrincipals(appId='{}')?$select=id",
                bulk::segment(&self.client_id)
            ))
            .await?;
        let synced_users = self
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.on_premises_sync_enabled)
            .map(|u| u.id)
            .collect();
        Ok(crate::model::Preflight {
            role_assignments: role_assignments
                .into_iter()
                .map(|a| (a.principal_id, a.role_definition_id))
                .collect(),
            synced_users,
            directory_sync: orgs
                .iter()
                .any(|o| o.on_premises_sync_enabled == Some(true)),
            app_principal: sp.id,
        })
    }

    async fn list_users(&self) -> Result<Vec<User>, CallError> {
        let users: Vec<wire::User> = self
            .all(&format!("/v1.0/users?$select={USER_SELECT}&$top=999"))
            .await?;
        Ok(users.into_iter().map(User::from).collect())
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, CallError> {
        if let Some(o) = bulk::invalid_id(&self.tenant, id) {
            return Err(o.result.err().unwrap_or_else(|| unreachable!()));
        }
        let url = self.url(&format!(
            "/v1.0/users/{}?$select={USER_SELECT}",
            bulk::segment(id)
        ))?;
        Ok(self.get_json::<wire::User>(url).await?.map(User::from))
    }

    async fn list_global_admins(&self) -> Result<Vec<String>, CallError> {
        let members: Vec<wire::DirectoryObject> = self
            .all(&format!(
                "/v1.0/directoryRoles(roleTemplateId='{GLOBAL_ADMIN_ROLE_TEMPLATE}')/members?$select=id"
            ))
            .await?;
        Ok(members.into_iter().map(|m| m.id).collect())
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, CallError> {
        let subs: Vec<wire::Subscription> = self.all("/v1.0/directory/subscriptions").await?;
        Ok(subs.into_iter().map(Subscription::from).collect())
    }

    async fn list_subscription_details(&self) -> Result<Vec<SubscriptionDetail>, CallError> {
        let subs: Vec<wire::Subscription> = self.all("/v1.0/directory/subscriptions").await?;
        Ok(subs.into_iter().map(wire::Subscription::detail).collect())
    }

    async fn get_security_defaults(&self) -> Result<bool, CallError> {
        let p: wire::SecurityDefaults = self
            .get_required("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy")
            .await?;
        Ok(p.is_enabled)
    }

    async fn set_security_defaults(&self, enabled: bool) -> WriteOutcome {
        let body = serde_json::json!({ "isEnabled": enabled });
        self.write(
            Method::PATCH,
            "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy",
            Some(&body),
        )
        .await
    }

    async fn list_ca_policies(&self) -> Result<Vec<CaPolicy>, CallError> {
        let ps: Vec<wire::CaPolicy> = self
            .all("/v1.0/identity/conditionalAccess/policies")
            .await?;
        Ok(ps.into_iter().map(CaPolicy::from).collect())
    }

    async fn set_ca_policy_state(&self, id: &str, state: CaPolicyState) -> WriteOutcome {
        if let Some(e) = bulk::invalid_id(&self.tenant, id) {
            return e;
        }
        let body = serde_json::json!({ "state": state });
        self.write(
            Method::PATCH,
            &format!(
                "/v1.0/identity/conditionalAccess/policies/{}",
                bulk::segment(id)
            ),
            Some(&body),
        )
        .await
    }

    async fn get_user_mfa(&self, user_id: &str) -> Result<PerUserMfaState, CallError> {
        if let Some(o) = bulk::invalid_id(&self.tenant, user_id) {
            return Err(o.result.err().unwrap_or_else(|| unreachable!()));
        }
        let r: wire::MfaRequirements = self
            .get_required(&format!(
                "/beta/users/{}/authentication/requirements",
                bulk::segment(user_id)
            ))
            .await?;
        Ok(r.per_user_mfa_state)
    }

    async fn set_user_mfa(&self, user_id: &str, state: PerUserMfaState) -> WriteOutcome {
        if let Some(e) = bulk::invalid_id(&self.tenant, user_id) {
            return e;
        }
        let body = serde_json::json!({ "perUserMfaState": state });
        self.write(
            Method::PATCH,
            &format!(
                "/beta/users/{}/authentication/requirements",
                bulk::segment(user_id)
            ),
            Some(&body),
        )
        .await
    }

    async fn list_applications(&self) -> Result<Vec<Application>, CallError> {
        let apps: Vec<wire::Application> = self
            .all("/v1.0/applications?$select=id,appId,displayName")
            .await?;
        Ok(apps.into_iter().map(Application::from).collect())
    }

    async fn delete_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        bulk::run(self, Op::Delete, ids).await
    }

    async fn list_deleted_users(&self) -> Result<Vec<DeletedUser>, CallError> {
        let us: Vec<wire::DeletedUser> = self
            .all("/v1.0/directory/deletedItems/microsoft.graph.user?$select=id,userPrincipalName,deletedDateTime")
            .await?;
        Ok(us.into_iter().map(DeletedUser::from).collect())
    }

    async fn restore_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        bulk::run(self, Op::Restore, ids).await
    }

    async fn organization_id(&self) -> Result<String, CallError> {
        Ok(self.organization().await?.0)
    }

    async fn global_admin_members(&self) -> Result<Vec<crate::model::RoleMember>, CallError> {
        self.role_members().await
    }

    /// The portal's deletion check, as far as Graph shows it
    /// (https://learn.microsoft.com/entra/identity/users/directory-delete-howto):
    /// users (https://learn.microsoft.com/graph/api/user-list), app
    /// registrations (https://learn.microsoft.com/graph/api/application-list),
    /// service principals with their owner organization
    /// (https://learn.microsoft.com/graph/api/serviceprincipal-list), every
    /// subscription with `isTrial` and `ownerType`
    /// (https://learn.microsoft.com/graph/api/resources/companysubscription)
    /// and the initial domain (https://learn.microsoft.com/graph/api/organization-get).
    async fn deletion_check(&self) -> Result<crate::saga::closure::DeletionCheck, CallError> {
        use crate::saga::closure::{
            DeletionCheck, PrincipalSeen, SubscriptionSeen, MICROSOFT_SERVICES_TENANT,
        };
        let users = self.list_users().await?;
        let apps: Vec<wire::App> = self
            .all("/v1.0/applications?$select=id,appId,displayName")
            .await?;
        let sps: Vec<wire::Principal> = self
            .all("/v1.0/servicePrincipals?$select=id,appId,displayName,appOwnerOrganizationId")
            .await?;
        let subs: Vec<wire::Subscription> = self.all("/v1.0/directory/subscriptions").await?;
        let orgs: Vec<wire::OrganizationDomains> = self
            .all("/v1.0/organization?$select=id,verifiedDomains")
            .await?;
        Ok(DeletionCheck {
            users: users
                .into_iter()
                .map(|u| (u.id, u.user_principal_name))
                .collect(),
            applications: apps
                .into_iter()
                .map(|a| (a.id, a.display_name.unwrap_or_default()))
                .collect(),
            service_principals: sps
                .into_iter()
                .map(|p| PrincipalSeen {
                    first_party: p.app_owner_organization_id.as_deref()
                        == Some(MICROSOFT_SERVICES_TENANT),
                    id: p.id,
                    app_id: p.app_id,
                    name: p.display_name.unwrap_or_default(),
                })
                .collect(),
            subscriptions: subs
                .into_iter()
                .map(|s| SubscriptionSeen {
                    self_service: s.owner_type.as_deref() == Some("User"),
                    id: s
                        .commerce_subscription_id
                        .clone()
                        .unwrap_or_else(|| s.id.clone()),
                    sku: s.sku_part_number.clone().unwrap_or_default(),
                    status: s.status,
                    trial: s.is_trial.unwrap_or(false),
                })
                .collect(),
            initial_domain: orgs
                .into_iter()
                .flat_map(|o| o.verified_domains)
                .find(|d| d.is_initial)
                .map(|d| d.name),
        })
    }

    async fn data_at_stake(&self) -> Result<crate::saga::stake::DataAtStake, CallError> {
        self.read_data_at_stake().await
    }

    async fn discovery(&self, name: &str) -> Result<crate::saga::closure::Answer, CallError> {
        super::discovery::openid_configuration(&self.shared, name).await
    }

    async fn tenant_exists(&self) -> Result<bool, CallError> {
        match self.tokens.fresh().await {
            Ok(_) => Ok(true),
            Err(e) if e.code == "AADSTS90002" => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// [`error::judge`] of a reply, without parsing a success's body for an
/// error code (a 2xx is `Done` whatever its body says).
pub(crate) fn judge_reply(
    ctx: &CallCtx,
    reply: &Reply,
    request_id: &str,
) -> Result<crate::model::Applied, CallError> {
    if (200..300).contains(&reply.status) {
        return Ok(crate::model::Applied::Done);
    }
    error::judge(
        ctx,
        reply.status,
        error::error_code(&reply.body),
        &reply.body_hint(),
        request_id,
        reply.retry_after(),
    )
}
