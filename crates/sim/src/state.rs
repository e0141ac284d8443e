//! The simulator's in-memory world: the partner, the customer tenants with
//! their users, recycle bin, subscriptions, MFA settings and app registrations,
//! the issued tokens, the throttle buckets and the effects ledger.
//!
//! Everything lives behind one mutex (`Sim::world`), never held across an
//! `.await`: handlers take it, read or change the world, and release it.

use super::effects::Ledger;
use super::throttle::Throttle;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use tokio::time::Instant;

/// Role template id of Global Administrator.
pub const GLOBAL_ADMIN: &str = crate::model::GLOBAL_ADMIN_ROLE_TEMPLATE;

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// The sim's clock: a monotonic instant (which `tokio::time::pause` controls)
/// mapped onto wall-clock milliseconds for the timestamps it reports.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The monotonic instant the simulator started at.
    pub start: Instant,
    /// Wall-clock milliseconds since the epoch at `start`.
    pub start_ms: u64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
            start_ms: crate::model::Timestamp::from_system(std::time::SystemTime::now()).0,
        }
    }

    /// Wall-clock milliseconds of `at`.
    pub fn ms(&self, at: Instant) -> u64 {
        self.start_ms + at.saturating_duration_since(self.start).as_millis() as u64
    }

    /// RFC 3339 of `at`.
    pub fn rfc3339(&self, at: Instant) -> String {
        crate::model::Timestamp(self.ms(at)).to_rfc3339()
    }
}

/// Who pays for a tenant's subscriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Billing {
    /// A CSP customer of the partner: Partner Center manages its subscriptions.
    Partner,
    /// Bought directly: only the admin center (the operator) can cancel.
    Direct,
}

/// A user in a tenant's directory.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Object id (a GUID): the key of `Tenant::users` and what Graph paths name.
    pub id: String,
    /// Sign-in name, unique in the tenant.
    pub user_principal_name: String,
    /// `displayName` as Graph reports it.
    pub display_name: String,
    /// Whether sign-in is allowed.
    pub account_enabled: bool,
    /// Synced from on-premises: Graph refuses to delete it from the cloud.
    pub on_premises_sync_enabled: bool,
    /// `userType`: `Member` or `Guest`.
    pub user_type: String,
    /// Directory role template ids the user holds.
    pub roles: Vec<String>,
    /// Per-user MFA state (beta API): `disabled`, `enabled` or `enforced`.
    pub per_user_mfa_state: String,
    /// A member of a restricted management administrative unit: only
    /// administrators scoped to that unit may change or delete it.
    pub restricted: bool,
    /// Mailbox storage used (bytes), as the mailbox usage report shows it.
    pub mailbox_bytes: u64,
    /// Items in the mailbox.
    pub mailbox_items: u64,
    /// OneDrive storage used (bytes), as the OneDrive usage report shows it.
    pub onedrive_bytes: u64,
}

impl User {
    /// Whether the user holds any administrative directory role.
    pub fn is_admin(&self) -> bool {
        !self.roles.is_empty()
    }
}

/// A user in the recycle bin.
#[derive(Clone, Debug, Serialize)]
pub struct DeletedUser {
    /// The user as it was.
    pub user: User,
    /// When it was deleted (sim clock).
    #[serde(skip)]
    pub deleted_at: Instant,
    /// `deleted_at` in RFC 3339, as Graph reports `deletedDateTime`.
    pub deleted_date_time: String,
    /// The UPN the user had before deletion (while deleted, `user` carries
    /// the prefixed one Graph shows); a restore gives this one back.
    pub original_upn: String,
}

/// The UPN Graph gives a deleted user: its object id without hyphens, then
/// the UPN it had. Microsoft's pages do not print the rule (the user-delete
/// page, https://learn.microsoft.com/graph/api/user-delete, says only that
/// the user moves to deleted items); it is how deleted users read in
/// practice, and it frees the UPN for a new user. Clients must therefore
/// know deleted users by object id, never by UPN.
pub fn deleted_upn(id: &str, upn: &str) -> String {
    format!("{}{upn}", id.replace('-', ""))
}

/// A subscription, with both the Graph view and Partner Center's.
#[derive(Clone, Debug, Serialize)]
pub struct Subscription {
    /// Graph's `companySubscription` id (not the one Partner Center uses).
    pub id: String,
    /// The id Partner Center knows it by.
    pub commerce_subscription_id: String,
    /// `skuId`: the SKU's GUID.
    pub sku_id: String,
    /// The SKU's part number (e.g. `O365_BUSINESS_PREMIUM`).
    pub sku_part_number: String,
    /// Graph status: `Enabled`, `Warning`, `Suspended`, `Deleted`, `LockedOut`.
    pub status: String,
    /// Whether it is a trial.
    pub is_trial: bool,
    /// `totalLicenses`: seats bought.
    pub total_licenses: u32,
    /// A new-commerce subscription: cancellable only inside its window.
    pub new_commerce: bool,
    /// Whether a new-commerce subscription is still inside its ~7-day window.
    pub in_cancellation_window: bool,
    /// Partner Center status: `active`, `suspended` or `deleted`.
    pub partner_status: String,
    /// When a deleted subscription is deprovisioned (Graph `Deleted`).
    #[serde(skip)]
    pub deprovision_at: Option<Instant>,
    /// The Graph status reads show until then (replication lag).
    #[serde(skip)]
    pub lag_status: Option<(Instant, String)>,
    /// When it was created (RFC 3339).
    pub created_date_time: String,
    /// Who sold it: `partner` (the simulated partner), `direct` (Microsoft),
    /// or another partner's tenant id.
    pub seller: String,
    /// Graph's `ownerTenantId`: the selling partner's tenant, `None` when
    /// bought directly.
    pub owner_tenant_id: Option<String>,
    /// Partner Center's `autoRenewEnabled`: with it on, an active subscription renews
    /// at its term's end; with it off, it expires then.
    pub auto_renew: bool,
    /// Partner Center's ETag of the resource, changed by every change.
    pub etag: u64,
    /// Lifecycle time from the simulator's start to the current term's
    /// end (the fixture's `term_ends_in`); scaled by `--clock-speed`.
    #[serde(skip)]
    pub term_left: Option<std::time::Duration>,
    /// When the current term ends.
    #[serde(skip)]
    pub term_end: Option<Instant>,
    /// When the new-commerce cancellation window closes.
    #[serde(skip)]
    pub window_end: Option<Instant>,
    /// When the next lifecycle state (Expired > Disabled > Deleted) begins.
    #[serde(skip)]
    pub next_phase: Option<Instant>,
    /// A Partner Center PATCH answered 202 Accepted and not yet carried out
    /// (`--partner-accepted-after`).
    #[serde(skip)]
    pub pending: Option<PendingPatch>,
}

/// A Partner Center change accepted with 202 and carried out later: "when
/// the PATCH operation takes longer than expected, Partner Center sends an
/// HTTP status 202 and a location header ... You can query the subscription
/// periodically to monitor the status and quantity changes"
/// (<https://learn.microsoft.com/en-us/partner-center/developer/change-the-quantity-of-a-subscription>,
/// the same `PATCH` of the subscription resource).
#[derive(Clone, Debug)]
pub struct PendingPatch {
    /// When the change is carried out.
    pub at: Instant,
    /// The `status` asked for, if it changes.
    pub status: Option<String>,
    /// The `autoRenewEnabled` asked for, if it changes.
    pub auto_renew: Option<bool>,
}

impl Subscription {
    /// Whether Partner Center or the admin center may cancel it now.
    pub fn cancellable(&self) -> bool {
        !self.new_commerce || self.in_cancellation_window
    }

    /// Whether the simulated partner sold it (Partner Center may change it).
    pub fn sold_by_partner(&self) -> bool {
        self.seller == "partner"
    }
}

/// A Conditional Access policy.
#[derive(Clone, Debug, Serialize)]
pub struct CaPolicy {
    /// The policy's id, as Graph paths name it.
    pub id: String,
    /// `displayName`, as the portal shows it.
    pub display_name: String,
    /// `enabled`, `disabled` or `enabledForReportingButNotEnforced`.
    pub state: String,
    /// Whether its grant controls require MFA.
    pub requires_mfa: bool,
}

/// An app registration or a service principal.
#[derive(Clone, Debug, Serialize)]
pub struct App {
    /// Object id (a GUID).
    pub id: String,
    /// `appId`: the application (client) id; closeout's own matches `Tenant::client_id`.
    pub app_id: String,
    /// `displayName`, as the portal shows it.
    pub display_name: String,
}

/// A Microsoft 365 Backup protection policy (`protectionPolicyBase`).
#[derive(Clone, Debug, Serialize)]
pub struct BackupPolicy {
    /// The policy's id (a GUID).
    pub id: String,
    /// `#microsoft.graph.exchangeProtectionPolicy` and the like.
    pub odata_type: String,
    /// `displayName`, as the portal shows it.
    pub display_name: String,
    /// `active`, `inactive`, `activeWithErrors`, `updating`.
    pub status: String,
}

/// One customer tenant.
#[derive(Clone, Debug, Serialize)]
pub struct Tenant {
    /// Tenant id (a GUID): the key of `World::tenants`; the token endpoint accepts it.
    pub tenant_id: String,
    /// Initial domain (`contoso.onmicrosoft.com`); the token endpoint accepts it too.
    pub domain: String,
    /// The organization's `displayName`.
    pub display_name: String,
    /// closeout's app in this tenant: its client id.
    pub client_id: String,
    /// The app's client secret (the simulator hands it out).
    pub client_secret: String,
    /// The app's registered certificate (PEM), if any (`keyCredentials`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The Microsoft Graph application permissions consented for closeout's
    /// app (app role ids), as `GET /servicePrincipals/{id}/appRoleAssignments`
    /// lists them.
    pub app_permissions: Vec<String>,
    /// Whether closeout's app holds Privileged Authentication Administrator,
    /// which lets it delete and restore users of any role.
    pub app_privileged: bool,
    /// The organization's `onPremisesSyncEnabled`: directory synchronization
    /// from on-premises is on.
    pub dir_sync: bool,
    /// How the tenant is billed.
    pub billing: Billing,
    /// UPNs that must survive (the Global Administrator account among them).
    pub keep: Vec<String>,
    /// Users by object id (ordered: the paging cursor is the last id served).
    pub users: BTreeMap<String, User>,
    /// Recycle bin by object id.
    pub deleted_users: BTreeMap<String, DeletedUser>,
    /// The subscriptions, as last read.
    pub subscriptions: Vec<Subscription>,
    /// Whether security defaults are enforced (`isEnabled` of
    /// `identitySecurityDefaultsEnforcementPolicy`).
    pub security_defaults: bool,
    /// Every Conditional Access policy, whatever its state.
    pub ca_policies: Vec<CaPolicy>,
    /// App registrations in this tenant (closeout's own app is not one: it is a
    /// multi-tenant app registered in the partner's tenant).
    pub applications: Vec<App>,
    /// Service principals (enterprise apps), closeout's own among them.
    pub service_principals: Vec<App>,
    /// Deleted through the admin center: the token endpoint no longer knows it.
    pub deleted: bool,
    /// Reports conceal user names (`adminReportSettings.displayConcealedNames`).
    pub concealed_names: bool,
    /// Microsoft 365 Backup protection policies.
    pub backup_policies: Vec<BackupPolicy>,
    /// What reads show for a while after a change (replication lag).
    #[serde(skip)]
    pub lag: super::lag::Lag,
    /// A client has read the role assignments (closeout's step 1 preflight):
    /// the auto-operator, who follows closeout's instructions, fixes a
    /// preflight finding only once it has been asked to.
    pub preflight_read: bool,
    /// A client has listed the service principals (closeout's step 5
    /// preflight): the auto-operator acts on step 5 only after it.
    pub deletion_check_read: bool,
    /// The tenant's discovery document was read (closeout's baseline is
    /// taken before its step 5 gate opens).
    pub discovery_read: bool,
}

impl Tenant {
    /// Whether only keep accounts remain in the directory.
    pub fn only_keep_remain(&self) -> bool {
        self.users.len() <= self.keep.len()
            && self.users.values().all(|u| {
                self.keep
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&u.user_principal_name) || *k == u.id)
            })
    }

    /// Why the admin center would refuse to delete this tenant now (empty: it
    /// would not).
    pub fn deletion_blockers(&self) -> Vec<String> {
        super::discovery::portal_blockers(self)
    }

    /// Role template ids closeout's app holds (as writes see it).
    pub fn app_roles(&self) -> Vec<&'static str> {
        Self::roles_if(self.app_privileged)
    }

    /// Role template ids closeout's app holds, as a read at `now` shows it.
    pub fn app_roles_seen(&self, now: Instant) -> Vec<&'static str> {
        Self::roles_if(super::lag::Lag::seen(
            &self.lag.app_privileged,
            self.app_privileged,
            now,
        ))
    }

    fn roles_if(privileged: bool) -> Vec<&'static str> {
        if privileged {
            vec![crate::saga::preflight::PRIVILEGED_AUTH_ADMIN]
        } else {
            Vec::new()
        }
    }

    /// closeout's own service principal (the one whose app id is the client id).
    pub fn own_principal(&self) -> Option<&App> {
        self.service_principals
            .iter()
            .find(|s| s.app_id == self.client_id)
    }

    /// Finds a user by object id or UPN.
    pub fn find_user(&self, key: &str) -> Option<&User> {
        self.users.get(key).or_else(|| {
            self.users
                .values()
                .find(|u| u.user_principal_name.eq_ignore_ascii_case(key))
        })
    }
}

/// The partner (CSP) whose app calls Partner Center.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Partner {
    /// The partner's own tenant id.
    pub tenant_id: String,
    /// The partner app's client id: the app that asks for Partner Center tokens.
    pub client_id: String,
    /// The partner app's secret.
    pub client_secret: String,
    /// The partner app's registered certificate (PEM), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// One token request as the token endpoint saw it (for tests: which scope
/// and which kind of credential a client used). Holds no secret.
#[derive(Clone, Debug, Serialize)]
pub struct TokenRequest {
    /// The tenant named in the path.
    pub tenant: String,
    /// The form's `client_id`; empty when absent.
    pub client_id: String,
    /// The form's `scope` (e.g. `https://graph.microsoft.com/.default`); empty when absent.
    pub scope: String,
    /// `secret`, `certificate` or `none`.
    pub credential: &'static str,
    /// The HTTP status the token endpoint answered (200 when a token was issued).
    pub status: u16,
    /// The AADSTS code of a refusal (0 when a token was issued).
    pub error_code: u32,
}

/// What an access token was issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Microsoft Graph (`https://graph.microsoft.com`).
    Graph,
    /// Partner Center (`https://api.partnercenter.microsoft.com`).
    PartnerCenter,
}

/// An issued access token.
#[derive(Clone, Debug)]
pub struct Token {
    /// The tenant it was issued in.
    pub tenant_id: String,
    /// The app it was issued to.
    pub client_id: String,
    /// The resource it is good for.
    pub audience: Audience,
    /// When it stops being accepted.
    pub expires: Instant,
}

/// The whole simulated world.
pub struct World {
    /// Maps the monotonic sim clock onto the wall-clock times the sim reports.
    pub clock: Clock,
    /// Customer tenants by tenant id.
    pub tenants: HashMap<String, Tenant>,
    /// Tenant order as in the fixture (for `GET /_sim/tenants`).
    pub order: Vec<String>,
    /// The partner (CSP) whose app calls Partner Center.
    pub partner: Partner,
    /// Issued tokens by value.
    pub tokens: HashMap<String, Token>,
    /// Every state change applied, in order (`GET /_sim/effects`).
    pub ledger: Ledger,
    /// The throttle buckets, and the count of 429 answers.
    pub throttle: Throttle,
    /// Auto-operator: when each admin-center action became possible, keyed by
    /// (tenant, action).
    pub possible_since: HashMap<(String, String), Instant>,
    /// Partner Center answers by `MS-RequestId`: a repeated id (a retry
    /// after a timeout) gets the first answer again, and changes nothing.
    pub partner_requests: HashMap<String, (String, super::http::Resp)>,
    /// Every Partner Center change request: its path, `MS-RequestId` and
    /// whether it was answered from an earlier one (for tests).
    pub partner_log: Vec<(String, String, bool)>,
    /// Every token request, oldest first (`GET /_sim/token-requests`).
    pub token_log: std::collections::VecDeque<TokenRequest>,
}

impl World {
    /// Resolves a tenant by id or initial domain.
    pub fn tenant_key(&self, key: &str) -> Option<String> {
        if self.tenants.contains_key(key) {
            return Some(key.to_string());
        }
        self.tenants
            .values()
            .find(|t| t.domain.eq_ignore_ascii_case(key) || t.tenant_id.eq_ignore_ascii_case(key))
            .map(|t| t.tenant_id.clone())
    }
}
