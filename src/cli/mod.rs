//! The command line: parses arguments (clap) and dispatches to one file per
//! subcommand. Each subcommand's `run` returns `Result<(), cli::Error>`; this
//! module turns that into the documented exit status (README): 0 success, 2 bad
//! usage or invalid input, 1 any other failure. Data goes to stdout,
//! diagnostics to stderr.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod audit;
pub mod common;
pub mod completions;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod man;
pub mod operator;
pub mod plan;
pub mod sim;
pub mod status;
pub mod submit;
pub mod verify;

use crate::runtime::control::OperatorCommand;

/// A failed command, classified for the exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or invalid input (config, batch file, arguments): exit 2.
    /// The message names the file, line and field.
    #[error("{}", chain(.0))]
    Invalid(anyhow::Error),
    /// Anything else (daemon unreachable, service refused, I/O): exit 1.
    #[error("{}", chain(.0))]
    Failed(anyhow::Error),
}

/// The error and its causes, each once: many errors already quote their
/// cause in their own message (`cannot read FILE: No such file…`), and
/// printing the chain after it would say the cause twice.
fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) => 2,
            Error::Failed(_) => 1,
        }
    }
}

/// closeout: closes Microsoft 365 business tenants unattended, durably and
/// auditably.
#[derive(Debug, Parser)]
#[command(name = "closeout", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands (README, "Using it").
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify).
    Daemon(daemon::Args),
    /// Submit the tenants of a batch file; prints a saga id per tenant.
    Submit(submit::Args),
    /// Dry run: inventory each tenant of a batch, print what would be done.
    Plan(plan::Args),
    /// Show where the sagas stand.
    Status(status::Args),
    /// Pause a saga: it stops taking actions; calls in flight finish.
    Pause(operator::Args),
    /// Resume a paused saga.
    Resume(operator::Args),
    /// Abort a saga and roll it back (refused after the pivot).
    Abort(operator::Args),
    /// Confirm that a manual gate's action was taken: the daemon re-checks now.
    /// With --backup --reason: attest that the tenant's data is backed up
    /// outside the tenant (the backup gate, closed on your word).
    Confirm(operator::Args),
    /// An end-to-end run on simulated tenants.
    Demo(demo::Args),
    /// Run the simulator of Graph, login and Partner Center on loopback.
    Sim(sim::Args),
    /// Print the audit log (timeline, jsonl, csv, html).
    Audit(audit::Args),
    /// Recompute the log's hash chain and name the first bad record.
    Verify(verify::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print the manual page (roff), or write one per subcommand with --dir.
    Man(man::Args),
    /// Check a batch without changing anything: config, a token per tenant
    /// and for the partner, clock skew, permissions, reachability.
    Doctor(doctor::Args),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Client secrets and tokens live in this process's memory: no core dump
    // and no ptrace by other processes of the same user.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("warning: cannot mark the process non-dumpable: {e}");
    }
    let result = match cli.command {
        Command::Daemon(args) => daemon::run(args),
        Command::Submit(args) => submit::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Status(args) => status::run(args),
        Command::Pause(args) => operator::run(OperatorCommand::Pause, args),
        Command::Resume(args) => operator::run(OperatorCommand::Resume, args),
        Command::Abort(args) => operator::run(OperatorCommand::Abort, args),
        Command::Confirm(args) => operator::run(OperatorCommand::Confirm, args),
        Command::Demo(args) => demo::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Messages quote what tenants, services and files said.
            eprintln!("closeout: {}", crate::escape::text(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
