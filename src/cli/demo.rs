//! `closeout demo`: an end-to-end run on simulated tenants. It needs the
//! simulator and the executor, which are not in this build yet.

use super::Error;

/// Arguments of `closeout demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `closeout demo`.
pub fn run(_args: Args) -> Result<(), Error> {
    Err(Error::Failed(anyhow::anyhow!(
        "closeout demo is not available yet: it needs the simulator and the saga executor"
    )))
}
