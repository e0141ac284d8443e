//! `closeout verify`: checks a data directory's log — the hash chain, gap-free
//! sequences (global and per saga), every outcome matched to an earlier intent
//! — and exits 0 with a summary when it is sound, 1 naming the first bad
//! record otherwise. With `--export FILE` it instead checks a jsonl export
//! (`closeout audit --format jsonl`) line by line against the log.
//!
//! A sound log's head (hash, record, time) is printed: kept elsewhere (a
//! ticket, the batch-end webhook, the report), it is an anchor. The chain
//! alone cannot show a rollback or a rewrite by someone who recomputes it;
//! `--expect-head HASH` fails unless the log still holds that record.

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
    /// A head hash printed by an earlier `verify` (or carried by a batch-end
    /// webhook or a report): fail unless the log holds that record, i.e.
    /// has only grown since.
    #[arg(long, value_name = "HASH", conflicts_with = "export")]
    pub expect_head: Option<String>,
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
                if let Some(head) = log.head() {
                    println!("head: {head}");
                }
                Ok(())
            }
            Some((line, seq, why)) => Err(super::Error::Failed(anyhow::anyhow!(
                "export {} does not match the log: line {line} (record {seq}): {why}",
                path.display()
            ))),
        };
    }
    let expected = match &args.expect_head {
        None => None,
        Some(text) => Some(audit::verify::parse_hash(text).ok_or_else(|| {
            super::Error::Invalid(anyhow::anyhow!(
                "--expect-head {text:?}: expected the 64 hex digits of a head hash as `closeout verify` prints it"
            ))
        })?),
    };
    let log = super::audit::open_for_verify(&location)?;
    let report = audit::verify::verify(log.as_ref()).map_err(super::audit::classify)?;
    if let Some(bad) = &report.first_bad {
        return Err(super::Error::Failed(anyhow::anyhow!("log unsound: {bad}")));
    }
    println!(
        "log sound: {} records in {} sagas; hash chain and sequences intact; \
         {} outcomes each matched to an intent ({} intents, {} in doubt)",
        report.records, report.sagas, report.outcomes, report.intents, report.in_doubt
    );
    let head = report
        .head
        .map(|h| h.to_string())
        .unwrap_or_else(|| "none (the log is empty)".into());
    println!("head: {head}");
    let Some(expected) = expected else {
        return Ok(());
    };
    match audit::verify::contains_hash(log.as_ref(), &expected).map_err(super::audit::classify)? {
        Some(found) => {
            println!("expected head found: {found}; the log has only grown since");
            Ok(())
        }
        None => Err(super::Error::Failed(anyhow::anyhow!(
            "the log does not contain the expected head {}: it was rolled back to an \
             older copy or rewritten (its head now: {head})",
            audit::entry::hex(&expected)
        ))),
    }
}
