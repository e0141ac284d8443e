//! Performs one saga [`Call`] through the ports and turns the results into
//! events: one outcome per object (with its HTTP description) for a change,
//! one read event (or `ReadFailed`) for a read. Holds no policy: retries,
//! in-doubt resolution and failure handling are the saga's decisions. Also
//! the outcomes the executor adds to them: an error whose `Retry-After` is
//! beyond the configured maximum marked so ([`bound_retry_after`]), and the
//! changes still on the wire when the stop grace ended ([`left_in_doubt`]).

use crate::model::{
    CaPolicyState, CallError, FailureClass, HttpInfo, PerUserMfaState, Timestamp, WriteOutcome,
};
use crate::ports::{KeepCheck, PartnerApi, TenantApi};
use crate::saga::closure::{Observation, OWN_APP_GONE, TENANT_UNKNOWN};
use crate::saga::subscriptions::SubscriptionClass;
use crate::saga::{
    keep, Call, Change, Event, IdentitySource, Inventory, MfaView, Read, SubscriptionRef,
    TenantView, UserRef,
};
use futures::future::join_all;
use std::time::Duration;

/// Above this many users to check by id, [`Read::CheckUsers`] lists the
/// tenant's users instead of reading each (a page holds 999).
const CHECK_BY_LISTING: usize = 50;

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
    now: Timestamp,
    request_id: &(dyn Fn(Change, &str) -> Option<String> + Sync),
) -> Vec<Event> {
    match call {
        Call::Change {
            change_id,
            change: Change::DeleteUser,
            targets,
        } => {
            let (check, outcomes) = tenant.delete_users_checked(targets).await;
            let mut events: Vec<Event> = check.map(|c| check_event(c, now)).into_iter().collect();
            events.extend(
                outcomes
                    .into_iter()
                    .map(|(target, o)| outcome_event(*change_id, target, o)),
            );
            events
        }
        Call::Read(Read::ClassifySubscriptions) => {
            match classify(tenant, partner, tenant_id).await {
                Ok(subscriptions) => vec![Event::SubscriptionsClassified { subscriptions }],
                Err(error) => vec![Event::ReadFailed {
                    read: Read::ClassifySubscriptions,
                    error,
                }],
            }
        }
        Call::Read(read) => match perform_read(read, tenant, tenant_id, now).await {
            Ok(Event::InventoryRecorded { inventory }) => Event::inventory(inventory),
            // The saga's first call with its credential: a certificate is
            // recorded by its thumbprint (never its key).
            Ok(event @ Event::TenantResolved { .. }) => {
                let mut events = vec![event];
                if let Some(thumbprint) = tenant.certificate_thumbprint() {
                    events.push(Event::CertificateUsed { thumbprint });
                }
                events
            }
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

/// The event recording a keep-admin check.
fn check_event(c: KeepCheck, at: Timestamp) -> Event {
    match c.verdict {
        Ok(keep_admin_ids) => Event::KeepAdminVerified {
            keep_admin_ids,
            admin_ids: c.admin_ids,
            at,
        },
        Err(reason) => Event::KeepAdminMissing {
            reason,
            admin_ids: c.admin_ids,
            at,
        },
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

async fn perform_read<T: TenantApi>(
    read: &Read,
    tenant: &T,
    tenant_id: &str,
    now: Timestamp,
) -> Result<Event, CallError> {
    Ok(match read {
        Read::Organization => Event::TenantResolved {
            tenant_guid: tenant.organization_id().await?,
            source: IdentitySource::Organization,
        },
        Read::KeepAdmins { keep_ids } => {
            let members = tenant.global_admin_members().await?;
            check_event(
                KeepCheck {
                    admin_ids: members.iter().map(|m| m.id.clone()).collect(),
                    verdict: keep::judge(tenant_id, keep_ids, &[], &members),
                },
                now,
            )
        }
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
            let (mut present, mut absent) = (Vec::new(), Vec::new());
            if ids.len() > CHECK_BY_LISTING {
                // Many (a window of deletes left in doubt by a crash): one
                // paged listing of the users settles them in a few
                // requests, where a GET each would be hundreds, any one of
                // which failing fails the read.
                let listed: std::collections::HashSet<String> = tenant
                    .list_users()
                    .await?
                    .into_iter()
                    .map(|u| u.id.to_ascii_lowercase())
                    .collect();
                for id in ids {
                    if listed.contains(&id.to_ascii_lowercase()) {
                        present.push(id.clone());
                    } else {
                        absent.push(id.clone());
                    }
                }
            } else {
                let found = join_all(ids.iter().map(|id| tenant.get_user(id))).await;
                for (id, r) in ids.iter().zip(found) {
                    match r? {
                        Some(_) => present.push(id.clone()),
                        None => absent.push(id.clone()),
                    }
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
        Read::DeletionCheck => match tenant.deletion_check().await {
            Ok(check) => Event::DeletionChecked { check },
            // closeout's own credentials refused: its app or service principal
            // removed (the operator's cleanup) or the tenant unknown; step 5
            // goes on with credential-free reads only.
            Err(e) if e.code == TENANT_UNKNOWN || OWN_APP_GONE.contains(&e.code.as_str()) => {
                Event::CredentialsRefused { code: e.code }
            }
            Err(e) => return Err(e),
        },
        Read::Discovery { domain } => {
            let tenant_id = tenant.discovery(tenant_id).await?;
            let answer = match domain {
                Some(d) => Some(tenant.discovery(d).await?),
                None => None,
            };
            Event::DiscoveryRead {
                observation: Observation {
                    domain_name: domain.clone(),
                    tenant_id,
                    domain: answer,
                },
            }
        }
        Read::DataAtStake => Event::DataAtStakeRecorded {
            stake: tenant.data_at_stake().await?,
        },
        Read::Preflight => Event::PreflightRead {
            preflight: tenant.read_preflight().await?,
        },
        // Performed with the partner, above.
        Read::AppPermissions => Event::PermissionsRead {
            granted: tenant.app_permissions().await?,
        },
        Read::ClassifySubscriptions => Event::SubscriptionsClassified {
            subscriptions: crate::saga::subscriptions::classify(
                &tenant.list_subscription_details().await?,
                None,
                None,
            ),
        },
    })
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

/// Marks each error of `events` whose `Retry-After` is longer than `max`
/// ([`crate::model::RETRY_AFTER_TOO_LONG`]), so that the saga pauses on it.
pub fn bound_retry_after(events: &mut [Event], max: Duration) {
    for event in events {
        let (Event::ChangeFailed { error, .. } | Event::ReadFailed { error, .. }) = event else {
            continue;
        };
        let Some(ra) = error.retry_after.filter(|ra| *ra > max) else {
            continue;
        };
        error.message = format!(
            "{}: {}; the service asked to wait {} before trying again, longer than [retry] max_retry_after ({}): resume once that is understood",
            error.code,
            error.message,
            humantime::format_duration(Duration::from_secs(ra.as_secs())),
            humantime::format_duration(max),
        );
        error.code = crate::model::RETRY_AFTER_TOO_LONG.to_string();
    }
}

/// The outcomes of the change calls still open when the stop grace ended:
/// in doubt, since they may have been applied.
pub fn left_in_doubt(calls: &[Call], open: &[bool]) -> Vec<Event> {
    let mut out = Vec::new();
    for (call, _) in calls.iter().zip(open).filter(|(_, o)| **o) {
        let Call::Change {
            change_id, targets, ..
        } = call
        else {
            continue;
        };
        for target in targets {
            out.push(Event::ChangeFailed {
                change_id: *change_id,
                target: target.clone(),
                http: crate::model::HttpInfo {
                    method: String::new(),
                    path: String::new(),
                    status: 0,
                    request_id: String::new(),
                },
                error: crate::model::CallError {
                    class: crate::model::FailureClass::InDoubt,
                    code: "stopped_in_flight".into(),
                    message: format!(
                        "object {target}: no answer within the stop grace; the daemon stopped"
                    ),
                    retry_after: None,
                },
            });
        }
    }
    out
}
