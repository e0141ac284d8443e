//! `closeout audit`: prints the audit log of a data directory — a text
//! timeline, jsonl, csv or a self-contained HTML report — filtered by saga,
//! tenant, time, kind or object; a saga's closure receipt (`--format receipt
//! --saga ID`); or with `--inventory` a saga's recorded inventory as JSON.
//!
//! `--output FILE` writes atomically (a temporary file moved into place) and
//! refuses to replace an existing file unless `--force` is given.

use crate::audit::{self, output::Output, Filter, Format, Source};
use crate::config::Config;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Arguments of `closeout audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon's config file (its `data_dir` is read) [default: as for
    /// `closeout daemon`].
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
    /// Only the saga with this id.
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
    let location = source(args.config.as_deref(), args.data_dir.as_deref())?;
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
    let (log, locked) = match (location.source.open(), &location.socket) {
        (Ok(log), _) => (Some(log), String::new()),
        (Err(audit::Error::Locked(dir)), Some(_)) => (None, dir),
        (Err(e), _) => return Err(opened_error(&location, e)),
    };
    let mut out = match &args.output {
        Some(path) => Output::file(path, args.force).map_err(classify)?,
        None => Output::stdout(),
    };
    let Some(log) = log else {
        // The running daemon holds the data dir: it renders the audit.
        let socket = location.socket.as_deref().unwrap_or(Path::new(""));
        remote(
            socket,
            &locked,
            filter,
            args.format,
            args.inventory,
            &mut out,
        )?;
        return out.commit().map_err(classify);
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

/// Where the log is: `--data-dir`, else the `data_dir` of the config
/// (`--config`, or the default config path of `closeout daemon`).
pub(crate) struct Location {
    /// The source to read.
    pub source: Source,
    /// The control socket of the config's daemon, when a config was used.
    pub socket: Option<PathBuf>,
}

/// Resolves `--config` / `--data-dir` (exit 2 for an unusable config).
pub(crate) fn source(
    config: Option<&Path>,
    data_dir: Option<&Path>,
) -> Result<Location, super::Error> {
    if let Some(dir) = data_dir {
        return Ok(Location {
            source: Source::Store {
                data_dir: dir.to_path_buf(),
            },
            socket: None,
        });
    }
    let path = config.map_or_else(Config::default_path, Path::to_path_buf);
    let config = Config::load(&path).map_err(|e| super::Error::Invalid(e.into()))?;
    Ok(Location {
        source: Source::Store {
            data_dir: config.data_dir,
        },
        socket: Some(config.control_socket),
    })
}

/// Opens the log of a data dir directly. One held by a running daemon is
/// reported as such (exit 1; sled allows one process): `run` then asks the
/// daemon over its control socket instead.
pub(crate) fn open(location: &Location) -> Result<Box<dyn audit::Log>, super::Error> {
    opened(location, location.source.open())
}

/// Opens the log for `closeout verify` (through the real store).
pub(crate) fn open_for_verify(location: &Location) -> Result<Box<dyn audit::Log>, super::Error> {
    opened(location, location.source.open_for_verify())
}

fn opened(
    location: &Location,
    result: Result<Box<dyn audit::Log>, audit::Error>,
) -> Result<Box<dyn audit::Log>, super::Error> {
    result.map_err(|e| opened_error(location, e))
}

/// The error for a log that could not be opened; a data dir held by the
/// running daemon says what to do.
fn opened_error(location: &Location, e: audit::Error) -> super::Error {
    match (&e, &location.socket) {
        (audit::Error::Locked(dir), Some(socket)) => super::Error::Failed(anyhow::anyhow!(
            "data dir {dir} is held by the running daemon (control socket {}): this needs \
             the log to itself; stop the daemon, or work on a copy of the data dir",
            socket.display()
        )),
        _ => classify(e),
    }
}

/// Has the running daemon render the audit from the log it holds, and
/// writes the chunks it streams back to `out`.
fn remote(
    socket: &Path,
    locked: &str,
    filter: Filter,
    format: Format,
    inventory: bool,
    out: &mut Output,
) -> Result<(), super::Error> {
    use crate::runtime::control::{Client, Request, Response};
    super::common::block_on(async {
        let mut client = Client::connect(socket).await.map_err(|e| {
            super::Error::Failed(anyhow::anyhow!(
                "data dir {locked} is locked by the running daemon, but its control socket \
                 does not answer: {e}"
            ))
        })?;
        let request = Request::Audit {
            filter,
            format,
            inventory,
        };
        client
            .send(&request)
            .await
            .map_err(|e| super::Error::Failed(e.into()))?;
        loop {
            match client
                .next()
                .await
                .map_err(|e| super::Error::Failed(e.into()))?
            {
                Response::Chunk { data } => out
                    .write_all(data.as_bytes())
                    .map_err(|e| fail(format!("output {}: {e}", out.name())))?,
                Response::Done => return Ok(()),
                Response::Error(e) => return Err(super::common::engine_error(e)),
                other => return Err(fail(format!("the daemon answered an audit with {other:?}"))),
            }
        }
    })?
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
