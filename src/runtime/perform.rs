//! Performs one saga [`Call`] through the ports and turns the results into
//! events: one outcome per object (with its HTTP description) for a change,
//! one read event (or `ReadFailed`) for a read. Holds no policy: retries,
//! in-doubt resolution and failure handling are the saga's decisions.

use crate::model::{
    CaPolicyState, CallError, FailureClass, HttpInfo, PerUserMfaState, Timestamp, User,
    WriteOutcome,
};
use crate::ports::{PartnerApi, TenantApi};
use crate::saga::subscriptions::SubscriptionClass;
use crate::saga::{
    Call, Change, Event, Inventory, MfaView, Read, SubscriptionRef, TenantView, UserRef,
};
use futures::future::join_all;

/// Makes the call and returns the events recording its results.
pub async fn perform<T: TenantApi, P: PartnerApi>(
    call: &Call,
    tenant: &T,
    partner: Option<&P>,
    tenant_id: &str,
    now: Timestamp,
) -> Vec<Event> {
    perform_as(call, tenant, partner, tenant_id, now, &|_, _| None).await
}

/// [`perform`], with the `MS-RequestId` of each Partner Center change
/// (`request_id(change, target)`, from the saga's state; `None` makes a
/// fresh one).
pub async fn perform_as<T: TenantApi, P: PartnerApi>(
    call: &Call,
    tenant: &T,
    partner: Option<&P>,
    tenant_id: &str,
    _now: Timestamp,
    request_id: &(dyn Fn(Change, &str) -> Option<String> + Sync),
) -> Vec<Event> {
    match call {
        Call::Read(Read::ClassifySubscriptions) => {
            match classify(tenant, partner, tenant_id).await {
                Ok(subscriptions) => vec![Event::SubscriptionsClassified { subscriptions }],
                Err(error) => vec![Event::ReadFailed {
                    read: Read::ClassifySubscriptions,
                    error,
                }],
            }
        }
        Call::Read(read) => match perform_read(read, tenant).await {
            Ok(Event::InventoryRecorded { inventory }) => Event::inventory(inventory),
            Ok(event) => vec![event],
            Err(error) => vec![Event::ReadFailed {
                read: read.clone(),
                error,
            }],
        },
        Call::Change {
            change_id,
            change,
            targets,
        } => {
            let outcomes =
                perform_change(*change, targets, tenant, partner, tenant_id, request_id).await;
            outcomes
                .into_iter()
                .map(|(target, o)| outcome_event(*change_id, target, o))
                .collect()
        }
    }
}

fn outcome_event(change_id: u32, target: String, o: WriteOutcome) -> Event {
    match o.result {
        Ok(applied) => Event::ChangeApplied {
            change_id,
            target,
            http: o.http,
            applied,
        },
        Err(error) => Event::ChangeFailed {
            change_id,
            target,
            http: o.http,
            error,
        },
    }
}

/// Graph's subscriptions with their sellers, classified with the partner's
/// Partner Center list of the customer's subscriptions (none when no Partner
/// Center is configured or the customer is not the partner's).
async fn classify<T: TenantApi, P: PartnerApi>(
    tenant: &T,
    partner: Option<&P>,
    tenant_id: &str,
) -> Result<Vec<SubscriptionClass>, CallError> {
    let graph = tenant.list_subscription_details().await?;
    let (list, partner_tenant) = match partner {
        Some(p) => (
            p.list_customer_subscriptions(tenant_id).await?,
            p.partner_tenant_id(),
        ),
        None => (None, None),
    };
    Ok(crate::saga::subscriptions::classify(
        &graph,
        list.as_deref(),
        partner_tenant,
    ))
}

fn no_partner(tenant_id: &str, id: &str) -> WriteOutcome {
    let path = format!("/v1/customers/{tenant_id}/subscriptions/{id}");
    WriteOutcome {
        http: HttpInfo {
            method: "PATCH".to_string(),
            path: path.clone(),
            status: 0,
            request_id: String::new(),
        },
        result: Err(CallError {
            class: FailureClass::Permanent,
            code: "partner_center_not_configured".to_string(),
            message: format!(
                "tenant {tenant_id}: PATCH {path}: no Partner Center credentials configured"
            ),
            retry_after: None,
        }),
    }
}

async fn perform_change<T: TenantApi, P: PartnerApi>(
    change: Change,
    targets: &[String],
    tenant: &T,
    partner: Option<&P>,
    tenant_id: &str,
    request_id: &(dyn Fn(Change, &str) -> Option<String> + Sync),
) -> Vec<(String, WriteOutcome)> {
    match change {
        Change::SetAutoRenew { enabled } => match partner {
            Some(p) => {
                join_all(targets.iter().map(|id| async move {
                    let rid =
                        request_id(change, id).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    (
                        id.clone(),
                        p.set_auto_renew(tenant_id, id, enabled, &rid).await,
                    )
                }))
                .await
            }
            None => targets
                .iter()
                .map(|id| (id.clone(), no_partner(tenant_id, id)))
                .collect(),
        },
        Change::DeleteUser => tenant.delete_users(targets).await,
        Change::RestoreUser => tenant.restore_users(targets).await,
        Change::SetSubscription { status } => match partner {
            Some(p) => {
                join_all(targets.iter().map(|id| async move {
                    let outcome = match request_id(change, id) {
                        Some(rid) => {
                            p.set_subscription_status_as(tenant_id, id, status, &rid)
                                .await
                        }
                        None => p.set_subscription_status(tenant_id, id, status).await,
                    };
                    (id.clone(), outcome)
                }))
                .await
            }
            None => targets
                .iter()
                .map(|id| (id.clone(), no_partner(tenant_id, id)))
                .collect(),
        },
        Change::DisableSecurityDefaults => {
            let mut out = Vec::new();
            for t in targets {
                out.push((t.clone(), tenant.set_security_defaults(false).await));
            }
            out
        }
        Change::DisableCaPolicy => {
            join_all(targets.iter().map(|id| async move {
                (
                    id.clone(),
                    tenant
                        .set_ca_policy_state(id, CaPolicyState::Disabled)
                        .await,
                )
            }))
            .await
        }
        Change::DisableUserMfa => {
            join_all(targets.iter().map(|id| async move {
                (
                    id.clone(),
                    tenant.set_user_mfa(id, PerUserMfaState::Disabled).await,
                )
            }))
            .await
        }
    }
}

async fn perform_read<T: TenantApi>(read: &Read, tenant: &T) -> Result<Event, CallError> {
    Ok(match read {
        Read::Inventory => {
            let users = tenant.list_users().await?;
            let global_admins = tenant.list_global_admins().await?;
            let subscriptions = tenant.list_subscriptions().await?;
            let security_defaults = tenant.get_security_defaults().await?;
            let ca_policies = tenant.list_ca_policies().await?;
            let applications = tenant.list_applications().await?;
            Event::InventoryRecorded {
                inventory: Inventory {
                    users,
                    global_admins,
                    subscriptions,
                    security_defaults,
                    ca_policies,
                    applications,
                },
            }
        }
        Read::Users => Event::UsersRead {
            users: users(tenant).await?,
        },
        Read::CheckUsers { ids } => {
            let found = join_all(ids.iter().map(|id| get_user(tenant, id))).await;
            let mut present = Vec::new();
            let mut absent = Vec::new();
            for (id, r) in ids.iter().zip(found) {
                match r? {
                    Some(_) => present.push(id.clone()),
                    None => absent.push(id.clone()),
                }
            }
            Event::UsersChecked { present, absent }
        }
        Read::DeletedUsers => Event::DeletedUsersRead {
            ids: tenant
                .list_deleted_users()
                .await?
                .into_iter()
                .map(|u| u.id)
                .collect(),
        },
        Read::Subscriptions => Event::SubscriptionsRead {
            subscriptions: subscriptions(tenant).await?,
        },
        Read::Mfa { user_ids } => Event::MfaRead {
            mfa: mfa(tenant, user_ids).await?,
        },
        Read::Tenant { user_ids } => Event::TenantRead {
            view: TenantView {
                users: users(tenant).await?,
                subscriptions: subscriptions(tenant).await?,
                mfa: mfa(tenant, user_ids).await?,
                applications: tenant.list_applications().await?,
            },
        },
        Read::TenantExists => Event::TenantChecked {
            exists: tenant.tenant_exists().await?,
        },
        Read::Preflight => Event::PreflightRead {
            preflight: tenant.read_preflight().await?,
        },
        // Performed with the partner, above.
        Read::ClassifySubscriptions => Event::SubscriptionsClassified {
            subscriptions: crate::saga::subscriptions::classify(
                &tenant.list_subscription_details().await?,
                None,
                None,
            ),
        },
    })
}

/// Attempts one lookup by id gets when it fails for a reason that a repeat
/// may cure (transient, no wait or a short `Retry-After`).
const LOOKUP_ATTEMPTS: u32 = 3;

/// The longest `Retry-After` a lookup waits out itself before repeating;
/// a longer one fails the check, whose retry the saga schedules.
const LOOKUP_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /v1.0/users/{id}`, repeated (it is a read) up to [`LOOKUP_ATTEMPTS`]
/// times while the failure is transient, at once or after the service's
/// short `Retry-After`: one check covers many ids, and without this a single
/// failing lookup among them would fail the whole check and its retry — at a
/// 30% failure rate (tests/soak.rs) a check of 30 ids then almost never
/// succeeds.
async fn get_user<T: TenantApi>(tenant: &T, id: &str) -> Result<Option<User>, CallError> {
    let mut attempt = 1;
    loop {
        match tenant.get_user(id).await {
            Err(e)
                if attempt < LOOKUP_ATTEMPTS
                    && e.class != FailureClass::Permanent
                    && e.retry_after.is_none_or(|ra| ra <= LOOKUP_MAX_WAIT) =>
            {
                if let Some(ra) = e.retry_after {
                    tenant.pause(ra).await;
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn users<T: TenantApi>(tenant: &T) -> Result<Vec<UserRef>, CallError> {
    Ok(tenant
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserRef {
            id: u.id,
            upn: u.user_principal_name,
        })
        .collect())
}

async fn subscriptions<T: TenantApi>(tenant: &T) -> Result<Vec<SubscriptionRef>, CallError> {
    Ok(tenant
        .list_subscriptions()
        .await?
        .into_iter()
        .map(|s| SubscriptionRef {
            id: s.commerce_subscription_id,
            sku: s.sku_part_number,
            status: s.status,
        })
        .collect())
}

async fn mfa<T: TenantApi>(tenant: &T, user_ids: &[String]) -> Result<MfaView, CallError> {
    let security_defaults = tenant.get_security_defaults().await?;
    let ca_policies = tenant.list_ca_policies().await?;
    let states = join_all(user_ids.iter().map(|id| tenant.get_user_mfa(id))).await;
    let mut per_user = Vec::new();
    for (id, s) in user_ids.iter().zip(states) {
        per_user.push((id.clone(), s?));
    }
    Ok(MfaView {
        security_defaults,
        ca_policies,
        per_user,
    })
}
