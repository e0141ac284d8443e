//! `closeout verify` (being built).

/// Arguments of `closeout verify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `closeout verify`.
pub fn run(_args: Args) -> Result<(), super::Error> {
    Err(super::Error::Failed(anyhow::anyhow!(
        "closeout verify is not built yet"
    )))
}
