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

use super::common::{block_on, load_batch, ConfigArg};
use super::Error;
use crate::config::{BatchFile, Config};
use crate::graph;
use crate::model::SubscriptionMode;
use crate::runtime::executor::client_options;
pub use crate::runtime::plan::{
    KeepAccount, PermissionPlan, PlanContext, PlanGate, SubscriptionPlan, TenantPlan,
};
use crate::saga::{self, SubscriptionRef};
use futures::stream::{self, StreamExt};
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
    /// Let the running daemon read the tenants with its own credentials
    /// (under systemd only the service may read them).
    #[arg(long)]
    daemon: bool,
    /// The batch file (TOML) naming the tenants to plan for.
    #[arg(value_name = "BATCH")]
    batch: PathBuf,
}

/// Runs `closeout plan`.
pub fn run(args: Args) -> Result<(), Error> {
    let (_, config) = args.config.load()?;
    let batch = load_batch(&args.batch)?;
    let plans = block_on(async {
        // Credential-free: the tenants' GUIDs from their discovery documents.
        let guids = resolve_batch(&config, &batch).await?;
        let mut plans = if args.daemon {
            daemon_plan(&config, &batch).await?
        } else {
            check_organizations(&config, &batch, &guids).await?;
            plan_batch(&config, &batch).await?
        };
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

/// Reads every tenant's inventory and plans its closure, in batch order,
/// with this process's credentials.
pub async fn plan_batch(config: &Config, batch: &BatchFile) -> Result<Vec<TenantPlan>, Error> {
    let client = graph::Client::new(endpoints(config), client_options(config))
        .map_err(|e| Error::Failed(e.into()))?;
    let partner = match &config.partner_center {
        Some(pc) => Some(
            client.partner(
                &pc.tenant_id,
                &pc.client_id,
                graph::read_credential_async(&pc.secret)
                    .await
                    .map_err(|e| Error::Failed(anyhow::anyhow!("the partner's credential: {e}")))?,
            ),
        ),
        None => None,
    };
    let ctx = PlanContext {
        client: &client,
        partner: partner.as_ref(),
        users_before_term_end: config.saga.users_before_term_end,
        backup: config.saga.backup,
    };
    Ok(crate::runtime::plan::plan_tenants(&ctx, &batch.tenants, &batch.lines).await)
}

/// The running daemon's plan of the batch, with its own credentials (it
/// also checks each named `domain` against the organization).
async fn daemon_plan(config: &Config, batch: &BatchFile) -> Result<Vec<TenantPlan>, Error> {
    use crate::runtime::control::{Client, Request, Response};
    let mut client = Client::connect(&config.control_socket).await.map_err(|e| {
        Error::Failed(anyhow::anyhow!(
            "cannot reach the daemon at {}: {e}",
            config.control_socket.display()
        ))
    })?;
    let answer = client
        .call(&Request::Plan {
            tenants: batch.tenants.clone(),
            lines: batch.lines.clone(),
            domains: batch.domains.clone(),
        })
        .await
        .map_err(|e| Error::Failed(e.into()))?;
    match answer {
        Response::Plan { plans } => Ok(plans),
        Response::Error(crate::runtime::control::EngineError::Invalid(m)) => {
            Err(Error::Invalid(anyhow::anyhow!("{m}")))
        }
        Response::Error(e) => Err(Error::Failed(anyhow::anyhow!("the daemon: {e}"))),
        other => Err(Error::Failed(anyhow::anyhow!(
            "the daemon answered {other:?} to a plan"
        ))),
    }
}

fn endpoints(config: &Config) -> graph::Endpoints {
    graph::Endpoints {
        graph: config.endpoints.graph.clone(),
        login: config.endpoints.login.clone(),
        partner_center: config.endpoints.partner_center.clone(),
        cloud: config.cloud,
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
