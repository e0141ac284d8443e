//! What each subscription is (who sells it, which commerce model, its term)
//! and what steps 2 and 3 do about it. Pure: the runtime reads Graph and
//! Partner Center, [`classify`] turns the reads into [`SubscriptionClass`]es
//! recorded in `Event::SubscriptionsClassified`, and [`plan_for`] says what
//! each needs.
//!
//! The rules and their sources:
//! - Who sold it: Graph's `companySubscription.ownerTenantId` is "the unique
//!   identifier for the Microsoft partner tenant that created the
//!   subscription on a customer tenant"
//!   (<https://learn.microsoft.com/en-us/graph/api/resources/companysubscription>).
//!   The partner's own subscriptions are also in Partner Center's list of the
//!   customer's subscriptions
//!   (<https://learn.microsoft.com/en-us/partner-center/developer/get-all-of-a-customer-s-subscriptions>).
//!   The docs give no value of `ownerTenantId` for a subscription bought
//!   directly: an empty one counts as Microsoft's (direct), never as the
//!   partner's.
//! - Matching Graph to Partner Center: no page names a field both share, nor
//!   says `commerceSubscriptionId` is Partner Center's subscription id. So a
//!   subscription counts as matched only when Partner Center's list holds
//!   exactly one entry with that id *and* the same seat count
//!   (`quantity` = `totalLicenses`); anything else is unmatched and goes to
//!   an operator gate by name, never to a guessed call.
//! - New commerce (NCE) or legacy: new-commerce offer ids are
//!   `productId:skuId[:availabilityId]`; legacy offer ids are GUIDs (the
//!   samples of the page above). Any other shape is unknown: gated.
//! - Cancel an NCE subscription: `PATCH status=deleted`, "within 7 days ...
//!   of purchase or renewal. After this window has passed, subscriptions can
//!   no longer be canceled and the API will throw an error"
//!   (<https://learn.microsoft.com/en-us/partner-center/developer/cancel-an-azure-marketplace-subscription>).
//!   No page documents a way to reactivate a cancelled NCE subscription
//!   through Partner Center (reactivation is documented for subscriptions
//!   suspended for nonpayment only:
//!   <https://learn.microsoft.com/en-us/partner-center/developer/reactivate-a-suspended-a-subscription>),
//!   so the cancel is treated as irreversible: the pivot.
//! - Outside the window: "turn off recurring billing to cancel the
//!   subscription at the end of its term"
//!   (<https://learn.microsoft.com/en-us/microsoft-365/commerce/subscriptions/what-if-my-subscription-expires>),
//!   through `autoRenewEnabled=false`
//!   (<https://learn.microsoft.com/en-us/partner-center/developer/update-autorenew-for-an-azure-marketplace-subscription>),
//!   reversible by setting it back. Then Active > Expired > Disabled >
//!   Deleted, the Expired status starting at the term's end (same page).
//! - Suspending is not cancelling for NCE: the partner goes on being billed;
//!   closeout never suspends an NCE subscription. Legacy subscriptions are
//!   suspended (reversible: reactivated by `status=active`) and deleted in
//!   step 3.
//! - Trials, self-service sign-up products, subscriptions bought directly or
//!   through another partner: only a person can end them, where the admin
//!   centers say (see [`Place`]).

use crate::model::{PartnerSubscription, SubscriptionDetail, SubscriptionStatus, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The NCE cancellation window: 7 days (168 hours) after purchase or renewal.
pub const CANCELLATION_WINDOW: Duration = Duration::from_secs(168 * 3600);

/// Deleted users can be restored for 30 days
/// (<https://learn.microsoft.com/en-us/entra/fundamentals/users-restore>).
pub const RESTORE_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// Who sells a subscription to the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seller {
    /// The partner closeout acts for (Partner Center can change it).
    Partner,
    /// Another partner (its tenant id): only that partner can.
    OtherPartner(String),
    /// Microsoft directly (MCA / web direct): the admin center only.
    Microsoft,
}

/// What kind of subscription it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// New commerce: a cancellation window, then a term.
    Nce,
    /// Legacy commerce: suspended, then deleted.
    Legacy,
    /// A free trial (`isTrial`).
    Trial,
    /// A free or self-service sign-up product.
    SelfService,
    /// The partner's per Graph, yet not matched in Partner Center's list, or
    /// of an offer shape closeout does not know.
    Unknown,
}

/// What closeout knows of one subscription before steps 2 and 3 act.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionClass {
    /// Graph's commerce subscription id (the saga's key for it).
    pub id: String,
    /// The SKU's part number, for people.
    pub sku: String,
    /// Graph status when classified.
    pub status: SubscriptionStatus,
    /// Who sells it, from Graph's `ownerTenantId` and the partner's Partner Center list.
    pub seller: Seller,
    /// What it is (new commerce, legacy, trial, self-service), which decides the plan.
    pub kind: Kind,
    /// Partner Center's id, when matched in the partner's list.
    pub partner_id: Option<String>,
    /// Partner Center's status, when matched.
    pub partner_status: Option<String>,
    /// Whether it renews by itself (Partner Center's `autoRenewEnabled`).
    pub auto_renew: Option<bool>,
    /// When the current term ends (`commitmentEndDate`), or, for what the
    /// partner does not sell, Graph's `nextLifecycleDateTime`.
    pub term_end: Option<Timestamp>,
    /// When the NCE cancellation window closes (term start + 168 hours).
    pub window_end: Option<Timestamp>,
}

/// Where a person ends a subscription closeout may not touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// Microsoft 365 admin center, Billing > Your products: cancel, or (past
    /// the window) turn off recurring billing and let it expire
    /// (<https://learn.microsoft.com/en-us/microsoft-365/commerce/subscriptions/cancel-your-subscription>).
    AdminCenterProducts,
    /// Entra admin center > Billing > Licenses > Self-service sign-up
    /// products (<https://learn.microsoft.com/en-us/entra/identity/users/directory-delete-howto>).
    SelfServiceProducts,
    /// The partner that sold it: only it can cancel in its Partner Center.
    SellingPartner,
    /// The partner's own new-commerce subscription, found suspended past its
    /// cancellation window: suspended, it goes on billing the partner to the
    /// end of its term
    /// (<https://learn.microsoft.com/en-us/partner-center/customers/suspend-a-subscription>),
    /// it can no longer be cancelled, and Partner Center documents
    /// reactivation only for a suspension for nonpayment
    /// (<https://learn.microsoft.com/en-us/partner-center/developer/reactivate-a-suspended-a-subscription>).
    /// Reactivating a customer's service is not closeout's call: a person
    /// decides, in Partner Center.
    SuspendedPastWindow,
}

/// What step 2 does about a subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Not active (neither `Enabled` nor `Warning`): nothing to do.
    Nothing,
    /// Partner NCE inside its window: `PATCH status=deleted` (irreversible).
    Cancel,
    /// Partner NCE past its window: `autoRenewEnabled=false`, then the term
    /// runs out.
    AutoRenewOff,
    /// Partner legacy: suspend (step 2), delete (step 3).
    SuspendThenDelete,
    /// A person, at this place.
    Operator(Place),
}

impl Plan {
    /// A short name for `plan` and status output.
    pub fn name(&self) -> &'static str {
        match self {
            Plan::Nothing => "nothing",
            Plan::Cancel => "cancel",
            Plan::AutoRenewOff => "auto_renew_off",
            Plan::SuspendThenDelete => "suspend_then_delete",
            Plan::Operator(_) => "operator",
        }
    }
}

impl Place {
    /// The exact place, for gate instructions.
    pub fn describe(self, seller: &Seller) -> String {
        match self {
            Place::AdminCenterProducts => "Microsoft 365 admin center > Billing > Your products: \
                 cancel it, or if the admin center no longer offers that, turn off recurring \
                 billing and let it expire at the end of its term"
                .to_string(),
            Place::SelfServiceProducts => {
                "Entra admin center > Billing > Licenses > Self-service sign-up products: \
                 delete it"
                    .to_string()
            }
            Place::SellingPartner => {
                let who = match seller {
                    Seller::OtherPartner(t) => format!("the partner of tenant {t}"),
                    _ => "the partner that sold it".to_string(),
                };
                format!("{who}: ask it to cancel the subscription (or turn off its auto-renew)")
            }
            Place::SuspendedPastWindow => "Partner Center > Customers > this customer > \
                 Subscriptions: it is a new-commerce subscription suspended after its \
                 cancellation window, so it goes on billing to the end of its term; reactivate \
                 it and turn auto-renew off so that it ends with its term (or ask Microsoft \
                 support to end it)"
                .to_string(),
        }
    }
}

impl Seller {
    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Seller::Partner => "partner",
            Seller::OtherPartner(_) => "other_partner",
            Seller::Microsoft => "microsoft",
        }
    }
}

impl Kind {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nce => "nce",
            Kind::Legacy => "legacy",
            Kind::Trial => "trial",
            Kind::SelfService => "self_service",
            Kind::Unknown => "unknown",
        }
    }
}

/// Free and self-service sign-up SKUs (part numbers from
/// <https://learn.microsoft.com/en-us/entra/identity/users/licensing-service-plan-reference>).
/// Graph documents no flag for a self-service sign-up, so closeout knows
/// them by SKU; one it does not know is gated as unmatched, never guessed.
const SELF_SERVICE_SKUS: &[&str] = &[
    "FLOW_FREE",
    "POWER_BI_STANDARD",
    "POWERAPPS_VIRAL",
    "POWERAPPS_DEV",
    "TEAMS_EXPLORATORY",
    "STREAM",
    "CCIBOTS_PRIVPREV_VIRAL",
    "RIGHTSMANAGEMENT_ADHOC",
    "MICROSOFT_BUSINESS_CENTER",
];

/// Whether an offer id is a new-commerce one (`productId:skuId[:...]`).
fn is_nce_offer(offer: &str) -> bool {
    let parts: Vec<&str> = offer.split(':').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Whether an offer id is a legacy one (a GUID).
fn is_legacy_offer(offer: &str) -> bool {
    uuid_shape(offer)
}

fn uuid_shape(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Classifies Graph's subscriptions with the partner's Partner Center list
/// (`None` when the customer is not the partner's, or when no Partner Center
/// is configured).
pub fn classify(
    graph: &[SubscriptionDetail],
    partner_list: Option<&[PartnerSubscription]>,
    partner_tenant: Option<&str>,
) -> Vec<SubscriptionClass> {
    graph
        .iter()
        .map(|g| {
            let b = &g.base;
            let seller = match g.owner_tenant_id.as_deref() {
                Some(t) if partner_tenant.is_some_and(|p| p.eq_ignore_ascii_case(t)) => {
                    Seller::Partner
                }
                Some(t) => Seller::OtherPartner(t.to_string()),
                None => Seller::Microsoft,
            };
            let matched: Vec<&PartnerSubscription> = partner_list
                .unwrap_or_default()
                .iter()
                .filter(|p| p.id == b.commerce_subscription_id && p.quantity == b.total_licenses)
                .collect();
            let matched = match (seller == Seller::Partner, matched.as_slice()) {
                (true, [one]) => Some(*one),
                _ => None,
            };
            let kind = if b.is_trial {
                Kind::Trial
            } else if SELF_SERVICE_SKUS.contains(&b.sku_part_number.as_str()) {
                Kind::SelfService
            } else {
                match matched {
                    Some(p) if is_nce_offer(&p.offer_id) => Kind::Nce,
                    Some(p) if is_legacy_offer(&p.offer_id) => Kind::Legacy,
                    Some(_) => Kind::Unknown,
                    None if seller == Seller::Partner => Kind::Unknown,
                    // Sold by someone else: the commerce model does not
                    // change what closeout does (a gate).
                    None => Kind::Unknown,
                }
            };
            SubscriptionClass {
                id: b.commerce_subscription_id.clone(),
                sku: b.sku_part_number.clone(),
                status: b.status,
                seller,
                kind,
                partner_id: matched.map(|p| p.id.clone()),
                partner_status: matched.map(|p| p.status.clone()),
                auto_renew: matched.map(|p| p.auto_renew),
                term_end: matched.and_then(|p| p.term_end).or(g.next_lifecycle),
                window_end: matched
                    .filter(|_| kind == Kind::Nce)
                    .and_then(|p| p.term_start)
                    .map(|s| s.plus(CANCELLATION_WINDOW)),
            }
        })
        .collect()
}

/// What step 2 does about `c` at `now`.
pub fn plan_for(c: &SubscriptionClass, now: Timestamp) -> Plan {
    if suspended_past_window(c, now) {
        return Plan::Operator(Place::SuspendedPastWindow);
    }
    if !c.status.is_active() {
        return Plan::Nothing;
    }
    match (&c.seller, c.kind, &c.partner_id) {
        (_, Kind::SelfService, _) => Plan::Operator(Place::SelfServiceProducts),
        (Seller::OtherPartner(_), _, _) => Plan::Operator(Place::SellingPartner),
        (Seller::Partner, Kind::Nce, Some(_)) => match c.window_end {
            Some(end) if now < end => Plan::Cancel,
            Some(_) => Plan::AutoRenewOff,
            // No term start: the window cannot be told, and a cancel after
            // it fails; auto-renew off is right either way.
            None => Plan::AutoRenewOff,
        },
        (Seller::Partner, Kind::Legacy, Some(_)) => Plan::SuspendThenDelete,
        // Trials, direct purchases, and the partner's subscriptions closeout
        // could not match: a person in the admin center.
        _ => Plan::Operator(Place::AdminCenterProducts),
    }
}

/// The partner's new-commerce subscription, suspended in Partner Center and
/// past its cancellation window (see [`Place::SuspendedPastWindow`]); inside
/// the window step 3 cancels it.
fn suspended_past_window(c: &SubscriptionClass, now: Timestamp) -> bool {
    c.seller == Seller::Partner
        && c.kind == Kind::Nce
        && c.partner_id.is_some()
        && c.partner_status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("suspended"))
        && c.window_end.is_none_or(|w| now >= w)
}

/// Whether a person has done what [`Place::SuspendedPastWindow`] asks, as
/// `current` reads: auto-renew off (the term then runs out), or deleted.
pub fn suspended_handled(current: &SubscriptionClass) -> bool {
    current.auto_renew == Some(false) || current.status == SubscriptionStatus::Deleted
}

/// When step 1 starts, for a closure that must wait for terms to run out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsersSchedule {
    /// When the first user is deleted: `lead` before the last term ends.
    pub start: Timestamp,
    /// The end of the last term that runs out (auto-renew off, or suspended
    /// past its window).
    pub last_term_end: Timestamp,
    /// The Partner Center ids whose auto-renew goes off first (reversible).
    pub renew_off: Vec<String>,
}

/// Deleted users can be restored for 30 days only
/// ([`RESTORE_WINDOW`]). A closure whose subscriptions run to the end of
/// their term (partner new commerce past its window) would otherwise delete
/// the users months before anything else happens, and lose the way back
/// long before the subscriptions end. So auto-renew goes off first (it is
/// reversible) and the users are deleted `lead` before the last such term
/// ends; with a lead under 30 days they can still be restored until after
/// the term ends.
///
/// `None` when nothing is to wait for, or when a subscription is still to be
/// cancelled inside its window: that cancel cannot wait (the window is 7
/// days) and is the closure's point of no return anyway.
pub fn users_schedule(
    classes: &[SubscriptionClass],
    now: Timestamp,
    lead: Duration,
) -> Option<UsersSchedule> {
    let plans: Vec<(Plan, &SubscriptionClass)> =
        classes.iter().map(|c| (plan_for(c, now), c)).collect();
    if plans.iter().any(|(p, _)| *p == Plan::Cancel) {
        return None;
    }
    // Those closeout turns auto-renew off for, and those found suspended
    // past their window, which a person reactivates with auto-renew off
    // (asked for before step 1): both end with their term.
    let running: Vec<(&Plan, &SubscriptionClass)> = plans
        .iter()
        .filter(|(p, _)| {
            matches!(
                p,
                Plan::AutoRenewOff | Plan::Operator(Place::SuspendedPastWindow)
            )
        })
        .map(|(p, c)| (p, *c))
        .collect();
    let last_term_end = running.iter().filter_map(|(_, c)| c.term_end).max()?;
    let start = Timestamp(last_term_end.0.saturating_sub(lead.as_millis() as u64));
    Some(UsersSchedule {
        start,
        last_term_end,
        renew_off: running
            .iter()
            .filter(|(p, _)| **p == Plan::AutoRenewOff)
            .filter_map(|(_, c)| c.partner_id.clone())
            .collect(),
    })
}

/// The default lead of step 1 before the last term ends (see
/// [`users_schedule`]): a week to notice a mistake while every deleted user
/// can still be restored, well inside the 30-day window.
pub const DEFAULT_USERS_BEFORE_TERM_END: Duration = Duration::from_secs(7 * 24 * 3600);

/// When a subscription is expected to read `Deleted`, if it can be told:
/// a cancelled or expiring term ends at `term_end`, then 30 days Expired and
/// 90 days Disabled before Deleted (what-if-my-subscription-expires).
pub fn expected_end(c: &SubscriptionClass, plan: &Plan, now: Timestamp) -> Option<Timestamp> {
    const EXPIRED: Duration = Duration::from_secs(30 * 24 * 3600);
    const DISABLED: Duration = Duration::from_secs(90 * 24 * 3600);
    match plan {
        Plan::Nothing => None,
        // Cancelled inside the window: straight to Disabled.
        Plan::Cancel => Some(now.plus(DISABLED)),
        Plan::AutoRenewOff | Plan::Operator(_) => {
            c.term_end.map(|t| t.plus(EXPIRED).plus(DISABLED))
        }
        Plan::SuspendThenDelete => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Subscription;

    fn graph(id: &str, owner: Option<&str>, trial: bool, sku: &str) -> SubscriptionDetail {
        SubscriptionDetail {
            base: Subscription {
                id: format!("g-{id}"),
                commerce_subscription_id: id.into(),
                sku_id: "s".into(),
                sku_part_number: sku.into(),
                status: SubscriptionStatus::Enabled,
                is_trial: trial,
                total_licenses: 5,
            },
            owner_tenant_id: owner.map(str::to_string),
            next_lifecycle: None,
            created: None,
        }
    }

    fn pc(id: &str, offer: &str, start: u64) -> PartnerSubscription {
        PartnerSubscription {
            id: id.into(),
            offer_id: offer.into(),
            quantity: 5,
            status: "active".into(),
            auto_renew: true,
            term_start: Some(Timestamp(start)),
            term_end: Some(Timestamp(start + 365 * 86_400_000)),
        }
    }

    #[test]
    fn each_kind_gets_its_documented_action() {
        let p = "partner-tenant";
        let g = vec![
            graph("a", Some(p), false, "O365_BUSINESS_PREMIUM"),
            graph("b", Some(p), false, "O365_BUSINESS_PREMIUM"),
            graph("c", Some(p), false, "O365_BUSINESS_PREMIUM"),
            graph("d", Some("other"), false, "O365_BUSINESS_PREMIUM"),
            graph("e", None, false, "O365_BUSINESS_PREMIUM"),
            graph("f", None, true, "O365_BUSINESS_PREMIUM"),
            graph("g", None, false, "FLOW_FREE"),
            graph("h", Some(p), false, "O365_BUSINESS_PREMIUM"),
        ];
        let now = 100 * 86_400_000;
        let list = vec![
            pc("a", "CFQ7TTC0LH18:0001", now - 86_400_000),
            pc("b", "CFQ7TTC0LH18:0001", now - 30 * 86_400_000),
            pc("c", "8e46ac7b-7b9c-4f33-a5a3-1b3c2f6a4a19", 0),
        ];
        let classes = classify(&g, Some(&list), Some(p));
        let plans: Vec<Plan> = classes
            .iter()
            .map(|c| plan_for(c, Timestamp(now)))
            .collect();
        assert_eq!(
            plans,
            vec![
                Plan::Cancel,
                Plan::AutoRenewOff,
                Plan::SuspendThenDelete,
                Plan::Operator(Place::SellingPartner),
                Plan::Operator(Place::AdminCenterProducts),
                Plan::Operator(Place::AdminCenterProducts),
                Plan::Operator(Place::SelfServiceProducts),
                // The partner's per Graph but missing from Partner Center's
                // list: a person, never a guessed call.
                Plan::Operator(Place::AdminCenterProducts),
            ]
        );
    }

    #[test]
    fn an_id_alone_does_not_match() {
        let g = vec![graph("a", Some("p"), false, "X")];
        let mut other = pc("a", "CFQ7TTC0LH18:0001", 0);
        other.quantity = 7;
        let c = classify(&g, Some(&[other]), Some("p"));
        assert_eq!(c[0].partner_id, None);
        assert_eq!(c[0].kind, Kind::Unknown);
    }
}
