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
    /// With `confirm`: attest that the tenant's data is backed up outside
    /// the tenant, closing the backup gate on your word (needs --reason).
    #[arg(long)]
    backup: bool,
}

/// Runs one operator command.
pub fn run(command: OperatorCommand, args: Args) -> Result<(), Error> {
    let command = match (command, args.backup) {
        (OperatorCommand::Confirm, true) => {
            if args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return Err(Error::Invalid(anyhow::anyhow!(
                    "confirm --backup needs --reason TEXT: say where the copy outside the tenant is"
                )));
            }
            OperatorCommand::ConfirmBackup
        }
        (_, true) => {
            return Err(Error::Invalid(anyhow::anyhow!(
                "--backup goes with `closeout confirm` only"
            )));
        }
        (c, false) => c,
    };
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
        OperatorCommand::ConfirmBackup => "backup attested (on your word) for",
    };
    eprintln!("{done} saga {}", args.saga);
    Ok(())
}
