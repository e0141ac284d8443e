//! The per-saga index, written lazily in runs.
//!
//! A run is one sled entry: key `i` + saga key + the saga seq of its last
//! event, value the global seqs of that saga's consecutive events up to it
//! (u64 big-endian each). Keyed by its last seq, the run holding a seq is
//! the first at or after it (one forward seek).
//!
//! Where a saga's runs end is not read from the runs (a reverse seek per
//! saga would dominate a recovery) but from its snapshot, which names the
//! last event it follows: the saga's end is one after that, or its *index
//! end* if larger (key `e` + saga key, value one after its last run's seq).
//! The writer writes an index end with a run only when the saga's latest
//! snapshot does not name the run's last event (appends without snapshots),
//! so that listing the sagas is one scan of the snapshots, and a saga's
//! next seq two point lookups ([`end_of`]).
//!
//! The writer does not index each commit: it keeps the events of the last
//! commits in memory and writes one run per saga once [`WINDOW`] events are
//! waiting (and when the store is closed), in one atomic batch with the mark
//! `x`: every record up to that global seq is in a run, and no run names a
//! record after it; the index ends go in the same batch.
//!
//! The records after the mark (the unindexed tail, at most a window and a
//! commit) are found by scanning them: [`Tail`] reads each one's saga id and
//! saga seq off its header. A reader takes from the runs only entries up to
//! the mark it read first, then the tail, so that a run written meanwhile is
//! neither missed nor read twice. After a crash the tail may be longer; the
//! writer picks it up at open and indexes it with the next window.
//!
//! Sled's per-insert cost, not fsync, bounds the group commit: an index
//! entry per event (as in format 1) doubled the inserts; runs written per
//! window add a fraction of one.
// What only the tamper and fuzz tests call is unused without `internals`.
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

use rustc_hash::FxHashMap as HashMap;

use crate::model::SagaId;

use super::layout::{self, index_key, index_parts};
use super::record;
use super::{BadRecord, FIRST_SEQ};

/// Events the writer lets go unindexed before it writes their runs: bounds
/// what a reader scans (the tail) and what a crash leaves to re-index.
pub const WINDOW: usize = 4096;

/// The key of the mark: the global seq through which records are indexed.
pub const INDEXED: &[u8] = b"x";

/// Why reading the index failed.
#[derive(Debug)]
pub enum Fault {
    /// sled returned an error while the index or a record was read.
    Sled(sled::Error),
    /// The index or a record does not hold what it must (global seq 0 when
    /// no record is concerned, as for the mark itself).
    Bad(BadRecord),
}

impl From<sled::Error> for Fault {
    fn from(e: sled::Error) -> Fault {
        Fault::Sled(e)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Sled(e) => write!(f, "{e}"),
            Fault::Bad(b) => write!(f, "{b}"),
        }
    }
}

fn bad(global_seq: u64, saga: Option<&SagaId>, saga_seq: Option<u64>, reason: String) -> Fault {
    Fault::Bad(BadRecord {
        global_seq,
        saga_id: saga.cloned(),
        saga_seq,
        reason,
    })
}

/// A run's value: the global seqs of consecutive events.
pub fn encode_run(globals: &[u64]) -> Vec<u8> {
    globals.iter().flat_map(|g| g.to_be_bytes()).collect()
}

/// The global seqs of a run's value; `None` if it is not a non-empty
/// sequence of u64s.
pub fn decode_run(v: &[u8]) -> Option<impl Iterator<Item = u64> + '_> {
    if v.is_empty() || !v.len().is_multiple_of(8) {
        return None;
    }
    Some(v.chunks_exact(8).filter_map(layout::u64_value))
}

/// The mark: every record up to this global seq is indexed.
pub fn indexed(tree: &sled::Tree) -> Result<u64, Fault> {
    tree.get(INDEXED)?
        .as_deref()
        .and_then(layout::u64_value)
        .ok_or_else(|| {
            bad(
                0,
                None,
                None,
                "the index mark is missing or not 8 bytes".into(),
            )
        })
}

/// The records after the mark, by saga, as read off their headers.
#[derive(Clone, Debug, Default)]
pub struct Tail {
    /// The mark as last read: runs are trusted up to it.
    indexed: u64,
    /// The last record scanned.
    upto: u64,
    /// Each saga's (saga seq, global seq) after the mark, in order.
    sagas: HashMap<String, Vec<(u64, u64)>>,
}

impl Tail {
    /// Reads the mark and scans the records after it.
    pub fn read(tree: &sled::Tree) -> Result<Tail, Fault> {
        let mut t = Tail::default();
        t.refresh(tree)?;
        Ok(t)
    }

    /// Catches up with the log: drops what a newer mark covers and scans
    /// only the records appended since the last refresh.
    pub fn refresh(&mut self, tree: &sled::Tree) -> Result<(), Fault> {
        let mark = indexed(tree)?;
        if mark > self.indexed {
            self.sagas.retain(|_, v| {
                v.retain(|&(_, g)| g > mark);
                !v.is_empty()
            });
            self.indexed = mark;
        }
        self.upto = self.upto.max(mark);
        for item in super::blocks::record_bytes(tree.clone(), self.upto + 1) {
            let (global, v) = item?;
            let (id, saga_seq, _) = record::peek(&v).map_err(|r| bad(global, None, None, r))?;
            match self.sagas.get_mut(id) {
                Some(v) => v.push((saga_seq, global)),
                None => {
                    self.sagas.insert(id.to_string(), vec![(saga_seq, global)]);
                }
            }
            self.upto = global;
        }
        Ok(())
    }

    /// Whether the view already covers a log whose last applied record and
    /// mark are these (what the writer publishes): nothing to read then.
    pub fn covers(&self, last_seq: u64, mark: u64) -> bool {
        self.indexed == mark && self.upto >= last_seq
    }

    /// The mark this view trusts the runs up to.
    pub fn mark(&self) -> u64 {
        self.indexed
    }

    /// The saga's (saga seq, global seq) after the mark.
    pub fn of(&self, saga: &SagaId) -> &[(u64, u64)] {
        self.sagas.get(&saga.0).map_or(&[], Vec::as_slice)
    }

    /// Every saga with events after the mark, with them.
    pub fn sagas(&self) -> impl Iterator<Item = (SagaId, &[(u64, u64)])> {
        self.sagas
            .iter()
            .map(|(s, v)| (SagaId(s.clone()), v.as_slice()))
    }
}

/// One after the saga's last indexed event, or more (see [`end_of`]): its
/// index end and its snapshot, two point lookups.
pub fn run_end(tree: &sled::Tree, saga: &SagaId) -> Result<Option<u64>, Fault> {
    let end = tree.get(layout::saga_key(layout::ENDS, saga))?;
    let snapshot = tree.get(layout::saga_key(layout::SNAPSHOT, saga))?;
    let end = end.map(|v| end_value(saga, &v)).transpose()?;
    let snapshot = snapshot.map(|v| snapshot_seq_of(saga, &v)).transpose()?;
    Ok(end_of(end, snapshot))
}

/// A saga's end as its index end and its snapshot's seq give it: the larger
/// of the index end and one after the snapshot's seq. The writer leaves out
/// the index end when the saga's snapshot names the last event of its runs,
/// so that listing the sagas reads the snapshots and few other entries. The
/// result is never past the saga's last event; it may be short of it only
/// by events in the tail.
pub fn end_of(end: Option<u64>, snapshot_seq: Option<u64>) -> Option<u64> {
    end.max(snapshot_seq.map(|s| s + 1))
}

/// The value of an index end entry.
fn end_value(saga: &SagaId, v: &[u8]) -> Result<u64, Fault> {
    layout::u64_value(v).ok_or_else(|| {
        bad(
            0,
            Some(saga),
            None,
            format!("the index end of saga {saga} is not 8 bytes"),
        )
    })
}

/// The seq a saga's snapshot entry names.
pub fn snapshot_seq_of(saga: &SagaId, v: &[u8]) -> Result<u64, Fault> {
    super::snapshot_seq(v).map_err(|e| {
        bad(
            0,
            Some(saga),
            None,
            format!("the snapshot of saga {saga} cannot be read: {e}"),
        )
    })
}

/// The saga's next seq (one after its last event, in the runs or the
/// tail); `None` for a saga with no event.
pub fn next_seq(tree: &sled::Tree, tail: &Tail, saga: &SagaId) -> Result<Option<u64>, Fault> {
    let runs = run_end(tree, saga)?;
    let tailed = tail.of(saga).last().map(|&(s, _)| s + 1);
    Ok(runs.max(tailed))
}

/// Every saga with its next seq, in key order (saga id length, then id):
/// [`scan`] without the snapshots.
pub fn sagas(tree: &sled::Tree, tail: &Tail) -> Result<Vec<(SagaId, u64)>, Fault> {
    let seq_only = |saga: &SagaId, bytes: &[u8]| snapshot_seq_of(saga, bytes).map(|s| (s, ()));
    Ok(scan(tree, tail, seq_only)?
        .into_iter()
        .map(|(saga, next, _)| (saga, next))
        .collect())
}

/// A saga, its next seq, and its snapshot's seq with what `decode` made of it.
pub type Scanned<T> = (SagaId, u64, Option<(u64, T)>);

/// Every saga with its next seq and its snapshot as `decode` reads it (the
/// snapshot's seq and what else the caller wants), in key order (saga id
/// length, then id): one forward scan of the snapshots merged with one of
/// the index ends (both in saga key order; see [`end_of`]), and the tail.
pub fn scan<T, E: From<Fault>>(
    tree: &sled::Tree,
    tail: &Tail,
    mut decode: impl FnMut(&SagaId, &[u8]) -> Result<(u64, T), E>,
) -> Result<Vec<Scanned<T>>, E> {
    let malformed = || {
        bad(
            0,
            None,
            None,
            "a snapshot or index end key is malformed".into(),
        )
    };
    let mut ends = tree.range([layout::ENDS]..[layout::ENDS + 1]).peekable();
    let mut snaps = tree
        .range([layout::SNAPSHOT]..[layout::SNAPSHOT + 1])
        .peekable();
    let mut out: Vec<Scanned<T>> = Vec::new();
    loop {
        // The next saga key (without its prefix) in either scan.
        let e = ends.peek().map(|r| r.as_ref().map(|(k, _)| k.get(1..)));
        let s = snaps.peek().map(|r| r.as_ref().map(|(k, _)| k.get(1..)));
        let (take_end, take_snap) = match (e, s) {
            (None, None) => break,
            (Some(Err(_)), _) => {
                return Err(ends
                    .next()
                    .and_then(Result::err)
                    .map_or_else(malformed, Fault::from)
                    .into())
            }
            (_, Some(Err(_))) => {
                return Err(snaps
                    .next()
                    .and_then(Result::err)
                    .map_or_else(malformed, Fault::from)
                    .into())
            }
            (Some(Ok(_)), None) => (true, false),
            (None, Some(Ok(_))) => (false, true),
            (Some(Ok(e)), Some(Ok(s))) => (e <= s, s <= e),
        };
        let end = if take_end {
            ends.next().transpose().map_err(Fault::from)?
        } else {
            None
        };
        let snap = if take_snap {
            snaps.next().transpose().map_err(Fault::from)?
        } else {
            None
        };
        let key = end.as_ref().or(snap.as_ref()).map(|(k, _)| k.clone());
        let Some(saga) = key.as_deref().and_then(layout::saga_of) else {
            return Err(malformed().into());
        };
        let end = end.map(|(_, v)| end_value(&saga, &v)).transpose()?;
        let snap = snap.map(|(_, v)| decode(&saga, &v)).transpose()?;
        let next = end_of(end, snap.as_ref().map(|(s, _)| *s)).unwrap_or(FIRST_SEQ);
        let tailed = tail.of(&saga).last().map(|&(s, _)| s + 1);
        out.push((saga, next.max(tailed.unwrap_or(0)), snap));
    }
    let mut unindexed: Vec<Scanned<T>> = tail
        .sagas()
        .filter_map(|(s, v)| Some((s, v.last()?.0 + 1, None)))
        .filter(|(s, _, _)| out.binary_search_by(|(o, _, _)| key_order(o, s)).is_err())
        .collect();
    if !unindexed.is_empty() {
        out.append(&mut unindexed);
        out.sort_by(|(a, _, _), (b, _, _)| key_order(a, b));
    }
    Ok(out)
}

/// The order of sagas' keys: id length, then id.
fn key_order(a: &SagaId, b: &SagaId) -> std::cmp::Ordering {
    (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0))
}

/// The global seq of one event of a saga, if the index has it.
pub fn lookup(
    tree: &sled::Tree,
    tail: &Tail,
    saga: &SagaId,
    saga_seq: u64,
) -> Result<Option<u64>, Fault> {
    if let Some(&(_, g)) = tail.of(saga).iter().find(|(s, _)| *s == saga_seq) {
        return Ok(Some(g));
    }
    Ok(lookup_run(tree, saga, saga_seq)?.filter(|&g| g <= tail.mark()))
}

/// The global seq the saga's runs give one of its events (one seek).
pub fn lookup_run(tree: &sled::Tree, saga: &SagaId, saga_seq: u64) -> Result<Option<u64>, Fault> {
    let Some((k, v)) = tree
        .range(index_key(saga, saga_seq)..=index_key(saga, u64::MAX))
        .next()
        .transpose()?
    else {
        return Ok(None);
    };
    let Some((_, last)) = index_parts(&k) else {
        return Ok(None);
    };
    let len = (v.len() / 8) as u64;
    let Some(back) = last.checked_sub(saga_seq).filter(|b| *b < len) else {
        return Ok(None);
    };
    Ok(decode_run(&v).and_then(|mut g| g.nth((len - 1 - back) as usize)))
}

/// A saga's index entries, (saga seq, global seq), from saga seq `from` on:
/// its runs up to the tail's mark, then the tail. Checks that they follow
/// each other without gaps.
pub struct Entries {
    saga: SagaId,
    from: u64,
    mark: u64,
    /// The runs still to read (none once past the mark).
    runs: Option<Runs>,
    /// The current run's globals not handed out yet.
    current: std::vec::IntoIter<u64>,
    /// The saga seq the next entry must have (`None` before the first run).
    expected: Option<u64>,
    /// The tail's entries of this saga.
    tail: std::vec::IntoIter<(u64, u64)>,
    done: bool,
}

impl Entries {
    /// The entries of `saga` from `from` on (read lazily).
    pub fn new(tree: &sled::Tree, tail: &Tail, saga: &SagaId, from: u64) -> Entries {
        let from = from.max(FIRST_SEQ);
        // From the run holding `from` (the first whose last seq is at or
        // after it) on.
        Entries {
            saga: saga.clone(),
            from,
            mark: tail.mark(),
            runs: Some(Runs::Unopened(tree.clone())),
            current: Vec::new().into_iter(),
            expected: None,
            tail: tail.of(saga).to_vec().into_iter(),
            done: false,
        }
    }

    fn gap(&self, global: u64, seq: u64, what: &str) -> Fault {
        let due = self.expected.unwrap_or(self.from);
        bad(
            global,
            Some(&self.saga),
            Some(seq),
            format!(
                "{what} of saga {} holds seq {seq} where {due} was due",
                self.saga
            ),
        )
    }

    fn next_entry(&mut self) -> Result<Option<(u64, u64)>, Fault> {
        loop {
            if let Some(g) = self.current.next() {
                if g > self.mark {
                    // Written after the mark was read: the tail has it.
                    self.current = Vec::new().into_iter();
                    self.runs = None;
                    continue;
                }
                let seq = self.expected.unwrap_or(FIRST_SEQ);
                self.expected = Some(seq + 1);
                return Ok(Some((seq, g)));
            }
            let Some(runs) = self.runs.as_mut() else {
                break;
            };
            if let Runs::Unopened(tree) = runs {
                // A saga read from past its runs' end (a recovery replaying
                // what follows a snapshot, mostly nothing) reads no run.
                if run_end(tree, &self.saga)?.is_none_or(|end| end <= self.from) {
                    self.runs = None;
                    continue;
                }
                let range = index_key(&self.saga, self.from)..=index_key(&self.saga, u64::MAX);
                *runs = Runs::Open(Box::new(tree.range(range)));
            }
            let Runs::Open(iter) = runs else {
                break;
            };
            let Some(item) = iter.next() else {
                self.runs = None;
                continue;
            };
            let (k, v) = item?;
            let last = index_parts(&k).map_or(0, |(_, s)| s);
            let first = (last + 1).saturating_sub((v.len() / 8) as u64);
            let Some(globals) = decode_run(&v) else {
                return Err(bad(
                    0,
                    Some(&self.saga),
                    Some(first),
                    format!(
                        "an index run of saga {} is not a list of global seqs",
                        self.saga
                    ),
                ));
            };
            let globals: Vec<u64> = globals.collect();
            if self.expected.map_or(first > self.from, |e| e != first) {
                return Err(self.gap(globals[0], first, "an index run"));
            }
            self.expected = Some(first);
            self.current = globals.into_iter();
        }
        let Some((seq, g)) = self.tail.next() else {
            return Ok(None);
        };
        if self.expected.map_or(seq > self.from, |e| e != seq) {
            return Err(self.gap(g, seq, "the unindexed tail"));
        }
        self.expected = Some(seq + 1);
        Ok(Some((seq, g)))
    }
}

/// The runs of [`Entries`]: not looked for yet, or being read.
enum Runs {
    Unopened(sled::Tree),
    Open(Box<sled::Iter>),
}

impl Iterator for Entries {
    type Item = Result<(u64, u64), Fault>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_entry() {
                Ok(Some((seq, _))) if seq < self.from => continue,
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// What the writer has applied, for the readers of the same process: the
/// last record and the mark, each stored after sled holds what it names.
#[derive(Debug, Default)]
pub struct Published {
    /// The global seq of the last applied record.
    pub last_seq: std::sync::atomic::AtomicU64,
    /// The mark of the last applied index batch.
    pub mark: std::sync::atomic::AtomicU64,
}

/// The writer's unindexed events: one pending run per saga.
#[derive(Default)]
pub struct Pending {
    /// Each saga's first unindexed saga seq and the global seqs from it.
    runs: HashMap<SagaId, (u64, Vec<u64>)>,
    /// How many events wait.
    events: usize,
}

impl Pending {
    /// The writer's pending runs after an open: the tail.
    pub fn from_tail(tail: &Tail) -> Pending {
        let mut p = Pending::default();
        for (saga, entries) in tail.sagas() {
            for &(seq, g) in entries {
                p.push(&saga, seq, g);
            }
        }
        p
    }

    /// Adds an event (the saga's next).
    pub fn push(&mut self, saga: &SagaId, saga_seq: u64, global: u64) {
        match self.runs.get_mut(saga) {
            Some((_, v)) => v.push(global),
            None => {
                self.runs.insert(saga.clone(), (saga_seq, vec![global]));
            }
        }
        self.events += 1;
    }

    /// How many events wait.
    pub fn events(&self) -> usize {
        self.events
    }

    /// The saga's next seq, if it has events waiting.
    pub fn next_seq(&self, saga: &SagaId) -> Option<u64> {
        self.runs.get(saga).map(|(first, v)| first + v.len() as u64)
    }

    /// Moves every pending run, the new index end of each saga whose
    /// snapshot does not name its run's last event (`snapshot_seq`, as far
    /// as the caller knows; see [`end_of`]), and the mark `through`, into
    /// `batch`.
    pub fn drain_into(
        &mut self,
        batch: &mut sled::Batch,
        through: u64,
        snapshot_seq: impl Fn(&SagaId) -> Option<u64>,
    ) {
        for (saga, (first, globals)) in self.runs.drain() {
            let last = first + globals.len() as u64 - 1;
            batch.insert(index_key(&saga, last), encode_run(&globals));
            if snapshot_seq(&saga) != Some(last) {
                batch.insert(
                    layout::saga_key(layout::ENDS, &saga),
                    &(last + 1).to_be_bytes(),
                );
            }
        }
        batch.insert(INDEXED, &through.to_be_bytes());
        self.events = 0;
    }
}
