//! Reads and decodes a log's records on a second thread, so that an export
//! reads sled, checks hashes and decodes events while the caller turns the
//! previous records into lines: on two cores a full export takes about the
//! time of the slower half instead of the sum.
//!
//! Memory stays bounded: records travel in batches of [`BATCH`] through a
//! channel of [`DEPTH`] batches. Dropping the iterator stops the thread (its
//! next send fails) and joins it.

use super::Error;
use crate::saga::Event;
use crate::store::Record;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

/// Records per batch sent to the consumer.
const BATCH: usize = 256;

/// Batches in flight between the two threads.
const DEPTH: usize = 4;

/// A decoded record, or why it could not be read.
pub type Decoded = Result<(Record, Event), Error>;

/// The consumer's end: decoded records in log order.
pub struct Prefetch {
    /// Batches from the reading thread (`None` once dropped, before joining).
    rx: Option<Receiver<Vec<Decoded>>>,
    /// The batch being handed out.
    batch: std::vec::IntoIter<Decoded>,
    /// The reading thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

/// Starts reading `records` on a new thread; `decode` turns each into its
/// event (or the error to report). `None` if no thread could be started (the
/// caller then reads in its own thread).
pub fn spawn<I, D>(records: I, decode: D) -> Option<Prefetch>
where
    I: Iterator<Item = Result<Record, Error>> + Send + 'static,
    D: Fn(Record) -> Decoded + Send + 'static,
{
    let (tx, rx) = sync_channel::<Vec<Decoded>>(DEPTH);
    let thread = std::thread::Builder::new()
        .name("closeout-audit-read".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            for r in records {
                let item = r.and_then(&decode);
                let stop = item.is_err();
                batch.push(item);
                if stop || batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(full).is_err() || stop {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        })
        .ok()?;
    Some(Prefetch {
        rx: Some(rx),
        batch: Vec::new().into_iter(),
        thread: Some(thread),
    })
}

impl Iterator for Prefetch {
    type Item = Decoded;

    fn next(&mut self) -> Option<Decoded> {
        loop {
            if let Some(d) = self.batch.next() {
                return Some(d);
            }
            self.batch = self.rx.as_ref()?.recv().ok()?.into_iter();
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel first makes the thread's next send fail.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
