//! What the subcommands that talk to the daemon share: the `--config` option,
//! loading the config, one tokio runtime per command, and one control-socket
//! call with its answer mapped to the exit status.

use super::Error;
use crate::config::Config;
use crate::runtime::control::{self, Client, EngineError, Request, Response};
use std::path::PathBuf;

/// `--config FILE`, shared by every subcommand that reads the config.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The config file [default: $CLOSEOUT_CONFIG, else /etc/closeout/closeout.toml
    /// if it exists, else config/closeout.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The path in force and the validated config (exit 2 if invalid).
    pub fn load(&self) -> Result<(PathBuf, Config), Error> {
        let path = self.config.clone().unwrap_or_else(Config::default_path);
        let config = Config::load(&path).map_err(|e| Error::Invalid(e.into()))?;
        Ok((path, config))
    }
}

/// The batch file at `path`, validated, with every secret file it names
/// readable (exit 2 otherwise, naming what and where).
pub fn load_batch(path: &std::path::Path) -> Result<crate::config::BatchFile, Error> {
    let batch = crate::config::BatchFile::load(path).map_err(|e| Error::Invalid(e.into()))?;
    batch
        .check_secret_files()
        .map_err(|e| Error::Invalid(e.into()))?;
    Ok(batch)
}

/// Runs `f` on a fresh current-thread tokio runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(anyhow::anyhow!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// Connects to the daemon of `config` (exit 1 with a clear message when none
/// runs).
pub async fn connect(config: &Config) -> Result<Client, Error> {
    Client::connect(&config.control_socket)
        .await
        .map_err(|e| Error::Failed(e.into()))
}

/// Sends one request; an engine refusal becomes the matching exit status.
pub async fn call(client: &mut Client, request: &Request) -> Result<Response, Error> {
    match client.call(request).await {
        Ok(Response::Error(e)) => Err(engine_error(e)),
        Ok(r) => Ok(r),
        Err(e) => Err(Error::Failed(e.into())),
    }
}

/// Exit 2 for what is the input's fault, 1 otherwise.
pub fn engine_error(e: EngineError) -> Error {
    match e {
        EngineError::Invalid(_) | EngineError::NotFound(_) => Error::Invalid(e.into()),
        EngineError::Refused(_) | EngineError::Unavailable(_) => Error::Failed(e.into()),
    }
}

/// An answer of the wrong kind (a daemon of another version?).
pub fn unexpected(r: Response) -> Error {
    Error::Failed(anyhow::Error::new(control::Error::Protocol {
        path: PathBuf::new(),
        message: format!("unexpected answer from the daemon: {r:?}"),
    }))
}
