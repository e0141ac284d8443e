//! Who a tenant is and who keeps it: the tenant's GUID, read without
//! credentials from its OpenID Connect discovery document and confirmed with
//! `GET /v1.0/organization` once a token exists (access tokens stay opaque:
//! they are never parsed for a tenant id); and the Global Administrator
//! role's members with `accountEnabled`, read fresh before admin deletions.

use super::client::Client;
use super::error;
use super::tenant::TenantClient;
use crate::model::{CallError, FailureClass, RoleMember, GLOBAL_ADMIN_ROLE_TEMPLATE};
use serde::Deserialize;

/// The login error code of a tenant the service does not know.
pub const TENANT_NOT_FOUND: &str = "AADSTS90002";

/// The fields of the discovery document that name the tenant.
#[derive(Deserialize)]
struct Discovery {
    /// `https://login.microsoftonline.com/{tenant guid}/v2.0`.
    issuer: String,
    /// `https://login.microsoftonline.com/{tenant guid}/oauth2/v2.0/token`.
    token_endpoint: String,
}

/// The first path segment of `url` that is a GUID, lowercased.
fn guid_in(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let found = url
        .path_segments()?
        .find_map(|s| uuid::Uuid::parse_str(s).ok());
    found.map(|g| g.hyphenated().to_string())
}

/// Whether `s` can name a tenant: a GUID or a domain name (ASCII letters,
/// digits, `-` and `.`, at most 256 characters), so never a control
/// character, a space or a path. What the login service is asked about.
pub fn is_tenant_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
}

/// Whether `s` is a tenant GUID (any case); returns it lowercased.
pub fn as_guid(s: &str) -> Option<String> {
    (s.len() == 36)
        .then(|| uuid::Uuid::parse_str(s).ok())
        .flatten()
        .map(|g| g.hyphenated().to_string())
}

impl Client {
    /// The tenant's GUID, from `GET {login}/{tenant}/v2.0/.well-known/openid-configuration`
    /// (<https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc>,
    /// "Fetch the OpenID configuration document": `{tenant}` may be the GUID
    /// or a domain name). The document's `issuer` and `token_endpoint` must
    /// name the same GUID, else the answer is refused: the tenant is never
    /// guessed. An unknown tenant is a permanent `AADSTS90002` error.
    pub async fn resolve_tenant(&self, tenant: &str) -> Result<String, CallError> {
        let bad_name = || CallError {
            class: FailureClass::Permanent,
            code: "invalid_tenant_name".into(),
            message: format!("tenant {tenant:?} is not a tenant id or domain name"),
            retry_after: None,
        };
        if !is_tenant_name(tenant) {
            return Err(bad_name());
        }
        let (ctx, reply) = super::discovery::fetch(&self.shared, tenant).await?;
        if !(200..300).contains(&reply.status) {
            let code = error::error_code(&reply.body);
            let mut e = error::status_error(
                &ctx,
                reply.status,
                code,
                &reply.body_hint(),
                &reply.request_id(),
                reply.retry_after(),
            );
            if e.code == TENANT_NOT_FOUND {
                e.class = FailureClass::Permanent;
                e.message =
                    format!("tenant {tenant} is unknown to the login service ({TENANT_NOT_FOUND})");
            } else if e.class == FailureClass::InDoubt {
                e.class = FailureClass::Transient;
            }
            return Err(e);
        }
        let doc: Discovery = serde_json::from_slice(&reply.body).map_err(|_| {
            let mut e = error::bad_response(&ctx, &reply.request_id(), &reply.body_hint());
            e.class = FailureClass::Transient;
            e
        })?;
        match (guid_in(&doc.issuer), guid_in(&doc.token_endpoint)) {
            (Some(a), Some(b)) if a == b => Ok(a),
            _ => Err(CallError {
                class: FailureClass::Permanent,
                code: "discovery_without_tenant".into(),
                message: format!(
                    "tenant {tenant}: the discovery document names no single tenant GUID (issuer {:?})",
                    doc.issuer
                ),
                retry_after: None,
            }),
        }
    }
}

/// `organization` as closeout reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Organization {
    /// `id`: the tenant's GUID.
    id: String,
    /// `verifiedDomains`: the tenant's verified domains, the initial one among them.
    #[serde(default)]
    verified_domains: Vec<VerifiedDomain>,
}

/// `verifiedDomain`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifiedDomain {
    /// `name`, e.g. `contoso.onmicrosoft.com`.
    name: String,
    /// Whether it is the tenant's initial (`onmicrosoft.com`) domain.
    #[serde(default)]
    is_initial: bool,
}

impl TenantClient {
    /// `GET /v1.0/organization` (<https://learn.microsoft.com/graph/api/resources/organization>):
    /// the tenant's GUID (`id`) and its initial domain (`verifiedDomains`
    /// with `isInitial`), as the token's own tenant sees itself.
    pub async fn organization(&self) -> Result<(String, Option<String>), CallError> {
        let orgs: Vec<Organization> = self
            .all("/v1.0/organization?$select=id,verifiedDomains")
            .await?;
        let org = orgs.into_iter().next().ok_or_else(|| CallError {
            class: FailureClass::Permanent,
            code: "no_organization".into(),
            message: format!(
                "tenant {}: GET /v1.0/organization listed nothing",
                self.tenant
            ),
            retry_after: None,
        })?;
        let guid = as_guid(&org.id).unwrap_or(org.id);
        let initial = org
            .verified_domains
            .into_iter()
            .find(|d| d.is_initial)
            .map(|d| d.name);
        Ok((guid, initial))
    }

    /// The app role ids (Microsoft Graph application permissions) granted to
    /// closeout's own service principal:
    /// `GET /v1.0/servicePrincipals(appId='{client_id}')` then
    /// `GET /v1.0/servicePrincipals/{id}/appRoleAssignments`
    /// (<https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments>).
    /// Access tokens stay opaque: their `roles` claim is never read.
    pub async fn app_permissions(&self) -> Result<Vec<String>, CallError> {
        #[derive(Deserialize)]
        struct Principal {
            id: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Assignment {
            app_role_id: String,
        }
        let sp: Principal = self
            .get_required(&format!(
                "/v1.0/servicePrincipals(appId='{}')?$select=id",
                super::bulk::segment(&self.client_id)
            ))
            .await?;
        let list: Vec<Assignment> = self
            .all(&format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignments?$select=appRoleId,resourceId",
                super::bulk::segment(&sp.id)
            ))
            .await?;
        Ok(list.into_iter().map(|a| a.app_role_id).collect())
    }

    /// Refuses (permanently, `tenant_mismatch`) unless the organization this
    /// client reaches is tenant `guid` and its initial domain
    /// (`verifiedDomains` with `isInitial`) is `domain`: with one app
    /// consented in many tenants, a typo in a batch's tenant id would
    /// otherwise close another customer.
    pub async fn check_identity(&self, guid: &str, domain: &str) -> Result<(), CallError> {
        let (id, initial) = self.organization().await?;
        let id_ok = id.eq_ignore_ascii_case(guid);
        let domain_ok = initial
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(domain));
        if id_ok && domain_ok {
            return Ok(());
        }
        // The organization's id and domain are the service's text.
        let redact = self.tokens.redact();
        let (id, initial) = (redact.apply(&id), initial.map(|d| redact.apply(&d)));
        Err(CallError {
            class: FailureClass::Permanent,
            code: "tenant_mismatch".into(),
            message: format!(
                "tenant {}: the organization reached is {id} with initial domain {}, but the batch names {guid} and {domain}; nothing was changed",
                self.tenant,
                initial.as_deref().unwrap_or("(none)")
            ),
            retry_after: None,
        })
    }

    /// The Global Administrator role's members with `accountEnabled`
    /// (<https://learn.microsoft.com/graph/api/directoryrole-list-members>).
    pub async fn role_members(&self) -> Result<Vec<RoleMember>, CallError> {
        self.all(&format!(
            "/v1.0/directoryRoles(roleTemplateId='{GLOBAL_ADMIN_ROLE_TEMPLATE}')/members?$select=id,userPrincipalName,accountEnabled"
        ))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_found_in_the_issuer_path() {
        assert_eq!(
            guid_in("https://login.example/8EAEF023-2b34-4da1-9baa-8bc8c9d6a490/v2.0").as_deref(),
            Some("8eaef023-2b34-4da1-9baa-8bc8c9d6a490")
        );
        assert_eq!(
            guid_in("https://login.example/contoso.onmicrosoft.com/v2.0"),
            None
        );
        assert_eq!(as_guid("not-a-guid"), None);
    }
}
