//! The in-memory fake tenant and Partner Center of the saga model test: a
//! world with seeded faults that checks, on every destructive call, the
//! invariants that only the receiving side can see.

use closeout::model::{
    Application, Applied, CaPolicy, CaPolicyState, CallError, DeletedUser, FailureClass, HttpInfo,
    PartnerStatus, PerUserMfaState, Subscription, SubscriptionStatus, User, WriteOutcome,
};
use closeout::ports::{PartnerApi, TenantApi};
use closeout::saga::{Change, Event, Gate};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEPROVISION: Duration = Duration::from_secs(72 * 3600);

/// What one call to the fake suffers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    None,
    /// 429/503: nothing applied.
    Transient,
    /// Applied, but the answer is a 503 (in doubt).
    Ghost,
    /// Not applied, the answer lost (timeout: in doubt).
    Lost,
}

/// The fake tenant's world, shared by the saga's calls and the test's checks.
pub struct World {
    pub seed: u64,
    pub tenant_id: String,
    pub users: BTreeMap<String, User>,
    pub deleted: BTreeMap<String, User>,
    pub admins: BTreeSet<String>,
    pub keep_ids: BTreeSet<String>,
    /// By commerce id: the subscription and when it deprovisions.
    pub subs: BTreeMap<String, (Subscription, Option<u64>)>,
    pub security_defaults: bool,
    pub ca: Vec<CaPolicy>,
    pub mfa: BTreeMap<String, PerUserMfaState>,
    pub apps: Vec<Application>,
    pub exists: bool,
    /// Objects whose changes fail permanently until an operator heals them.
    pub poisoned: BTreeSet<String>,
    pub transient_rate: f64,
    pub ghost_rate: f64,
    pub lost_rate: f64,
    /// Per (operation, object): how often it was called (keys the faults).
    pub calls: BTreeMap<String, u32>,
    /// The test's clock.
    pub now: u64,
    /// The durable log, as the runtime would have appended it.
    pub log: Vec<Event>,
    /// Invariant violations seen at call time.
    pub violations: Vec<String>,
    /// Every destructive call that reached the tenant: (operation, object).
    pub destructive: Vec<(String, String)>,
}

impl World {
    fn fault(&mut self, op: &str, target: &str, write: bool) -> Fault {
        let key = format!("{op}:{target}");
        let n = self.calls.entry(key.clone()).or_insert(0);
        *n += 1;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in key.bytes().chain(n.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        if u < self.transient_rate {
            Fault::Transient
        } else if write && u < self.transient_rate + self.ghost_rate {
            Fault::Ghost
        } else if write && u < self.transient_rate + self.ghost_rate + self.lost_rate {
            Fault::Lost
        } else {
            Fault::None
        }
    }

    fn err(class: FailureClass, code: &str, retry_after: Option<Duration>) -> CallError {
        CallError {
            class,
            code: code.to_string(),
            message: format!("fake: {code}"),
            retry_after,
        }
    }

    fn read_fault(&mut self, op: &str) -> Result<(), CallError> {
        match self.fault(op, "", false) {
            Fault::Transient => Err(Self::err(
                FailureClass::Transient,
                "TooManyRequests",
                Some(Duration::from_millis(1500)),
            )),
            _ => Ok(()),
        }
    }

    /// The intent checks every destructive call must pass.
    fn check_destructive(&mut self, change: Change, target: &str) {
        let intents: BTreeMap<u32, Change> = self
            .log
            .iter()
            .filter_map(|e| match e {
                Event::ChangeIntended {
                    change_id, change, ..
                } => Some((*change_id, *change)),
                _ => None,
            })
            .collect();
        let intended = self.log.iter().any(|e| {
            matches!(e, Event::ChangeIntended { change: c, targets, .. }
                if *c == change && targets.iter().any(|t| t == target))
        });
        if !intended {
            self.violations
                .push(format!("{change:?} {target} without a durable intent"));
        }
        if change == Change::DeleteUser && self.keep_ids.contains(target) {
            self.violations
                .push(format!("keep account {target} targeted by a delete"));
        }
        if change == Change::DeleteUser {
            // Certain: a success recorded, or a read that found the user gone.
            let applied_before = self.log.iter().any(|e| match e {
                Event::ChangeApplied {
                    change_id,
                    target: t,
                    ..
                } => t == target && intents.get(change_id) == Some(&Change::DeleteUser),
                Event::InDoubtResolved {
                    change: Change::DeleteUser,
                    applied,
                    ..
                } => applied.iter().any(|t| t == target),
                Event::UsersChecked { absent, .. } => absent.iter().any(|t| t == target),
                _ => false,
            });
            if applied_before {
                self.violations.push(format!(
                    "user {target} deleted again after a certain first outcome"
                ));
            }
        }
        let compensating = matches!(
            change,
            Change::RestoreUser
                | Change::SetSubscription {
                    status: PartnerStatus::Active
                }
        );
        if compensating
            && self
                .log
                .iter()
                .any(|e| matches!(e, Event::PivotPassed { .. }))
        {
            self.violations
                .push(format!("{change:?} {target} compensated after the pivot"));
        }
        self.destructive
            .push((format!("{change:?}"), target.to_string()));
    }

    fn http(method: &str, path: String, status: u16) -> HttpInfo {
        HttpInfo {
            method: method.to_string(),
            path,
            status,
            request_id: "fake".to_string(),
        }
    }

    /// A write: applies `change` unless faulted; `Ok(true)` when it changed something.
    fn write(
        &mut self,
        op: &str,
        target: &str,
        method: &str,
        path: String,
        apply: impl FnOnce(&mut World) -> Option<bool>,
    ) -> WriteOutcome {
        if self.poisoned.contains(target) {
            return WriteOutcome {
                http: Self::http(method, path, 403),
                result: Err(Self::err(
                    FailureClass::Permanent,
                    "Authorization_RequestDenied",
                    None,
                )),
            };
        }
        let fault = self.fault(op, target, true);
        if fault == Fault::Transient {
            return WriteOutcome {
                http: Self::http(method, path, 429),
                result: Err(Self::err(
                    FailureClass::Transient,
                    "TooManyRequests",
                    Some(Duration::from_secs(2)),
                )),
            };
        }
        if fault == Fault::Lost {
            return WriteOutcome {
                http: Self::http(method, path, 0),
                result: Err(Self::err(FailureClass::InDoubt, "timeout", None)),
            };
        }
        let changed = apply(self);
        if fault == Fault::Ghost {
            return WriteOutcome {
                http: Self::http(method, path, 503),
                result: Err(Self::err(
                    FailureClass::InDoubt,
                    "serviceNotAvailable",
                    None,
                )),
            };
        }
        match changed {
            Some(true) => WriteOutcome {
                http: Self::http(method, path, 204),
                result: Ok(Applied::Done),
            },
            Some(false) => WriteOutcome {
                http: Self::http(method, path, 404),
                result: Ok(Applied::AlreadyDone),
            },
            None => WriteOutcome {
                http: Self::http(method, path, 400),
                result: Err(Self::err(
                    FailureClass::Permanent,
                    "Request_BadRequest",
                    None,
                )),
            },
        }
    }

    fn sub_status(&self, s: &(Subscription, Option<u64>)) -> SubscriptionStatus {
        match s.1 {
            Some(at) if self.now >= at => SubscriptionStatus::Deleted,
            _ => s.0.status,
        }
    }

    /// The diligent person behind an operator gate.
    pub fn operator(&mut self, gate: Gate) {
        let now = self.now;
        for (s, deprov) in self.subs.values_mut() {
            match gate {
                Gate::CancelSubscriptions if s.status.is_active() => {
                    s.status = SubscriptionStatus::Suspended;
                }
                Gate::DeleteSubscriptions if deprov.is_none() => {
                    s.status = SubscriptionStatus::Suspended;
                    *deprov = Some(now + DEPROVISION.as_millis() as u64);
                }
                Gate::ReactivateSubscriptions if deprov.is_none() => {
                    s.status = SubscriptionStatus::Enabled;
                }
                _ => {}
            }
        }
        if gate == Gate::DeleteTenant {
            let only_keep = self.users.keys().all(|id| self.keep_ids.contains(id));
            let deprovisioned = self.subs.values().all(|s| s.1.is_some_and(|at| now >= at));
            if only_keep && deprovisioned {
                self.apps.clear();
                self.exists = false;
            }
        }
    }
}

/// The fake tenant and partner: one shared world.
#[derive(Clone)]
pub struct Fake(pub Arc<Mutex<World>>);

impl Fake {
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut w)
    }
}

impl TenantApi for Fake {
    /// closeout's app holds Privileged Authentication Administrator, nothing
    /// is synced: the preflight stops nothing in the model.
    async fn app_permissions(&self) -> Result<Vec<String>, CallError> {
        self.with(|w| {
            w.read_fault("app_permissions")?;
            Ok(closeout::saga::permissions::ALL
                .iter()
                .map(|p| p.id.to_string())
                .collect())
        })
    }

    async fn read_preflight(&self) -> Result<closeout::model::Preflight, CallError> {
        self.with(|w| {
            w.read_fault("read_preflight")?;
            let mut role_assignments: Vec<(String, String)> = w
                .admins
                .iter()
                .map(|a| {
                    (
                        a.clone(),
                        closeout::model::GLOBAL_ADMIN_ROLE_TEMPLATE.to_string(),
                    )
                })
                .collect();
            role_assignments.push((
                "closeout-sp".to_string(),
                closeout::saga::preflight::PRIVILEGED_AUTH_ADMIN.to_string(),
            ));
            Ok(closeout::model::Preflight {
                role_assignments,
                synced_users: Vec::new(),
                directory_sync: false,
                app_principal: "closeout-sp".to_string(),
            })
        })
    }

    async fn list_users(&self) -> Result<Vec<User>, CallError> {
        self.with(|w| {
            w.read_fault("list_users")?;
            Ok(w.users.values().cloned().collect())
        })
    }
    async fn get_user(&self, id: &str) -> Result<Option<User>, CallError> {
        self.with(|w| {
            w.read_fault("get_user")?;
            Ok(w.users.get(id).cloned())
        })
    }
    async fn list_global_admins(&self) -> Result<Vec<String>, CallError> {
        self.with(|w| {
            w.read_fault("list_global_admins")?;
            Ok(w.admins.iter().cloned().collect())
        })
    }
    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, CallError> {
        self.with(|w| {
            w.read_fault("list_subscriptions")?;
            Ok(w.subs
                .values()
                .map(|s| Subscription {
                    status: w.sub_status(s),
                    ..s.0.clone()
                })
                .collect())
        })
    }
    /// The partner ("partner") sold every subscription of the fake tenant.
    async fn list_subscription_details(
        &self,
    ) -> Result<Vec<closeout::model::SubscriptionDetail>, CallError> {
        Ok(self
            .list_subscriptions()
            .await?
            .into_iter()
            .map(|base| closeout::model::SubscriptionDetail {
                base,
                owner_tenant_id: Some("partner".into()),
                next_lifecycle: None,
                created: None,
            })
            .collect())
    }
    async fn get_security_defaults(&self) -> Result<bool, CallError> {
        self.with(|w| {
            w.read_fault("get_security_defaults")?;
            Ok(w.security_defaults)
        })
    }
    async fn set_security_defaults(&self, enabled: bool) -> WriteOutcome {
        self.with(|w| {
            w.check_destructive(Change::DisableSecurityDefaults, "securityDefaults");
            let path = "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy".to_string();
            w.write("sd", "securityDefaults", "PATCH", path, |w| {
                w.security_defaults = enabled;
                Some(true)
            })
        })
    }
    async fn list_ca_policies(&self) -> Result<Vec<CaPolicy>, CallError> {
        self.with(|w| {
            w.read_fault("list_ca_policies")?;
            Ok(w.ca.clone())
        })
    }
    async fn set_ca_policy_state(&self, id: &str, state: CaPolicyState) -> WriteOutcome {
        self.with(|w| {
            w.check_destructive(Change::DisableCaPolicy, id);
            let path = format!("/v1.0/identity/conditionalAccess/policies/{id}");
            w.write("ca", id, "PATCH", path, |w| {
                let p = w.ca.iter_mut().find(|p| p.id == id)?;
                p.state = state;
                Some(true)
            })
        })
    }
    async fn get_user_mfa(&self, user_id: &str) -> Result<PerUserMfaState, CallError> {
        self.with(|w| {
            w.read_fault("get_user_mfa")?;
            Ok(w.mfa
                .get(user_id)
                .copied()
                .unwrap_or(PerUserMfaState::Disabled))
        })
    }
    async fn set_user_mfa(&self, user_id: &str, state: PerUserMfaState) -> WriteOutcome {
        self.with(|w| {
            w.check_destructive(Change::DisableUserMfa, user_id);
            let path = format!("/beta/users/{user_id}/authentication/requirements");
            w.write("mfa", user_id, "PATCH", path, |w| {
                w.mfa.insert(user_id.to_string(), state);
                Some(true)
            })
        })
    }
    async fn list_applications(&self) -> Result<Vec<Application>, CallError> {
        self.with(|w| {
            w.read_fault("list_applications")?;
            Ok(w.apps.clone())
        })
    }
    async fn delete_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        self.with(|w| {
            ids.iter()
                .map(|id| {
                    w.check_destructive(Change::DeleteUser, id);
                    let path = format!("/v1.0/users/{id}");
                    let o = w.write("delete_user", id, "DELETE", path, |w| {
                        match w.users.remove(id) {
                            Some(u) => {
                                w.deleted.insert(id.clone(), u);
                                Some(true)
                            }
                            None => Some(false),
                        }
                    });
                    (id.clone(), o)
                })
                .collect()
        })
    }
    async fn list_deleted_users(&self) -> Result<Vec<DeletedUser>, CallError> {
        self.with(|w| {
            w.read_fault("list_deleted_users")?;
            Ok(w.deleted
                .values()
                .map(|u| DeletedUser {
                    id: u.id.clone(),
                    user_principal_name: u.user_principal_name.clone(),
                    deleted_date_time: String::new(),
                })
                .collect())
        })
    }
    async fn restore_users(&self, ids: &[String]) -> Vec<(String, WriteOutcome)> {
        self.with(|w| {
            ids.iter()
                .map(|id| {
                    w.check_destructive(Change::RestoreUser, id);
                    let path = format!("/v1.0/directory/deletedItems/{id}/restore");
                    let o = w.write("restore_user", id, "POST", path, |w| {
                        let u = w.deleted.remove(id)?;
                        w.users.insert(id.clone(), u);
                        Some(true)
                    });
                    (id.clone(), o)
                })
                .collect()
        })
    }
    async fn deletion_check(&self) -> Result<closeout::saga::closure::DeletionCheck, CallError> {
        self.with(|w| {
            w.read_fault("deletion_check")?;
            Ok(closeout::saga::closure::DeletionCheck {
                users: w
                    .users
                    .values()
                    .map(|u| (u.id.clone(), u.user_principal_name.clone()))
                    .collect(),
                applications: w
                    .apps
                    .iter()
                    .map(|a| (a.id.clone(), a.display_name.clone()))
                    .collect(),
                service_principals: Vec::new(),
                subscriptions: w
                    .subs
                    .values()
                    .map(|(s, _)| closeout::saga::closure::SubscriptionSeen {
                        id: s.commerce_subscription_id.clone(),
                        sku: s.sku_part_number.clone(),
                        status: s.status,
                        trial: s.is_trial,
                        self_service: false,
                    })
                    .collect(),
                initial_domain: Some("model.onmicrosoft.com".into()),
            })
        })
    }

    async fn discovery(&self, _name: &str) -> Result<closeout::saga::closure::Answer, CallError> {
        self.with(|w| {
            w.read_fault("discovery")?;
            Ok(if w.exists {
                closeout::saga::closure::Answer::Found {
                    issuer: "https://login.example/model/v2.0".into(),
                }
            } else {
                closeout::saga::closure::Answer::NotFound {
                    code: "AADSTS90002".into(),
                }
            })
        })
    }

    async fn tenant_exists(&self) -> Result<bool, CallError> {
        self.with(|w| {
            w.read_fault("tenant_exists")?;
            Ok(w.exists)
        })
    }
    async fn organization_id(&self) -> Result<String, CallError> {
        self.with(|w| {
            w.read_fault("organization_id")?;
            Ok(FAKE_TENANT_GUID.to_string())
        })
    }
}

/// The GUID the fake tenant's organization answers with.
pub const FAKE_TENANT_GUID: &str = "00000000-0000-4000-8000-000000000001";

impl PartnerApi for Fake {
    fn partner_tenant_id(&self) -> Option<&str> {
        Some("partner")
    }

    /// Legacy subscriptions (GUID offer ids): suspended, then deleted, as the
    /// model has always driven them.
    async fn list_customer_subscriptions(
        &self,
        customer: &str,
    ) -> Result<Option<Vec<closeout::model::PartnerSubscription>>, CallError> {
        self.with(|w| {
            assert_eq!(customer, w.tenant_id);
            w.read_fault("list_customer_subscriptions")?;
            Ok(Some(
                w.subs
                    .values()
                    .map(|s| closeout::model::PartnerSubscription {
                        id: s.0.commerce_subscription_id.clone(),
                        offer_id: "8e46ac7b-7b9c-4f33-a5a3-1b3c2f6a4a19".into(),
                        quantity: s.0.total_licenses,
                        status: "active".into(),
                        auto_renew: true,
                        term_start: None,
                        term_end: None,
                    })
                    .collect(),
            ))
        })
    }

    async fn set_subscription_status(
        &self,
        customer: &str,
        id: &str,
        status: PartnerStatus,
    ) -> WriteOutcome {
        self.with(|w| {
            assert_eq!(customer, w.tenant_id);
            w.check_destructive(Change::SetSubscription { status }, id);
            let path = format!("/v1/customers/{customer}/subscriptions/{id}");
            let now = w.now;
            w.write("sub", id, "PATCH", path, |w| {
                let (s, deprov) = w.subs.get_mut(id)?;
                match status {
                    PartnerStatus::Suspended => s.status = SubscriptionStatus::Suspended,
                    PartnerStatus::Active if deprov.is_none() => {
                        s.status = SubscriptionStatus::Enabled;
                    }
                    PartnerStatus::Active => return None,
                    PartnerStatus::Deleted => {
                        s.status = SubscriptionStatus::Suspended;
                        if deprov.is_none() {
                            *deprov = Some(now + DEPROVISION.as_millis() as u64);
                        }
                    }
                }
                Some(true)
            })
        })
    }
}
