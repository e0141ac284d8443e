//! The credential-free read of a tenant's OpenID Connect discovery document,
//! `GET {login}/{tenant}/v2.0/.well-known/openid-configuration`
//! (https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc,
//! "Find your app's OpenID configuration document URI"). The tenant may be
//! named by its id or a domain. Step 5 reads it before and after the
//! operator deletes the tenant: Microsoft documents no signal that a tenant
//! is deleted, so closeout records what this document answers, and a change
//! from "served" to "not found" (`AADSTS90002`) is what it calls "observed gone".

use super::client::{Body, Reply, Shared};
use super::error::{self, CallCtx};
use crate::model::{CallError, FailureClass};
use crate::saga::closure::Answer;
use reqwest::Method;

/// Reads the discovery document for `name` (a tenant id or domain), without
/// credentials. `Ok(Found)` with its `issuer` on 200; `Ok(NotFound)` when the
/// login service answers 400 with a "tenant not found" code (`AADSTS90002`,
/// or `AADSTS90013`-style invalid input); anything else is a transient
/// failure (the read is repeated later; it never counts as evidence).
pub(crate) async fn openid_configuration(shared: &Shared, name: &str) -> Result<Answer, CallError> {
    let (ctx, reply) = fetch(shared, name).await?;
    let unexpected = |what: String| CallError {
        class: FailureClass::Transient,
        code: "discovery_unexpected".into(),
        message: format!("tenant {name}: GET {}: {what}", ctx.path),
        retry_after: None,
    };
    if reply.status == 200 {
        let v: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(format!("body is not JSON: {e}")))?;
        let issuer = v
            .get("issuer")
            .and_then(|i| i.as_str())
            .ok_or_else(|| unexpected("no issuer in the document".into()))?;
        return Ok(Answer::Found {
            issuer: issuer.to_string(),
        });
    }
    match (reply.status, error::error_code(&reply.body)) {
        (400, Some((code, _))) if code == "AADSTS90002" => Ok(Answer::NotFound { code }),
        (status, code) => Err(unexpected(format!(
            "answered {status}{}",
            code.map(|(c, _)| format!(" {c}")).unwrap_or_default()
        ))),
    }
}

/// `GET {login}/{name}/v2.0/.well-known/openid-configuration`, without
/// credentials: the one request behind both readers of the document (the
/// tenant's GUID at submit, `graph::identity`, and step 5's evidence above).
/// A transport failure is transient: a read is repeated, never in doubt.
pub(crate) async fn fetch(shared: &Shared, name: &str) -> Result<(CallCtx, Reply), CallError> {
    let mut url = shared.endpoints.login.clone();
    url.set_path(&format!(
        "/{}/v2.0/.well-known/openid-configuration",
        super::bulk::segment(name)
    ));
    url.set_query(None);
    let ctx = CallCtx {
        tenant: name.to_string(),
        method: "GET".into(),
        path: url.path().to_string(),
        // No credential is sent.
        redact: error::Redact::default(),
    };
    match shared.send(Method::GET, url, None, Body::None).await {
        Ok(reply) => Ok((ctx, reply)),
        Err((kind, detail)) => {
            let mut e = error::transport_error(&ctx, kind, &detail);
            e.class = FailureClass::Transient;
            Err(e)
        }
    }
}
