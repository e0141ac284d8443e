//! The shared vocabulary of closeout: identifiers, time, tenant specifications
//! and the description of an external call, used by every other module.
//!
//! Nothing here does I/O or reads the clock: the saga core depends on it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC. The saga core never reads the clock:
/// times reach it as values of this type, taken by the runtime.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The instant `d` after this one (saturating).
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(u64::MAX as u128) as u64),
        )
    }

    /// How long after `earlier` this instant is (zero if it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-28T20:11:34.123Z`.
    pub fn to_rfc3339(self) -> String {
        let t = std::time::UNIX_EPOCH + Duration::from_millis(self.0);
        humantime::format_rfc3339_millis(t).to_string()
    }

    /// The instant of a `SystemTime` (the runtime's clock, never the core's).
    pub fn from_system(t: std::time::SystemTime) -> Timestamp {
        Timestamp(
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Identifies one closure saga. Chosen by the daemon when a tenant is submitted
/// (a UUID v4 in its hyphenated form), stable for the life of the log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SagaId(pub String);

impl fmt::Display for SagaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a tenant's subscriptions are cancelled and deleted (steps 2 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionMode {
    /// Through the partner's Partner Center API (the tenant is a CSP customer).
    PartnerCenter,
    /// By a person in the Microsoft 365 admin center: an operator gate,
    /// verified by reading the tenant.
    Manual,
}

/// Where the app's credential comes from: a client secret or a certificate
/// (a PEM with the private key and the certificate). Only the location is
/// ever stored or logged, never the secret or key itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// A file holding the secret (trailing newline ignored).
    File(std::path::PathBuf),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
    /// A PEM file with the private key and the certificate
    /// (`client_certificate_file`): a signed client assertion is sent
    /// instead of a secret.
    CertificateFile(std::path::PathBuf),
    /// The same PEM as a systemd credential (`client_certificate_credential`).
    CertificateCredential(String),
}

impl SecretSource {
    /// Whether this names a certificate rather than a client secret.
    pub fn is_certificate(&self) -> bool {
        matches!(
            self,
            SecretSource::CertificateFile(_) | SecretSource::CertificateCredential(_)
        )
    }

    /// The file, if the source is one (secret or certificate).
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            SecretSource::File(p) | SecretSource::CertificateFile(p) => Some(p),
            _ => None,
        }
    }
}

/// One tenant to close, as given in a batch file. Recorded in the saga's first
/// event, so it must never hold a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSpec {
    /// The customer tenant's id (a GUID) or its initial domain.
    pub tenant_id: String,
    /// The application (client) id registered in the customer tenant.
    pub client_id: String,
    /// Where the application's client secret is read from.
    pub secret: SecretSource,
    /// Accounts that must survive the closure (UPNs or object ids); at least one
    /// must hold the Global Administrator role.
    pub keep: Vec<String>,
    /// How subscriptions are cancelled and deleted.
    pub subscriptions: SubscriptionMode,
}

/// The description of one HTTP call to an external service, as recorded in the
/// audit log (the jsonl contract in the README): `path` is the URL path without the query, version
/// prefix included, also for a call made inside a `$batch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path without the query, e.g. `/v1.0/users/8f3c...`.
    pub path: String,
    /// The HTTP status, or 0 when no response arrived (timeout, reset).
    pub status: u16,
    /// The `request-id` response header (or the item's header inside a batch);
    /// empty when none arrived.
    pub request_id: String,
}

/// How a failed call should be treated. Decided by the Graph client from the
/// response; acted upon by the saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Nothing was changed and trying again later may succeed (429, 5xx on a
    /// read, connection refused before sending).
    Transient,
    /// The change may or may not have been applied (timeout or reset after the
    /// request was sent, a 429/5xx answer to a write). Resolve by reading before
    /// repeating.
    InDoubt,
    /// Trying again will not help (400, 401 after a token renewal, 403, unknown
    /// tenant, invalid client).
    Permanent,
}

/// A failed external call, classified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    /// What to do about it.
    pub class: FailureClass,
    /// The service's error code (`Request_ResourceNotFound`, `AADSTS90002`, ...),
    /// or a closeout code such as `timeout`, `connection_reset`, `bad_response`.
    pub code: String,
    /// A human-readable message naming tenant, method and path.
    pub message: String,
    /// The delay the service asked for (`Retry-After`), exactly, if any.
    pub retry_after: Option<Duration>,
}

/// The code of a [`CallError`] whose `Retry-After` is longer than the
/// daemon's `[retry] max_retry_after`: the saga pauses on it, for the
/// operator, instead of sleeping that long (the runtime, which knows the
/// setting, marks the error; the saga decides).
pub const RETRY_AFTER_TOO_LONG: &str = "retry_after_too_long";

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?}): {}", self.code, self.class, self.message)
    }
}

impl std::error::Error for CallError {}

/// The outcome of one external change (a write), with its HTTP description
/// for the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The call as made; for a `$batch` item, the item's own method and path.
    pub http: HttpInfo,
    /// `Ok(Applied)` on success, `Ok(AlreadyDone)` for a 404 on a delete.
    pub result: Result<Applied, CallError>,
}

/// How a successful write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The service made the change now.
    Done,
    /// The change had already been made (404 on a delete, the state already as
    /// asked).
    AlreadyDone,
}

/// The role template id of Global Administrator.
pub const GLOBAL_ADMIN_ROLE_TEMPLATE: &str = "62e90394-69f5-4237-9190-012177145e10";

/// A user as read from `GET /v1.0/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub account_enabled: bool,
    /// Synced from on-premises: comes back unless sync is turned off first.
    pub on_premises_sync_enabled: bool,
    /// `userType`: `Member` or `Guest`.
    pub user_type: String,
}

/// What step 1 must know before its first delete: who holds which directory
/// role, which users and whether the organization sync from on-premises, and
/// which roles closeout's own app holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    /// Every directory role assignment of the tenant: (principal object id,
    /// role template id), from `GET /v1.0/roleManagement/directory/roleAssignments`.
    pub role_assignments: Vec<(String, String)>,
    /// Object ids of users whose `onPremisesSyncEnabled` is true.
    pub synced_users: Vec<String>,
    /// The organization's `onPremisesSyncEnabled` (`GET /v1.0/organization`).
    pub directory_sync: bool,
    /// The object id of closeout's own service principal in the tenant
    /// (`GET /v1.0/servicePrincipals(appId='{client_id}')`).
    pub app_principal: String,
}

impl Preflight {
    /// Role template ids assigned to a principal.
    pub fn roles_of<'a>(&'a self, principal: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.role_assignments
            .iter()
            .filter(move |(p, _)| p == principal)
            .map(|(_, r)| r.as_str())
    }
}

/// A deleted user as read from the recycle bin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedUser {
    pub id: String,
    pub user_principal_name: String,
    /// When it was deleted, as the service reported it (RFC 3339).
    pub deleted_date_time: String,
}

/// Subscription states as Graph's `companySubscription.status` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriptionStatus {
    Enabled,
    Warning,
    Suspended,
    Deleted,
    LockedOut,
}

impl SubscriptionStatus {
    /// `Enabled` and `Warning` count as active (step 2 cancels them).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Enabled | SubscriptionStatus::Warning
        )
    }
}

/// A subscription as read from `GET /v1.0/directory/subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Graph's id of the companySubscription.
    pub id: String,
    /// The id Partner Center knows it by.
    pub commerce_subscription_id: String,
    pub sku_id: String,
    pub sku_part_number: String,
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    pub total_licenses: u32,
}

/// A companySubscription with the fields that say who sold it and when it
/// moves on (`ownerTenantId`, `nextLifecycleDateTime`, `createdDateTime`):
/// <https://learn.microsoft.com/en-us/graph/api/resources/companysubscription>.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionDetail {
    /// The fields every listing of the subscription gives.
    pub base: Subscription,
    /// "The unique identifier for the Microsoft partner tenant that created
    /// the subscription on a customer tenant"; `None` when Graph gives none.
    pub owner_tenant_id: Option<String>,
    /// When the subscription moves to its next lifecycle state, if Graph says.
    pub next_lifecycle: Option<Timestamp>,
    /// When it was created, if Graph says.
    pub created: Option<Timestamp>,
}

/// A subscription as Partner Center lists it for a customer
/// (`GET /v1/customers/{customer}/subscriptions`:
/// <https://learn.microsoft.com/en-us/partner-center/developer/get-all-of-a-customer-s-subscriptions>).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerSubscription {
    /// Partner Center's subscription id.
    pub id: String,
    /// The offer: new-commerce offers are `productId:skuId[:availabilityId]`,
    /// legacy ones a GUID.
    pub offer_id: String,
    /// `quantity`: the seats (licenses) bought.
    pub quantity: u32,
    /// `status`: `active`, `suspended`, `deleted`, `expired`, `disabled`, ...
    pub status: String,
    /// `autoRenewEnabled`: whether the term renews at its end.
    pub auto_renew: bool,
    /// `effectiveStartDate`: the current term's start (purchase or renewal).
    pub term_start: Option<Timestamp>,
    /// `commitmentEndDate`: the current term's end.
    pub term_end: Option<Timestamp>,
}

/// What Partner Center is asked to set a subscription's status to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    /// Cancel (compensated by `Active`).
    Suspended,
    /// Reactivate a suspended subscription.
    Active,
    /// Delete: for a new-commerce subscription, the cancellation (not undone).
    Deleted,
}

/// Parses an RFC 3339 time as Graph and Partner Center write them; `None`
/// when it is not one (the caller then treats the date as unknown).
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z').split('.').next()?).ok()?;
    Some(Timestamp::from_system(t))
}

/// Conditional Access policy states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CaPolicyState {
    Enabled,
    Disabled,
    EnabledForReportingButNotEnforced,
}

/// A Conditional Access policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaPolicy {
    pub id: String,
    pub display_name: String,
    pub state: CaPolicyState,
    /// `grantControls.builtInControls` contains `mfa`: the policy requires MFA.
    pub requires_mfa: bool,
}

impl CaPolicy {
    /// The policy demands MFA and is not disabled: step 4 disables it, and
    /// the portal refuses to delete the tenant while it is so.
    pub fn enforces_mfa(&self) -> bool {
        self.requires_mfa && self.state != CaPolicyState::Disabled
    }
}

/// Per-user MFA states (`/beta/users/{id}/authentication/requirements`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PerUserMfaState {
    Disabled,
    Enabled,
    Enforced,
}

/// An app registration (`GET /v1.0/applications`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
}

/// A client secret or token in memory. Its `Debug` and `Display` never show the
/// value; only [`Secret::expose`] does, at the one place that sends it. The
/// memory is overwritten when it is dropped, and it is deliberately not
/// `Clone`: a copy would be one more place to forget (share it behind an
/// `Arc` instead).
#[derive(PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(zeroize::Zeroizing::new(value.into()))
    }

    /// Wraps a secret already held in memory that is zeroized on drop.
    pub fn from_zeroizing(value: zeroize::Zeroizing<String>) -> Secret {
        Secret(value)
    }

    /// The secret itself, for the request that must carry it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A member of the Global Administrator role, as read just before deleting
/// (`directoryRoles(roleTemplateId=…)/members` with `accountEnabled`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleMember {
    /// The member's object id (a user or a service principal).
    pub id: String,
    /// UPN (keep entries may name it).
    #[serde(default)]
    pub user_principal_name: String,
    /// Whether it can sign in; an answer without it is read as disabled
    /// (fail safe: such a holder never counts as the keep administrator).
    #[serde(default)]
    pub account_enabled: bool,
}

/// Whether a URL's host is this machine (a simulator or a local proxy).
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Timestamps on the wire as RFC 3339 strings.
pub mod rfc3339 {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    /// Parses RFC 3339, naming the string it could not read.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s)
            .map(Timestamp::from_system)
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}
