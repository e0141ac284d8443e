//! `closeout verify`'s checks beyond the store's hash chain: gap-free
//! sequences (global and per saga) and every outcome matched to an earlier
//! intent of its saga; and the check of a jsonl export against the log.
//!
//! Memory is bounded by the number of sagas and their open intents (changes
//! without a successful outcome yet), never by the number of events.

use super::jsonl::{line_of, Line};
use super::source::Want;
use super::{Entry, Error, Fact, Log};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fmt;
use std::io::BufRead;
use std::path::Path;

/// The first record found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bad {
    /// Its global sequence number.
    pub seq: u64,
    /// The id of the saga it belongs to.
    pub saga_id: String,
    /// Its number within the saga.
    pub saga_seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} (saga {} #{}): {}",
            self.seq, self.saga_id, self.saga_seq, self.reason
        )
    }
}

/// What the checks found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records read (a record split into items counts once).
    pub records: u64,
    /// Distinct sagas among the records read.
    pub sagas: u64,
    /// Intent entries seen: one per object an intent names.
    pub intents: u64,
    /// Outcome entries seen (applied, failed, or settled by a read), each matched to
    /// an intent.
    pub outcomes: u64,
    /// Intents with no outcome at the end of the log (in doubt, to be resolved
    /// by the daemon by reading).
    pub in_doubt: u64,
    /// The first bad record, if any.
    pub first_bad: Option<Bad>,
    /// The last record read: the chain's head once the log is sound, what a
    /// second system keeps as an anchor (`verify --expect-head`).
    pub head: Option<Anchor>,
}

/// A record of the chain as a person keeps it: its hash, seq and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Its global sequence number.
    pub seq: u64,
    /// Its hash (over the previous record's hash and its own bytes).
    pub hash: [u8; 32],
    /// When it was recorded.
    pub at: crate::model::Timestamp,
}

impl Anchor {
    /// The anchor of a store's head.
    pub fn of(head: &crate::store::Head) -> Anchor {
        Anchor {
            seq: head.last_seq,
            hash: head.last_hash,
            at: crate::model::Timestamp(head.last_at),
        }
    }

    /// The hash as `verify` prints it (64 lowercase hex digits).
    pub fn hash_hex(&self) -> String {
        super::entry::hex(&self.hash)
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (record {}, {})",
            super::entry::hex(&self.hash),
            self.seq,
            self.at.to_rfc3339()
        )
    }
}

/// Parses a head hash as `verify` prints it (64 hex digits).
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    if t.len() != 64 || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Whether the log holds a record with hash `hash`. Run on a log whose
/// chain verified sound, that record is an ancestor of the head (or the head
/// itself): the log has grown from the state the anchor was taken of, not
/// been rolled back or rewritten before it.
pub fn contains_hash(log: &dyn Log, hash: &[u8; 32]) -> Result<Option<Anchor>, Error> {
    let want = Want {
        details: false,
        facts: false,
        http: false,
    };
    for e in log.entries_with(want) {
        let e = e?;
        if &e.hash == hash {
            return Ok(Some(Anchor {
                seq: e.seq,
                hash: e.hash,
                at: e.at,
            }));
        }
    }
    Ok(None)
}

/// What is known of one saga while checking.
#[derive(Debug, Default)]
struct SagaCheck {
    /// The saga sequence number the next record must carry.
    next_seq: u64,
    /// Intents seen without a final outcome yet: change key → (action, object).
    open: HashMap<String, (String, Option<String>)>,
    /// Change keys among `open` that got an in-doubt outcome already.
    answered: HashSet<String>,
}

/// Checks sequences and intent/outcome pairing entry by entry, in log order.
#[derive(Debug)]
pub struct Checker {
    /// The global sequence number the next record must carry (`None` before
    /// the first).
    next_global: Option<u64>,
    /// The per-saga state: next sequence number and open intents, by saga id.
    sagas: HashMap<String, SagaCheck>,
    /// The first saga sequence number of every saga.
    first_saga_seq: u64,
    /// The counts so far; returned by `finish`.
    report: Report,
}

impl Checker {
    /// A checker for a log whose sagas number their records from
    /// `first_saga_seq`.
    pub fn new(first_saga_seq: u64) -> Checker {
        Checker {
            next_global: None,
            sagas: HashMap::default(),
            first_saga_seq,
            report: Report::default(),
        }
    }

    /// Checks the next entry; returns what is wrong with it, if anything.
    /// Takes the entry by value: its change key, action and object move into
    /// the open intents instead of being copied.
    pub fn push(&mut self, e: Entry) -> Option<Bad> {
        let bad = |reason: String| {
            Some(Bad {
                seq: e.seq,
                saga_id: e.saga_id.clone(),
                saga_seq: e.saga_seq,
                reason,
            })
        };
        let first_item = e.item.is_none_or(|i| i.index == 0);
        if first_item {
            self.report.records += 1;
            self.report.head = Some(Anchor {
                seq: e.seq,
                hash: e.hash,
                at: e.at,
            });
            if let Some(expected) = self.next_global {
                if e.seq != expected {
                    return bad(format!(
                        "global sequence {} where {expected} was expected",
                        e.seq
                    ));
                }
            }
            self.next_global = Some(e.seq + 1);
        }
        if !self.sagas.contains_key(&e.saga_id) {
            self.report.sagas += 1;
            self.sagas.insert(
                e.saga_id.clone(),
                SagaCheck {
                    next_seq: self.first_saga_seq,
                    ..SagaCheck::default()
                },
            );
        }
        let Some(saga) = self.sagas.get_mut(&e.saga_id) else {
            return bad("its saga vanished from the checker".into());
        };
        if first_item {
            if e.saga_seq != saga.next_seq {
                return bad(format!(
                    "saga sequence {} where {} was expected",
                    e.saga_seq, saga.next_seq
                ));
            }
            saga.next_seq += 1;
        }
        match &e.fact {
            Fact::Intent { .. } => {
                self.report.intents += 1;
                if let Fact::Intent {
                    change_id, action, ..
                } = e.fact
                {
                    saga.open.insert(change_id, (action, e.object));
                }
            }
            Fact::Outcome { change_id, result } => {
                self.report.outcomes += 1;
                let known = if result.leaves_open() {
                    let known = saga.open.contains_key(change_id);
                    if known && !saga.answered.contains(change_id) {
                        saga.answered.insert(change_id.clone());
                    }
                    known
                } else {
                    let known = saga.open.remove(change_id).is_some();
                    if known && !saga.answered.is_empty() {
                        saga.answered.remove(change_id);
                    }
                    known
                };
                if !known {
                    return bad(format!(
                        "outcome of change {change_id} has no earlier intent"
                    ));
                }
            }
            Fact::Resolved { action, .. } => {
                self.report.outcomes += 1;
                let key = saga
                    .open
                    .iter()
                    .find(|(_, (a, o))| a == action && *o == e.object)
                    .map(|(k, _)| k.clone());
                let Some(key) = key else {
                    return bad(format!(
                        "{action} of {} resolved without an open intent",
                        e.object.as_deref().unwrap_or("an unnamed object")
                    ));
                };
                saga.open.remove(&key);
                saga.answered.remove(&key);
            }
            _ => {}
        }
        None
    }

    /// The counts; intents never answered are counted as in doubt.
    pub fn finish(mut self) -> Report {
        self.report.in_doubt = self
            .sagas
            .values()
            .map(|s| s.open.len().saturating_sub(s.answered.len()) as u64)
            .sum();
        self.report
    }
}

/// Verifies a whole log: its hash chain (the store's own walk: hashes,
/// links, index, head) and, at the same time on another thread, sequences and
/// intent/outcome pairing. A broken chain is reported first (the other check
/// may have tripped over the same damage); otherwise the first record the
/// other check names.
pub fn verify(log: &dyn Log) -> Result<Report, Error> {
    if let Some(report) = log.verify_one_pass() {
        return report;
    }
    let (chain, checked) = std::thread::scope(|scope| {
        let chain = scope.spawn(|| log.check_chain());
        let checked = check_entries(log, log.first_saga_seq());
        (chain.join(), checked)
    });
    combine(chain, checked)
}

/// The report of a chain walk (`Err` if its thread panicked) and an entry
/// check: a broken chain first, else the entry check's.
pub fn combine(
    chain: std::thread::Result<Result<(u64, Option<Bad>), Error>>,
    checked: Result<Report, Error>,
) -> Result<Report, Error> {
    let (records, bad) = chain.map_err(|_| Error::Log {
        path: String::new(),
        message: "the chain check panicked".into(),
    })??;
    if let Some(bad) = bad {
        return Ok(Report {
            records,
            first_bad: Some(bad),
            ..Report::default()
        });
    }
    checked
}

/// Runs the [`Checker`] over a whole log, stopping at the first bad record.
pub fn check_entries(log: &dyn Log, first_saga_seq: u64) -> Result<Report, Error> {
    check_stream(log.entries_with(Want::CHECK), first_saga_seq)
}

/// Runs the [`Checker`] over entries (built with [`Want::CHECK`]), stopping
/// at the first bad record.
pub fn check_stream(
    entries: super::source::Entries<'_>,
    first_saga_seq: u64,
) -> Result<Report, Error> {
    let mut checker = Checker::new(first_saga_seq);
    for e in entries {
        let e = match e {
            Ok(e) => e,
            Err(Error::Decode {
                seq,
                saga_id,
                message,
            }) => {
                let mut report = checker.finish();
                report.first_bad = Some(Bad {
                    seq,
                    saga_id,
                    saga_seq: 0,
                    reason: format!("its event cannot be decoded: {message}"),
                });
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        if let Some(bad) = checker.push(e) {
            let mut report = checker.finish();
            report.first_bad = Some(bad);
            return Ok(report);
        }
    }
    Ok(checker.finish())
}

/// The result of checking an export against the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Non-blank lines of the export checked, up to and including the first bad one.
    pub lines: u64,
    /// The first line that does not match the log: its 1-based number, its
    /// `seq`, and what differs.
    pub first_bad: Option<(u64, u64, String)>,
}

/// Checks a jsonl export line by line against the log: every line must be
/// exactly the line the log exports for that record (and item) today, in
/// log order. A filtered export (lines left out) is fine; a changed, added or
/// reordered line is not.
pub fn check_export(log: &dyn Log, path: &Path) -> Result<ExportReport, Error> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(&shown, e))?;
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut entries = log.entries();
    let mut report = ExportReport::default();
    let mut last: Option<(u64, u32)> = None;
    for (n, line) in reader.lines().enumerate() {
        let n = n as u64 + 1;
        let text = line.map_err(|e| Error::io(&shown, e))?;
        if text.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        let got: Line = serde_json::from_str(&text).map_err(|e| Error::Export {
            path: shown.clone(),
            line: n,
            message: format!("not a jsonl audit line: {e}"),
        })?;
        let key = (got.seq, got.item.map_or(0, |i| i.index));
        if last.is_some_and(|l| key <= l) {
            report.first_bad = Some((n, got.seq, "out of log order (or repeated)".into()));
            return Ok(report);
        }
        last = Some(key);
        let expected = loop {
            match entries.next() {
                None => break None,
                Some(e) => {
                    let e = e?;
                    let k = (e.seq, e.item.map_or(0, |i| i.index));
                    if k == key {
                        break Some(e);
                    }
                    if k > key {
                        break None;
                    }
                }
            }
        };
        let Some(expected) = expected else {
            report.first_bad = Some((n, got.seq, "no such record in the log".into()));
            return Ok(report);
        };
        let want = line_of(&expected)?;
        if let Some(field) = first_difference(&got, &want) {
            report.first_bad = Some((n, got.seq, format!("{field} differs from the log")));
            return Ok(report);
        }
    }
    Ok(report)
}

/// The name of the first field in which two lines differ.
fn first_difference(a: &Line, b: &Line) -> Option<&'static str> {
    let checks: [(&'static str, bool); 14] = [
        ("seq", a.seq == b.seq),
        ("saga_seq", a.saga_seq == b.saga_seq),
        ("hash", a.hash == b.hash),
        ("prev_hash", a.prev_hash == b.prev_hash),
        ("at", a.at == b.at),
        ("saga_id", a.saga_id == b.saga_id),
        ("tenant_id", a.tenant_id == b.tenant_id),
        ("tenant_guid", a.tenant_guid == b.tenant_guid),
        ("kind", a.kind == b.kind),
        ("item", a.item == b.item),
        ("http", a.http == b.http),
        ("object", a.object == b.object),
        ("step", a.step == b.step),
        ("event", a.event == b.event),
    ];
    checks.iter().find(|(_, same)| !same).map(|(name, _)| *name)
}
