//! What a person must do for a waiting or paused saga, spelled out for
//! `closeout status` and the webhook messages: which subscriptions to cancel,
//! delete or reactivate and where, which preconditions of tenant deletion
//! still fail (from the saga's last read), or which command resumes it.

use super::decide::other_users;
use super::event::Gate;
use super::state::State;
use super::view::{SubscriptionRef, TenantView};
use crate::model::SubscriptionStatus;
use serde::{Deserialize, Serialize};

/// Where subscriptions are cancelled, deleted and reactivated by hand.
pub const ADMIN_CENTER: &str = "Microsoft 365 admin center (Billing > Your products)";
/// Where a tenant is deleted by hand.
pub const ENTRA_ADMIN_CENTER: &str = "Entra admin center (Identity > Overview > Manage tenants)";

/// The `action_required` of `status --json` and of a webhook message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRequired {
    /// What to do, in one sentence.
    pub what: String,
    /// Where to do it: an admin center and its page, or the command line.
    #[serde(rename = "where")]
    pub place: String,
    /// The subscriptions to act on, with their names and ids.
    pub subscriptions: Vec<SubscriptionAction>,
    /// The preconditions of tenant deletion that still fail, as last read.
    pub failing_preconditions: Vec<String>,
}

/// One subscription a person must act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionAction {
    /// `cancel`, `delete` or `reactivate`.
    pub action: String,
    /// The commerce subscription id.
    pub id: String,
    /// Its product name (SKU), as the admin center lists it.
    pub sku: String,
    /// Its status as last read.
    pub status: SubscriptionStatus,
    /// Where a person ends it, when closeout may not (sold directly or by
    /// another partner, a trial, a self-service sign-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

impl State {
    /// What a person must do now, if the saga waits for one.
    pub fn action_required(&self) -> Option<ActionRequired> {
        if self.is_terminal() {
            return None;
        }
        let saga = self.header.saga_id.0.as_str();
        if let Some(why) = &self.paused {
            let failing = if why.starts_with("step 5 preflight failed") {
                self.last_tenant_read
                    .as_ref()
                    .map(|v| failing_preconditions(self, v))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let what = match &self.paused_by {
                Some(who) => format!("{who} paused it ({why}): resume it when ready"),
                None => format!("fix the cause ({why}), then resume the saga"),
            };
            return Some(ActionRequired {
                what,
                place: format!("the command line, closeout resume {saga}"),
                subscriptions: Vec::new(),
                failing_preconditions: failing,
            });
        }
        let (gate, _) = self.gate.as_ref()?;
        let subs = |action: &str, keep: &dyn Fn(&SubscriptionRef) -> bool| {
            self.subscriptions_known()
                .into_iter()
                .filter(|s| keep(s))
                .map(|s| SubscriptionAction {
                    action: action.to_string(),
                    id: s.id,
                    sku: s.sku,
                    status: s.status,
                    place: None,
                })
                .collect::<Vec<_>>()
        };
        let (what, place, subscriptions, failing) = match gate {
            Gate::CancelSubscriptions => (
                "cancel the active subscriptions listed".to_string(),
                ADMIN_CENTER,
                subs("cancel", &|s| s.status.is_active()),
                Vec::new(),
            ),
            Gate::DeleteSubscriptions => (
                "delete the cancelled subscriptions listed".to_string(),
                ADMIN_CENTER,
                subs("delete", &|s| s.status != SubscriptionStatus::Deleted),
                Vec::new(),
            ),
            Gate::ReactivateSubscriptions => {
                let was_active: Vec<&str> = self
                    .inventory
                    .iter()
                    .flat_map(|i| &i.subscriptions)
                    .filter(|s| s.status.is_active())
                    .map(|s| s.commerce_subscription_id.as_str())
                    .collect();
                (
                    "reactivate the subscriptions listed (the saga is rolling back)".to_string(),
                    ADMIN_CENTER,
                    subs("reactivate", &|s| {
                        was_active.contains(&s.id.as_str()) && !s.status.is_active()
                    }),
                    Vec::new(),
                )
            }
            Gate::EndSubscriptionsElsewhere => (
                "end the subscriptions listed where each one says (closeout may not)".to_string(),
                ADMIN_CENTER,
                self.elsewhere()
                    .into_iter()
                    .map(|(c, place)| SubscriptionAction {
                        action: if self.step <= 2 { "cancel" } else { "delete" }.to_string(),
                        id: c.id,
                        sku: c.sku,
                        status: c.status,
                        place: Some(place),
                    })
                    .collect(),
                Vec::new(),
            ),
            Gate::AssignAppRole => (
                "assign closeout's app the Privileged Authentication Administrator role"
                    .to_string(),
                ENTRA_ADMIN_CENTER,
                Vec::new(),
                Vec::new(),
            ),
            Gate::TurnOffDirectorySync => (
                "turn off directory synchronization".to_string(),
                ENTRA_ADMIN_CENTER,
                Vec::new(),
                Vec::new(),
            ),
            Gate::AttestBackup => (
                "back the tenant's data up outside the tenant, then attest it (a person's word: \
                 nothing closeout reads can prove it)"
                    .to_string(),
                "the command line, closeout confirm SAGA --backup --reason TEXT",
                Vec::new(),
                Vec::new(),
            ),
            Gate::GrantPermissions => (
                match super::steps::missing_permissions(self) {
                    Some(missing) if !missing.is_empty() => format!(
                        "grant closeout's app the Microsoft Graph application permissions {} (admin consent)",
                        missing.join(", ")
                    ),
                    _ => "grant closeout's app the Microsoft Graph application permissions the gate names (admin consent)".to_string(),
                },
                "Entra admin center (Enterprise apps > closeout > Permissions > Grant admin consent)",
                Vec::new(),
                Vec::new(),
            ),
            Gate::DeleteTenant => match &self.last_deletion_check {
                Some(check) => {
                    let own_app = self.header.spec.client_id.as_str();
                    let finisher = super::steps::finishing_admin(self);
                    let keep = |id: &str, upn: &str| super::decide::is_keep(self, id, upn);
                    (
                        "remove what blocks the deletion, check what Graph cannot show, remove \
                         closeout's own enterprise app last, then a Global Administrator \
                         deletes the tenant"
                            .to_string(),
                        ENTRA_ADMIN_CENTER,
                        Vec::new(),
                        super::closure::blockers(check, finisher.as_deref(), &keep, own_app),
                    )
                }
                None => (
                    "a Global Administrator deletes the tenant".to_string(),
                    ENTRA_ADMIN_CENTER,
                    Vec::new(),
                    self.last_tenant_read
                        .as_ref()
                        .map(|v| failing_preconditions(self, v))
                        .unwrap_or_default(),
                ),
            },
        };
        Some(ActionRequired {
            what,
            place: place.to_string(),
            subscriptions,
            failing_preconditions: failing,
        })
    }

    /// The subscriptions a person must end, with where, as last read
    /// (active in step 2, not yet deleted in step 3).
    pub fn elsewhere(&self) -> Vec<(super::subscriptions::SubscriptionClass, String)> {
        use super::subscriptions::{plan_for, Plan};
        let Some(first) = &self.classes else {
            return Vec::new();
        };
        let now = self.updated_at;
        let current = self.observed.classes.as_ref().unwrap_or(first);
        first
            .iter()
            .filter_map(|c| match plan_for(c, now) {
                Plan::Operator(place) => Some((c, place)),
                _ => None,
            })
            .filter_map(|(c, place)| {
                let now_c = current.iter().find(|x| x.id == c.id).unwrap_or(c);
                let left = if self.step <= 2 {
                    if place == super::subscriptions::Place::SuspendedPastWindow {
                        !super::subscriptions::suspended_handled(now_c)
                    } else {
                        now_c.status.is_active()
                    }
                } else {
                    now_c.status != SubscriptionStatus::Deleted
                };
                left.then(|| (now_c.clone(), place.describe(&c.seller)))
            })
            .collect()
    }

    /// The subscriptions as last read, or as inventoried when never read since.
    fn subscriptions_known(&self) -> Vec<SubscriptionRef> {
        if let Some(subs) = &self.last_subscriptions {
            return subs.clone();
        }
        self.inventory
            .iter()
            .flat_map(|i| &i.subscriptions)
            .map(|s| SubscriptionRef {
                id: s.commerce_subscription_id.clone(),
                sku: s.sku_part_number.clone(),
                status: s.status,
            })
            .collect()
    }
}

/// The portal's preconditions of tenant deletion that `view` shows failing.
pub fn failing_preconditions(state: &State, view: &TenantView) -> Vec<String> {
    let mut out = Vec::new();
    let users: Vec<&str> = other_users(state, view).map(|u| u.upn.as_str()).collect();
    if !users.is_empty() {
        out.push(format!(
            "users besides the keep accounts remain: {}",
            users.join(", ")
        ));
    }
    let subs: Vec<String> = view
        .undeleted_subscriptions()
        .map(|s| format!("{} ({}, {:?})", s.sku, s.id, s.status))
        .collect();
    if !subs.is_empty() {
        out.push(format!(
            "subscriptions not deprovisioned: {}",
            subs.join(", ")
        ));
    }
    if view.mfa.security_defaults {
        out.push("security defaults are enabled".to_string());
    }
    let ca: Vec<&str> = view
        .mfa_policies_on()
        .map(|p| p.display_name.as_str())
        .collect();
    if !ca.is_empty() {
        out.push(format!(
            "MFA conditional access policies are on: {}",
            ca.join(", ")
        ));
    }
    if !view.applications.is_empty() {
        out.push(format!(
            "app registrations remain: {}",
            view.application_names().join(", ")
        ));
    }
    if view.users.len() > 1 {
        out.push(format!(
            "more than one user remains ({}): the portal requires a single Global Administrator",
            view.users.len()
        ));
    }
    out
}
