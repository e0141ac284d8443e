//! `closeout submit BATCH`: validates the batch file here (exit 2 naming the
//! file, line and key), sends it to the daemon, and prints one
//! `saga_id<TAB>tenant_id` line per tenant.

use super::common::{block_on, call, connect, unexpected, ConfigArg};
use super::Error;
use crate::config::BatchFile;
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
    let batch = BatchFile::load(&args.batch).map_err(|e| Error::Invalid(e.into()))?;
    batch
        .check_secret_files()
        .map_err(|e| Error::Invalid(e.into()))?;
    let sagas = block_on(async {
        let mut client = connect(&config).await?;
        match call(
            &mut client,
            &Request::Submit {
                tenants: batch.tenants,
                finish_with: batch.finish_with,
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
