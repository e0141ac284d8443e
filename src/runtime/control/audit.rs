//! Serving `closeout audit` while the daemon runs: sled admits one process,
//! so the daemon renders the audit from the store it holds and streams the
//! output back as `Chunk` responses, then `Done` (or `Error`). Rendering runs
//! on a blocking thread and hands over chunks through a small bounded channel,
//! so memory stays bounded whatever the size of the log.

use super::{Engine, EngineError, Response};
use crate::audit::{self, store_log::StoreLog, Filter, Format};
use std::io::Write;
use tokio::sync::mpsc;

/// Bytes per chunk sent to the client.
const CHUNK: usize = 64 * 1024;

/// Chunks rendered ahead of the socket (bounds the daemon's memory).
const AHEAD: usize = 4;

/// Renders the audit on a blocking thread; every `Chunk` and the final
/// `Done`/`Error` arrive on the returned channel, in order.
pub fn stream<E: Engine>(
    engine: &E,
    filter: Filter,
    format: Format,
    inventory: bool,
) -> mpsc::Receiver<Response> {
    let (tx, rx) = mpsc::channel(AHEAD);
    let Some((store, dir)) = engine.event_log() else {
        let _ = tx.try_send(Response::Error(EngineError::Unavailable(
            "this daemon holds no event log".into(),
        )));
        return rx;
    };
    tokio::task::spawn_blocking(move || {
        let log = StoreLog::from_store(store, &dir);
        let mut out = Chunks {
            buf: Vec::with_capacity(CHUNK),
            tx: tx.clone(),
        };
        let result = render(&log, &filter, format, inventory, &mut out).and_then(|()| {
            out.flush()
                .map_err(|e| EngineError::Unavailable(format!("audit output: {e}")))
        });
        let last = match result {
            Ok(()) => Response::Done,
            Err(e) => Response::Error(e),
        };
        let _ = tx.blocking_send(last);
    });
    rx
}

fn render(
    log: &StoreLog,
    filter: &Filter,
    format: Format,
    inventory: bool,
    out: &mut Chunks,
) -> Result<(), EngineError> {
    let failed = |e: audit::Error| match e {
        audit::Error::Filter(_) | audit::Error::UnknownSaga(_) => {
            EngineError::Invalid(e.to_string())
        }
        other => EngineError::Unavailable(other.to_string()),
    };
    if inventory {
        let saga = filter.saga.as_deref().unwrap_or_default();
        let value = audit::Log::inventory(log, saga)
            .map_err(failed)?
            .ok_or_else(|| EngineError::NotFound(format!("saga {saga} recorded no inventory")))?;
        serde_json::to_writer_pretty(&mut *out, &value)
            .map_err(|e| EngineError::Unavailable(format!("audit output: {e}")))?;
        writeln!(out).map_err(|e| EngineError::Unavailable(format!("audit output: {e}")))?;
        return Ok(());
    }
    audit::export(log, filter, format, out)
        .map(|_| ())
        .map_err(failed)
}

/// A `Write` that sends full chunks down the channel (blocking while the
/// socket is behind).
struct Chunks {
    /// Bytes not yet sent.
    buf: Vec<u8>,
    /// To the connection task.
    tx: mpsc::Sender<Response>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Split at a UTF-8 boundary: the renderers write whole characters,
        // but a chunk boundary may fall inside one.
        let cut = match std::str::from_utf8(&self.buf) {
            Ok(_) => self.buf.len(),
            Err(e) => e.valid_up_to(),
        };
        let rest = self.buf.split_off(cut);
        let data = String::from_utf8(std::mem::replace(&mut self.buf, rest))
            .map_err(std::io::Error::other)?;
        self.tx
            .blocking_send(Response::Chunk { data })
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
