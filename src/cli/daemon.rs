//! `closeout daemon`: runs the daemon in the foreground (systemd
//! `Type=notify`) until SIGTERM or SIGINT.

use super::common::ConfigArg;
use super::Error;
use crate::runtime::{self, logging, signals};

/// Arguments of `closeout daemon`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
}

/// Runs `closeout daemon`.
pub fn run(args: Args) -> Result<(), Error> {
    let (path, config) = args.config.load()?;
    logging::init(&config.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(anyhow::anyhow!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let signals = signals::install().map_err(runtime::Error::Signals)?;
        runtime::run(
            path,
            config,
            signals::wait_for(signals.shutdown),
            signals.events,
        )
        .await
    })
    .map_err(|e| match e {
        runtime::Error::Config(e) => Error::Invalid(e.into()),
        e => Error::Failed(e.into()),
    })
}
