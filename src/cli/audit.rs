//! `closeout audit`: prints the audit log of a data directory — a text
//! timeline, jsonl, csv or a self-contained HTML report — filtered by saga,
//! tenant, time, kind or object; or with `--inventory` a saga's recorded
//! inventory as JSON.
//!
//! `--output FILE` writes atomically (a temporary file moved into place) and
//! refuses to replace an existing file unless `--force` is given.

use crate::audit::{self, output::Output, Filter, Format, Source};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Arguments of `closeout audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon's config file (its `data_dir` is read).
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    /// A stopped daemon's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to select.
    #[command(flatten)]
    pub select: Box<Selection>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write to FILE (atomically) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
    /// Print the saga's recorded inventory (what the tenant held) as JSON.
    #[arg(long, requires = "saga")]
    pub inventory: bool,
}

/// The filter options of `closeout audit` (boxed in [`Args`] to keep the
/// command enum small).
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Only this saga.
    #[arg(long, value_name = "ID")]
    pub saga: Option<String>,
    /// Only sagas closing this tenant.
    #[arg(long, value_name = "T")]
    pub tenant: Option<String>,
    /// Only events at or after TIME (RFC 3339, or an age such as 2h).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events at or before TIME (RFC 3339, or an age such as 2h).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only events of this kind (snake_case; repeat or separate with commas).
    #[arg(long = "kind", value_name = "K", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Only events about this object id (its history across sagas).
    #[arg(long, value_name = "ID")]
    pub object: Option<String>,
}

/// Runs `closeout audit`.
pub fn run(args: Args) -> Result<(), super::Error> {
    let source = source(args.config.as_deref(), args.data_dir.as_deref())?;
    let now = SystemTime::now();
    let time = |s: &Option<String>| {
        s.as_deref()
            .map(|s| audit::filter::parse_time(s, now))
            .transpose()
            .map_err(classify)
    };
    let filter = Filter {
        saga: args.select.saga.clone(),
        tenant: args.select.tenant.clone(),
        since: time(&args.select.since)?,
        until: time(&args.select.until)?,
        kinds: args.select.kinds.clone(),
        object: args.select.object.clone(),
    };
    let log = open(&source)?;
    let mut out = match &args.output {
        Some(path) => Output::file(path, args.force).map_err(classify)?,
        None => Output::stdout(),
    };
    if args.inventory {
        let saga = args.select.saga.as_deref().unwrap_or_default();
        let inventory = log.inventory(saga).map_err(classify)?.ok_or_else(|| {
            super::Error::Failed(anyhow::anyhow!("saga {saga} recorded no inventory"))
        })?;
        serde_json::to_writer_pretty(&mut out, &inventory)
            .map_err(|e| fail(format!("output {}: {e}", out.name())))?;
        writeln!(out).map_err(|e| fail(format!("output {}: {e}", out.name())))?;
    } else {
        audit::export(log.as_ref(), &filter, args.format, &mut out).map_err(classify)?;
    }
    out.commit().map_err(classify)
}

/// Where the log is read from: `--data-dir`, or the `data_dir` of `--config`.
pub(crate) fn source(
    config: Option<&Path>,
    data_dir: Option<&Path>,
) -> Result<Source, super::Error> {
    match (config, data_dir) {
        (_, Some(dir)) => Ok(Source::Store {
            data_dir: dir.to_path_buf(),
        }),
        (Some(file), None) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                super::Error::Invalid(anyhow::anyhow!("config {}: {e}", file.display()))
            })?;
            let value: toml::Table = text.parse().map_err(|e| {
                super::Error::Invalid(anyhow::anyhow!("config {}: {e}", file.display()))
            })?;
            let dir = value
                .get("data_dir")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    super::Error::Invalid(anyhow::anyhow!(
                        "config {}: field data_dir: missing or not a string",
                        file.display()
                    ))
                })?;
            let dir = PathBuf::from(dir);
            let dir = if dir.is_relative() {
                file.parent().unwrap_or(Path::new(".")).join(dir)
            } else {
                dir
            };
            Ok(Source::Store { data_dir: dir })
        }
        (None, None) => Err(super::Error::Invalid(anyhow::anyhow!(
            "say where the log is: --data-dir DIR or --config FILE"
        ))),
    }
}

/// Opens the log; a data dir held by a running daemon is reported as such.
pub(crate) fn open(source: &Source) -> Result<Box<dyn audit::Log>, super::Error> {
    source.open().map_err(classify)
}

/// The exit status class of an audit error: 2 for what the user can fix in
/// the arguments, 1 for the rest.
pub(crate) fn classify(e: audit::Error) -> super::Error {
    match e {
        audit::Error::Filter(_) | audit::Error::UnknownSaga(_) | audit::Error::Exists(_) => {
            super::Error::Invalid(e.into())
        }
        other => super::Error::Failed(other.into()),
    }
}

fn fail(message: String) -> super::Error {
    super::Error::Failed(anyhow::anyhow!(message))
}
