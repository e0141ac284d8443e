//! Redaction of the credentials closeout sends from every text built out of
//! a service's reply. A login endpoint, Graph, Partner Center or a proxy in
//! front of them may echo the request in an error (`request was:
//! client_id=...&client_secret=...`, an `Authorization` header): closeout
//! knows every credential value it sends (the client secret, a signed
//! client assertion, its access tokens), so [`Redact::apply`] replaces each
//! of them, as sent and as the token request's form percent-encoded it,
//! with [`REDACTED`] before the text becomes a [`crate::model::CallError`]
//! message or code, or a log line. The error module applies it wherever a
//! reply's text enters a message; every call's context (`CallCtx`) carries
//! the [`Redact`] of the token source its call used (this module depends on
//! nothing of it).
//!
//! The values are shared ([`Arc`]), never copied into plain strings: the
//! encoded form is built for the moment of a redaction, zeroized on drop.

use crate::model::Secret;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// What replaces a credential in a message.
pub const REDACTED: &str = "[redacted]";

/// How many of its latest access tokens a token source redacts: the cached
/// one and those it replaced, which requests still in flight may carry.
const TOKENS_KEPT: usize = 4;

/// The credential values one token source sends: its client secret and the
/// access tokens it obtained lately. Shared by the source and the
/// [`Redact`] of every call made with it.
#[derive(Default)]
pub struct Sent {
    /// The client secret, when the app signs in with one.
    secret: Option<Arc<Secret>>,
    /// The latest access tokens, oldest first.
    tokens: Mutex<VecDeque<Arc<Secret>>>,
}

impl Sent {
    /// The values of a source that signs in with `secret` (`None` for a
    /// certificate, whose assertions are redacted by the token request that
    /// sends them).
    pub fn new(secret: Option<Arc<Secret>>) -> Sent {
        Sent {
            secret,
            tokens: Mutex::new(VecDeque::new()),
        }
    }

    /// Records a token the source obtained (and will send).
    pub fn token(&self, token: Arc<Secret>) {
        let mut tokens = match self.tokens.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if tokens.len() >= TOKENS_KEPT {
            tokens.pop_front();
        }
        tokens.push_back(token);
    }

    fn values(&self) -> Vec<Arc<Secret>> {
        let tokens = match self.tokens.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        self.secret.iter().chain(tokens.iter()).cloned().collect()
    }
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sent(***)")
    }
}

/// The credentials one call carried (or may have carried), to remove from
/// the texts of its reply. Cheap to clone; its `Debug` shows no value. The
/// default redacts nothing (a call without credentials).
#[derive(Clone, Default)]
pub struct Redact {
    /// The values of the token source the call used, read when redacting
    /// (the token is chosen when the request is sent).
    source: Option<Arc<Sent>>,
    /// Values of this call alone (a client assertion, a pre-authenticated
    /// download's query).
    extra: Vec<Arc<Secret>>,
}

impl std::fmt::Debug for Redact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redact(***)")
    }
}

impl Redact {
    /// Redacts the values of a token source.
    pub fn of(source: &Arc<Sent>) -> Redact {
        Redact {
            source: Some(source.clone()),
            extra: Vec::new(),
        }
    }

    /// Also redacts `value`.
    pub fn with(mut self, value: Arc<Secret>) -> Redact {
        self.extra.push(value);
        self
    }

    /// `text` with every credential value, as sent and percent-encoded as a
    /// form encodes it, replaced by [`REDACTED`].
    pub fn apply(&self, text: &str) -> String {
        let values = self.source.as_ref().map(|s| s.values()).unwrap_or_default();
        let values = values.iter().chain(&self.extra).map(|s| s.expose());
        redact(text, values)
    }
}

/// `text` with every occurrence of each value (as sent, form-encoded, and
/// form-encoded with lowercase hex) replaced by [`REDACTED`]; empty values
/// are ignored.
pub fn redact<'a>(text: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let mut needles: Vec<Zeroizing<String>> = Vec::new();
    for v in values.into_iter().filter(|v| !v.is_empty()) {
        for f in forms(v) {
            if !needles.contains(&f) {
                needles.push(f);
            }
        }
    }
    if needles.is_empty() {
        return text.to_string();
    }
    // Longest first: a value inside another value's encoding leaves none of it.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = text.to_string();
    for n in &needles {
        if out.contains(n.as_str()) {
            out = out.replace(n.as_str(), REDACTED);
        }
    }
    out
}

/// A value as sent, as `application/x-www-form-urlencoded` encodes it (the
/// encoding of the token request's form, `form_urlencoded`), and that
/// encoding with lowercase hex digits (an echo may re-encode it so).
fn forms(value: &str) -> Vec<Zeroizing<String>> {
    let mut out = vec![Zeroizing::new(value.to_string())];
    let encoded: Zeroizing<String> =
        Zeroizing::new(form_urlencoded::byte_serialize(value.as_bytes()).collect());
    if *encoded != value {
        let mut lower = Zeroizing::new(String::with_capacity(encoded.len()));
        let mut hex_left = 0;
        for c in encoded.chars() {
            if c == '%' {
                hex_left = 2;
                lower.push(c);
            } else if hex_left > 0 {
                hex_left -= 1;
                lower.push(c.to_ascii_lowercase());
            } else {
                lower.push(c);
            }
        }
        if *lower != *encoded {
            out.push(lower);
        }
        out.push(encoded);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_their_form_encodings_are_redacted() {
        let secret = "Ab8Q~x+y/z=";
        let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        assert_eq!(encoded, "Ab8Q%7Ex%2By%2Fz%3D");
        let text = format!("client_secret={encoded}&raw={secret}&low=Ab8Q%7ex%2by%2fz%3d end");
        assert_eq!(
            redact(&text, [secret]),
            "client_secret=[redacted]&raw=[redacted]&low=[redacted] end"
        );
        assert_eq!(redact("nothing here", [secret, ""]), "nothing here");
        assert_eq!(redact("a b", [""]), "a b");
    }

    #[test]
    fn a_source_redacts_its_secret_and_latest_tokens() {
        let sent = Arc::new(Sent::new(Some(Arc::new(Secret::new("the-secret")))));
        let r = Redact::of(&sent);
        for n in 0..6 {
            sent.token(Arc::new(Secret::new(format!("token-{n}"))));
        }
        let r = r.with(Arc::new(Secret::new("jwt.a.b")));
        let out = r.apply("the-secret token-5 token-2 jwt.a.b");
        assert_eq!(out, "[redacted] [redacted] [redacted] [redacted]");
        // Older tokens than the last few are no longer in use.
        assert_eq!(r.apply("token-1"), "token-1");
        assert!(!format!("{r:?} {sent:?}").contains("secret"));
        assert_eq!(Redact::default().apply("the-secret"), "the-secret");
    }
}
