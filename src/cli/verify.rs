//! `closeout verify`: checks a data directory's log — the hash chain, gap-free
//! sequences (global and per saga), every outcome matched to an earlier intent
//! — and exits 0 with a summary when it is sound, 1 naming the first bad
//! record otherwise. With `--export FILE` it instead checks a jsonl export
//! (`closeout audit --format jsonl`) line by line against the log.

use crate::audit;
use std::path::PathBuf;

/// Arguments of `closeout verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon's config file (its `data_dir` is read) [default: as for
    /// `closeout daemon`].
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    /// A stopped daemon's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Check this jsonl export against the log instead of the log itself.
    #[arg(long, value_name = "FILE.jsonl")]
    pub export: Option<PathBuf>,
}

/// Runs `closeout verify`.
pub fn run(args: Args) -> Result<(), super::Error> {
    let location = super::audit::source(args.config.as_deref(), args.data_dir.as_deref())?;
    if let Some(path) = &args.export {
        let log = super::audit::open(&location)?;
        let report =
            audit::verify::check_export(log.as_ref(), path).map_err(super::audit::classify)?;
        return match report.first_bad {
            None => {
                println!(
                    "export {} matches the log: {} lines checked",
                    path.display(),
                    report.lines
                );
                Ok(())
            }
            Some((line, seq, why)) => Err(super::Error::Failed(anyhow::anyhow!(
                "export {} does not match the log: line {line} (record {seq}): {why}",
                path.display()
            ))),
        };
    }
    let log = super::audit::open_for_verify(&location)?;
    let report = audit::verify::verify(log.as_ref()).map_err(super::audit::classify)?;
    match &report.first_bad {
        None => {
            println!(
                "log sound: {} records in {} sagas; hash chain and sequences intact; \
                 {} outcomes each matched to an intent ({} intents, {} in doubt)",
                report.records, report.sagas, report.outcomes, report.intents, report.in_doubt
            );
            Ok(())
        }
        Some(bad) => Err(super::Error::Failed(anyhow::anyhow!("log unsound: {bad}"))),
    }
}
