//! `closeout doctor`: checks that a batch can run, changing nothing: the
//! config and batch parse, every tenant resolves (login reachable), its
//! credential reads and gets a token (Graph reachable, its organization the
//! id and `domain` the batch names), the token endpoint's clock agrees with
//! this machine's (`Date` header; a client assertion or token is judged by
//! the service's clock), and the app holds the Microsoft Graph application
//! permissions closeout uses; the partner's app too when configured. One
//! line per tenant; exit 0 when every line is `ok`, 1 otherwise, 2 for an
//! invalid config or batch. With `--daemon` the running daemon does the
//! checks with its own credentials (under systemd only the service may read
//! them).

use super::common::{block_on, call, connect, load_batch, unexpected, ConfigArg};
use super::Error;
use crate::config::{BatchFile, Config};
use crate::graph;
use crate::runtime::control::{Request, Response};
use crate::runtime::doctor::{self, Finding};
use std::path::PathBuf;

/// Arguments of `closeout doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Ask the running daemon, which checks with its own credentials.
    #[arg(long)]
    daemon: bool,
    /// The batch file (TOML) naming the tenants to check.
    #[arg(value_name = "BATCH")]
    batch: PathBuf,
}

/// Checks the partner's app from the config.
async fn partner(client: &graph::Client, config: &Config) -> Option<Finding> {
    let pc = config.partner_center.as_ref()?;
    let credential = match graph::read_credential_async(&pc.secret).await {
        Ok(c) => c,
        Err(e) => {
            let mut f = Finding::new("partner");
            f.fail(e.to_string());
            return Some(f);
        }
    };
    let name = doctor::credential_name(&credential);
    let api = client.partner(&pc.tenant_id, &pc.client_id, credential);
    let mut f = doctor::partner(&api, Some(name)).await;
    f.guid = Some(pc.tenant_id.clone());
    Some(f)
}

/// Runs `closeout doctor`.
pub fn run(args: Args) -> Result<(), Error> {
    let (_, config) = args.config.load()?;
    let batch = load_batch(&args.batch)?;
    let findings = if args.daemon {
        block_on(async {
            let mut client = connect(&config).await?;
            match call(
                &mut client,
                &Request::Doctor {
                    tenants: batch.tenants.clone(),
                    domains: batch.domains.clone(),
                },
            )
            .await?
            {
                Response::Doctor { findings } => Ok(findings),
                other => Err(unexpected(other)),
            }
        })??
    } else {
        block_on(check(&config, &batch))??
    };
    if args.json {
        let text = serde_json::to_string_pretty(&findings)
            .map_err(|e| Error::Failed(anyhow::anyhow!("cannot encode the findings: {e}")))?;
        println!("{text}");
    } else {
        for f in &findings {
            println!("{}", f.line());
        }
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    if failed > 0 {
        return Err(Error::Failed(anyhow::anyhow!(
            "{failed} of {} checks failed",
            findings.len()
        )));
    }
    Ok(())
}

/// Every tenant's finding in batch order, then the partner's.
pub async fn check(config: &Config, batch: &BatchFile) -> Result<Vec<Finding>, Error> {
    let endpoints = graph::Endpoints {
        graph: config.endpoints.graph.clone(),
        login: config.endpoints.login.clone(),
        partner_center: config.endpoints.partner_center.clone(),
        cloud: config.cloud,
    };
    let client = graph::Client::new(endpoints, crate::runtime::executor::client_options(config))
        .map_err(|e| Error::Failed(e.into()))?;
    let mut out = Vec::with_capacity(batch.tenants.len() + 1);
    for (i, spec) in batch.tenants.iter().enumerate() {
        let domain = batch.domains.get(i).cloned().flatten();
        out.push(doctor::tenant(&client, spec, domain.as_deref()).await);
    }
    if let Some(p) = partner(&client, config).await {
        out.push(p);
    }
    Ok(out)
}
