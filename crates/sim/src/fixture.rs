//! Fixtures: the tenants a simulator starts with, read from TOML
//! (`config/sim/example.toml`) or made by the generator
//! (`--generate tenants=N,users=M,...` with `--seed`).
//!
//! closeout's own app is a multi-tenant app registered in the *partner's*
//! tenant: in each customer tenant it appears only as a service principal
//! (enterprise app), never among `/v1.0/applications`. So a tenant whose
//! fixture lists no `[[tenant.application]]` can be deleted by the portal once
//! the other preconditions hold; listed app registrations are a blocker that
//! closeout's preflight must report.

use super::state::{App, Billing, CaPolicy, Partner, Subscription, Tenant, User, GLOBAL_ADMIN};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Role template id of User Administrator.
pub const USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";

/// A fixture file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The partner (CSP); a default is made when absent.
    pub partner: Option<Partner>,
    /// The customer tenants (`[[tenant]]` tables), in the order the sim lists them.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantFixture>,
}

/// One tenant in a fixture.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFixture {
    /// Tenant id (a GUID); the token endpoint and Graph paths name the tenant by it.
    pub tenant_id: String,
    /// Initial domain; default `t<first 8 of id>.onmicrosoft.com`.
    pub domain: Option<String>,
    /// closeout's app client id in this tenant.
    pub client_id: String,
    /// The client secret the token endpoint accepts for `client_id` in this tenant.
    pub client_secret: String,
    /// The app's certificate (PEM, without key), registered beside the
    /// secret: assertions signed with its key are accepted.
    #[serde(default)]
    pub certificate: Option<String>,
    /// `partner` (a CSP customer of the partner) or `direct` (bought from Microsoft);
    /// also the default seller of its subscriptions.
    pub billing: Billing,
    /// UPNs of the accounts that must survive; each must be one of the tenant's users.
    pub keep: Vec<String>,
    /// The Microsoft Graph application permissions consented for the app, by
    /// name (`User.ReadWrite.All`); default: every one closeout uses.
    #[serde(default)]
    pub app_permissions: Option<Vec<String>>,
    /// Whether the app may delete users holding admin roles (default true).
    #[serde(default = "yes")]
    pub app_privileged: bool,
    /// Directory synchronization on (default: whether any user is synced).
    #[serde(default)]
    pub directory_sync: Option<bool>,
    /// Security defaults enabled (default true).
    #[serde(default = "yes")]
    pub security_defaults: bool,
    /// The users of the tenant.
    #[serde(default, rename = "user")]
    pub users: Vec<UserFixture>,
    /// The subscriptions, as last read.
    #[serde(default, rename = "subscription")]
    pub subscriptions: Vec<SubscriptionFixture>,
    /// Conditional Access policies (`[[tenant.ca_policy]]`); none by default.
    #[serde(default, rename = "ca_policy")]
    pub ca_policies: Vec<CaPolicyFixture>,
    /// App registrations other than closeout's (blockers).
    #[serde(default, rename = "application")]
    pub applications: Vec<AppFixture>,
    /// The tenant uses Microsoft 365 Backup: it has an active Exchange and
    /// an active OneDrive protection policy (default false).
    #[serde(default)]
    pub backup: bool,
    /// Reports conceal user names (`adminReportSettings.displayConcealedNames`,
    /// default false): the usage reports name accounts by a hash.
    #[serde(default)]
    pub concealed_names: bool,
}

fn yes() -> bool {
    true
}

/// One user in a fixture.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFixture {
    /// Object id (a GUID); must be unique in the tenant.
    pub id: String,
    /// User principal name (sign-in name); keep entries name users by it.
    pub upn: String,
    /// Display name (default: the UPN's local part).
    pub display_name: Option<String>,
    /// Role template ids, or `global_administrator` / `user_administrator`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Synced from on-premises (Graph then refuses to delete the user); also turns
    /// the tenant's directory sync on unless `directory_sync` says otherwise.
    #[serde(default)]
    pub synced: bool,
    /// Per-user MFA: `disabled` (default), `enabled`, `enforced`.
    #[serde(default)]
    pub mfa: Option<String>,
    /// Guest instead of member.
    #[serde(default)]
    pub guest: bool,
    /// A member of a restricted management administrative unit (closeout
    /// cannot delete it).
    #[serde(default)]
    pub restricted: bool,
    /// Sign-in blocked (`accountEnabled = false`).
    #[serde(default)]
    pub disabled: bool,
    /// Mailbox storage used in bytes (default: derived from the user id,
    /// so generated tenants have sizes without drawing from the seed).
    #[serde(default)]
    pub mailbox_bytes: Option<u64>,
    /// Mailbox item count (default: derived from the user id).
    #[serde(default)]
    pub mailbox_items: Option<u64>,
    /// OneDrive storage used in bytes (default: derived from the user id).
    #[serde(default)]
    pub onedrive_bytes: Option<u64>,
}

/// One subscription in a fixture.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFixture {
    /// Graph's `companySubscription` id.
    pub id: String,
    /// The id Partner Center knows it by (Graph's `commerceSubscriptionId`).
    pub commerce_id: String,
    /// SKU part number (e.g. `O365_BUSINESS_PREMIUM`); the SKU's id is derived from it.
    pub sku: String,
    /// Graph status (default `Enabled`).
    pub status: Option<String>,
    /// A new-commerce offer: cancellable only inside its window (see `in_window`).
    #[serde(default)]
    pub new_commerce: bool,
    /// For new commerce: still inside the cancellation window (default true).
    #[serde(default = "yes")]
    pub in_window: bool,
    /// Whether it is a free trial (`isTrial`).
    #[serde(default)]
    pub trial: bool,
    /// Seats bought, Graph's `totalLicenses` (default 25).
    pub licenses: Option<u32>,
    /// Who sold it: `partner`, `direct` or `other` (another partner); by
    /// default the tenant's billing says (`partner` or `direct`).
    #[serde(default)]
    pub seller: Option<String>,
    /// Lifecycle time until the current term ends (humantime; default 365
    /// days for a subscription inside its window, 30 days past it).
    #[serde(default)]
    pub term_ends_in: Option<String>,
    /// Partner Center's `autoRenewEnabled` (default true).
    #[serde(default)]
    pub auto_renew: Option<bool>,
}

/// One Conditional Access policy in a fixture.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaPolicyFixture {
    /// The policy's id, as Graph paths name it.
    pub id: String,
    /// The policy's `displayName`.
    pub name: String,
    /// The policy's `state`: `enabled`, `disabled` or
    /// `enabledForReportingButNotEnforced`.
    pub state: String,
    /// Whether its grant controls require MFA (closeout's step 4 disables such a policy).
    #[serde(default)]
    pub mfa: bool,
}

/// One app registration in a fixture.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFixture {
    /// The application's object id.
    pub id: String,
    /// The application (client) id; the app is also listed as a service principal.
    pub app_id: String,
    /// The application's `displayName`, as `GET /v1.0/applications` reports it.
    pub name: String,
}

/// A fixture that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("fixture {path}: {source}")]
    Read {
        /// The fixture file's path, as given.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The TOML is malformed (the message names line and field).
    #[error("fixture {path}: {message}")]
    Parse {
        /// The fixture file's path, as given.
        path: String,
        /// The TOML parser's message, naming the line and the field.
        message: String,
    },
    /// The content is inconsistent.
    #[error("fixture tenant {tenant}: {message}")]
    Invalid {
        /// The `tenant_id` of the inconsistent tenant.
        tenant: String,
        /// What is wrong, e.g. a keep account that is not a user.
        message: String,
    },
    /// A `--generate` spec could not be parsed.
    #[error("generate spec {0}")]
    Spec(String),
}

impl Fixture {
    /// Reads a TOML fixture file.
    pub fn load(path: &std::path::Path) -> Result<Fixture, Error> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: p.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| Error::Parse {
            path: p,
            message: e.to_string(),
        })
    }

    /// The built-in fixture: two closable tenants, one partner-billed, one direct.
    pub fn example() -> Fixture {
        generate(
            &GenerateSpec {
                tenants: 2,
                users: 10,
                ..GenerateSpec::default()
            },
            1,
        )
    }

    /// The partner, or a fixed default one.
    pub fn partner(&self) -> Partner {
        self.partner.clone().unwrap_or_else(|| Partner {
            tenant_id: "0a9d1f7e-7b5c-4f0e-9d6e-5a1c2b3d4e5f".into(),
            client_id: "5e2c8b1a-3d4f-4a6b-8c9d-0e1f2a3b4c5d".into(),
            client_secret: "partner-secret".into(),
            certificate: None,
        })
    }

    /// The same tenants and partner with `pem` registered as every app's
    /// certificate.
    pub fn with_certificate(mut self, pem: &str) -> Fixture {
        let mut partner = self.partner();
        partner.certificate = Some(pem.to_string());
        self.partner = Some(partner);
        for t in &mut self.tenants {
            t.certificate = Some(pem.to_string());
        }
        self
    }

    /// Builds the tenants, checking each is consistent.
    pub fn build(&self, created: &str) -> Result<Vec<Tenant>, Error> {
        self.tenants.iter().map(|t| t.build(created)).collect()
    }
}

pub(crate) fn role_id(r: &str) -> String {
    match r {
        "global_administrator" | "Global Administrator" => GLOBAL_ADMIN.into(),
        "user_administrator" | "User Administrator" => USER_ADMIN.into(),
        other => other.into(),
    }
}

impl TenantFixture {
    fn build(&self, created: &str) -> Result<Tenant, Error> {
        let invalid = |message: String| Error::Invalid {
            tenant: self.tenant_id.clone(),
            message,
        };
        let mut users = BTreeMap::new();
        for u in &self.users {
            let mfa = u.mfa.clone().unwrap_or_else(|| "disabled".into());
            if !["disabled", "enabled", "enforced"].contains(&mfa.as_str()) {
                return Err(invalid(format!(
                    "user {}: mfa {mfa:?} is not disabled|enabled|enforced",
                    u.upn
                )));
            }
            let user = User {
                id: u.id.clone(),
                user_principal_name: u.upn.clone(),
                display_name: u
                    .display_name
                    .clone()
                    .unwrap_or_else(|| u.upn.split('@').next().unwrap_or_default().to_string()),
                account_enabled: !u.disabled,
                on_premises_sync_enabled: u.synced,
                user_type: if u.guest {
                    "Guest".into()
                } else {
                    "Member".into()
                },
                roles: u.roles.iter().map(|r| role_id(r)).collect(),
                per_user_mfa_state: mfa,
                restricted: u.restricted,
                mailbox_bytes: u
                    .mailbox_bytes
                    .unwrap_or_else(|| derived(&u.id, 0, 5_000_000_000)),
                mailbox_items: u.mailbox_items.unwrap_or_else(|| derived(&u.id, 1, 40_000)),
                onedrive_bytes: u
                    .onedrive_bytes
                    .unwrap_or_else(|| derived(&u.id, 2, 20_000_000_000)),
            };
            if users.insert(u.id.clone(), user).is_some() {
                return Err(invalid(format!("user id {} appears twice", u.id)));
            }
        }
        for k in &self.keep {
            if !users
                .values()
                .any(|u: &User| u.user_principal_name.eq_ignore_ascii_case(k))
            {
                return Err(invalid(format!("keep account {k} is not a user")));
            }
        }
        for s in &self.subscriptions {
            if let Some(x) = s.seller.as_deref() {
                if !matches!(x, "partner" | "direct" | "other") {
                    return Err(invalid(format!(
                        "subscription {}: seller {x:?} is not partner, direct or other",
                        s.id
                    )));
                }
            }
            if let Some(d) = s.term_ends_in.as_deref() {
                if humantime::parse_duration(d).is_err() {
                    return Err(invalid(format!(
                        "subscription {}: term_ends_in {d:?} is not a duration",
                        s.id
                    )));
                }
            }
        }
        let subscriptions = self
            .subscriptions
            .iter()
            .map(|s| {
                let status = s.status.clone().unwrap_or_else(|| "Enabled".into());
                let partner_status = match status.as_str() {
                    "Enabled" | "Warning" => "active",
                    "Deleted" => "deleted",
                    _ => "suspended",
                };
                Subscription {
                    id: s.id.clone(),
                    commerce_subscription_id: s.commerce_id.clone(),
                    sku_id: uuid_from(&format!("sku/{}", s.sku)),
                    sku_part_number: s.sku.clone(),
                    partner_status: partner_status.into(),
                    status,
                    is_trial: s.trial,
                    total_licenses: s.licenses.unwrap_or(25),
                    new_commerce: s.new_commerce,
                    in_cancellation_window: s.in_window,
                    deprovision_at: None,
                    lag_status: None,
                    created_date_time: created.to_string(),
                    seller: match s.seller.as_deref() {
                        Some("other") => uuid_from(&format!("other/{}", s.id)).clone(),
                        Some(x) => x.to_string(),
                        None if self.billing == Billing::Direct => "direct".into(),
                        None => "partner".into(),
                    },
                    owner_tenant_id: None,
                    auto_renew: s.auto_renew.unwrap_or(true),
                    etag: 1,
                    term_left: Some(
                        s.term_ends_in
                            .as_deref()
                            .and_then(|d| humantime::parse_duration(d).ok())
                            .unwrap_or(std::time::Duration::from_secs(
                                if s.in_window { 365 } else { 30 } * 24 * 3600,
                            )),
                    ),
                    term_end: None,
                    window_end: None,
                    next_phase: None,
                    pending: None,
                }
            })
            .collect();
        let app = |a: &AppFixture| App {
            id: a.id.clone(),
            app_id: a.app_id.clone(),
            display_name: a.name.clone(),
        };
        let mut service_principals: Vec<App> = self.applications.iter().map(app).collect();
        service_principals.push(App {
            id: uuid_from(&format!("sp/{}", self.tenant_id)),
            app_id: self.client_id.clone(),
            display_name: "closeout".into(),
        });
        Ok(Tenant {
            tenant_id: self.tenant_id.clone(),
            domain: self.domain.clone().unwrap_or_else(|| {
                format!(
                    "t{}.onmicrosoft.com",
                    self.tenant_id.chars().take(8).collect::<String>()
                )
            }),
            display_name: format!(
                "Tenant {}",
                self.tenant_id.chars().take(8).collect::<String>()
            ),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            certificate: self.certificate.clone(),
            app_permissions: match &self.app_permissions {
                None => crate::saga::permissions::ALL
                    .iter()
                    .map(|p| p.id.to_string())
                    .collect(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        crate::saga::permissions::by_name(n)
                            .map(|p| p.id.to_string())
                            .ok_or_else(|| Error::Invalid {
                                tenant: self.tenant_id.clone(),
                                message: format!(
                                    "app_permissions: {n:?} is not a Microsoft Graph permission closeout uses"
                                ),
                            })
                    })
                    .collect::<Result<_, _>>()?,
            },
            app_privileged: self.app_privileged,
            dir_sync: self
                .directory_sync
                .unwrap_or_else(|| self.users.iter().any(|u| u.synced)),
            billing: self.billing,
            keep: self.keep.clone(),
            users,
            deleted_users: BTreeMap::new(),
            subscriptions,
            security_defaults: self.security_defaults,
            ca_policies: self
                .ca_policies
                .iter()
                .map(|p| CaPolicy {
                    id: p.id.clone(),
                    display_name: p.name.clone(),
                    state: p.state.clone(),
                    requires_mfa: p.mfa,
                })
                .collect(),
            applications: self.applications.iter().map(app).collect(),
            service_principals,
            deleted: false,
            concealed_names: self.concealed_names,
            backup_policies: if self.backup {
                ["exchange", "oneDriveForBusiness"]
                    .iter()
                    .map(|kind| super::state::BackupPolicy {
                        id: uuid_from(&format!("backup/{kind}/{}", self.tenant_id)),
                        odata_type: format!("#microsoft.graph.{kind}ProtectionPolicy"),
                        display_name: format!("{kind} backup"),
                        status: "active".into(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            preflight_read: false,
            deletion_check_read: false,
            discovery_read: false,
            lag: Default::default(),
        })
    }
}

/// A deterministic size in `0..below` derived from a user id (`salt` tells
/// the sizes apart): the same fixture always has the same data at stake.
pub fn derived(id: &str, salt: u8, below: u64) -> u64 {
    let h = blake3::hash(format!("{salt}/{id}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b) % below.max(1)
}

/// A deterministic GUID-shaped id derived from `seed_text`.
pub fn uuid_from(seed_text: &str) -> String {
    let h = blake3::hash(seed_text.as_bytes());
    let b = h.as_bytes();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&b[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

pub use super::generate::{generate, GenerateSpec};
