//! Serde shapes of the JSON that Graph, login and Partner Center exchange,
//! and their conversion into the shared model. Missing optional fields get
//! defaults; a missing `id` is an error (serde reports it).

use crate::model::{self, CaPolicyState, PerUserMfaState, SubscriptionStatus};
use serde::{Deserialize, Serialize};

/// The token endpoint's success answer.
#[derive(Deserialize)]
pub struct TokenResponse {
    /// The bearer token (moved into a `Secret` at once).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// One page of a Graph collection.
///
/// `value` is required: Graph answers an empty collection with
/// `"value": []`, so a 2xx page without the array (`{}`, an error object, a
/// single entity) is a malformed reply (`bad_response`), never read as "no
/// users", "no subscriptions" or "no app registrations".
#[derive(Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub value: Vec<T>,
    /// The absolute URL of the next page, absent on the last one.
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// `user` as selected by closeout.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// `id`: the directory object id, the key closeout tracks a user by.
    pub id: String,
    /// Sign-in name (may be absent in odd fixtures).
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// `displayName`; an empty string in the model when absent.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether sign-in is allowed.
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// `onPremisesSyncEnabled`: `true` for a user synced from on-premises; absent
    /// reads as not synced.
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    /// `userType`: `Member` or `Guest`; absent reads as `Member`.
    #[serde(default)]
    pub user_type: Option<String>,
}

impl From<User> for model::User {
    fn from(u: User) -> Self {
        model::User {
            id: u.id,
            user_principal_name: u.user_principal_name.unwrap_or_default(),
            display_name: u.display_name.unwrap_or_default(),
            account_enabled: u.account_enabled.unwrap_or(true),
            on_premises_sync_enabled: u.on_premises_sync_enabled.unwrap_or(false),
            user_type: u.user_type.unwrap_or_else(|| "Member".into()),
        }
    }
}

/// A deleted user in the recycle bin.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedUser {
    /// `id`: the user's object id, unchanged by deletion (a restore names it).
    pub id: String,
    /// Sign-in name (Graph prefixes it with the id once deleted).
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// When it was deleted.
    #[serde(default)]
    pub deleted_date_time: Option<String>,
}

impl From<DeletedUser> for model::DeletedUser {
    fn from(u: DeletedUser) -> Self {
        model::DeletedUser {
            id: u.id,
            user_principal_name: u.user_principal_name.unwrap_or_default(),
            deleted_date_time: u.deleted_date_time.unwrap_or_default(),
        }
    }
}

/// A directory object (role members): only the id matters.
#[derive(Deserialize)]
pub struct DirectoryObject {
    /// `id` of the role member (a user, group or service principal).
    pub id: String,
}

/// `unifiedRoleAssignment`: who holds which role.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// The user, group or service principal holding the role.
    pub principal_id: String,
    /// The role definition; for built-in roles, its template id.
    pub role_definition_id: String,
}

/// `organization`, the fields the preflight reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// `true` when synced from on-premises; `null` when never synced.
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
}

/// `companySubscription`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `id`: Graph's own subscription id, used when Partner Center's is absent.
    pub id: String,
    /// `commerceSubscriptionId`: the id Partner Center knows the subscription by
    /// (empty in the model when absent).
    #[serde(default)]
    pub commerce_subscription_id: Option<String>,
    /// `skuId`: the SKU's GUID.
    #[serde(default)]
    pub sku_id: Option<String>,
    /// `skuPartNumber`, e.g. `O365_BUSINESS_PREMIUM`; shown to the operator.
    #[serde(default)]
    pub sku_part_number: Option<String>,
    /// `status`: `Enabled`, `Warning`, `Suspended`, `Deleted` or `LockedOut`.
    pub status: SubscriptionStatus,
    /// `isTrial`: `true` for a trial; absent reads as paid.
    #[serde(default)]
    pub is_trial: Option<bool>,
    /// `totalLicenses`: seats bought; absent reads as 0.
    #[serde(default)]
    pub total_licenses: Option<u32>,
    /// Who bought it: `User` for a self-service purchase or sign-up.
    #[serde(default)]
    pub owner_type: Option<String>,
    /// The partner tenant that sold it, if a partner did.
    #[serde(default)]
    pub owner_tenant_id: Option<String>,
    /// When it moves to its next lifecycle state.
    #[serde(default)]
    pub next_lifecycle_date_time: Option<String>,
    /// When it was created.
    #[serde(default)]
    pub created_date_time: Option<String>,
}

impl Subscription {
    /// The subscription with its seller and lifecycle dates.
    pub fn detail(self) -> model::SubscriptionDetail {
        let owner_tenant_id = self
            .owner_tenant_id
            .clone()
            .filter(|t| !t.trim().is_empty());
        let next_lifecycle = self
            .next_lifecycle_date_time
            .as_deref()
            .and_then(model::parse_time);
        let created = self
            .created_date_time
            .as_deref()
            .and_then(model::parse_time);
        model::SubscriptionDetail {
            base: self.into(),
            owner_tenant_id,
            next_lifecycle,
            created,
        }
    }
}

/// An application registration (`id`, `appId`, `displayName`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// `id`: the application object id.
    pub id: String,
    /// `displayName`, shown in the step 5 preflight; empty when absent.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A service principal as the step 5 preflight reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// `id`: the service principal's object id.
    pub id: String,
    /// `appId`: the application (client) id it represents; empty when absent.
    #[serde(default)]
    pub app_id: String,
    /// `displayName`, shown in the step 5 preflight; empty when absent.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The tenant owning the application (Microsoft's for first-party apps).
    #[serde(default)]
    pub app_owner_organization_id: Option<String>,
}

/// The organization's verified domains.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDomains {
    /// `verifiedDomains`: every verified domain, the initial one among them.
    #[serde(default)]
    pub verified_domains: Vec<VerifiedDomain>,
}

/// One verified domain.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    /// `name`, e.g. `contoso.onmicrosoft.com`.
    pub name: String,
    /// The `*.onmicrosoft.com` domain the tenant was created with.
    #[serde(default)]
    pub is_initial: bool,
}

impl From<Subscription> for model::Subscription {
    fn from(s: Subscription) -> Self {
        model::Subscription {
            id: s.id,
            commerce_subscription_id: s.commerce_subscription_id.unwrap_or_default(),
            sku_id: s.sku_id.unwrap_or_default(),
            sku_part_number: s.sku_part_number.unwrap_or_default(),
            status: s.status,
            is_trial: s.is_trial.unwrap_or(false),
            total_licenses: s.total_licenses.unwrap_or(0),
        }
    }
}

/// `identitySecurityDefaultsEnforcementPolicy`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityDefaults {
    /// Whether security defaults are on.
    pub is_enabled: bool,
}

/// A conditional access policy.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaPolicy {
    /// `id`: the policy's id, the target step 4 sets to `disabled`.
    pub id: String,
    /// Name shown in the portal.
    #[serde(default)]
    pub display_name: Option<String>,
    /// On, off or report-only.
    pub state: CaPolicyState,
    /// `grantControls`: what the policy demands at sign-in; absent reads as no MFA.
    #[serde(default)]
    pub grant_controls: Option<GrantControls>,
}

/// `grantControls` of a CA policy.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantControls {
    /// `builtInControls`, e.g. `["mfa"]`; `mfa` makes the policy an MFA policy.
    #[serde(default)]
    pub built_in_controls: Vec<String>,
    /// An authentication strength (every built-in strength is multifactor:
    /// https://learn.microsoft.com/entra/identity/authentication/concept-authentication-strengths).
    #[serde(default)]
    pub authentication_strength: Option<serde_json::Value>,
}

impl From<CaPolicy> for model::CaPolicy {
    fn from(p: CaPolicy) -> Self {
        let requires_mfa = p
            .grant_controls
            .map(|g| {
                g.built_in_controls.iter().any(|c| c == "mfa")
                    || g.authentication_strength
                        .as_ref()
                        .is_some_and(|a| !a.is_null())
            })
            .unwrap_or(false);
        model::CaPolicy {
            id: p.id,
            display_name: p.display_name.unwrap_or_default(),
            state: p.state,
            requires_mfa,
        }
    }
}

/// `/beta/users/{id}/authentication/requirements`.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MfaRequirements {
    /// `perUserMfaState`: `disabled`, `enabled` or `enforced`.
    pub per_user_mfa_state: PerUserMfaState,
}

/// An app registration.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// `id`: the application object id.
    pub id: String,
    /// `appId`: the application (client) id; empty in the model when absent.
    #[serde(default)]
    pub app_id: Option<String>,
    /// `displayName`, shown to the operator; empty in the model when absent.
    #[serde(default)]
    pub display_name: Option<String>,
}

impl From<Application> for model::Application {
    fn from(a: Application) -> Self {
        model::Application {
            id: a.id,
            app_id: a.app_id.unwrap_or_default(),
            display_name: a.display_name.unwrap_or_default(),
        }
    }
}

/// The body of `POST /v1.0/$batch`.
#[derive(Serialize)]
pub struct BatchRequest<'a> {
    /// At most 20 items with distinct ids.
    pub requests: Vec<BatchRequestItem<'a>>,
}

/// One item of a `$batch` request.
#[derive(Serialize)]
pub struct BatchRequestItem<'a> {
    /// Unique within the batch (the item's index).
    pub id: String,
    /// The item's HTTP method (`GET`, `PATCH`, `DELETE`, ...).
    pub method: &'a str,
    /// Relative to the version (`/users/{id}`).
    pub url: &'a str,
    /// JSON body (then a `Content-Type` header is required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<&'a serde_json::Value>,
    /// Item headers (`Content-Type` when there is a body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<serde_json::Value>,
}

/// The body of a `$batch` answer.
#[derive(Deserialize)]
pub struct BatchResponse {
    /// One per item, in any order.
    #[serde(default)]
    pub responses: Vec<BatchResponseItem>,
}

/// One item of a `$batch` answer.
#[derive(Deserialize)]
pub struct BatchResponseItem {
    /// The request item's id.
    pub id: String,
    /// The item's own status.
    pub status: u16,
    /// The item's headers (`Retry-After`, `request-id`, ...).
    #[serde(default)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The item's body (an error object, an entity, or nothing).
    #[serde(default)]
    pub body: serde_json::Value,
}

impl BatchResponseItem {
    /// A header by name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    }
}
