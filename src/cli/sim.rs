//! `closeout sim` (being built).

/// Arguments of `closeout sim`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `closeout sim`.
pub fn run(_args: Args) -> Result<(), super::Error> {
    Err(super::Error::Failed(anyhow::anyhow!(
        "closeout sim is not built yet"
    )))
}
