//! `closeout plan BATCH`: the dry run. Validates the batch file here; the
//! inventory and the list of what would be done come with the executor.

use super::common::ConfigArg;
use super::Error;
use crate::config::BatchFile;
use std::path::PathBuf;

/// Arguments of `closeout plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The batch file.
    #[arg(value_name = "BATCH")]
    batch: PathBuf,
}

/// Runs `closeout plan`.
pub fn run(args: Args) -> Result<(), Error> {
    let _ = args.config.load()?;
    let batch = BatchFile::load(&args.batch).map_err(|e| Error::Invalid(e.into()))?;
    batch
        .check_secret_files()
        .map_err(|e| Error::Invalid(e.into()))?;
    Err(Error::Failed(anyhow::anyhow!(
        "closeout plan is not available yet: it needs the saga executor"
    )))
}
