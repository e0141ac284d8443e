//! Tokens of the client-credentials flow: requested from the configured login
//! endpoint, cached per client, renewed before they expire and once after a
//! 401. Tokens and secrets live only in [`Secret`]s, so neither `Debug` nor
//! logs ever show them, and every value sent is known to the source's
//! [`Redact`], which clears it from the messages built from any reply.

use super::client::{Body, Reply, Shared};
use super::error::{self, CallCtx, TransportKind};
use super::redact::{Redact, Sent};
use super::wire::TokenResponse;
use super::Credential;
use crate::model::{CallError, FailureClass, Secret};
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Longest lifetime a token is kept for, whatever `expires_in` says. Access
/// tokens of the Microsoft identity platform live 60 to 90 minutes by default
/// and at most a day when an administrator configures their lifetime
/// (https://learn.microsoft.com/en-us/entra/identity-platform/configurable-token-lifetimes).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A cached bearer token.
#[derive(Clone, Debug)]
pub struct Token {
    /// The token itself, shared (not copied) by every holder of this token.
    pub value: Arc<Secret>,
    /// When it should be replaced (before it actually expires).
    renew_at: Instant,
    /// Which token this is, so a 401 renews only the token it was given for.
    pub generation: u64,
    /// The token endpoint's clock minus this machine's, in seconds, from the
    /// answer's `Date` header (`closeout doctor`: an assertion or token is
    /// judged by the service's clock).
    pub skew_secs: Option<i64>,
}

/// Obtains and caches the tokens of one app in one tenant for one scope.
#[derive(Debug)]
pub struct TokenSource {
    /// The shared HTTP client.
    shared: Arc<Shared>,
    /// The tenant the token is for (customer or partner).
    tenant: String,
    /// The app's client id.
    client_id: String,
    /// The app's client secret or certificate.
    credential: Credential,
    /// The scope asked for, e.g. `https://graph.microsoft.com/.default`: which API the
    /// token is for.
    scope: String,
    /// The current token; the lock also makes renewals single-flight.
    cached: tokio::sync::Mutex<(Option<Token>, u64)>,
    /// The client secret and the latest tokens: what its calls' messages
    /// are cleared of.
    sent: Arc<Sent>,
}

impl TokenSource {
    /// Sends one request with this source's token, renewing the token once
    /// on a 401 and sending again (the answer a stale or revoked token gets):
    /// the one send loop of Graph and Partner Center calls. `Err` when no
    /// token could be had; `Ok(Err)` when the request got no answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
        headers: &[(&'static str, String)],
        redirectable: bool,
    ) -> Result<Result<Reply, (TransportKind, String)>, CallError> {
        let mut token = self.get().await?;
        let mut renewed = false;
        loop {
            let answer = if redirectable {
                self.shared
                    .get_redirectable(url.clone(), Some(&*token.value))
                    .await
            } else {
                let b = body.map_or(Body::None, Body::Json);
                (self.shared)
                    .send_with(method.clone(), url.clone(), Some(&*token.value), b, headers)
                    .await
            };
            match answer {
                Ok(r) if r.status == 401 && !renewed => {
                    tracing::debug!(tenant = %self.tenant, path = %url.path(), "401: renewing the token once");
                    renewed = true;
                    token = self.renew_after_401(token.generation).await?;
                }
                other => return Ok(other),
            }
        }
    }

    /// A token source for `tenant`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        tenant: &str,
        client_id: &str,
        credential: Credential,
        scope: &str,
    ) -> TokenSource {
        let secret = match &credential {
            Credential::Secret(s) => Some(s.clone()),
            Credential::Certificate(_) => None,
        };
        TokenSource {
            shared,
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            credential,
            scope: scope.to_string(),
            cached: tokio::sync::Mutex::new((None, 0)),
            sent: Arc::new(Sent::new(secret)),
        }
    }

    /// What the messages of a call made with this source's tokens are
    /// cleared of: the client secret and the tokens in use (read when a
    /// message is built, so a token obtained during the call is included).
    pub fn redact(&self) -> Redact {
        Redact::of(&self.sent)
    }

    /// A valid token: the cached one unless it is due for renewal.
    pub async fn get(&self) -> Result<Token, CallError> {
        let mut guard = self.cached.lock().await;
        if let Some(t) = &guard.0 {
            if Instant::now() < t.renew_at {
                return Ok(t.clone());
            }
        }
        let t = self.fetch(guard.1 + 1).await?;
        *guard = (Some(t.clone()), t.generation);
        Ok(t)
    }

    /// After a 401 with token `generation`: renews it unless another call
    /// already did, and returns the token to retry with.
    pub async fn renew_after_401(&self, generation: u64) -> Result<Token, CallError> {
        let mut guard = self.cached.lock().await;
        if let Some(t) = &guard.0 {
            if t.generation != generation {
                return Ok(t.clone());
            }
        }
        let t = self.fetch(guard.1 + 1).await?;
        *guard = (Some(t.clone()), t.generation);
        Ok(t)
    }

    /// The scope tokens are asked for.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The certificate's SHA-256 thumbprint, when the app signs in with one.
    pub fn thumbprint(&self) -> Option<String> {
        self.credential.thumbprint()
    }

    /// Asks the token endpoint for a new token now, replacing the cached one.
    pub async fn fresh(&self) -> Result<Token, CallError> {
        let mut guard = self.cached.lock().await;
        let t = self.fetch(guard.1 + 1).await?;
        *guard = (Some(t.clone()), t.generation);
        Ok(t)
    }

    /// The token request's form: the client id, the secret or a fresh
    /// signed assertion for the token endpoint `audience`, the scope; and
    /// the assertion, to redact from the answer.
    fn form(&self, audience: &str) -> Result<(String, Option<Arc<Secret>>), CallError> {
        let mut assertion = None;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("client_id", &self.client_id);
        match &self.credential {
            Credential::Secret(s) => {
                form.append_pair("client_secret", s.expose());
            }
            Credential::Certificate(c) => {
                // The audience is the token endpoint actually called (the
                // page's `https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token`,
                // or a national cloud's login host).
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let jti = uuid::Uuid::new_v4().to_string();
                let signed = c
                    .assertion(&self.client_id, audience, now, &jti)
                    .map(|a| Arc::new(Secret::new(a)))
                    .map_err(|e| CallError {
                        class: FailureClass::Permanent,
                        code: "certificate_unusable".into(),
                        message: format!("tenant {}: {e}", self.tenant),
                        retry_after: None,
                    })?;
                form.append_pair("client_assertion_type", crate::cert::ASSERTION_TYPE);
                form.append_pair("client_assertion", signed.expose());
                assertion = Some(signed);
            }
        }
        form.append_pair("scope", &self.scope);
        form.append_pair("grant_type", "client_credentials");
        let form = form.finish();
        Ok((form, assertion))
    }

    async fn fetch(&self, generation: u64) -> Result<Token, CallError> {
        let mut url = self.shared.endpoints.login.clone();
        url.set_path(&format!("/{}/oauth2/v2.0/token", self.tenant));
        url.set_query(None);
        let (form, assertion) = self.form(url.as_str())?;
        // The answer may echo the form: the secret or the assertion.
        let mut redact = self.redact();
        if let Some(a) = assertion {
            redact = redact.with(a);
        }
        let ctx = CallCtx {
            tenant: self.tenant.clone(),
            method: "POST".into(),
            path: url.path().to_string(),
            redact,
        };
        let reply = match self
            .shared
            .send(Method::POST, url, None, Body::Form(form))
            .await
        {
            Ok(r) => r,
            Err((kind, detail)) => {
                // Asking for a token changes nothing: never in doubt. A
                // refused redirect or an oversized answer stays permanent.
                let mut e = error::transport_error(&ctx, kind, &detail);
                e.class = match kind {
                    error::TransportKind::Redirect | error::TransportKind::TooLarge => {
                        FailureClass::Permanent
                    }
                    _ => FailureClass::Transient,
                };
                return Err(e);
            }
        };
        if (200..300).contains(&reply.status) {
            let not_a_token = |why: String| {
                let mut e = error::bad_response(
                    &ctx,
                    &reply.request_id(),
                    &format!("a reply that is not a usable token ({why})"),
                );
                e.class = FailureClass::Transient;
                e
            };
            let t: TokenResponse = serde_json::from_slice(&reply.body)
                .map_err(|e| not_a_token(format!("{e}; {}", reply.body_hint())))?;
            // A bearer token travels in a header: one with a control
            // character or a space could not be sent (RFC 6750's b64token
            // is visible ASCII).
            if t.access_token.is_empty() || !t.access_token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(not_a_token(
                    "its access_token is empty or holds characters a header cannot carry".into(),
                ));
            }
            // The server's number is trusted only up to MAX_TOKEN_LIFETIME:
            // a token kept longer than it truly lives is renewed on its
            // first 401 anyway, and no value can overflow the clock.
            let lifetime = Duration::from_secs(t.expires_in).min(MAX_TOKEN_LIFETIME);
            let margin = self.shared.options.token_renew_margin.min(lifetime / 5);
            tracing::debug!(
                tenant = %self.tenant,
                expires_in = t.expires_in,
                certificate = self.credential.thumbprint().as_deref().unwrap_or("-"),
                "token obtained"
            );
            let now = Instant::now();
            let skew_secs = reply
                .header("date")
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .and_then(|server| {
                    let here = std::time::SystemTime::now();
                    let secs = |t: std::time::SystemTime| {
                        t.duration_since(std::time::UNIX_EPOCH)
                            .ok()
                            .map(|d| d.as_secs() as i64)
                    };
                    Some(secs(server)? - secs(here)?)
                });
            let value = Arc::new(Secret::new(t.access_token));
            self.sent.token(value.clone());
            return Ok(Token {
                value,
                renew_at: now.checked_add(lifetime - margin).unwrap_or(now),
                generation,
                skew_secs,
            });
        }
        let rid = reply
            .header("x-ms-request-id")
            .map(str::to_string)
            .unwrap_or_else(|| reply.request_id());
        let mut e = error::status_error(
            &ctx,
            reply.status,
            error::error_code(&reply.body),
            &reply.body_hint(),
            &rid,
            reply.retry_after(),
        );
        if e.class == FailureClass::InDoubt {
            e.class = FailureClass::Transient;
        }
        tracing::warn!(tenant = %self.tenant, code = %e.code, "token request failed");
        Err(e)
    }
}
