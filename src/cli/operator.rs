//! `closeout pause | resume | abort | confirm SAGA [--reason TEXT]`: operator
//! commands, recorded by the daemon as events with who (from the socket
//! peer's credentials) and why.

use super::common::{block_on, call, connect, unexpected, ConfigArg};
use super::Error;
use crate::runtime::control::{OperatorCommand, Request, Response};

/// Arguments shared by the four operator commands.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The saga id (as printed by `submit` and `status`).
    #[arg(value_name = "SAGA")]
    saga: String,
    /// Why, recorded with the command in the audit log.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

/// Runs one operator command.
pub fn run(command: OperatorCommand, args: Args) -> Result<(), Error> {
    let (_, config) = args.config.load()?;
    let request = Request::Command {
        saga: args.saga.clone(),
        command,
        reason: args.reason,
    };
    block_on(async {
        let mut client = connect(&config).await?;
        match call(&mut client, &request).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    })??;
    let done = match command {
        OperatorCommand::Pause => "paused",
        OperatorCommand::Resume => "resumed",
        OperatorCommand::Abort => "abort recorded for",
        OperatorCommand::Confirm => "gate re-check requested for",
    };
    eprintln!("{done} saga {}", args.saga);
    Ok(())
}
