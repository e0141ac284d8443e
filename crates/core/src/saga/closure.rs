//! Steps 4 and 5 as Microsoft's two pages define them: who finishes the
//! closure, what step 4 may weaken, what the portal checks before it deletes
//! a tenant, and the credential-free evidence that the tenant is gone.
//!
//! - "Close your account", step 4: "disable all accounts except for the global
//!   admin account that you're currently using"
//!   (https://learn.microsoft.com/microsoft-365/commerce/close-your-account).
//!   Security defaults and Conditional Access are not mentioned: they stay as
//!   they are unless the operator opts in (`mfa_scope = "all"`).
//! - "Delete a tenant in Microsoft Entra ID": exactly one user left (the
//!   Global Administrator who deletes it), no applications, no multifactor
//!   authentication providers, no subscriptions of any Microsoft Online
//!   Services offering, outstanding invoices paid; enterprise apps the portal
//!   cannot delete removed; self-service sign-up products deleted
//!   (https://learn.microsoft.com/entra/identity/users/directory-delete-howto).

use super::view::Inventory;
use crate::model::SubscriptionStatus;
use serde::{Deserialize, Serialize};

/// What step 4 turns off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaScope {
    /// As the article says: per-user MFA of every remaining account except
    /// the Global Administrator who finishes the closure; nothing else.
    #[default]
    Article,
    /// Also security defaults and the Conditional Access policies that
    /// require MFA (the operator opted in).
    All,
}

impl MfaScope {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaScope::Article => "article",
            MfaScope::All => "all",
        }
    }
}

/// The choices about steps 4 and 5 fixed when the saga starts (recorded in
/// `Event::ClosurePolicyRecorded`, next to `SagaStarted`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosurePolicy {
    /// What step 4 turns off.
    pub mfa_scope: MfaScope,
    /// The keep account (UPN or object id) who deletes the tenant, when the
    /// batch names one; otherwise the first keep account holding the Global
    /// Administrator role.
    pub finish_with: Option<String>,
}

/// The object id of the Global Administrator who finishes the closure: the
/// `finish_with` account if named (it must be a keep account holding the
/// role), else the first keep entry, in the batch's order, that holds the
/// role. `None` if there is no such account (the saga then changes no MFA).
pub fn finisher(
    keep: &[String],
    finish_with: Option<&str>,
    inventory: &Inventory,
) -> Option<String> {
    let id_of = |entry: &str| {
        inventory
            .users
            .iter()
            .find(|u| {
                u.id.eq_ignore_ascii_case(entry)
                    || u.user_principal_name.eq_ignore_ascii_case(entry)
            })
            .map(|u| u.id.clone())
    };
    let is_admin = |id: &String| inventory.global_admins.contains(id);
    if let Some(named) = finish_with {
        let id = id_of(named)?;
        let in_keep = keep.iter().any(|k| id_of(k).as_ref() == Some(&id));
        return Some(id).filter(|id| in_keep && is_admin(id));
    }
    keep.iter().filter_map(|k| id_of(k)).find(is_admin)
}

/// A subscription as the step 5 preflight names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSeen {
    /// The commerce subscription id.
    pub id: String,
    /// The SKU part number.
    pub sku: String,
    /// Graph's `status` as read.
    pub status: SubscriptionStatus,
    /// Graph's `isTrial`: a trial (the blockers label it so).
    pub trial: bool,
    /// Bought by a user (`ownerType` `User`): a self-service purchase or
    /// sign-up, which only an administrator can delete.
    pub self_service: bool,
}

/// A service principal (enterprise app) left in the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalSeen {
    /// The service principal's object id.
    pub id: String,
    /// `appId`: the application (client) id it stands for.
    pub app_id: String,
    /// `displayName`, as the portal shows it to the person removing it.
    pub name: String,
    /// Owned by Microsoft's own tenant (a first-party app): the portal cannot
    /// delete it; the page's PowerShell removes it, or Microsoft support.
    pub first_party: bool,
}

/// The tenant of Microsoft's first-party applications (`appOwnerOrganizationId`).
pub const MICROSOFT_SERVICES_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// The step 5 preflight read: what the portal's deletion check looks at,
/// as far as Graph shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionCheck {
    /// Users still present: (object id, UPN).
    pub users: Vec<(String, String)>,
    /// App registrations: (object id, display name).
    pub applications: Vec<(String, String)>,
    /// Every service principal (enterprise app) Graph lists, first-party ones included.
    pub service_principals: Vec<PrincipalSeen>,
    /// Every subscription Graph lists.
    pub subscriptions: Vec<SubscriptionSeen>,
    /// The initial domain (`*.onmicrosoft.com`), for the credential-free reads.
    pub initial_domain: Option<String>,
}

/// What a person must still do before the portal deletes the tenant, in the
/// order they should do it. Empty lines are never produced.
pub fn blockers(
    check: &DeletionCheck,
    finisher: Option<&str>,
    keep: &dyn Fn(&str, &str) -> bool,
    own_app_id: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let others: Vec<&(String, String)> = check
        .users
        .iter()
        .filter(|(id, _)| Some(id.as_str()) != finisher)
        .collect();
    type Users<'a> = Vec<&'a (String, String)>;
    let (keep_others, strangers): (Users, Users) =
        others.into_iter().partition(|(id, upn)| keep(id, upn));
    if !strangers.is_empty() {
        out.push(format!(
            "delete the users {}",
            strangers
                .iter()
                .map(|(_, u)| u.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !keep_others.is_empty() {
        out.push(format!(
            "delete the other keep accounts {} (the portal requires exactly one user: the \
             Global Administrator who deletes the tenant)",
            keep_others
                .iter()
                .map(|(_, u)| u.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !check.applications.is_empty() {
        out.push(format!(
            "delete the app registrations {} (Entra admin center > App registrations)",
            check
                .applications
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let sps: Vec<&PrincipalSeen> = check
        .service_principals
        .iter()
        .filter(|p| p.app_id != own_app_id)
        .collect();
    let (first, third): (Vec<&PrincipalSeen>, Vec<&PrincipalSeen>) =
        sps.into_iter().partition(|p| p.first_party);
    if !third.is_empty() {
        out.push(format!(
            "delete the enterprise apps {} (Entra admin center > Enterprise applications > \
             Properties > Delete)",
            third
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !first.is_empty() {
        out.push(format!(
            "remove the Microsoft enterprise apps {} with Remove-MgServicePrincipal as the \
             deletion page shows, or ask Microsoft support if that is refused",
            first
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let subs: Vec<String> = check
        .subscriptions
        .iter()
        .filter(|s| s.status != SubscriptionStatus::Deleted)
        .map(|s| {
            let kind = match (s.trial, s.self_service) {
                (true, true) => " (self-service trial)",
                (true, false) => " (trial)",
                (false, true) => " (self-service)",
                (false, false) => "",
            };
            format!("{}{kind} [{}]", s.sku, s.id)
        })
        .collect();
    if !subs.is_empty() {
        out.push(format!(
            "wait for or finish the deletion of the subscriptions {} (Microsoft 365 admin \
             center > Billing > Your products; self-service products are deleted by an \
             administrator)",
            subs.join(", ")
        ));
    }
    out
}

/// What Graph cannot show, which the person checks before deleting.
pub const UNSEEN_CHECKS: &str = "check what Graph cannot show: no Azure subscription, active \
     or cancelled, is associated with the tenant (Azure portal > Subscriptions), every invoice \
     is paid (Microsoft 365 admin center > Billing > Bills & payments), and no multifactor \
     authentication provider is linked to the tenant";

/// One credential-free answer of the login service about a tenant name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The discovery document was served; its `issuer`.
    Found {
        /// The document's issuer (names the tenant id).
        issuer: String,
    },
    /// The login service answered that it does not know the tenant (the
    /// `AADSTS` code it gave).
    NotFound {
        /// The `AADSTS` code given, usually `AADSTS90002` (tenant not found).
        code: String,
    },
}

/// The tenant's OpenID discovery document read for its id and its initial
/// domain, without closeout's credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The initial domain asked about, when known.
    pub domain_name: Option<String>,
    /// For the tenant id.
    pub tenant_id: Answer,
    /// For the initial domain, when known.
    pub domain: Option<Answer>,
}

impl Observation {
    /// Whether every name answered "not found".
    pub fn all_not_found(&self) -> bool {
        let nf = |a: &Answer| matches!(a, Answer::NotFound { .. });
        nf(&self.tenant_id) && self.domain.as_ref().is_none_or(nf)
    }

    /// Evidence of deletion: every name the baseline found is now not found.
    /// An answer already "not found" in the baseline is no evidence (Microsoft
    /// documents no deletion signal; a name can be unknown for other
    /// reasons), so a baseline without a found tenant id proves nothing.
    pub fn gone_since(&self, baseline: &Observation) -> bool {
        let found = |a: &Answer| matches!(a, Answer::Found { .. });
        found(&baseline.tenant_id)
            && self.all_not_found()
            && match (&baseline.domain, &self.domain) {
                (Some(b), Some(_)) => found(b),
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// The AADSTS codes the token endpoint gives once closeout's own app or its
/// service principal is removed from the tenant (the cleanup the deletion page
/// asks for): AADSTS700016 (application not found in the directory) and
/// AADSTS7000229 (client application missing its service principal)
/// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
pub const OWN_APP_GONE: [&str; 2] = ["AADSTS700016", "AADSTS7000229"];

/// The code the login service gives for a tenant it does not know; its
/// description says it can also mean a tenant without active subscriptions,
/// so alone it proves nothing.
pub const TENANT_UNKNOWN: &str = "AADSTS90002";
