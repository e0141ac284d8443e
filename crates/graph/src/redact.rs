//! Redaction of the credentials closeout sends from every text built out of
//! a service's reply. A login endpoint, Graph, Partner Center or a proxy in
//! front of them may echo the request in an error (`request was:
//! client_id=...&client_secret=...`, an `Authorization` header): closeout
//! knows every credential value it sends (the client secret, a signed
//! client assertion, its access tokens), so [`Redact::apply`] replaces each
//! of them, as sent and as the token request's form percent-encoded it, and
//! any part of one at its start or end of 8 characters or more (an echo cut
//! short or starting mid value), with [`REDACTED`] before the text becomes a [`crate::model::CallError`]
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
    /// form encodes it, and every long enough prefix or suffix of one (see
    /// [`redact`]), replaced by [`REDACTED`].
    pub fn apply(&self, text: &str) -> String {
        let values = self.source.as_ref().map(|s| s.values()).unwrap_or_default();
        let values = values.iter().chain(&self.extra).map(|s| s.expose());
        redact(text, values)
    }
}

/// How many characters of a value, at its start or its end, an echo must
/// show to be redacted as part of it (an echo cut short, or starting mid
/// value); a value shorter than that is redacted only whole.
const MIN_PART: usize = 8;

/// `text` with every occurrence of each value (as sent, form-encoded, and
/// form-encoded with lowercase hex) replaced by [`REDACTED`]; empty values
/// are ignored. For a value of at least [`MIN_PART`] characters, so is
/// every run of the text that matches a prefix or a suffix of one of its
/// forms at least [`MIN_PART`] characters long: an echo cut short (or
/// starting mid value) leaves none of what it shows.
pub fn redact<'a>(text: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    // Each form, and whether its prefixes and suffixes are redacted too.
    let mut needles: Vec<(Zeroizing<String>, bool)> = Vec::new();
    for v in values.into_iter().filter(|v| !v.is_empty()) {
        let partial = v.chars().count() >= MIN_PART;
        for f in forms(v) {
            match needles.iter_mut().find(|(n, _)| *n == f) {
                Some((_, p)) => *p |= partial,
                None => needles.push((f, partial)),
            }
        }
    }
    // The byte ranges of the text to redact (positions only, no copy of a
    // value).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (n, partial) in &needles {
        if *partial {
            partial_runs(text, n, &mut runs);
        } else {
            runs.extend(occurrences(text, n).map(|at| (at, at + n.len())));
        }
    }
    if runs.is_empty() {
        return text.to_string();
    }
    // Overlapping runs become one (none of either is left); runs that only
    // touch stay one [`REDACTED`] each, as whole values side by side.
    runs.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
    for (start, end) in runs {
        match merged.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in merged {
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The start of every occurrence of `needle` (not empty) in `text`,
/// overlapping ones included.
fn occurrences<'t>(text: &'t str, needle: &'t str) -> impl Iterator<Item = usize> + 't {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = from + text.get(from..)?.find(needle)?;
        // Past the occurrence's first character, to a character boundary.
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
        Some(at)
    })
}

/// Adds to `runs` the byte range of every run of `text` that matches a
/// prefix or a suffix of `needle` at least [`MIN_PART`] characters long
/// (whole occurrences included), widened to character boundaries.
fn partial_runs(text: &str, needle: &str, runs: &mut Vec<(usize, usize)>) {
    let (t, n) = (text.as_bytes(), needle.as_bytes());
    // The needle's first and last MIN_PART characters.
    let head = needle
        .char_indices()
        .nth(MIN_PART)
        .map_or(n.len(), |(i, _)| i);
    let tail = needle
        .char_indices()
        .rev()
        .nth(MIN_PART - 1)
        .map_or(0, |(i, _)| i);
    // From each occurrence of the head, as far as the text goes on matching.
    for at in occurrences(text, &needle[..head]) {
        let len = t[at..].iter().zip(n).take_while(|(a, b)| a == b).count();
        let mut end = at + len;
        while !text.is_char_boundary(end) {
            end += 1;
        }
        runs.push((at, end));
    }
    // Back from each occurrence of the tail, as far as the text matches.
    let tail = &needle[tail..];
    for at in occurrences(text, tail) {
        let end = at + tail.len();
        let len = t[..end]
            .iter()
            .rev()
            .zip(n.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let mut start = end - len;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        runs.push((start, end));
    }
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

    const SECRET: &str = "PLAINSECRETVALUE0123456789abcdef";

    #[test]
    fn an_echo_cut_short_leaves_nothing_of_the_value() {
        assert_eq!(SECRET.len(), 32);
        let text = format!("request was: client_secret={}&scope=s", &SECRET[..20]);
        assert_eq!(
            redact(&text, [SECRET]),
            "request was: client_secret=[redacted]&scope=s"
        );
        let text = format!("client_secret={}", &SECRET[..31]);
        assert_eq!(redact(&text, [SECRET]), "client_secret=[redacted]");
        let text = format!("body: client_secret={}...", &SECRET[..16]);
        assert_eq!(redact(&text, [SECRET]), "body: client_secret=[redacted]...");
        // The least a prefix may be, and one character less.
        let text = format!("x {} y {} z", &SECRET[..8], &SECRET[..7]);
        assert_eq!(redact(&text, [SECRET]), "x [redacted] y PLAINSE z");
    }

    #[test]
    fn an_echo_starting_mid_value_leaves_nothing_of_it() {
        let text = format!("...{}&scope=s", &SECRET[12..]);
        assert_eq!(redact(&text, [SECRET]), "...[redacted]&scope=s");
        let text = format!("[{}] [{}]", &SECRET[24..], &SECRET[25..]);
        assert_eq!(redact(&text, [SECRET]), "[[redacted]] [9abcdef]");
    }

    #[test]
    fn an_encoded_prefix_is_redacted() {
        let secret = "Ab8Q~x+y/z=0123456789";
        let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        // Cut mid escape, upper and lower hex.
        let text = format!("client_secret={}", &encoded[..15]);
        assert_eq!(&encoded[..15], "Ab8Q%7Ex%2By%2F");
        assert_eq!(redact(&text, [secret]), "client_secret=[redacted]");
        let text = "client_secret=Ab8Q%7ex%2by%2 end";
        assert_eq!(redact(text, [secret]), "client_secret=[redacted] end");
        // And an encoded suffix.
        let text = format!("...{}&", &encoded[10..]);
        assert_eq!(redact(&text, [secret]), "...[redacted]&");
    }

    #[test]
    fn text_sharing_less_than_a_part_with_a_value_is_untouched() {
        let text = "PLAINSE is a word; PLAINSEc, 89abcdeX, VALUE012 and 9abcdef.";
        assert_eq!(redact(text, [SECRET]), text);
        // A short value is still redacted only whole.
        assert_eq!(redact("tok-1 tok-12", ["tok-12"]), "tok-1 [redacted]");
        assert_eq!(redact("abc-1 abc-", ["abc-1x"]), "abc-1 abc-");
    }

    #[test]
    fn overlapping_runs_and_multibyte_values() {
        // Two values overlapping in the text leave nothing of either.
        assert_eq!(
            redact("x abcdefghijkl-mnop x", ["abcdefghijkl", "ghijkl-mnop"]),
            "x [redacted] x"
        );
        // Side by side, each is redacted on its own.
        assert_eq!(
            redact("abcdefghijkl0123456789", ["abcdefghijkl", "0123456789"]),
            "[redacted][redacted]"
        );
        // A run ending mid character is widened to the whole character.
        let secret = "ééééééééé-tail";
        let text = "ééééééééè and ok";
        assert_eq!(redact(text, [secret]), "[redacted] and ok");
        // A repeated head: the occurrence that goes on is found.
        let secret = "abababab-secret-rest";
        assert_eq!(redact("xxababababab-secret-", [secret]), "xx[redacted]");
    }

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
