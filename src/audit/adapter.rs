//! Maps the saga's recorded events ([`saga::Event`], decoded from a store
//! [`Record`]'s payload through `crate::codec`) to audit [`Entry`] values.
//!
//! - An intent names a group of objects (`ChangeIntended { targets }`): it
//!   becomes one entry per object, each an [`Item`] of the record, with its
//!   change key `"{change_id}/{object}"` — the key its outcome
//!   (`ChangeApplied`/`ChangeFailed`, one per object) is joined on. Its
//!   `http` is the call it announces, with status 0 and no request id (no
//!   response yet).
//! - `InDoubtResolved` names several objects too: one entry per object.
//! - Everything else is one entry per record.
//!
//! The step of an entry is the step last started in its saga (none during
//! compensation); the tenant is the one its `SagaStarted` names. Both are kept
//! in a small [`Context`] per saga.

use super::entry::{Entry, Fact, Item, OutcomeResult};
use super::source::Want;
use crate::model::{Applied, FailureClass, HttpInfo, SubscriptionStatus, Timestamp};
use crate::saga::{Change, Event};
use crate::store::Record;
use serde_json::{json, Value};
use std::borrow::Cow;

/// What the adapter remembers of a saga while reading it in order.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The tenant the saga closes (from `SagaStarted`).
    pub tenant_id: String,
    /// Its GUID (from the first `TenantResolved`), empty before it.
    pub tenant_guid: String,
    /// The step last started, none before the first and during compensation.
    pub step: Option<u8>,
    /// Users recorded in inventory parts before the `InventoryRecorded`
    /// that completes the inventory.
    pub inventory_part_users: usize,
}

/// Decodes a record's payload into the event it holds ([`Event::decode`]:
/// the format the runtime writes).
pub fn decode_event(payload: &[u8]) -> Result<Event, String> {
    Event::decode(payload).map_err(|e| e.to_string())
}

/// Encodes an event as the runtime stores it (for tests and benchmarks that
/// build logs through the real store).
pub fn encode_event(event: &Event) -> Result<Vec<u8>, crate::codec::Error> {
    event.encode()
}

/// What an intent's change is called in the audit.
pub fn action_of(change: Change) -> String {
    match change {
        Change::DeleteUser => "delete user".into(),
        Change::RestoreUser => "restore user".into(),
        Change::SetSubscription { status } => format!(
            "set subscription to {}",
            serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        Change::DisableSecurityDefaults => "disable security defaults".into(),
        Change::DisableCaPolicy => "disable conditional access policy".into(),
        Change::DisableUserMfa => "disable per-user MFA".into(),
        Change::SetAutoRenew { enabled } => format!(
            "turn subscription auto-renew {}",
            if enabled { "on" } else { "off" }
        ),
    }
}

/// The call an intent announces (paths as the jsonl contract has them: no query, version prefix).
pub fn planned_call(change: Change, target: &str, tenant_id: &str) -> HttpInfo {
    let (method, path) = match change {
        Change::DeleteUser => ("DELETE", format!("/v1.0/users/{target}")),
        Change::RestoreUser => (
            "POST",
            format!("/v1.0/directory/deletedItems/{target}/restore"),
        ),
        Change::SetSubscription { .. } | Change::SetAutoRenew { .. } => (
            "PATCH",
            format!("/v1/customers/{tenant_id}/subscriptions/{target}"),
        ),
        Change::DisableSecurityDefaults => (
            "PATCH",
            "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy".to_string(),
        ),
        Change::DisableCaPolicy => (
            "PATCH",
            format!("/v1.0/identity/conditionalAccess/policies/{target}"),
        ),
        Change::DisableUserMfa => (
            "PATCH",
            format!("/beta/users/{target}/authentication/requirements"),
        ),
    };
    HttpInfo {
        method: method.into(),
        path,
        status: 0,
        request_id: String::new(),
    }
}

/// The entries of one record, appended to `out`, with the parts `want` asks
/// for (the jsonl export needs no [`Fact`], `verify` no details).
pub fn entries(
    record: &Record,
    event: &Event,
    ctx: &mut Context,
    want: Want,
    out: &mut Vec<Entry>,
) {
    let details = want.details;
    let none = || Fact::Other {
        summary: String::new(),
    };
    match event {
        Event::SagaStarted { spec, .. } => ctx.tenant_id = spec.tenant_id.clone(),
        Event::TenantResolved { tenant_guid, .. } if ctx.tenant_guid.is_empty() => {
            ctx.tenant_guid = tenant_guid.clone();
        }
        Event::StepStarted { step } => ctx.step = Some(*step),
        Event::CompensationStarted { .. } => ctx.step = None,
        Event::InventoryUsersRecorded { part, users } => {
            if *part == 0 {
                ctx.inventory_part_users = 0;
            }
            ctx.inventory_part_users += users.len();
        }
        _ => {}
    }
    let base = |fact: Fact| Entry {
        seq: record.global_seq,
        saga_seq: record.saga_seq,
        at: record.at,
        saga_id: record.saga_id.0.clone(),
        tenant_id: ctx.tenant_id.clone(),
        tenant_guid: ctx.tenant_guid.clone(),
        kind: Cow::Borrowed(event.kind()),
        hash: record.hash,
        prev_hash: record.prev_hash,
        item: None,
        http: None,
        object: None,
        step: ctx.step,
        fact,
        // Filled below when wanted (no allocation thrown away).
        details: if details {
            String::new()
        } else {
            String::from("null")
        },
    };
    match event {
        Event::ChangeIntended {
            change_id,
            change,
            targets,
        } if !targets.is_empty() => {
            let count = u32::try_from(targets.len()).unwrap_or(u32::MAX);
            for (index, t) in targets.iter().enumerate() {
                let mut e = base(if want.facts {
                    Fact::Intent {
                        change_id: format!("{change_id}/{t}"),
                        action: action_of(*change),
                        target: t.clone(),
                    }
                } else {
                    none()
                });
                e.item = Some(Item {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    count,
                });
                e.object = Some(t.clone());
                if want.http {
                    e.http = Some(planned_call(*change, t, &ctx.tenant_id));
                }
                if details {
                    e.details = format!(
                        "{{\"change_id\":{change_id},\"change\":{},\"target\":{}}}",
                        serde_json::to_string(change).unwrap_or_default(),
                        serde_json::to_string(t).unwrap_or_default()
                    );
                }
                out.push(e);
            }
        }
        Event::InDoubtResolved {
            change,
            applied,
            not_applied,
        } if !(applied.is_empty() && not_applied.is_empty()) => {
            let all = applied
                .iter()
                .map(|t| (t, true))
                .chain(not_applied.iter().map(|t| (t, false)));
            let count = u32::try_from(applied.len() + not_applied.len()).unwrap_or(u32::MAX);
            for (index, (t, was)) in all.enumerate() {
                let mut e = base(if want.facts {
                    Fact::Resolved {
                        action: action_of(*change),
                        applied: was,
                    }
                } else {
                    none()
                });
                e.item = Some(Item {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    count,
                });
                e.object = Some(t.clone());
                if details {
                    e.details =
                        json!({ "change": change, "target": t, "applied": was }).to_string();
                }
                out.push(e);
            }
        }
        _ => {
            let mut e = base(if want.facts {
                fact_of(event, record.at, ctx.inventory_part_users)
            } else {
                none()
            });
            if want.http {
                e.http = event.http().cloned();
            }
            e.object = match event {
                Event::ChangeApplied { target, .. } | Event::ChangeFailed { target, .. } => {
                    Some(target.clone())
                }
                _ => None,
            };
            if let Event::StepStarted { step } | Event::StepCompleted { step } = event {
                e.step = Some(*step);
            }
            if details {
                e.details = body(event);
            }
            out.push(e);
        }
    }
}

/// The event's fields as JSON text, without the enum tag (the line's
/// `kind`): `{"tag":{...}}` becomes `{...}`, a unit variant `"tag"` becomes `{}`.
fn body(event: &Event) -> String {
    let mut text = match serde_json::to_string(event) {
        Ok(t) => t,
        Err(e) => return json!({ "unrepresentable": e.to_string() }).to_string(),
    };
    if text.starts_with('"') {
        return "{}".into();
    }
    // The tag is a snake_case name (no escapes), so the first ':' ends it.
    match (text.find(':'), text.len().checked_sub(1)) {
        (Some(colon), Some(end)) if colon < end && text.ends_with('}') => {
            text.truncate(end);
            text.drain(..=colon);
            text
        }
        _ => text,
    }
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Whether a retried failure was the service throttling (a 429 or its Graph
/// code), as recorded in the retry's reason.
fn throttled(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("toomanyrequests") || r.contains("429") || r.contains("throttl")
}

/// The audit meaning of a one-entry event.
/// The fact an event states; `part_users` counts the users recorded in
/// inventory parts before it.
fn fact_of(event: &Event, at: Timestamp, part_users: usize) -> Fact {
    let other = |summary: String| Fact::Other { summary };
    let state = |state: &str, reason: &str| Fact::State {
        state: state.into(),
        reason: reason.into(),
    };
    let op = |action: &str, who: &str, why: &str| Fact::Operator {
        action: action.into(),
        who: who.into(),
        why: why.into(),
    };
    match event {
        Event::SagaStarted {
            spec, submitted_by, ..
        } => Fact::SagaStarted {
            keep: spec.keep.clone(),
            subscriptions: snake(&spec.subscriptions),
            submitted_by: submitted_by.clone(),
        },
        Event::InventoryRecorded { inventory: i } => Fact::Inventory {
            summary: format!(
                "{} users ({} Global Administrators), {} subscriptions ({} active), security defaults {}, {} conditional access policies, {} app registrations",
                part_users + i.users.len(),
                i.global_admins.len(),
                i.subscriptions.len(),
                i.subscriptions.iter().filter(|s| s.status.is_active()).count(),
                on_off(i.security_defaults),
                i.ca_policies.len(),
                i.applications.len()
            ),
        },
        Event::TenantResolved {
            tenant_guid,
            source,
        } => other(format!(
            "tenant resolved to {tenant_guid} ({})",
            match source {
                crate::saga::IdentitySource::Discovery => "its OpenID discovery document",
                crate::saga::IdentitySource::Organization => "GET /v1.0/organization",
            }
        )),
        Event::KeepAdminVerified {
            keep_admin_ids,
            admin_ids,
            ..
        } => other(format!(
            "keep Global Administrator verified enabled before deleting: {} (of {} role members)",
            keep_admin_ids.join(", "),
            admin_ids.len()
        )),
        Event::KeepAdminMissing { reason, .. } => {
            state("keep_admin_missing", &format!("{reason}: no Global Administrator deleted"))
        }
        Event::KeepListChecked { keep_ids } => {
            other(format!("keep list checked: {} never to be deleted", keep_ids.join(", ")))
        }
        Event::StepStarted { step } => Fact::StepStarted { step: *step },
        Event::StepCompleted { step } => Fact::StepCompleted { step: *step },
        Event::ChangeIntended { change, .. } => {
            other(format!("intent to {} with no target", action_of(*change)))
        }
        Event::ChangeApplied {
            change_id,
            target,
            applied,
            ..
        } => Fact::Outcome {
            change_id: format!("{change_id}/{target}"),
            result: match applied {
                Applied::Done => OutcomeResult::Applied,
                Applied::AlreadyDone => OutcomeResult::AlreadyDone,
            },
        },
        Event::ChangeFailed {
            change_id,
            target,
            error,
            ..
        } => Fact::Outcome {
            change_id: format!("{change_id}/{target}"),
            result: OutcomeResult::Failed {
                class: match error.class {
                    FailureClass::Transient => "transient",
                    FailureClass::InDoubt => "in_doubt",
                    FailureClass::Permanent => "permanent",
                }
                .into(),
                code: error.code.clone(),
            },
        },
        Event::InDoubtResolved { change, .. } => {
            other(format!("in-doubt {} resolved: nothing left in doubt", action_of(*change)))
        }
        Event::UsersRead { users } => other(format!("read users: {} present", users.len())),
        Event::UsersChecked { present, absent } => other(format!(
            "looked up users: {} present, {} gone",
            present.len(),
            absent.len()
        )),
        Event::DeletedUsersRead { ids } => {
            other(format!("read the recycle bin: {} deleted users", ids.len()))
        }
        Event::SubscriptionsRead { subscriptions } => {
            let count = |s: SubscriptionStatus| subscriptions.iter().filter(|x| x.status == s).count();
            other(format!(
                "read subscriptions: {} enabled, {} warning, {} suspended, {} locked out, {} deleted",
                count(SubscriptionStatus::Enabled),
                count(SubscriptionStatus::Warning),
                count(SubscriptionStatus::Suspended),
                count(SubscriptionStatus::LockedOut),
                count(SubscriptionStatus::Deleted)
            ))
        }
        Event::MfaRead { mfa } => other(format!(
            "read MFA settings: security defaults {}, {} conditional access policies, per-user MFA of {} accounts",
            on_off(mfa.security_defaults),
            mfa.ca_policies.len(),
            mfa.per_user.len()
        )),
        Event::TenantRead { view } => other(format!(
            "preflight read: {} users, {} subscriptions, {} app registrations",
            view.users.len(),
            view.subscriptions.len(),
            view.applications.len()
        )),
        Event::CertificateUsed { thumbprint } => other(format!(
            "signed in with the certificate SHA256:{thumbprint}"
        )),
        Event::PermissionsRead { granted } => other(format!(
            "closeout's app permissions read: {}",
            granted
                .iter()
                .map(|id| crate::saga::permissions::by_id(id)
                    .map(|p| p.name.to_string())
                    .unwrap_or_else(|| id.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Event::SubscriptionsClassified { subscriptions } => other(format!(
            "subscriptions classified: {}",
            subscriptions
                .iter()
                .map(|c| format!(
                    "{} ({}) {} {}",
                    c.sku,
                    c.id,
                    c.seller.name(),
                    c.kind.name()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Event::SchedulePolicyRecorded {
            users_before_term_end,
        } => other(format!(
            "schedule policy: when subscriptions run to the end of their term, users are deleted {} before the last term ends",
            humantime::format_duration(*users_before_term_end)
        )),
        Event::PreflightRead { preflight: p } => other(format!(
            "step 1 preflight read: {} directory role assignments, {} synced users, directory sync {}, closeout's app holds {} roles",
            p.role_assignments.len(),
            p.synced_users.len(),
            on_off(p.directory_sync),
            p.roles_of(&p.app_principal).count()
        )),
        Event::ClosurePolicyRecorded {
            mfa_scope,
            finish_with,
        } => other(format!(
            "closure policy: mfa scope {}, finished by {}",
            mfa_scope.as_str(),
            finish_with
                .as_deref()
                .unwrap_or("the first keep Global Administrator")
        )),
        Event::DeletionChecked { check } => other(format!(
            "step 5 preflight read: {} users, {} app registrations, {} service principals, {} subscriptions not deprovisioned",
            check.users.len(),
            check.applications.len(),
            check.service_principals.len(),
            check
                .subscriptions
                .iter()
                .filter(|s| s.status != crate::model::SubscriptionStatus::Deleted)
                .count()
        )),
        Event::CredentialsRefused { code } => other(if code == "AADSTS90002" {
            format!(
                "closeout's own credentials refused ({code}: tenant not found, no proof of deletion); watching the tenant's discovery document"
            )
        } else {
            format!(
                "closeout's own credentials refused ({code}: its app removed, the operator is cleaning up); watching the tenant's discovery document"
            )
        }),
        Event::DiscoveryRead { observation } => {
            other(format!("discovery document read: {}", describe(observation)))
        }
        Event::DiscoveryBaselineRecorded { observation } => other(format!(
            "discovery baseline before the deletion: {}",
            describe(observation)
        )),
        Event::TenantObservedGone {
            confirmation: 0, ..
        } => other("tenant seen again: the observation of its deletion starts over".into()),
        Event::TenantObservedGone {
            confirmation,
            observation,
        } => other(format!(
            "tenant observed gone ({confirmation} of 2): {} (observed, not proven: Microsoft documents no deletion signal)",
            describe(observation)
        )),
        Event::TenantChecked { exists: true } => other("tenant still exists".into()),
        Event::TenantChecked { exists: false } => {
            other("tenant is gone: the token endpoint no longer knows it".into())
        }
        Event::ReadFailed { read, error } => other(format!("read {} failed: {error}", snake(read))),
        Event::RetryScheduled {
            at: when,
            attempt,
            reason,
            ..
        } => Fact::Retry {
            delay: when.since(at),
            throttled: throttled(reason),
            reason: format!("attempt {attempt} after {reason}"),
        },
        Event::WaitStarted { until, reason } => Fact::WaitStarted {
            reason: reason.clone(),
            until: Some(*until),
        },
        Event::GateOpened { instructions, .. } => Fact::GateOpened {
            instructions: instructions.clone(),
        },
        Event::GateConfirmed { who, why } => op("confirmed the gate", who, why),
        // The data at stake and the backup gate: the one gate that closes on
        // a person's word, labelled so wherever the audit shows it.
        Event::BackupPolicyRecorded { mode } => other(match mode {
            crate::saga::stake::BackupMode::Attest => "backup policy: attest (step 1 waits for an operator's word that the data is backed up outside the tenant)".to_string(),
            crate::saga::stake::BackupMode::Off => "backup policy: off, a deliberate choice of the operator (no backup attestation is asked for)".to_string(),
        }),
        Event::DataAtStakeRecorded { stake } => {
            let s = crate::saga::stake::summarize(stake, &[]);
            let mut text = format!("data at stake: {}", crate::saga::stake::totals(&s));
            if s.anonymised {
                text.push_str("; user names concealed in the reports: totals only");
            }
            for u in &s.unavailable {
                text.push_str(&format!("; unavailable: {u}"));
            }
            if let Some(w) = crate::saga::stake::in_tenant_warning(stake) {
                text.push_str(&format!("; {w}"));
            }
            other(text)
        }
        Event::BackupAttested {
            who,
            why,
            in_tenant_policies,
        } => op(
            &format!(
                "attested a backup outside the tenant (on a person's word, not verified by closeout; {in_tenant_policies} in-tenant protection policies)"
            ),
            who,
            why,
        ),
        Event::GateClosed {
            gate: crate::saga::Gate::AttestBackup,
        } => Fact::WaitEnded {
            reason: "gate attest_backup passed on an operator's word (not verified by reading: nothing closeout reads proves a copy outside the tenant)".into(),
        },
        Event::GateClosed { gate } => Fact::WaitEnded {
            reason: format!(
                "gate {} passed (verified by reading): {}",
                snake(gate),
                gate_asked(*gate)
            ),
        },
        Event::PivotPassed { reason } => other(format!("point of no return passed: {reason}")),
        Event::Paused { who, why } if who == "closeout" => state("paused", why),
        Event::Paused { who, why } => op("paused", who, why),
        Event::Resumed { who, why } => op("resumed", who, why),
        Event::AbortRequested { who, why } => op("asked to abort", who, why),
        Event::AbortRefused { who, why, reason } => {
            op(&format!("asked to abort (refused: {reason})"), who, why)
        }
        Event::CompensationStarted { reason } => state("compensating", reason),
        Event::SagaCompleted => state("completed", ""),
        Event::TenantFoundGone { step } => other(format!(
            "the tenant was found deleted during step {step}: the token endpoint no longer knows it"
        )),
        Event::SagaRolledBack => state("rolled_back", ""),
        Event::SagaFailed { reason } => state("failed", reason),
        Event::TaskStopped { reason } => state("paused", &format!("saga task stopped: {reason}")),
        Event::NotificationSent { .. }
        | Event::NotificationAbandoned { .. }
        | Event::BatchJoined { .. }
        | Event::BatchFinished { .. } => other(crate::notify::describe(event)),
        Event::InventoryUsersRecorded { part, users } => other(format!(
            "inventory part {}: {} users",
            part.saturating_add(1),
            users.len()
        )),
    }
}

/// What an operator gate asks, in a few words (its instructions, recorded
/// when it opened, say it in full). By name, so that a gate added later
/// reads "what its instructions asked" until it is given words here.
pub fn gate_asked(gate: crate::saga::Gate) -> &'static str {
    match snake(&gate).as_str() {
        "cancel_subscriptions" => "cancel the subscriptions closeout cannot cancel",
        "delete_subscriptions" => "delete the subscriptions closeout cannot delete",
        "reactivate_subscriptions" => "reactivate the cancelled subscriptions",
        "delete_tenant" => "remove closeout's app and delete the tenant",
        "assign_app_role" => "assign closeout's app the role it lacks",
        "turn_off_directory_sync" => "turn off directory sync from on-premises",
        "end_subscriptions_elsewhere" => "end the subscriptions sold by someone else",
        _ => "what its instructions asked",
    }
}

/// The saga state an event leaves behind, for listings (`None`: no change).
pub fn state_after(event: &Event) -> Option<&'static str> {
    Some(match event {
        Event::SagaCompleted => "completed",
        Event::SagaRolledBack => "rolled_back",
        Event::SagaFailed { .. } => "failed",
        Event::Paused { .. } | Event::TaskStopped { .. } => "paused",
        Event::CompensationStarted { .. } => "compensating",
        Event::WaitStarted { .. } | Event::GateOpened { .. } => "waiting",
        _ => return None,
    })
}

/// Whether the event is bookkeeping that may follow a saga's end without
/// changing its state (notices delivered, the batch joined or ended).
pub fn is_bookkeeping(event: &Event) -> bool {
    matches!(
        event,
        Event::NotificationSent { .. }
            | Event::NotificationAbandoned { .. }
            | Event::BatchJoined { .. }
            | Event::BatchFinished { .. }
    )
}

/// One discovery observation in words.
fn describe(o: &crate::saga::closure::Observation) -> String {
    use crate::saga::closure::Answer;
    let a = |x: &Answer| match x {
        Answer::Found { issuer } => format!("served (issuer {issuer})"),
        Answer::NotFound { code } => format!("not found ({code})"),
    };
    let mut out = format!("tenant id {}", a(&o.tenant_id));
    if let (Some(name), Some(ans)) = (&o.domain_name, &o.domain) {
        out.push_str(&format!(", {name} {}", a(ans)));
    }
    out
}
