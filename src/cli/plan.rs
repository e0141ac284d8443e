//! `closeout plan [--config FILE] BATCH`: the dry run. Validates the batch as
//! `submit` does, reads each tenant's inventory through the Graph client
//! (reads only: no change is made, the daemon need not run and its data dir is
//! not opened), and prints what closing each tenant would do, from
//! [`saga::plan`]. `--json` prints the same as one JSON document.
//!
//! Every tenant is first resolved to its GUID through its OpenID discovery
//! document (no credentials needed): a batch naming one tenant twice, under
//! any spelling, is refused before anything is read. Step 1's preflight is
//! read too: the operator gates it would open (a role for closeout's app,
//! directory sync off) are listed as `gates`, a cost in waiting rather than
//! a failure.
//!
//! Exit status: 0 when every tenant can be closed as submitted (gates
//! included: the saga waits at them); 2 when a keep list is refused (empty,
//! unknown account, no enabled Global Administrator), a tenant is unknown or
//! named twice; 1 when an inventory could not be read.

use super::common::{block_on, ConfigArg};
use super::Error;
use crate::config::{BatchFile, Config};
use crate::graph;
use crate::model::{SubscriptionMode, TenantSpec, Timestamp};
use crate::runtime::executor::client_options;
use crate::runtime::perform::perform;
use crate::saga::{self, Call, Event, Inventory, InventoryParts, Read, SubscriptionRef};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::path::PathBuf;

/// Inventories read at once.
const CONCURRENT_READS: usize = 8;
/// UPNs listed per tenant in the text output (`--json` lists them all).
const SHOWN_USERS: usize = 5;

/// Arguments of `closeout plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// The batch file.
    #[arg(value_name = "BATCH")]
    batch: PathBuf,
}

/// What closing one tenant would do (the `--json` shape, one per tenant).
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
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

/// Runs `closeout plan`.
pub fn run(args: Args) -> Result<(), Error> {
    let (_, config) = args.config.load()?;
    let batch = BatchFile::load(&args.batch).map_err(|e| Error::Invalid(e.into()))?;
    batch
        .check_secret_files()
        .map_err(|e| Error::Invalid(e.into()))?;
    let plans = block_on(async {
        let guids = resolve_batch(&config, &batch).await?;
        check_organizations(&config, &batch, &guids).await?;
        let mut plans = plan_batch(&config, &batch).await?;
        for (p, g) in plans.iter_mut().zip(guids) {
            p.tenant_guid = g;
        }
        Ok::<_, Error>(plans)
    })??;
    if args.json {
        let text = serde_json::to_string_pretty(&plans)
            .map_err(|e| Error::Failed(anyhow::anyhow!("cannot encode the plan: {e}")))?;
        println!("{text}");
    } else {
        for p in &plans {
            print_text(p);
        }
    }
    let failed = plans.iter().filter(|p| p.error.is_some()).count();
    let refused = plans.iter().filter(|p| p.refused.is_some()).count();
    if failed > 0 {
        return Err(Error::Failed(anyhow::anyhow!(
            "{failed} of {} tenants could not be inventoried",
            plans.len()
        )));
    }
    if refused > 0 {
        return Err(Error::Invalid(anyhow::anyhow!(
            "{refused} of {} tenants would be refused: fix their keep lists in {}",
            plans.len(),
            batch.file.display()
        )));
    }
    Ok(())
}

/// Every tenant's GUID, in batch order, from its discovery document (no
/// credentials); refuses (invalid input) a tenant the login service does not
/// know and a batch naming one tenant twice under any spelling, naming both
/// entries by file and line.
pub async fn resolve_batch(config: &Config, batch: &BatchFile) -> Result<Vec<String>, Error> {
    let client = graph::Client::new(endpoints(config), client_options(config))
        .map_err(|e| Error::Failed(e.into()))?;
    let client = &client;
    let found: Vec<_> = stream::iter(&batch.tenants)
        .map(|spec| async move { client.resolve_tenant(&spec.tenant_id).await })
        .buffered(CONCURRENT_READS)
        .collect()
        .await;
    let file = batch.file.display();
    let mut guids = Vec::with_capacity(found.len());
    for ((spec, line), r) in batch.tenants.iter().zip(&batch.lines).zip(found) {
        match r {
            Ok(g) => guids.push(g),
            Err(e) if e.class == crate::model::FailureClass::Permanent => {
                return Err(Error::Invalid(anyhow::anyhow!(
                    "{file}:{line}: tenant_id {}: {}",
                    spec.tenant_id,
                    e.message
                )))
            }
            Err(e) => {
                return Err(Error::Failed(anyhow::anyhow!(
                    "{file}:{line}: tenant_id {}: cannot resolve the tenant: {}",
                    spec.tenant_id,
                    e.message
                )))
            }
        }
    }
    let line = |i: usize| format!("{file}:{}", batch.lines.get(i).copied().unwrap_or(0));
    crate::runtime::executor::duplicates(&batch.tenants, &guids, line)
        .map_err(|m| Error::Invalid(anyhow::anyhow!("{m}")))?;
    // A named initial domain must belong to the same tenant (discovery,
    // no credentials); the organization itself is checked with them.
    for (i, (spec, domain)) in batch.tenants.iter().zip(&batch.domains).enumerate() {
        let Some(domain) = domain else { continue };
        let at = line(i);
        match client.resolve_tenant(domain).await {
            Ok(g) if g == guids[i] => {}
            Ok(g) => {
                return Err(Error::Invalid(anyhow::anyhow!(
                    "{at}: domain {domain} belongs to tenant {g}, but tenant_id {} is {}: refusing the tenant",
                    spec.tenant_id,
                    guids[i]
                )))
            }
            Err(e) if e.class == crate::model::FailureClass::Permanent => {
                return Err(Error::Invalid(anyhow::anyhow!(
                    "{at}: domain {domain}: {}",
                    e.message
                )))
            }
            Err(e) => {
                return Err(Error::Failed(anyhow::anyhow!(
                    "{at}: domain {domain}: cannot resolve it: {}",
                    e.message
                )))
            }
        }
    }
    Ok(guids)
}

/// With credentials: every tenant that names a `domain` is the organization
/// its id and domain say (`GET /v1.0/organization`), else invalid input
/// naming the entry.
pub async fn check_organizations(
    config: &Config,
    batch: &BatchFile,
    guids: &[String],
) -> Result<(), Error> {
    let client = graph::Client::new(endpoints(config), client_options(config))
        .map_err(|e| Error::Failed(e.into()))?;
    let file = batch.file.display();
    for (i, (spec, domain)) in batch.tenants.iter().zip(&batch.domains).enumerate() {
        let (Some(domain), Some(guid)) = (domain, guids.get(i)) else {
            continue;
        };
        let at = format!("{file}:{}", batch.lines.get(i).copied().unwrap_or(0));
        let credential = graph::read_credential_async(&spec.secret)
            .await
            .map_err(|e| Error::Failed(anyhow::anyhow!("{at}: {e}")))?;
        let api = client.tenant(&spec.tenant_id, &spec.client_id, credential);
        match api.check_identity(guid, domain).await {
            Ok(()) => {}
            Err(e) if e.code == "tenant_mismatch" => {
                return Err(Error::Invalid(anyhow::anyhow!("{at}: {}", e.message)))
            }
            Err(e) => {
                return Err(Error::Failed(anyhow::anyhow!(
                    "{at}: cannot confirm the organization: {} ({})",
                    e.message,
                    e.code
                )))
            }
        }
    }
    Ok(())
}

fn endpoints(config: &Config) -> graph::Endpoints {
    graph::Endpoints {
        graph: config.endpoints.graph.clone(),
        login: config.endpoints.login.clone(),
        partner_center: config.endpoints.partner_center.clone(),
        cloud: config.cloud,
    }
}

/// Reads every tenant's inventory and plans its closure, in batch order.
pub async fn plan_batch(config: &Config, batch: &BatchFile) -> Result<Vec<TenantPlan>, Error> {
    let endpoints = graph::Endpoints {
        graph: config.endpoints.graph.clone(),
        login: config.endpoints.login.clone(),
        partner_center: config.endpoints.partner_center.clone(),
        cloud: config.cloud,
    };
    let client = graph::Client::new(endpoints, client_options(config))
        .map_err(|e| Error::Failed(e.into()))?;
    let client = &client;
    let plans = stream::iter(batch.tenants.iter().zip(&batch.lines))
        .map(|(spec, line)| async move {
            let mut plan = match read_inventory(client, spec).await {
                Ok(inv) => {
                    let mut plan = tenant_plan(spec, &inv);
                    if spec.subscriptions == SubscriptionMode::PartnerCenter {
                        match classify(client, config, spec).await {
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
                    match read_stake(client, spec).await {
                        Ok(stake) => {
                            let upns: Vec<&str> = plan.users.iter().map(String::as_str).collect();
                            plan.data_at_stake = Some(saga::stake::summarize(&stake, &upns));
                            if let Some(w) = saga::stake::in_tenant_warning(&stake) {
                                plan.warnings.push(w);
                            }
                        }
                        Err(e) => plan.warnings.push(e),
                    }
                    let required = saga::permissions::required(&saga::plan(spec, &inv), true);
                    let granted = read_permissions(client, spec).await;
                    let missing = match &granted {
                        Ok(ids) => saga::permissions::missing(&required, ids),
                        Err(e) => {
                            plan.warnings.push(e.clone());
                            Vec::new()
                        }
                    };
                    plan.permissions = required
                        .iter()
                        .map(|p| PermissionPlan {
                            name: p.name.into(),
                            kind: "graph_application_permission".into(),
                            what: p.what.into(),
                            step: p.step,
                            granted: granted.as_ref().ok().map(|_| !missing.iter().any(|m| m == p.name)),
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
                        match read_preflight(client, spec).await {
                            Ok(pf) => {
                                let gates = plan_gates(spec, &inv, &pf);
                                let role_missing = gates.iter().any(|g| g.gate == "assign_app_role");
                                // Needed only to delete users who hold a
                                // directory role.
                                let targets = saga::plan(spec, &inv).delete_users;
                                let needed = role_missing
                                    || targets.iter().any(|u| pf.roles_of(&u.id).next().is_some());
                                if needed {
                                    plan.permissions.push(PermissionPlan {
                                        name: "Privileged Authentication Administrator".into(),
                                        kind: "entra_role".into(),
                                        what: "delete and restore users who hold administrator roles"
                                            .into(),
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
                Err(error) => unreadable(spec, error),
            };
            plan.line = *line;
            plan.backup = config.saga.backup.as_str().to_string();
            if spec.subscriptions == SubscriptionMode::PartnerCenter
                && config.partner_center.is_none()
            {
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
    Ok(plans)
}

/// Performs one of the saga's own reads of `spec`'s tenant, exactly as a
/// saga performs it, with the tenant's credential (a secret or a
/// certificate).
async fn tenant_read(
    client: &graph::Client,
    spec: &TenantSpec,
    read: Read,
) -> Result<Vec<Event>, String> {
    let credential = graph::read_credential_async(&spec.secret)
        .await
        .map_err(|e| e.to_string())?;
    let api = client.tenant(&spec.tenant_id, &spec.client_id, credential);
    Ok(perform(
        &Call::Read(read),
        &api,
        None::<&graph::PartnerClient>,
        &spec.tenant_id,
        Timestamp::from_system(std::time::SystemTime::now()),
    )
    .await)
}

/// The inventory, read exactly as step 0 of a saga reads it.
async fn read_inventory(client: &graph::Client, spec: &TenantSpec) -> Result<Inventory, String> {
    let events = tenant_read(client, spec, Read::Inventory).await?;
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

use crate::saga::subscriptions::UsersSchedule;

/// The data at stake, read exactly as a saga reads it before step 1.
async fn read_stake(
    client: &graph::Client,
    spec: &TenantSpec,
) -> Result<saga::stake::DataAtStake, String> {
    let events = tenant_read(client, spec, Read::DataAtStake).await?;
    match events.into_iter().next() {
        Some(Event::DataAtStakeRecorded { stake }) => Ok(stake),
        Some(Event::ReadFailed { error, .. }) => Err(format!(
            "cannot read the data at stake: {} ({})",
            error.message, error.code
        )),
        _ => Err("cannot read the data at stake: no answer".into()),
    }
}

/// What each subscription is and what the saga would do about it, read
/// exactly as step 2 reads it (Graph's sellers, Partner Center's list).
async fn classify(
    client: &graph::Client,
    config: &Config,
    spec: &TenantSpec,
) -> Result<(Vec<SubscriptionPlan>, Option<UsersSchedule>), String> {
    use crate::saga::subscriptions::{expected_end, plan_for, users_schedule, Plan};
    let secret = graph::read_credential(&spec.secret).map_err(|e| e.to_string())?;
    let api = client.tenant(&spec.tenant_id, &spec.client_id, secret);
    let partner = match &config.partner_center {
        Some(pc) => Some(client.partner(
            &pc.tenant_id,
            &pc.client_id,
            graph::read_credential(&pc.secret).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let events = perform(
        &Call::Read(Read::ClassifySubscriptions),
        &api,
        partner.as_ref(),
        &spec.tenant_id,
        now,
    )
    .await;
    match events.into_iter().next() {
        Some(Event::SubscriptionsClassified { subscriptions }) => Ok((
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
            users_schedule(&subscriptions, now, config.saga.users_before_term_end),
        )),
        Some(Event::ReadFailed { error, .. }) => Err(format!(
            "cannot classify the subscriptions (Graph sellers, Partner Center list): {} ({})",
            error.message, error.code
        )),
        _ => Err("cannot classify the subscriptions: no answer".into()),
    }
}

/// The Graph application permissions closeout's app holds (app role ids).
async fn read_permissions(
    client: &graph::Client,
    spec: &TenantSpec,
) -> Result<Vec<String>, String> {
    let credential = graph::read_credential(&spec.secret).map_err(|e| e.to_string())?;
    let api = client.tenant(&spec.tenant_id, &spec.client_id, credential);
    api.app_permissions().await.map_err(|e| {
        format!(
            "cannot read closeout's app permissions (servicePrincipals/appRoleAssignments): {} ({}); the saga reads them again before step 1",
            e.message, e.code
        )
    })
}

/// Step 1's preflight, read exactly as the saga reads it.
async fn read_preflight(
    client: &graph::Client,
    spec: &TenantSpec,
) -> Result<crate::model::Preflight, String> {
    let events = tenant_read(client, spec, Read::Preflight).await?;
    match events.into_iter().next() {
        Some(Event::PreflightRead { preflight }) => Ok(preflight),
        Some(Event::ReadFailed { error, .. }) => Err(format!(
            "cannot read step 1's preflight (directory roles, sync): {} ({}); the saga reads it again before deleting anyone",
            error.message, error.code
        )),
        _ => Err("cannot read step 1's preflight: no answer".into()),
    }
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

/// Prints one line with what tenants and services named (users, SKUs,
/// policies, apps, errors) escaped: it cannot drive the terminal or add a
/// line of its own.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", crate::escape::text(&format!($($arg)*)))
    };
}

fn print_text(p: &TenantPlan) {
    say!(
        "tenant {} ({}, batch line {})",
        p.tenant_id,
        p.tenant_guid,
        p.line
    );
    if let Some(e) = &p.error {
        say!("  ERROR: {e}");
        println!();
        return;
    }
    if let Some(r) = &p.refused {
        say!("  REFUSED: {r}");
    }
    for k in &p.keep {
        let what = match (&k.id, k.global_admin, k.enabled) {
            (None, _, _) => "not found in the directory".to_string(),
            (Some(id), true, true) => format!("{id}, Global Administrator"),
            (Some(id), true, false) => format!("{id}, Global Administrator, DISABLED"),
            (Some(id), false, _) => format!("{id}, not a Global Administrator"),
        };
        say!("  keep {} ({what})", k.entry);
    }
    let mut shown: Vec<&str> = p
        .users
        .iter()
        .take(SHOWN_USERS)
        .map(String::as_str)
        .collect();
    if p.users.len() > SHOWN_USERS {
        shown.push("...");
    }
    say!(
        "  step 1: delete {} users{}{}{}",
        p.users_to_delete,
        p.users_deleted_from
            .as_ref()
            .map(|t| format!(" from {t} (auto-renew off first)"))
            .unwrap_or_default(),
        if shown.is_empty() { "" } else { ": " },
        shown.join(", ")
    );
    let how = match p.subscriptions {
        SubscriptionMode::PartnerCenter => "through Partner Center",
        SubscriptionMode::Manual => "by a person in the Microsoft 365 admin center",
    };
    let subs = |s: &[SubscriptionRef]| {
        s.iter()
            .map(|s| format!("{} ({})", s.sku, s.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    say!(
        "  step 2: cancel {} subscriptions {how}: {}",
        p.cancel_subscriptions.len(),
        subs(&p.cancel_subscriptions)
    );
    say!(
        "  step 3: delete {} subscriptions {how} (point of no return): {}",
        p.delete_subscriptions.len(),
        subs(&p.delete_subscriptions)
    );
    for s in &p.subscription_plan {
        say!(
            "    subscription {} ({}): {} sold by {}: {}{}; term ends {}; expected deleted {}",
            s.sku,
            s.id,
            s.kind,
            s.seller,
            s.action,
            s.place
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            s.term_end.as_deref().unwrap_or("unknown"),
            s.expected_end.as_deref().unwrap_or("unknown"),
        );
    }
    say!(
        "  step 4: {}; disable {} Conditional Access policies requiring MFA{}{}",
        if p.disable_security_defaults {
            "disable security defaults"
        } else {
            "security defaults already off"
        },
        p.disable_ca_policies.len(),
        if p.disable_ca_policies.is_empty() {
            ""
        } else {
            ": "
        },
        p.disable_ca_policies.join(", ")
    );
    if p.applications.is_empty() {
        say!("  step 5: no app registration blocks the tenant's deletion");
    } else {
        say!(
            "  step 5: {} app registrations block the tenant's deletion (a Global Administrator removes them in the portal): {}",
            p.applications.len(),
            p.applications.join(", ")
        );
    }
    if let Some(stake) = &p.data_at_stake {
        say!("  data at stake: {}", saga::stake::describe(stake));
    }
    match p.backup.as_str() {
        "off" => say!(
            "  backup: off (a deliberate choice in the config: no one is asked to attest a backup before step 1)"
        ),
        _ => say!(
            "  backup: attest (a gate before step 1: the saga deletes no one until an operator attests, with `closeout confirm SAGA --backup --reason TEXT`, that the data is backed up outside the tenant; this gate rests on a person's word, since closeout cannot read a copy outside the tenant)"
        ),
    }
    if !p.missing_permissions.is_empty() {
        say!(
            "  permissions: closeout's app lacks {}",
            p.missing_permissions.join(", ")
        );
    } else if !p.permissions.is_empty() && p.permissions.iter().all(|x| x.granted == Some(true)) {
        say!(
            "  permissions: closeout's app holds the {} it needs",
            p.permissions
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for g in &p.gates {
        say!(
            "  GATE before step {} (the saga waits, deleting no one, until a re-read shows it done): {}",
            g.step, g.instructions
        );
    }
    for w in &p.warnings {
        say!("  WARNING: {w}");
    }
    println!();
}
