//! Builds event logs for the audit tests and benchmark: scripted closures of
//! the five steps made of real `saga::Event`s, appended through the real
//! `store::Store` (never hand-written bytes).
#![allow(dead_code)]

use closeout::audit::adapter::encode_event;
use closeout::model::{
    Applied, CallError, FailureClass, HttpInfo, PartnerStatus, SagaId, SecretSource, Subscription,
    SubscriptionMode, SubscriptionStatus, TenantSpec, Timestamp, User,
};
use closeout::saga::{
    Change, Event, Gate, Inventory, MfaView, SagaPolicy, SubscriptionRef, TenantView, UserRef,
};
use closeout::store::{Store, FIRST_SEQ};
use std::path::Path;

/// How one scripted closure goes.
#[derive(Clone, Debug)]
pub struct Script {
    /// The saga id.
    pub saga_id: String,
    /// The tenant closed.
    pub tenant_id: String,
    /// Users deleted in step 1 (besides the keep account).
    pub users: usize,
    /// Objects per intent.
    pub intent_size: usize,
    /// Throttle the deletion of every n-th user once (429, retried).
    pub throttle_every: Option<usize>,
    /// The last user deletion's outcome is lost (crash) and settled by a read.
    pub in_doubt: bool,
    /// Stop after step 1 with the last intent unanswered (a running saga).
    pub stop_in_step_1: bool,
}

impl Script {
    /// A closure of `users` users that goes through all five steps.
    pub fn new(saga_id: &str, tenant_id: &str, users: usize) -> Script {
        Script {
            saga_id: saga_id.into(),
            tenant_id: tenant_id.into(),
            users,
            intent_size: 20,
            throttle_every: None,
            in_doubt: false,
            stop_in_step_1: false,
        }
    }
}

fn user_id(tenant: &str, i: usize) -> String {
    format!("{tenant}-user-{i:06}")
}

fn http(method: &str, path: String, status: u16, n: usize) -> HttpInfo {
    HttpInfo {
        method: method.into(),
        path,
        status,
        request_id: format!("req-{n:08x}"),
    }
}

/// The events of one scripted closure, in order.
pub fn events(s: &Script) -> Vec<Event> {
    let t = s.tenant_id.as_str();
    let admin = format!("{t}-admin");
    let users: Vec<User> = (0..s.users)
        .map(|i| User {
            id: user_id(t, i),
            user_principal_name: format!("user{i}@{t}"),
            display_name: format!("User {i}"),
            account_enabled: true,
            on_premises_sync_enabled: false,
            user_type: "Member".into(),
        })
        .collect();
    let subs = vec![Subscription {
        id: format!("{t}-sub-graph"),
        commerce_subscription_id: format!("{t}-sub"),
        sku_id: "sku".into(),
        sku_part_number: "O365_BUSINESS_PREMIUM".into(),
        status: SubscriptionStatus::Enabled,
        is_trial: false,
        total_licenses: 25,
    }];
    let sub_ref = |status| SubscriptionRef {
        id: format!("{t}-sub"),
        sku: "O365_BUSINESS_PREMIUM".into(),
        status,
    };
    let policy = SagaPolicy {
        intent_size: s.intent_size,
        ..SagaPolicy::default()
    };
    let mut ev = vec![
        Event::SagaStarted {
            saga_id: SagaId(s.saga_id.clone()),
            spec: TenantSpec {
                tenant_id: t.into(),
                client_id: "app".into(),
                secret: SecretSource::File("/etc/closeout/secret".into()),
                keep: vec![format!("admin@{t}")],
                subscriptions: SubscriptionMode::PartnerCenter,
            },
            policy,
            submitted_by: "alice".into(),
            at: Timestamp(1_764_000_000_000),
        },
        Event::InventoryRecorded {
            inventory: Inventory {
                users: users.clone(),
                global_admins: vec![admin.clone()],
                subscriptions: subs,
                security_defaults: true,
                ca_policies: Vec::new(),
                applications: Vec::new(),
            },
        },
        Event::KeepListChecked {
            keep_ids: vec![admin.clone()],
        },
        Event::StepStarted { step: 1 },
        Event::UsersRead {
            users: users
                .iter()
                .map(|u| UserRef {
                    id: u.id.clone(),
                    upn: u.user_principal_name.clone(),
                })
                .collect(),
        },
    ];
    let mut change_id = 0u32;
    let mut n = 0usize;
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let chunks: Vec<&[String]> = ids.chunks(s.intent_size.max(1)).collect();
    let last_chunk = chunks.len().saturating_sub(1);
    for (ci, chunk) in chunks.into_iter().enumerate() {
        let id = change_id;
        change_id += 1;
        ev.push(Event::ChangeIntended {
            change_id: id,
            change: Change::DeleteUser,
            targets: chunk.to_vec(),
        });
        let last = chunk.len().saturating_sub(1);
        for (i, target) in chunk.iter().enumerate() {
            n += 1;
            let path = format!("/v1.0/users/{target}");
            if ci == last_chunk && i == last && (s.in_doubt || s.stop_in_step_1) {
                continue; // the outcome never made it to the log
            }
            if s.throttle_every
                .is_some_and(|k| k > 0 && n.is_multiple_of(k))
            {
                ev.push(Event::ChangeFailed {
                    change_id: id,
                    target: target.clone(),
                    http: http("DELETE", path.clone(), 429, n),
                    error: CallError {
                        class: FailureClass::Transient,
                        code: "TooManyRequests".into(),
                        message: format!("DELETE {path}: 429"),
                        retry_after: Some(std::time::Duration::from_millis(1500)),
                    },
                });
                ev.push(Event::RetryScheduled {
                    at: Timestamp(1_764_000_001_500),
                    attempt: 1,
                    reason: "TooManyRequests (Transient): throttled, Retry-After 1.5s".into(),
                    since: Timestamp(1_764_000_000_000),
                });
                let retry = change_id;
                change_id += 1;
                ev.push(Event::ChangeIntended {
                    change_id: retry,
                    change: Change::DeleteUser,
                    targets: vec![target.clone()],
                });
                ev.push(Event::ChangeApplied {
                    change_id: retry,
                    target: target.clone(),
                    http: http("DELETE", path, 204, n + 1_000_000),
                    applied: Applied::Done,
                });
            } else {
                ev.push(Event::ChangeApplied {
                    change_id: id,
                    target: target.clone(),
                    http: http("DELETE", path, 204, n),
                    applied: Applied::Done,
                });
            }
        }
    }
    if s.stop_in_step_1 {
        return ev;
    }
    if s.in_doubt {
        if let Some(last) = ids.last() {
            ev.push(Event::UsersChecked {
                present: Vec::new(),
                absent: vec![last.clone()],
            });
            ev.push(Event::InDoubtResolved {
                change: Change::DeleteUser,
                applied: vec![last.clone()],
                not_applied: Vec::new(),
            });
        }
    }
    ev.push(Event::StepCompleted { step: 1 });
    let sub = format!("{t}-sub");
    let pc = format!("/v1/customers/{t}/subscriptions/{sub}");
    for (step, status) in [(2u8, PartnerStatus::Suspended), (3, PartnerStatus::Deleted)] {
        ev.push(Event::StepStarted { step });
        if step == 3 {
            ev.push(Event::PivotPassed {
                reason: "subscriptions are being deleted".into(),
            });
        }
        let id = change_id;
        change_id += 1;
        ev.push(Event::ChangeIntended {
            change_id: id,
            change: Change::SetSubscription { status },
            targets: vec![sub.clone()],
        });
        ev.push(Event::ChangeApplied {
            change_id: id,
            target: sub.clone(),
            http: http("PATCH", pc.clone(), 200, 900 + usize::from(step)),
            applied: Applied::Done,
        });
        if step == 3 {
            ev.push(Event::WaitStarted {
                until: Timestamp(1_764_259_200_000),
                reason: "subscriptions deprovision (about 72 hours)".into(),
            });
        }
        ev.push(Event::SubscriptionsRead {
            subscriptions: vec![sub_ref(if step == 2 {
                SubscriptionStatus::Suspended
            } else {
                SubscriptionStatus::Deleted
            })],
        });
        ev.push(Event::StepCompleted { step });
    }
    ev.push(Event::StepStarted { step: 4 });
    let id = change_id;
    ev.push(Event::ChangeIntended {
        change_id: id,
        change: Change::DisableSecurityDefaults,
        targets: vec![closeout::saga::SECURITY_DEFAULTS.into()],
    });
    ev.push(Event::ChangeApplied {
        change_id: id,
        target: closeout::saga::SECURITY_DEFAULTS.into(),
        http: http(
            "PATCH",
            "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy".into(),
            204,
            999,
        ),
        applied: Applied::Done,
    });
    let mfa = MfaView {
        security_defaults: false,
        ca_policies: Vec::new(),
        per_user: Vec::new(),
    };
    ev.push(Event::MfaRead { mfa: mfa.clone() });
    ev.push(Event::StepCompleted { step: 4 });
    ev.push(Event::StepStarted { step: 5 });
    ev.push(Event::TenantRead {
        view: TenantView {
            users: vec![UserRef {
                id: admin.clone(),
                upn: format!("admin@{t}"),
            }],
            subscriptions: vec![sub_ref(SubscriptionStatus::Deleted)],
            mfa,
            applications: Vec::new(),
        },
    });
    ev.push(Event::GateOpened {
        gate: Gate::DeleteTenant,
        instructions: format!("delete tenant {t} in the Entra admin center"),
    });
    ev.push(Event::GateConfirmed {
        who: "alice".into(),
        why: "deleted in the Entra admin center".into(),
    });
    ev.push(Event::TenantChecked { exists: false });
    ev.push(Event::GateClosed {
        gate: Gate::DeleteTenant,
    });
    ev.push(Event::StepCompleted { step: 5 });
    ev.push(Event::SagaCompleted);
    ev
}

/// Appends the sagas' events through the real store in `dir`, interleaved
/// (each saga's events in chunks of `chunk`, the sagas taking turns), as a
/// daemon running them side by side would.
pub fn build(dir: &Path, sagas: &[(String, Vec<Event>)], chunk: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let store = Store::open(dir).expect("open store");
        let mut next: Vec<usize> = vec![0; sagas.len()];
        loop {
            let mut any = false;
            for (i, (id, events)) in sagas.iter().enumerate() {
                let from = next[i];
                if from >= events.len() {
                    continue;
                }
                any = true;
                let to = (from + chunk.max(1)).min(events.len());
                let payloads: Vec<Vec<u8>> = events[from..to]
                    .iter()
                    .map(|e| encode_event(e).expect("encode event"))
                    .collect();
                store
                    .append(&SagaId(id.clone()), FIRST_SEQ + from as u64, payloads, None)
                    .await
                    .expect("append");
                next[i] = to;
            }
            if !any {
                break;
            }
        }
        store.close().await.expect("close store");
    });
}

/// Runs the real `closeout` binary.
pub fn closeout(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(args)
        .output()
        .expect("run closeout");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two sagas of the standard test log: `contoso` (12 users, throttled every
/// 5th deletion, one in-doubt deletion settled by reading) and `fabrikam`
/// (3 users, still running with one deletion unanswered).
pub fn standard(dir: &Path) -> Vec<(String, Vec<Event>)> {
    let mut a = Script::new("saga-contoso", "contoso.onmicrosoft.com", 12);
    a.intent_size = 5;
    a.throttle_every = Some(5);
    a.in_doubt = true;
    let mut b = Script::new("saga-fabrikam", "fabrikam.onmicrosoft.com", 3);
    b.stop_in_step_1 = true;
    let sagas = vec![
        (a.saga_id.clone(), events(&a)),
        (b.saga_id.clone(), events(&b)),
    ];
    build(dir, &sagas, 4);
    sagas
}

/// How many audit entries (jsonl lines) an event becomes.
pub fn entries_of(e: &Event) -> usize {
    match e {
        Event::ChangeIntended { targets, .. } if !targets.is_empty() => targets.len(),
        Event::InDoubtResolved {
            applied,
            not_applied,
            ..
        } if !(applied.is_empty() && not_applied.is_empty()) => applied.len() + not_applied.len(),
        _ => 1,
    }
}

/// A small XML-ish well-formedness check of the HTML report (written as
/// XHTML): tags closed in order, quoted attributes, known entities only.
pub fn well_formed(doc: &str) -> Result<(), String> {
    let body = doc.strip_prefix("<!DOCTYPE html>").ok_or("no doctype")?;
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(['<', '&']) {
        let tail = &rest[i..];
        if tail.starts_with('&') {
            let end = tail.find(';').ok_or("unterminated entity")?;
            let name = &tail[1..end];
            if !["amp", "lt", "gt", "quot", "#39"].contains(&name) {
                return Err(format!("bad entity &{name};"));
            }
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail.find('>').ok_or("unterminated tag")?;
        let tag = &tail[1..end];
        rest = &tail[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().ok_or("empty tag")?;
            if tag.matches('"').count() % 2 != 0 || tag.contains('<') {
                return Err(format!("bad attributes in <{tag}>"));
            }
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}
