//! The group-commit writer: one thread owns every write to the log. It takes
//! all appends waiting in its queue, checks their expected seqs, chains and
//! encodes their records, and writes them with the new head in one atomic
//! sled batch, packed into blocks (see [`super::blocks`]). A second thread,
//! the flusher, then fsyncs (`flush`) and only after that answers each
//! caller: while it waits for the disk, the writer
//! already applies the next group (sled's flush makes durable every write
//! completed before it began, so a group is answered only by a flush that
//! started after its batch was applied). The index is written lazily, one
//! run per saga per window of events (see [`super::index`]).

use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::model::{SagaId, Timestamp};

use super::blocks::{self, BLOCK_BYTES};
use super::index::{self, Pending};
use super::layout::{self, Head};
use super::record::{self, MAX_PAYLOAD};
use super::{Appended, Error, Snapshot, SNAPSHOT_VERSION};

/// The most events one commit takes before it flushes (bounds its latency).
const MAX_BATCH_EVENTS: usize = 16 * 1024;

/// The longest a commit waits for the callers of the previous one to come
/// back (less than one fsync on the machines measured, ~0.35 ms).
const COALESCE: Duration = Duration::from_micros(200);

/// One append waiting for the writer.
pub struct AppendReq {
    /// The saga appended to.
    pub saga: SagaId,
    /// The saga seq the caller expects the first event to get.
    pub expected_seq: u64,
    /// The events, in order.
    pub payloads: Vec<Vec<u8>>,
    /// The saga's state after these events, stored in the same commit.
    pub snapshot: Option<Snapshot>,
    /// Where the outcome goes, after the flush.
    pub reply: oneshot::Sender<Result<Appended, Error>>,
}

/// What the writer thread is asked to do.
pub enum Cmd {
    /// Append events (group-committed with the other waiting appends).
    Append(AppendReq),
    /// Make everything before this command durable, then answer.
    Flush(oneshot::Sender<Result<(), Error>>),
    /// Flush, answer, and stop.
    Shutdown(oneshot::Sender<Result<(), Error>>),
}

/// The writer's state: the head of the chain and the sagas' next seqs.
pub struct Writer {
    /// The sled tree holding the log.
    pub tree: sled::Tree,
    /// The sled directory, for error messages.
    pub dir: std::path::PathBuf,
    /// The durable head (last seq, last hash, last time).
    pub head: Head,
    /// Next seq of each saga seen since open (read from the log on first use).
    pub next: HashMap<SagaId, u64>,
    /// The seq of each saga's latest snapshot written since open: a run
    /// ending there needs no index end entry (see [`index::end_of`]).
    pub snapshot_seq: HashMap<SagaId, u64>,
    /// The events not indexed yet (the tail found at open, then the commits').
    pub pending: Pending,
    /// Write the pending runs once this many events wait.
    pub index_window: usize,
    /// The last applied record and mark, for this process's readers.
    pub published: Arc<index::Published>,
    /// Whether this writer appended anything (it indexes at close only then,
    /// so that opening a log to read or verify it writes nothing).
    pub appended: bool,
    /// Set after a failed write or flush: the in-memory state may be ahead
    /// of the disk, so every later request is refused with this message.
    pub failed: Failed,
    /// The data dir whose store state (see `guard`) the flusher keeps
    /// current; `None` for a reader's private copy.
    pub mark_dir: Option<std::path::PathBuf>,
}

/// The writer's and the flusher's shared failure.
pub type Failed = Arc<Mutex<Option<String>>>;

fn failure(failed: &Failed) -> Option<String> {
    failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn fail(failed: &Failed, msg: String) {
    tracing::error!("{msg}");
    let mut f = failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f.get_or_insert(msg);
}

/// A caller to answer once its events are durable.
type Ack = (oneshot::Sender<Result<Appended, Error>>, Appended);

/// What the writer hands the flusher, in order.
enum Job {
    /// The callers of one applied batch.
    Acks(Vec<Ack>),
    /// A `Flush` or `Shutdown` command: answer after the next flush.
    Flush(oneshot::Sender<Result<(), Error>>),
}

/// The flusher: takes every job waiting, flushes once for all of them, and
/// answers them. Ends when the writer drops its end of the queue.
fn flusher(
    tree: sled::Tree,
    dir: std::path::PathBuf,
    rx: Receiver<Job>,
    failed: Failed,
    mark_dir: Option<std::path::PathBuf>,
) {
    let mut marker = mark_dir.map(super::guard::Marker::new);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        // The head before the flush is durable after it ("a flush makes
        // durable every write completed before it began"); it is recorded
        // outside sled before anything it covers is acknowledged, so that an
        // open after a crash tells sled's recovery cutting acknowledged
        // records from a torn, unacknowledged tail (see `guard`).
        let head = marker.as_ref().map(|_| super::reader::head(&tree, &dir));
        let outcome = match failure(&failed) {
            Some(msg) => Err(msg),
            None => tree.flush().map(|_| ()).map_err(|e| {
                let msg = format!("flushing {} failed: {e}", dir.display());
                fail(&failed, msg.clone());
                msg
            }),
        };
        let outcome = match (outcome, head, &mut marker) {
            (Ok(()), Some(head), Some(marker)) => head
                .map_err(|e| e.to_string())
                .and_then(|head| marker.record(&head).map_err(|e| e.to_string()))
                .map_err(|e| {
                    let msg = format!(
                        "recording the log's head beside {} failed: {e}",
                        dir.display()
                    );
                    fail(&failed, msg.clone());
                    msg
                }),
            (outcome, _, _) => outcome,
        };
        let group_size = jobs
            .iter()
            .map(|j| match j {
                Job::Acks(a) => a.len(),
                Job::Flush(_) => 0,
            })
            .sum();
        for job in jobs {
            match job {
                Job::Acks(acks) => {
                    for (reply, appended) in acks {
                        let _ = reply.send(match &outcome {
                            Ok(()) => Ok(Appended {
                                group_size,
                                ..appended
                            }),
                            Err(msg) => Err(Error::WriterStopped(msg.clone())),
                        });
                    }
                }
                Job::Flush(reply) => {
                    let _ = reply.send(outcome.clone().map_err(Error::WriterStopped));
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    Timestamp::from_system(std::time::SystemTime::now()).0
}

/// Starts the flusher and the writer threads (the writer joins the flusher
/// when it ends); returns the writer's.
pub fn spawn(writer: Writer, rx: Receiver<Cmd>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (to_flusher, jobs) = mpsc::channel();
    let (tree, dir, failed, mark_dir) = (
        writer.tree.clone(),
        writer.dir.clone(),
        writer.failed.clone(),
        writer.mark_dir.clone(),
    );
    let flush_thread = std::thread::Builder::new()
        .name("closeout-store-flush".into())
        .spawn(move || flusher(tree, dir, jobs, failed, mark_dir))?;
    std::thread::Builder::new()
        .name("closeout-store-writer".into())
        .spawn(move || writer.run(rx, to_flusher, flush_thread))
}

impl Writer {
    /// Runs until `Shutdown` or until every `Store` handle is gone.
    fn run(
        mut self,
        rx: Receiver<Cmd>,
        to_flusher: mpsc::Sender<Job>,
        flush_thread: std::thread::JoinHandle<()>,
    ) {
        let mut closed = false;
        // How many appends the last commit answered: in steady state those
        // callers come straight back, so the next commit waits (at most
        // COALESCE) for as many before flushing. A lone appender never waits.
        let mut last_batch = 0usize;
        while !closed {
            let Ok(first) = rx.recv() else { break };
            let deadline = Instant::now() + COALESCE;
            let mut appends = Vec::new();
            let mut events = 0usize;
            let mut after: Option<Cmd> = None;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append(req) => {
                        events += req.payloads.len();
                        appends.push(req);
                        if events >= MAX_BATCH_EVENTS {
                            break;
                        }
                        let received = if appends.len() < last_batch {
                            let left = deadline.saturating_duration_since(Instant::now());
                            rx.recv_timeout(left).map_err(|e| match e {
                                RecvTimeoutError::Timeout => TryRecvError::Empty,
                                RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                            })
                        } else {
                            rx.try_recv()
                        };
                        next = match received {
                            Ok(c) => Some(c),
                            Err(TryRecvError::Empty) => None,
                            Err(TryRecvError::Disconnected) => {
                                closed = true;
                                None
                            }
                        };
                    }
                    other => after = Some(other),
                }
            }
            last_batch = appends.len();
            self.commit(appends, &to_flusher);
            match after {
                Some(Cmd::Flush(reply)) => {
                    let _ = to_flusher.send(Job::Flush(reply));
                }
                Some(Cmd::Shutdown(reply)) => {
                    self.index_pending();
                    let _ = to_flusher.send(Job::Flush(reply));
                    closed = true;
                }
                _ => {}
            }
        }
        self.index_pending();
        drop(to_flusher);
        let _ = flush_thread.join();
        let _ = self.tree.flush();
    }

    fn stopped(&self) -> Error {
        Error::WriterStopped(failure(&self.failed).unwrap_or_else(|| "the writer stopped".into()))
    }

    /// Writes the pending runs, if this writer appended anything (at close).
    fn index_pending(&mut self) {
        if self.appended && self.pending.events() > 0 {
            self.write_index();
        }
    }

    /// Writes every pending run and the new mark in one atomic batch, not
    /// flushed: the next commit's flush covers it, and a crash before that
    /// loses the runs with the mark (the tail is re-read at open).
    fn write_index(&mut self) {
        if failure(&self.failed).is_some() {
            return;
        }
        let mut batch = sled::Batch::default();
        let mark = self.head.last_seq;
        let snapshots = &self.snapshot_seq;
        self.pending
            .drain_into(&mut batch, mark, |saga| snapshots.get(saga).copied());
        match self.tree.apply_batch(batch) {
            Ok(()) => self.published.mark.store(mark, Ordering::Release),
            Err(e) => {
                let msg = format!("writing the index to {} failed: {e}", self.dir.display());
                fail(&self.failed, msg);
            }
        }
    }

    /// The saga's next seq: pending in this batch, cached, or read from the log.
    fn next_seq(&self, pending: &HashMap<SagaId, u64>, saga: &SagaId) -> Result<u64, Error> {
        if let Some(n) = pending.get(saga).or_else(|| self.next.get(saga)) {
            return Ok(*n);
        }
        if let Some(n) = self.pending.next_seq(saga) {
            return Ok(n);
        }
        match index::run_end(&self.tree, saga) {
            Ok(n) => Ok(n.unwrap_or(super::FIRST_SEQ)),
            Err(e) => Err(super::reader::fault(&self.dir)(e)),
        }
    }

    fn check(&self, req: &AppendReq) -> Result<(), Error> {
        let invalid = |reason: String| {
            Err(Error::InvalidAppend {
                saga: req.saga.clone(),
                reason,
            })
        };
        if req.payloads.is_empty() {
            return invalid("no events".into());
        }
        if req.saga.0.is_empty() || req.saga.0.len() > layout::MAX_SAGA_ID {
            return invalid(format!(
                "saga id must be 1 to {} bytes",
                layout::MAX_SAGA_ID
            ));
        }
        if let Some(p) = req.payloads.iter().find(|p| p.len() > MAX_PAYLOAD) {
            return invalid(format!(
                "a payload of {} bytes exceeds {MAX_PAYLOAD}",
                p.len()
            ));
        }
        Ok(())
    }

    /// Writes the accepted appends of `reqs` in one batch and hands their
    /// callers to the flusher, who answers them after the next flush.
    fn commit(&mut self, reqs: Vec<AppendReq>, to_flusher: &mpsc::Sender<Job>) {
        if reqs.is_empty() {
            return;
        }
        if let Some(msg) = failure(&self.failed) {
            for r in reqs {
                let _ = r.reply.send(Err(Error::WriterStopped(msg.clone())));
            }
            return;
        }
        let mut batch = sled::Batch::default();
        let mut head = self.head;
        let at = Timestamp(now_ms().max(head.last_at));
        let mut pending: HashMap<SagaId, u64> = HashMap::default();
        let mut snapshots: Vec<(SagaId, u64)> = Vec::new();
        let mut accepted = Vec::with_capacity(reqs.len());
        // The block being filled and the global seq of its first record.
        let mut block: Vec<u8> = Vec::new();
        let mut block_first = 0u64;
        for req in reqs {
            if let Err(e) = self.check(&req) {
                let _ = req.reply.send(Err(e));
                continue;
            }
            let next = match self.next_seq(&pending, &req.saga) {
                Ok(n) => n,
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                    continue;
                }
            };
            if next != req.expected_seq {
                let _ = req.reply.send(Err(Error::SeqConflict {
                    saga: req.saga,
                    expected: req.expected_seq,
                    actual: next,
                }));
                continue;
            }
            let snapshot = match &req.snapshot {
                None => None,
                Some(s) => {
                    let last = next + req.payloads.len() as u64 - 1;
                    match crate::codec::encode_versioned(SNAPSHOT_VERSION, &(last, s)) {
                        Ok(b) => Some(b),
                        Err(source) => {
                            let _ = req.reply.send(Err(Error::Codec {
                                saga: req.saga,
                                source,
                            }));
                            continue;
                        }
                    }
                }
            };
            let appended = Appended {
                first_global_seq: head.last_seq + 1,
                first_saga_seq: next,
                at,
                group_size: 0,
            };
            let mut saga_seq = next;
            for payload in &req.payloads {
                let global = head.last_seq + 1;
                let len = 4 + record::encoded_len(&req.saga, payload);
                if !block.is_empty() && block.len() + len > BLOCK_BYTES {
                    batch.insert(&layout::block_key(block_first), std::mem::take(&mut block));
                }
                if block.is_empty() {
                    block.reserve(len.max(BLOCK_BYTES));
                    block_first = global;
                }
                let hash = blocks::push_with(&mut block, |b| {
                    record::encode_into(
                        b,
                        &req.saga,
                        saga_seq,
                        global,
                        at,
                        payload,
                        &head.last_hash,
                    )
                });
                self.pending.push(&req.saga, saga_seq, global);
                head = Head {
                    last_seq: global,
                    last_hash: hash,
                    last_at: at.0,
                };
                saga_seq += 1;
            }
            if let Some(s) = snapshot {
                batch.insert(layout::saga_key(layout::SNAPSHOT, &req.saga), s);
                snapshots.push((req.saga.clone(), saga_seq - 1));
            }
            pending.insert(req.saga, saga_seq);
            accepted.push((req.reply, appended));
        }
        if accepted.is_empty() {
            return;
        }
        if !block.is_empty() {
            batch.insert(&layout::block_key(block_first), block);
        }
        batch.insert(layout::HEAD, &head.to_bytes()[..]);
        match self.tree.apply_batch(batch) {
            Ok(()) => {
                self.head = head;
                self.published
                    .last_seq
                    .store(head.last_seq, Ordering::Release);
                self.next.extend(pending);
                self.snapshot_seq.extend(snapshots);
                self.appended = true;
                if let Err(mpsc::SendError(Job::Acks(acks))) = to_flusher.send(Job::Acks(accepted))
                {
                    for (reply, _) in acks {
                        let _ = reply.send(Err(self.stopped()));
                    }
                }
                if self.pending.events() >= self.index_window {
                    self.write_index();
                }
            }
            Err(e) => {
                let msg = format!("writing to {} failed: {e}", self.dir.display());
                fail(&self.failed, msg.clone());
                for (reply, _) in accepted {
                    let _ = reply.send(Err(Error::WriterStopped(msg.clone())));
                }
            }
        }
    }
}
