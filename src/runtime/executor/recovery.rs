//! Recovery: every saga read back from its snapshot and the events after it,
//! and the tenants of sagas recorded before they were resolved.

use super::*;

/// Resolves the tenants of recovered sagas that recorded no GUID (written
/// before tenants were resolved), credential-free, so that they hold their
/// tenant by GUID even while paused; until then (or if the login service
/// cannot say) they hold it by their spelling, lowercased. In the background:
/// recovery does not wait on the network.
pub(super) async fn resolve_recovered(inner: Arc<Inner>, sagas: Vec<(String, String)>) {
    let graph = inner.graph.clone();
    let found: Vec<_> = futures::stream::iter(sagas)
        .map(move |(saga, tenant)| {
            let graph = graph.clone();
            async move { (saga, tenant.clone(), graph.resolve_tenant(&tenant).await) }
        })
        .buffer_unordered(RESOLVE_AT_ONCE)
        .collect()
        .await;
    let mut slots = inner
        .sagas
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (saga, tenant, r) in found {
        match r {
            Ok(guid) => {
                if let Some(slot) = slots.get_mut(&saga) {
                    slot.recovered_guid = Some(guid);
                }
            }
            Err(e) => {
                tracing::warn!(saga_id = %saga, tenant_id = %tenant, error = %e.message, "cannot resolve a recovered saga's tenant: it holds the tenant by its spelling until it reads its organization");
            }
        }
    }
}

/// A saga as read back from the log.
pub(super) struct Recovered {
    /// The saga's id, as its records carry it.
    pub(super) saga_id: SagaId,
    /// Its state after its last record.
    pub(super) state: State,
    /// The saga seq its next event gets.
    pub(super) next_seq: u64,
}

/// Reads every saga's latest snapshot and the events after it (blocking).
pub(super) fn load_all(store: &Store) -> Result<Vec<Recovered>, Error> {
    let mut out = Vec::new();
    for meta in store.list_sagas()? {
        let bad = |message: String| Error::Record {
            saga: meta.saga_id.0.clone(),
            message,
        };
        // `None` until the saga's first record (its `SagaStarted`) is read.
        let (mut state, from) = match (&meta.snapshot, meta.snapshot_seq) {
            (Some(snap), Some(seq)) => match State::decode(&snap.state) {
                Ok(state) => (Some(state), seq + 1),
                // An older snapshot version: replay the saga's events instead.
                Err(crate::codec::Error::UnknownVersion { .. }) => (None, 0),
                Err(e) => return Err(bad(format!("snapshot at seq {seq}: {e}"))),
            },
            _ => (None, 0),
        };
        // Nothing follows the snapshot: no event to read (most sagas).
        if from < meta.next_seq {
            for record in store.saga_records(&meta.saga_id, from) {
                let record = record?;
                let event = Event::decode(&record.payload).map_err(|e| {
                    bad(format!(
                        "record {} (global {}): {e}",
                        record.saga_seq, record.global_seq
                    ))
                })?;
                match &mut state {
                    Some(state) => state.apply_at(&event, record.at),
                    None => {
                        let mut first = State::begin(&event).map_err(|e| {
                            bad(format!(
                                "record {} (global {}): {e}",
                                record.saga_seq, record.global_seq
                            ))
                        })?;
                        first.updated_at = first.updated_at.max(record.at);
                        state = Some(first);
                    }
                }
            }
        }
        let state = state.ok_or_else(|| bad("it has no records".into()))?;
        out.push(Recovered {
            saga_id: meta.saga_id,
            state,
            next_seq: meta.next_seq,
        });
    }
    Ok(out)
}
