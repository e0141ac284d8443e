//! `closeout submit BATCH`: validates the batch file here (exit 2 naming the
//! file, line and key; a tenant named twice under any spelling, found by
//! resolving each to its GUID, names both lines), sends it to the daemon
//! (which resolves and checks again, atomically with registering the sagas),
//! and prints one `saga_id<TAB>tenant_id` line per tenant.

use super::common::{block_on, call, connect, load_batch, unexpected, ConfigArg};
use super::Error;
use crate::runtime::control::{Request, Response};
use std::path::PathBuf;

/// Arguments of `closeout submit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The batch file: `[[tenant]]` entries (see config/batch.example.toml).
    #[arg(value_name = "BATCH")]
    batch: PathBuf,
}

/// Runs `closeout submit`.
pub fn run(args: Args) -> Result<(), Error> {
    let (_, config) = args.config.load()?;
    let batch = load_batch(&args.batch)?;
    let sagas = block_on(async {
        // No daemon, nothing to resolve: say so before asking the network.
        drop(connect(&config).await?);
        // Here to name the batch's lines; the daemon resolves and checks
        // again (authoritatively, atomically with registering the sagas), so
        // a login service unreachable from here leaves the check to it.
        match super::plan::resolve_batch(&config, &batch).await {
            Ok(_) => {}
            Err(Error::Failed(e)) => {
                eprintln!("closeout: {e:#}; the daemon checks the tenants instead");
            }
            Err(e) => return Err(e),
        }
        let mut client = connect(&config).await?;
        match call(
            &mut client,
            &Request::Submit {
                tenants: batch.tenants,
                finish_with: batch.finish_with,
                domains: batch.domains,
            },
        )
        .await?
        {
            Response::Submitted { sagas } => Ok(sagas),
            other => Err(unexpected(other)),
        }
    })??;
    for s in sagas {
        println!("{}\t{}", s.saga_id, s.tenant_id);
    }
    Ok(())
}
