//! `closeout completions SHELL`: the shell completion script, generated from
//! the command-line definition (clap_complete), on stdout.
//!
//! Where to install the scripts is listed in the README ("Running as a
//! service"): bash in `/usr/share/bash-completion/completions/closeout`, zsh
//! in a `site-functions` directory as `_closeout`, fish in
//! `vendor_completions.d/closeout.fish`.

use super::{Cli, Error};
use clap::CommandFactory;
use std::io::Write;

/// Arguments of `closeout completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Runs `closeout completions`.
pub fn run(args: Args) -> Result<(), Error> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "closeout", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .map_err(|e| Error::Failed(anyhow::anyhow!("cannot write the completion script: {e}")))
}
