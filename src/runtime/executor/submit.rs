//! Submissions: the checks of a new saga's tenant, its resolution to a GUID,
//! and the atomic reservation of one saga per tenant.

use super::*;

impl Executor {
    /// Refuses a tenant that cannot be started (its secret is checked by
    /// `submit` before): a partner-center tenant without a configured
    /// partner (a tenant that already has a saga is refused by
    /// [`Executor::reserve`]).
    pub(super) fn check_submission(&self, spec: &TenantSpec) -> Result<(), EngineError> {
        if spec.subscriptions == SubscriptionMode::PartnerCenter && self.inner.partner.is_none() {
            return Err(EngineError::Invalid(format!(
                "tenant {}: subscriptions = \"partner-center\" needs [partner_center] in the daemon's config",
                spec.tenant_id
            )));
        }
        Ok(())
    }

    /// Every tenant's GUID, from its discovery document (no credentials),
    /// in request order. An unknown tenant is invalid input; an unreachable
    /// login service makes the daemon unavailable for the request.
    pub(super) async fn resolve(&self, tenants: &[TenantSpec]) -> Result<Vec<String>, EngineError> {
        let graph = self.inner.graph.clone();
        let names: Vec<String> = tenants.iter().map(|t| t.tenant_id.clone()).collect();
        let found: Vec<_> = futures::stream::iter(names)
            .map(move |name| {
                let graph = graph.clone();
                async move { graph.resolve_tenant(&name).await }
            })
            .buffered(RESOLVE_AT_ONCE)
            .collect()
            .await;
        let mut out = Vec::with_capacity(found.len());
        for (i, (spec, r)) in tenants.iter().zip(found).enumerate() {
            match r {
                Ok(guid) => out.push(guid),
                Err(e) if e.class == crate::model::FailureClass::Permanent => {
                    return Err(EngineError::Invalid(format!(
                        "entry {} (tenant {}): {}",
                        i + 1,
                        spec.tenant_id,
                        e.message
                    )))
                }
                Err(e) => {
                    return Err(EngineError::Unavailable(format!(
                        "entry {} (tenant {}): cannot resolve the tenant: {}",
                        i + 1,
                        spec.tenant_id,
                        e.message
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Checks that no tenant of the request has a saga that is not terminal
    /// (recovered ones included) or is being submitted by another request,
    /// and reserves them all, in one step under the saga table's lock.
    pub(super) fn reserve(
        &self,
        tenants: &[TenantSpec],
        guids: &[String],
    ) -> Result<Reservation<'_>, EngineError> {
        let sagas = self
            .inner
            .sagas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut reserving = self
            .inner
            .reserving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut keys = Vec::new();
        for (spec, guid) in tenants.iter().zip(guids) {
            let mine = tenant_keys(&spec.tenant_id, Some(guid));
            let active = sagas.iter().find(|(_, s)| {
                let guid = s.status.tenant_guid.as_ref().or(s.recovered_guid.as_ref());
                !s.status.state.is_terminal()
                    && tenant_keys(&s.tenant_id, guid.map(String::as_str))
                        .iter()
                        .any(|k| mine.contains(k))
            });
            if let Some((id, slot)) = active {
                return Err(EngineError::Invalid(format!(
                    "tenant {} (tenant {guid}) already has an active saga {id} (submitted as {})",
                    spec.tenant_id, slot.tenant_id
                )));
            }
            if mine.iter().any(|k| reserving.contains(k)) {
                return Err(EngineError::Invalid(format!(
                    "tenant {} (tenant {guid}) is being submitted by another request",
                    spec.tenant_id
                )));
            }
            keys.extend(mine);
        }
        reserving.extend(keys.iter().cloned());
        Ok(Reservation {
            inner: &self.inner,
            keys,
        })
    }
}

/// Tenants resolved at once for one submission.
pub(super) const RESOLVE_AT_ONCE: usize = 16;

/// The keys a tenant is reserved under: its GUID when known, and the
/// spelling the batch used, lowercased (a saga recorded before GUIDs were
/// holds its tenant by that spelling until it has read its GUID).
pub(super) fn tenant_keys(raw: &str, guid: Option<&str>) -> Vec<String> {
    let mut keys = vec![raw.to_ascii_lowercase()];
    if let Some(g) = guid {
        keys.push(g.to_ascii_lowercase());
    }
    keys
}

/// Refuses a list of tenants that names one tenant twice, under any spelling
/// (GUID or domain, any case): the message names both entries (`name(i)`
/// for the i-th, 0-based) and the tenant.
pub fn duplicates(
    tenants: &[TenantSpec],
    guids: &[String],
    name: impl Fn(usize) -> String,
) -> Result<(), String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, (spec, guid)) in tenants.iter().zip(guids).enumerate() {
        for key in tenant_keys(&spec.tenant_id, Some(guid)) {
            match seen.get(&key) {
                Some(&j) if j != i => {
                    return Err(format!(
                        "{} (tenant_id {}) and {} (tenant_id {}) name the same tenant {guid}: one saga per tenant",
                        name(j),
                        tenants[j].tenant_id,
                        name(i),
                        spec.tenant_id
                    ))
                }
                _ => {
                    seen.insert(key, i);
                }
            }
        }
    }
    Ok(())
}

/// Tenant keys held for a submission until its sagas are registered.
pub(super) struct Reservation<'a> {
    /// Where they are held.
    pub(super) inner: &'a Inner,
    /// The tenant keys reserved; dropping the reservation releases them.
    pub(super) keys: Vec<String>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut reserving =
            (self.inner.reserving.lock()).unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in &self.keys {
            reserving.remove(k);
        }
    }
}

impl Executor {
    /// Each tenant that names a `domain` is the organization its id and
    /// domain say (`GET /v1.0/organization`, with the tenant's credential),
    /// else invalid input naming the entry; before any saga starts or any
    /// plan is read.
    pub(super) async fn check_domains(
        &self,
        tenants: &[TenantSpec],
        domains: &[Option<String>],
    ) -> Result<(), EngineError> {
        if !domains.iter().any(Option::is_some) {
            return Ok(());
        }
        let guids = self.resolve(tenants).await?;
        for (i, (spec, domain)) in tenants.iter().zip(domains).enumerate() {
            let Some(domain) = domain else { continue };
            let entry = format!("entry {} (tenant {})", i + 1, spec.tenant_id);
            let credential = graph::read_credential_async(&spec.secret)
                .await
                .map_err(|e| EngineError::Invalid(format!("{entry}: {e}")))?;
            let api = self
                .inner
                .graph
                .tenant(&spec.tenant_id, &spec.client_id, credential);
            match api.check_identity(&guids[i], domain).await {
                Ok(()) => {}
                Err(e) if e.code == "tenant_mismatch" => {
                    return Err(EngineError::Invalid(format!("{entry}: {}", e.message)))
                }
                Err(e) => {
                    return Err(EngineError::Unavailable(format!(
                        "{entry}: cannot confirm the organization: {} ({})",
                        e.message, e.code
                    )))
                }
            }
        }
        Ok(())
    }
}
