//! `closeout man [--dir DIR]`: the manual page, generated from the
//! command-line definition (clap_mangen): `closeout.1` on stdout, or with
//! `--dir` one page per subcommand (`closeout.1`, `closeout-daemon.1`, ...)
//! written to a directory such as `/usr/local/share/man/man1`.

use super::{Cli, Error};
use clap::CommandFactory;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `closeout man`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write closeout.1 and a page per subcommand into this directory
    /// instead of printing closeout.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Runs `closeout man`.
pub fn run(args: Args) -> Result<(), Error> {
    let cmd = Cli::command();
    match args.dir {
        Some(dir) => clap_mangen::generate_to(cmd, &dir).map_err(|e| {
            Error::Failed(anyhow::anyhow!(
                "cannot write the manual pages to {}: {e}",
                dir.display()
            ))
        }),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .and_then(|()| std::io::stdout().lock().write_all(&page))
                .map_err(|e| Error::Failed(anyhow::anyhow!("cannot write the manual page: {e}")))
        }
    }
}
