//! `closeout audit` (being built).

/// Arguments of `closeout audit`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `closeout audit`.
pub fn run(_args: Args) -> Result<(), super::Error> {
    Err(super::Error::Failed(anyhow::anyhow!(
        "closeout audit is not built yet"
    )))
}
