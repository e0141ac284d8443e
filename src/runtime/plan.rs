//! What a closure would do, read from the tenant exactly as a saga reads it
//! and changing nothing: `closeout plan` runs it with the CLI's credentials,
//! and the daemon for `closeout plan --daemon` with its own (under systemd
//! only the service may read them).

use crate::graph;
use crate::model::{SubscriptionMode, TenantSpec, Timestamp};
use crate::runtime::perform::perform;
use crate::saga::subscriptions::UsersSchedule;
use crate::saga::{self, Call, Event, Inventory, InventoryParts, Read, SubscriptionRef};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

/// Inventories read at once.
const CONCURRENT_READS: usize = 8;

/// Who reads, and the choices the config makes for new sagas.
pub struct PlanContext<'a> {
    /// The HTTP client (login, Graph).
    pub client: &'a graph::Client,
    /// The partner's Partner Center client, when the config names the partner.
    pub partner: Option<&'a graph::PartnerClient>,
    /// `[saga] users_before_term_end`.
    pub users_before_term_end: std::time::Duration,
    /// `[saga] backup`.
    pub backup: saga::stake::BackupMode,
}

/// What closing one tenant would do (the `--json` shape, one per tenant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantPlan {
    /// The tenant, as the batch names it.
    pub tenant_id: String,
    /// Its GUID, from its discovery document.
    pub tenant_guid: String,
    /// The line of its `[[tenant]]` entry in the batch file.
    pub line: usize,
    /// How its subscriptions would be handled.
    pub subscriptions: SubscriptionMode,
    /// Why its inventory could not be read (nothing else is then known).
    pub error: Option<String>,
    /// Why the saga would refuse to start (the keep list).
    pub refused: Option<String>,
    /// The keep accounts as resolved against the directory.
    pub keep: Vec<KeepAccount>,
    /// How many users would be deleted.
    pub users_to_delete: usize,
    /// Their UPNs, sorted.
    pub users: Vec<String>,
    /// Active subscriptions to cancel (step 2).
    pub cancel_subscriptions: Vec<SubscriptionRef>,
    /// Subscriptions to delete (step 3, the point of no return).
    pub delete_subscriptions: Vec<SubscriptionRef>,
    /// Whether security defaults would be disabled (step 4).
    pub disable_security_defaults: bool,
    /// Conditional Access policies requiring MFA to disable (step 4), by name.
    pub disable_ca_policies: Vec<String>,
    /// App registrations that block the tenant's deletion (step 5).
    pub applications: Vec<String>,
    /// What an operator should know first.
    pub warnings: Vec<String>,
    /// The operator gates step 1's preflight would open before any user is
    /// deleted (the saga waits there until a re-read shows them done).
    pub gates: Vec<PlanGate>,
    /// Each subscription: what it is, who sells it, what steps 2 and 3 do
    /// about it, and when it is expected to read `Deleted`.
    pub subscription_plan: Vec<SubscriptionPlan>,
    /// When step 1 would start (RFC 3339), when the closure waits for
    /// subscription terms to run out: `[saga] users_before_term_end` before
    /// the last one ends; absent when it starts at once.
    pub users_deleted_from: Option<String>,
    /// `[saga] backup`: `attest` (step 1 waits for an operator's word that
    /// the data is backed up outside the tenant) or `off` (a deliberate
    /// choice, no attestation asked for).
    pub backup: String,
    /// The mail and files the closure destroys, from the usage reports,
    /// with the Microsoft 365 Backup protection policies; `None` when not
    /// read (the inventory failed).
    pub data_at_stake: Option<crate::saga::stake::StakeSummary>,
    /// What closeout's app must hold for this closure (Graph application
    /// permissions and Entra roles), and whether it does.
    pub permissions: Vec<PermissionPlan>,
    /// The names of those it lacks (Microsoft's names); the saga waits at
    /// the `grant_permissions` or `assign_app_role` gate until granted.
    pub missing_permissions: Vec<String>,
}

/// One permission or role the closure needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermissionPlan {
    /// Microsoft's name (`User.ReadWrite.All`, `Privileged Authentication
    /// Administrator`).
    pub name: String,
    /// `graph_application_permission` or `entra_role`.
    pub kind: String,
    /// What closeout does with it.
    pub what: String,
    /// The step that needs it (0: the inventory).
    pub step: u8,
    /// Whether closeout's app holds it, as read now (`None`: not read).
    pub granted: Option<bool>,
}

/// What closeout would do about one subscription.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionPlan {
    /// Graph's commerce subscription id.
    pub id: String,
    /// The SKU's part number.
    pub sku: String,
    /// `nce`, `legacy`, `trial`, `self_service` or `unknown`.
    pub kind: String,
    /// `partner`, `other_partner` or `microsoft`.
    pub seller: String,
    /// `cancel`, `auto_renew_off`, `suspend_then_delete`, `operator` or
    /// `nothing`.
    pub action: String,
    /// For `operator`: where a person ends it.
    pub place: Option<String>,
    /// The current term's end, when known.
    pub term_end: Option<String>,
    /// When it is expected to read `Deleted` (RFC 3339), when it can be told.
    pub expected_end: Option<String>,
}

/// A gate the saga would open, and what it costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanGate {
    /// The step whose start it holds.
    pub step: u8,
    /// Its name (as in the metrics): `assign_app_role`, `turn_off_directory_sync`.
    pub gate: String,
    /// What a person must do.
    pub instructions: String,
    /// The users it holds back (UPNs).
    pub users: Vec<String>,
}

/// One keep entry of the batch, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeepAccount {
    /// The entry as written (UPN or object id).
    pub entry: String,
    /// Its object id, when the directory has it.
    pub id: Option<String>,
    /// Whether it holds the Global Administrator role.
    pub global_admin: bool,
    /// Whether it can sign in (`accountEnabled`).
    pub enabled: bool,
}

/// Reads every tenant's inventory and plans its closure, in the order given
/// (`lines`: each tenant's batch line, for the output).
pub async fn plan_tenants(
    ctx: &PlanContext<'_>,
    tenants: &[TenantSpec],
    lines: &[usize],
) -> Vec<TenantPlan> {
    let client = ctx.client;
    // Owned items: a borrowed one trips the compiler's higher-ranked
    // lifetime check when this future must be `Send` (the daemon's socket).
    let items: Vec<(TenantSpec, usize)> =
        tenants.iter().cloned().zip(lines.iter().copied()).collect();
    let plans = stream::iter(items)
        .map(|(spec, line)| async move {
            let spec = &spec;
            let mut plan = match graph::read_credential_async(&spec.secret).await {
                Err(e) => unreadable(spec, e.to_string()),
                Ok(credential) => {
                    // One credential read and one client per tenant: every
                    // read below shares its token.
                    let api = client.tenant(&spec.tenant_id, &spec.client_id, credential);
                    match read_inventory(&api, spec).await {
                        Ok(inv) => plan_tenant(ctx, &api, spec, &inv).await,
                        Err(error) => unreadable(spec, error),
                    }
                }
            };
            plan.line = line;
            plan.backup = ctx.backup.as_str().to_string();
            if spec.subscriptions == SubscriptionMode::PartnerCenter && ctx.partner.is_none() {
                plan.warnings.push(
                    "subscriptions = \"partner-center\" but the config has no [partner_center] section"
                        .into(),
                );
            }
            plan
        })
        .buffered(CONCURRENT_READS)
        .collect()
        .await;
    plans
}

/// One tenant's plan once its inventory is read: what its subscriptions,
/// data at stake, permissions and step 1's preflight say.
async fn plan_tenant(
    ctx: &PlanContext<'_>,
    api: &graph::TenantClient,
    spec: &TenantSpec,
    inv: &Inventory,
) -> TenantPlan {
    let mut plan = tenant_plan(spec, inv);
    if spec.subscriptions == SubscriptionMode::PartnerCenter {
        match classify(api, ctx.partner, ctx.users_before_term_end, spec).await {
            Ok((p, schedule)) => {
                let late: Vec<String> = p
                    .iter()
                    .filter(|s| s.action != "cancel" && s.action != "nothing")
                    .filter_map(|s| s.term_end.clone())
                    .collect();
                if let Some(s) = &schedule {
                    plan.warnings.push(format!(
                        "subscriptions run to the end of their term (the last \
                         ends {}): auto-renew goes off first, and users are \
                         deleted from {} so that they can still be restored \
                         when it ends",
                        s.last_term_end.to_rfc3339(),
                        s.start.to_rfc3339()
                    ));
                    plan.users_deleted_from = Some(s.start.to_rfc3339());
                } else if let Some(last) = late.iter().max() {
                    plan.warnings.push(format!(
                        "a subscription's term ends {last}: deleted users can be \
                         restored for 30 days only, so a closure that waits for \
                         it passes its point of no return when that window \
                         closes (closeout records it as the pivot)"
                    ));
                }
                plan.subscription_plan = p;
            }
            Err(e) => plan.warnings.push(e),
        }
    }
    match read_stake(api, spec).await {
        Ok(stake) => {
            let upns: Vec<&str> = plan.users.iter().map(String::as_str).collect();
            plan.data_at_stake = Some(saga::stake::summarize(&stake, &upns));
            if let Some(w) = saga::stake::in_tenant_warning(&stake) {
                plan.warnings.push(w);
            }
        }
        Err(e) => plan.warnings.push(e),
    }
    let required = saga::permissions::required(&saga::plan(spec, inv), true);
    let granted = read_permissions(api).await;
    let missing = match &granted {
        Ok(ids) => saga::permissions::missing(&required, ids),
        Err(e) => {
            plan.warnings.push(e.clone());
            Vec::new()
        }
    };
    // The informational ones are listed with the rest, never as missing:
    // without them the data at stake reads "unavailable" (a warning).
    let informational = saga::permissions::informational_ones();
    let lacking_informational = match &granted {
        Ok(ids) => saga::permissions::missing(&informational, ids),
        Err(_) => Vec::new(),
    };
    if !lacking_informational.is_empty() {
        plan.warnings.push(format!(
            "closeout's app lacks {}: the data at stake (usage reports, Microsoft 365 Backup \
             policies) reads as unavailable where it needs them; nothing waits for them",
            lacking_informational.join(", ")
        ));
    }
    plan.permissions = required
        .iter()
        .chain(informational.iter())
        .map(|p| PermissionPlan {
            name: p.name.into(),
            kind: "graph_application_permission".into(),
            what: p.what.into(),
            step: p.step,
            granted: granted
                .as_ref()
                .ok()
                .map(|ids| ids.iter().any(|g| g.eq_ignore_ascii_case(p.id))),
        })
        .collect();
    if !missing.is_empty() {
        plan.gates.push(PlanGate {
            step: 1,
            gate: "grant_permissions".into(),
            instructions: saga::permissions::instructions(&spec.tenant_id, &missing),
            users: Vec::new(),
        });
    }
    plan.missing_permissions = missing;
    if plan.users_to_delete > 0 {
        match read_preflight(api, spec).await {
            Ok(pf) => {
                let gates = plan_gates(spec, inv, &pf);
                let role_missing = gates.iter().any(|g| g.gate == "assign_app_role");
                // Needed only to delete users who hold a
                // directory role.
                let targets = saga::plan(spec, inv).delete_users;
                let needed =
                    role_missing || targets.iter().any(|u| pf.roles_of(&u.id).next().is_some());
                if needed {
                    plan.permissions.push(PermissionPlan {
                        name: "Privileged Authentication Administrator".into(),
                        kind: "entra_role".into(),
                        what: "delete and restore users who hold administrator roles".into(),
                        step: 1,
                        granted: Some(!role_missing),
                    });
                }
                if role_missing {
                    plan.missing_permissions
                        .push("Privileged Authentication Administrator".into());
                }
                plan.gates.extend(gates);
            }
            Err(e) => plan.warnings.push(e),
        }
    }
    plan
}

/// Performs one of the saga's own reads of a tenant, exactly as a saga
/// performs it (with the partner's client for what Partner Center answers).
async fn tenant_read(
    api: &graph::TenantClient,
    partner: Option<&graph::PartnerClient>,
    tenant: &str,
    read: Read,
) -> Vec<Event> {
    let mut attempt = 1;
    loop {
        let events = perform(
            &Call::Read(read.clone()),
            api,
            partner,
            tenant,
            Timestamp::from_system(std::time::SystemTime::now()),
        )
        .await;
        // A transient refusal (a 429 while sagas of the same tenant read,
        // a 503) is waited out a few times, as the service asks; a saga
        // records its retries, a plan just reads again.
        let wait = events.iter().find_map(|e| match e {
            Event::ReadFailed { error, .. }
                if error.class == crate::model::FailureClass::Transient =>
            {
                Some(error.retry_after.unwrap_or(READ_PAUSE).min(MAX_READ_PAUSE))
            }
            _ => None,
        });
        match wait {
            Some(d) if attempt < READ_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(d).await;
            }
            _ => return events,
        }
    }
}

/// How often a plan's read is tried while the service refuses it for now.
const READ_ATTEMPTS: u32 = 5;
/// The pause before trying again when the service names none.
const READ_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest `Retry-After` a plan waits out before it reports the refusal.
const MAX_READ_PAUSE: std::time::Duration = std::time::Duration::from_secs(30);

/// The inventory, read exactly as step 0 of a saga reads it.
async fn read_inventory(api: &graph::TenantClient, spec: &TenantSpec) -> Result<Inventory, String> {
    let events = tenant_read(api, None, &spec.tenant_id, Read::Inventory).await;
    let mut parts = InventoryParts::default();
    for event in &events {
        if let Some(inventory) = parts.take(event) {
            return Ok(inventory);
        }
        if let Event::ReadFailed { error, .. } = event {
            return Err(format!(
                "cannot read the inventory: {} ({})",
                error.message, error.code
            ));
        }
    }
    Err("cannot read the inventory: no answer".into())
}

/// One read made exactly as a saga makes it, and what `pick` takes from the
/// event it records. A failure reads "cannot {what}{detail}: ...{then}".
async fn read_one<T>(
    api: &graph::TenantClient,
    partner: Option<&graph::PartnerClient>,
    spec: &TenantSpec,
    read: Read,
    (what, detail, then): (&str, &str, &str),
    pick: impl FnOnce(Event) -> Option<T>,
) -> Result<T, String> {
    match tenant_read(api, partner, &spec.tenant_id, read)
        .await
        .into_iter()
        .next()
    {
        Some(Event::ReadFailed { error, .. }) => Err(format!(
            "cannot {what}{detail}: {} ({}){then}",
            error.message, error.code
        )),
        Some(event) => pick(event).ok_or_else(|| format!("cannot {what}: no answer")),
        None => Err(format!("cannot {what}: no answer")),
    }
}

/// The data at stake, read exactly as a saga reads it before step 1.
async fn read_stake(
    api: &graph::TenantClient,
    spec: &TenantSpec,
) -> Result<saga::stake::DataAtStake, String> {
    let what = ("read the data at stake", "", "");
    read_one(api, None, spec, Read::DataAtStake, what, |e| match e {
        Event::DataAtStakeRecorded { stake } => Some(stake),
        _ => None,
    })
    .await
}

/// What each subscription is and what the saga would do about it, read
/// exactly as step 2 reads it (Graph's sellers, Partner Center's list).
async fn classify(
    api: &graph::TenantClient,
    partner: Option<&graph::PartnerClient>,
    users_before_term_end: std::time::Duration,
    spec: &TenantSpec,
) -> Result<(Vec<SubscriptionPlan>, Option<UsersSchedule>), String> {
    use crate::saga::subscriptions::{expected_end, plan_for, users_schedule, Plan};
    let what = (
        "classify the subscriptions",
        " (Graph sellers, Partner Center list)",
        "",
    );
    let subscriptions = read_one(
        api,
        partner,
        spec,
        Read::ClassifySubscriptions,
        what,
        |e| match e {
            Event::SubscriptionsClassified { subscriptions } => Some(subscriptions),
            _ => None,
        },
    )
    .await?;
    let now = Timestamp::from_system(std::time::SystemTime::now());
    Ok((
        subscriptions
            .iter()
            .map(|c| {
                let plan = plan_for(c, now);
                SubscriptionPlan {
                    id: c.id.clone(),
                    sku: c.sku.clone(),
                    kind: c.kind.name().into(),
                    seller: c.seller.name().into(),
                    action: plan.name().into(),
                    place: match &plan {
                        Plan::Operator(place) => Some(place.describe(&c.seller)),
                        _ => None,
                    },
                    term_end: c.term_end.map(Timestamp::to_rfc3339),
                    expected_end: expected_end(c, &plan, now).map(Timestamp::to_rfc3339),
                }
            })
            .collect(),
        users_schedule(&subscriptions, now, users_before_term_end),
    ))
}

/// The Graph application permissions closeout's app holds (app role ids).
async fn read_permissions(api: &graph::TenantClient) -> Result<Vec<String>, String> {
    api.app_permissions().await.map_err(|e| {
        format!(
            "cannot read closeout's app permissions (servicePrincipals/appRoleAssignments): {} ({}); the saga reads them again before step 1",
            e.message, e.code
        )
    })
}

/// Step 1's preflight, read exactly as the saga reads it.
async fn read_preflight(
    api: &graph::TenantClient,
    spec: &TenantSpec,
) -> Result<crate::model::Preflight, String> {
    let what = (
        "read step 1's preflight",
        " (directory roles, sync)",
        "; the saga reads it again before deleting anyone",
    );
    read_one(api, None, spec, Read::Preflight, what, |e| match e {
        Event::PreflightRead { preflight } => Some(preflight),
        _ => None,
    })
    .await
}

/// The gates step 1 would open, as the saga decides them.
pub fn plan_gates(
    spec: &TenantSpec,
    inv: &Inventory,
    pf: &crate::model::Preflight,
) -> Vec<PlanGate> {
    let plan = saga::plan(spec, inv);
    let targets: Vec<(String, String)> = plan
        .delete_users
        .iter()
        .map(|u| (u.id.clone(), u.upn.clone()))
        .collect();
    saga::preflight::findings(&spec.tenant_id, pf, &targets)
        .into_iter()
        .map(|f| PlanGate {
            step: 1,
            gate: match f.gate {
                saga::Gate::AssignAppRole => "assign_app_role",
                _ => "turn_off_directory_sync",
            }
            .to_string(),
            instructions: f.instructions,
            users: f.users,
        })
        .collect()
}

fn unreadable(spec: &TenantSpec, error: String) -> TenantPlan {
    TenantPlan {
        tenant_id: spec.tenant_id.clone(),
        tenant_guid: String::new(),
        line: 0,
        subscriptions: spec.subscriptions,
        error: Some(error),
        refused: None,
        keep: Vec::new(),
        users_to_delete: 0,
        users: Vec::new(),
        cancel_subscriptions: Vec::new(),
        delete_subscriptions: Vec::new(),
        disable_security_defaults: false,
        disable_ca_policies: Vec::new(),
        applications: Vec::new(),
        warnings: Vec::new(),
        gates: Vec::new(),
        subscription_plan: Vec::new(),
        users_deleted_from: None,
        backup: String::new(),
        data_at_stake: None,
        permissions: Vec::new(),
        missing_permissions: Vec::new(),
    }
}

/// The saga's plan for this tenant, with the keep accounts spelled out.
pub fn tenant_plan(spec: &TenantSpec, inv: &Inventory) -> TenantPlan {
    let plan = saga::plan(spec, inv);
    let keep = spec
        .keep
        .iter()
        .map(|entry| {
            let user = inv
                .users
                .iter()
                .find(|u| &u.id == entry || u.user_principal_name.eq_ignore_ascii_case(entry));
            KeepAccount {
                entry: entry.clone(),
                id: user.map(|u| u.id.clone()),
                global_admin: user.is_some_and(|u| inv.global_admins.contains(&u.id)),
                enabled: user.is_some_and(|u| u.account_enabled),
            }
        })
        .collect();
    let ca_name = |id: &String| {
        inv.ca_policies
            .iter()
            .find(|p| &p.id == id)
            .map(|p| p.display_name.clone())
            .unwrap_or_else(|| id.clone())
    };
    let mut users: Vec<String> = plan.delete_users.iter().map(|u| u.upn.clone()).collect();
    users.sort();
    TenantPlan {
        tenant_id: spec.tenant_id.clone(),
        tenant_guid: String::new(),
        line: 0,
        subscriptions: spec.subscriptions,
        error: None,
        refused: plan.keep.as_ref().err().cloned(),
        keep,
        users_to_delete: plan.delete_users.len(),
        users,
        disable_ca_policies: plan.disable_ca_policies.iter().map(ca_name).collect(),
        cancel_subscriptions: plan.cancel_subscriptions,
        delete_subscriptions: plan.delete_subscriptions,
        disable_security_defaults: plan.disable_security_defaults,
        applications: plan.applications,
        warnings: plan.warnings,
        gates: Vec::new(),
        subscription_plan: Vec::new(),
        users_deleted_from: None,
        backup: String::new(),
        data_at_stake: None,
        permissions: Vec::new(),
        missing_permissions: Vec::new(),
    }
}
