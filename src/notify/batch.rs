//! Which sagas make up each batch and which have ended, so that exactly one
//! saga records `BatchFinished` when the last one ends. The claim is made
//! under one lock, so two sagas ending at once cannot both (or neither) see
//! the batch finish; after a restart the tracker is rebuilt from the sagas'
//! states, and a finished batch without its record is claimed again.

use crate::saga::Ending;
use std::collections::HashMap;
use std::sync::Mutex;

/// The sagas of every batch the daemon knows.
#[derive(Debug, Default)]
pub struct Batches {
    /// Each batch's sagas and their endings, by batch id.
    batches: Mutex<HashMap<String, Track>>,
}

/// One batch.
#[derive(Debug, Default)]
struct Track {
    /// How many sagas it has (as submitted; as found after a restart).
    size: u32,
    /// Its sagas by id, with their ending once they have one.
    members: HashMap<String, Option<Ending>>,
    /// Whether a saga has recorded (or claimed recording) that it finished.
    finished: bool,
}

/// How a finished batch ended, saga by saga.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sagas that closed their tenant.
    pub completed: u32,
    /// Sagas that undid their changes.
    pub rolled_back: u32,
    /// Sagas that ended failed, without closing their tenant.
    pub failed: u32,
}

impl Batches {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Track>> {
        self.batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes a saga of a batch (at submission, or read back at recovery with
    /// its ending and whether it recorded the batch's end).
    pub fn join(&self, batch: &str, saga: &str, size: u32, ending: Option<Ending>, finished: bool) {
        let mut all = self.lock();
        let track = all.entry(batch.to_string()).or_default();
        track.size = track.size.max(size);
        track.members.insert(saga.to_string(), ending);
        track.finished |= finished;
    }

    /// After recovery: a batch counts the sagas found (a crash during its
    /// submission may have left fewer than it announced).
    pub fn recovered(&self) {
        for track in self.lock().values_mut() {
            track.size = u32::try_from(track.members.len()).unwrap_or(u32::MAX);
        }
    }

    /// Whether the batch has ended but no saga has recorded it yet.
    pub fn unrecorded_end(&self, batch: &str) -> bool {
        self.lock()
            .get(batch)
            .is_some_and(|t| !t.finished && complete(t))
    }

    /// Notes that a saga ended. Returns the batch's tally to the one caller
    /// whose end finishes the batch (it records `BatchFinished`), `None` to
    /// every other.
    pub fn end(&self, batch: &str, saga: &str, ending: Ending) -> Option<Tally> {
        let mut all = self.lock();
        let track = all.get_mut(batch)?;
        track.members.insert(saga.to_string(), Some(ending));
        if track.finished || !complete(track) {
            return None;
        }
        track.finished = true;
        let mut tally = Tally::default();
        for e in track.members.values().flatten() {
            match e {
                Ending::Completed => tally.completed += 1,
                Ending::RolledBack => tally.rolled_back += 1,
                Ending::Failed(_) => tally.failed += 1,
            }
        }
        Some(tally)
    }
}

fn complete(t: &Track) -> bool {
    t.members.len() >= t.size as usize && t.members.values().all(Option::is_some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_end_claims_the_batch() {
        let b = Batches::default();
        b.join("b", "s1", 3, None, false);
        b.join("b", "s2", 3, None, false);
        assert_eq!(b.end("b", "s1", Ending::Completed), None);
        // s3 is not submitted yet: the batch is not complete.
        assert_eq!(b.end("b", "s2", Ending::RolledBack), None);
        b.join("b", "s3", 3, None, false);
        let tally = b.end("b", "s3", Ending::Failed("x".into()));
        assert_eq!(
            tally,
            Some(Tally {
                completed: 1,
                rolled_back: 1,
                failed: 1
            })
        );
        assert_eq!(b.end("b", "s3", Ending::Completed), None, "claimed once");
        assert!(!b.unrecorded_end("b"));
    }

    #[test]
    fn recovery_counts_the_sagas_found_and_reclaims_an_unrecorded_end() {
        let b = Batches::default();
        b.join("b", "s1", 3, Some(Ending::Completed), false);
        b.join("b", "s2", 3, Some(Ending::Completed), false);
        assert!(!b.unrecorded_end("b"));
        b.recovered();
        assert!(b.unrecorded_end("b"));
        assert!(b.end("b", "s2", Ending::Completed).is_some());
        let done = Batches::default();
        done.join("b", "s1", 1, Some(Ending::Completed), true);
        done.recovered();
        assert!(!done.unrecorded_end("b"));
        assert_eq!(done.end("b", "s1", Ending::Completed), None);
    }
}
