//! Classification of every outcome of a call: done, already done, transient,
//! in doubt or permanent, from the HTTP status, the Graph error body and the
//! transport error. Pure functions over received data; never panics on it.
//! Every text of a reply that enters a message or a code is first cleared
//! of the credentials the call carried ([`CallCtx::redact`]).

use crate::model::{Applied, CallError, FailureClass};
pub use crate::redact::Redact;
use std::time::{Duration, SystemTime};

/// What a call was, for messages and classification.
#[derive(Clone, Debug)]
pub struct CallCtx {
    /// The tenant the call was made for (customer or partner).
    pub tenant: String,
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// URL path without query, version prefix included.
    pub path: String,
    /// The credentials the call carried, removed from every text of its
    /// reply before it becomes a message, a code or a log line.
    pub redact: Redact,
}

impl CallCtx {
    /// Whether the call changes something (so an unclear outcome is in doubt).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }

    /// The call, for a message (its path may be a next link the service gave).
    fn describe(&self) -> String {
        let path = self.redact.apply(&self.path);
        format!("{} {path} for tenant {}", self.method, self.tenant)
    }
}

/// Whether a status is worth trying again (429, 500, 502, 503, 504, 408).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The Graph (or login) error `code` and `message` of a body, if it has one.
pub fn error_code(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    error_code_json(&v)
}

/// As [`error_code`], for a body already parsed (a `$batch` item's).
pub fn error_code_json(v: &serde_json::Value) -> Option<(String, String)> {
    if let Some(e) = v.get("error").filter(|e| e.is_object()) {
        let code = e.get("code")?.as_str()?.to_string();
        let msg = e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        return Some((code, msg));
    }
    // The login endpoint: {"error":"invalid_client","error_description":"AADSTS7000215: ...","error_codes":[7000215]}
    let err = v.get("error")?.as_str()?;
    let desc = v
        .get("error_description")
        .and_then(|d| d.as_str())
        .unwrap_or("");
    let aadsts = v
        .get("error_codes")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
        .and_then(serde_json::Value::as_u64)
        .map(|n| format!("AADSTS{n}"))
        .or_else(|| {
            let head = desc.split(':').next().unwrap_or("");
            (head.starts_with("AADSTS") && head.len() > 6).then(|| head.to_string())
        });
    let first_line = desc.lines().next().unwrap_or("").to_string();
    Some((aadsts.unwrap_or_else(|| err.to_string()), first_line))
}

/// Parses a `Retry-After` value: seconds (fractional honoured exactly, not
/// truncated) or an HTTP date (relative to `now`; a past date is zero). Any
/// length is returned, a number too large for a `Duration` as
/// `Duration::MAX`: what is too long to wait on is the saga's decision
/// (`[retry] max_retry_after`), and every sum with it is checked.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
        }
        return None;
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `x-ms-throttle-limit-percentage` hint as a fraction of the budget used
/// (Graph sends `0.8`..`1.8`; a value above 2 is read as a percentage).
pub fn parse_limit_hint(value: &str) -> Option<f64> {
    let v: f64 = value.trim().trim_end_matches('%').parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some(if v > 2.0 { v / 100.0 } else { v })
}

/// Judges a response (or a `$batch` item): `Ok` for 2xx, and for a 404 on a
/// `DELETE`, otherwise the classified error.
pub fn judge(
    ctx: &CallCtx,
    status: u16,
    code_msg: Option<(String, String)>,
    body_hint: &str,
    request_id: &str,
    retry_after: Option<Duration>,
) -> Result<Applied, CallError> {
    if (200..300).contains(&status) {
        return Ok(Applied::Done);
    }
    if status == 404 && ctx.method == "DELETE" {
        return Ok(Applied::AlreadyDone);
    }
    // A restore answered 404: the object is not in the recycle bin, because
    // an earlier restore (whose answer was lost, or which a lagging read did
    // not show yet) brought it back, or because it is gone for good. Only a
    // read of the user by id can tell: in doubt, never "already done" and
    // never a permanent failure on a stale read.
    if status == 404 && ctx.method == "POST" && ctx.path.ends_with("/restore") {
        let mut e = status_error(ctx, status, code_msg, body_hint, request_id, retry_after);
        e.class = FailureClass::InDoubt;
        return Err(e);
    }
    Err(status_error(
        ctx,
        status,
        code_msg,
        body_hint,
        request_id,
        retry_after,
    ))
}

/// The error for a non-success status.
pub fn status_error(
    ctx: &CallCtx,
    status: u16,
    code_msg: Option<(String, String)>,
    body_hint: &str,
    request_id: &str,
    retry_after: Option<Duration>,
) -> CallError {
    let class = if is_transient_status(status) {
        if ctx.is_write() {
            FailureClass::InDoubt
        } else {
            FailureClass::Transient
        }
    } else {
        FailureClass::Permanent
    };
    let (code, detail) = match code_msg {
        Some((c, m)) => (ctx.redact.apply(&c), ctx.redact.apply(&m)),
        None => (format!("http_{status}"), ctx.redact.apply(body_hint)),
    };
    let rid = if request_id.is_empty() {
        String::new()
    } else {
        format!(" (request-id {request_id})")
    };
    // Conditional Access allows about one request per second per tenant and
    // its 429s may come without `Retry-After`: assume that documented rate
    // rather than a backoff that may be shorter.
    let retry_after = match retry_after {
        None if status == 429 && ctx.path.contains(CONDITIONAL_ACCESS) => Some(CA_INTERVAL),
        other => other,
    };
    CallError {
        class,
        message: format!(
            "{} answered {status} {code}: {}{rid}",
            ctx.describe(),
            truncate(&detail, 300)
        ),
        code,
        retry_after,
    }
}

/// The path segment of Conditional Access calls.
const CONDITIONAL_ACCESS: &str = "/identity/conditionalAccess/";

/// The wait assumed after a Conditional Access 429 without `Retry-After`
/// (graph-reference: about one request per second per tenant).
pub const CA_INTERVAL: Duration = Duration::from_millis(1100);

/// A short description of a body that is not a Graph error (an HTML page
/// from a proxy, malformed JSON), for the message.
pub fn body_hint(content_type: &str, body: &[u8]) -> String {
    if content_type.contains("html") || body.trim_ascii_start().starts_with(b"<") {
        return "an html page instead of a json error".into();
    }
    if body.is_empty() {
        return "an empty body".into();
    }
    if serde_json::from_slice::<serde_json::Value>(body).is_err() {
        return "a malformed json body".into();
    }
    "a json body without an error code".into()
}

/// A 2xx response whose body could not be understood.
pub fn bad_response(ctx: &CallCtx, request_id: &str, why: &str) -> CallError {
    CallError {
        class: if ctx.is_write() {
            FailureClass::InDoubt
        } else {
            FailureClass::Transient
        },
        code: "bad_response".into(),
        message: format!(
            "{} answered with {} (request-id {request_id})",
            ctx.describe(),
            truncate(&ctx.redact.apply(why), 300)
        ),
        retry_after: None,
    }
}

/// How a request failed without a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// No connection was made: nothing was sent.
    Connect,
    /// The request timed out (connect or response): may have been applied.
    Timeout,
    /// The connection broke (reset, closed) after the request was sent.
    Reset,
    /// The service answered with a redirect, which is never followed: a
    /// redirect would carry the client secret or the bearer token to
    /// whatever host it names.
    Redirect,
    /// The response body was larger than `[limits] max_response_bytes`;
    /// reading stopped at the cap.
    TooLarge,
}

/// Classifies a reqwest transport error.
pub fn transport_kind(e: &reqwest::Error) -> TransportKind {
    if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Reset
    }
}

/// The error for a request that got no response.
pub fn transport_error(ctx: &CallCtx, kind: TransportKind, detail: &str) -> CallError {
    let (code, class) = match kind {
        TransportKind::Connect => ("connect_failed", FailureClass::Transient),
        TransportKind::Timeout if ctx.is_write() => ("timeout", FailureClass::InDoubt),
        TransportKind::Timeout => ("timeout", FailureClass::Transient),
        TransportKind::Reset if ctx.is_write() => ("connection_reset", FailureClass::InDoubt),
        TransportKind::Reset => ("connection_reset", FailureClass::Transient),
        // A redirect is a definite answer: the service did not do the work
        // at this address, and following it would hand credentials to
        // another host. Nothing will change by asking again.
        TransportKind::Redirect => ("redirect_refused", FailureClass::Permanent),
        // The status was read but not the body: a write's outcome is not
        // known; a read would be as large next time.
        TransportKind::TooLarge if ctx.is_write() => ("response_too_large", FailureClass::InDoubt),
        TransportKind::TooLarge => ("response_too_large", FailureClass::Permanent),
    };
    let what = match kind {
        TransportKind::Redirect | TransportKind::TooLarge => "was refused",
        _ => "got no response",
    };
    CallError {
        class,
        code: code.into(),
        message: format!(
            "{} {what}: {}",
            ctx.describe(),
            truncate(&ctx.redact.apply(detail), 300)
        ),
        retry_after: None,
    }
}

/// A request the saga stopped before it was sent (a pause, abort or
/// shutdown while it waited for the throttle): nothing reached the service,
/// so it is plainly transient, never in doubt.
pub fn not_sent(ctx: &CallCtx) -> CallError {
    CallError {
        class: FailureClass::Transient,
        code: NOT_SENT.into(),
        message: format!(
            "{} was not sent: its saga stopped sending (pause, abort or shutdown)",
            ctx.describe()
        ),
        retry_after: None,
    }
}

/// The wait before the second attempt of a read answered with a transient
/// error but no `Retry-After`; it doubles for the third.
pub const READ_BACKOFF: Duration = Duration::from_millis(250);

/// How long to wait before repeating a read whose `failures`-th attempt
/// failed with `e`: `None` when a repeat cannot help (a permanent failure, a
/// halted saga) or when the service asked for longer than `max`.
///
/// A `Retry-After` is honoured as given. Without one, a request that got
/// no answer (connection refused or reset, timeout) is repeated at once;
/// an answer (a 429 or a 5xx) is repeated after an exponential backoff
/// ([`READ_BACKOFF`], doubling), as Microsoft's throttling guidance asks
/// when the header is missing
/// (<https://learn.microsoft.com/graph/throttling#best-practices-to-handle-throttling>).
pub fn repeatable_read(e: &CallError, failures: u32, max: Duration) -> Option<Duration> {
    if e.class != FailureClass::Transient || e.code == NOT_SENT {
        return None;
    }
    match e.retry_after {
        Some(ra) if ra <= max => Some(ra),
        Some(_) => None,
        None if NO_ANSWER.contains(&e.code.as_str()) => Some(Duration::ZERO),
        None => Some(READ_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(8))),
    }
}

/// The codes of [`transport_error`] for a request that got no answer.
const NO_ANSWER: [&str; 3] = ["connect_failed", "timeout", "connection_reset"];

/// The code of [`not_sent`].
pub const NOT_SENT: &str = "not_sent";

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(method: &str) -> CallCtx {
        CallCtx {
            tenant: "t1".into(),
            method: method.into(),
            path: "/v1.0/users/abc".into(),
            redact: Redact::default(),
        }
    }

    #[test]
    fn conditional_access_429_without_retry_after_waits_the_documented_interval() {
        let ctx = CallCtx {
            tenant: "t".into(),
            method: "GET".into(),
            path: "/v1.0/identity/conditionalAccess/policies".into(),
            redact: Redact::default(),
        };
        let e = status_error(&ctx, 429, None, "", "r", None);
        assert_eq!(e.retry_after, Some(CA_INTERVAL));
        let e = status_error(&ctx, 429, None, "", "r", Some(Duration::from_secs(3)));
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        let users = CallCtx {
            path: "/v1.0/users".into(),
            ..ctx
        };
        assert_eq!(
            status_error(&users, 429, None, "", "r", None).retry_after,
            None
        );
    }

    #[test]
    fn retry_after_seconds_fractional_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1000000000", now),
            Some(Duration::from_secs(1_000_000_000))
        );
        assert_eq!(parse_retry_after("1e300", now), Some(Duration::MAX));
        let far = httpdate::fmt_http_date(now + Duration::from_secs(86_400 * 365 * 30));
        assert_eq!(
            parse_retry_after(&far, now),
            Some(Duration::from_secs(86_400 * 365 * 30))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
    }

    #[test]
    fn statuses_are_classified() {
        let j = |m: &str, s: u16| judge(&ctx(m), s, None, "", "r", None);
        assert_eq!(j("DELETE", 204), Ok(Applied::Done));
        assert_eq!(j("DELETE", 404), Ok(Applied::AlreadyDone));
        assert_eq!(j("GET", 404).unwrap_err().class, FailureClass::Permanent);
        assert_eq!(j("PATCH", 404).unwrap_err().class, FailureClass::Permanent);
        // A restore's 404 may mean "already restored" behind a lagging read:
        // in doubt, settled by reading the user.
        let restore = CallCtx {
            tenant: "t".into(),
            method: "POST".into(),
            path: "/v1.0/directory/deletedItems/u1/restore".into(),
            redact: Redact::default(),
        };
        let e = judge(&restore, 404, None, "", "r", None).unwrap_err();
        assert_eq!(e.class, FailureClass::InDoubt);
        for s in [429, 500, 502, 503, 504] {
            assert_eq!(j("GET", s).unwrap_err().class, FailureClass::Transient);
            assert_eq!(j("DELETE", s).unwrap_err().class, FailureClass::InDoubt);
        }
        for s in [400, 401, 403, 409] {
            assert_eq!(j("GET", s).unwrap_err().class, FailureClass::Permanent);
        }
    }

    #[test]
    fn graph_error_code_and_message_name_tenant_method_path() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges","innerError":{"request-id":"x"}}}"#;
        let e = judge(&ctx("DELETE"), 403, error_code(body), "", "rid-1", None).unwrap_err();
        assert_eq!(e.code, "Authorization_RequestDenied");
        assert_eq!(e.class, FailureClass::Permanent);
        for part in ["t1", "DELETE", "/v1.0/users/abc", "rid-1", "Insufficient"] {
            assert!(e.message.contains(part), "{}", e.message);
        }
    }

    #[test]
    fn credentials_echoed_in_a_reply_are_redacted_before_truncation() {
        use crate::model::Secret;
        use std::sync::Arc;
        let secret = "S3cr~t.value-0123456789";
        let sent = Arc::new(crate::redact::Sent::new(Some(Arc::new(Secret::new(
            secret,
        )))));
        sent.token(Arc::new(Secret::new("eyJ0eXAi.token.sig")));
        let c = CallCtx {
            path: "/t1/oauth2/v2.0/token".into(),
            method: "POST".into(),
            redact: Redact::of(&sent),
            ..ctx("POST")
        };
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: bad secret, request was: client_id=a&client_secret=S3cr%7Et.value-0123456789&scope=s (S3cr~t.value-0123456789)","error_codes":[7000215]}"#;
        let e = status_error(&c, 401, error_code(body), "", "r", None);
        assert_eq!(e.code, "AADSTS7000215");
        assert!(
            e.message
                .contains("client_secret=[redacted]&scope=s ([redacted])"),
            "{}",
            e.message
        );
        // A hostile code, a detail cut where a secret begins, a body hint.
        let long = format!("{}{secret}", "x".repeat(295));
        let e = status_error(&c, 500, Some((secret.into(), long.clone())), "", "", None);
        assert_eq!(e.code, "[redacted]");
        assert!(!e.message.contains("S3cr"), "{}", e.message);
        let e = bad_response(&c, "r", "eyJ0eXAi.token.sig");
        assert!(
            e.message.contains("answered with [redacted]"),
            "{}",
            e.message
        );
        let e = transport_error(&c, TransportKind::Reset, &long);
        assert!(!e.message.contains("S3cr"), "{}", e.message);
    }

    #[test]
    fn login_errors_carry_the_aadsts_code() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#;
        assert_eq!(error_code(body).unwrap().0, "AADSTS7000215");
        let body = br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;
        assert_eq!(error_code(body).unwrap().0, "AADSTS90002");
    }

    #[test]
    fn html_and_malformed_bodies_are_classified_not_panics() {
        let html = b"<html><body>502 Bad Gateway</body></html>";
        assert_eq!(error_code(html), None);
        let hint = body_hint("text/html", html);
        let e = judge(&ctx("GET"), 502, None, &hint, "", None).unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (FailureClass::Transient, "http_502")
        );
        assert!(e.message.contains("html"), "{}", e.message);
        let e = judge(&ctx("GET"), 400, error_code(b"{\"error\":"), "x", "", None).unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (FailureClass::Permanent, "http_400")
        );
        assert_eq!(
            body_hint("application/json", b"{\"a\":"),
            "a malformed json body"
        );
    }

    #[test]
    fn limit_hint_fraction_or_percent() {
        assert_eq!(parse_limit_hint("0.85"), Some(0.85));
        assert_eq!(parse_limit_hint("90"), Some(0.9));
        assert_eq!(parse_limit_hint("x"), None);
    }

    #[test]
    fn transport_errors_are_in_doubt_only_for_writes_after_sending() {
        let e = transport_error(&ctx("DELETE"), TransportKind::Connect, "refused");
        assert_eq!(e.class, FailureClass::Transient);
        let e = transport_error(&ctx("DELETE"), TransportKind::Timeout, "t");
        assert_eq!(
            (e.class, e.code.as_str()),
            (FailureClass::InDoubt, "timeout")
        );
        let e = transport_error(&ctx("GET"), TransportKind::Reset, "r");
        assert_eq!(e.class, FailureClass::Transient);
        let e = transport_error(&ctx("POST"), TransportKind::Redirect, "to evil.example");
        assert_eq!(
            (e.class, e.code.as_str()),
            (FailureClass::Permanent, "redirect_refused")
        );
        let e = transport_error(&ctx("GET"), TransportKind::TooLarge, "over 1 byte");
        assert_eq!(e.class, FailureClass::Permanent);
    }

    #[test]
    fn a_read_is_repeated_as_its_failure_allows() {
        let max = Duration::from_secs(2);
        let get = ctx("GET");
        // No answer: at once.
        let reset = transport_error(&get, TransportKind::Reset, "reset");
        assert_eq!(repeatable_read(&reset, 1, max), Some(Duration::ZERO));
        // An answer with a short Retry-After: that long.
        let throttled = status_error(&get, 429, None, "", "", Some(Duration::from_millis(1500)));
        assert_eq!(
            repeatable_read(&throttled, 1, max),
            Some(Duration::from_millis(1500))
        );
        // A longer one is the saga's to wait.
        let long = status_error(&get, 429, None, "", "", Some(Duration::from_secs(30)));
        assert_eq!(repeatable_read(&long, 1, max), None);
        // An answer without one: backing off, doubling.
        let bare = status_error(&get, 503, None, "", "", None);
        assert_eq!(repeatable_read(&bare, 1, max), Some(READ_BACKOFF));
        assert_eq!(repeatable_read(&bare, 2, max), Some(READ_BACKOFF * 2));
        // Never a permanent failure, a halted saga, or a write.
        let denied = status_error(&get, 403, None, "", "", None);
        assert_eq!(repeatable_read(&denied, 1, max), None);
        assert_eq!(repeatable_read(&not_sent(&get), 1, max), None);
        let write = status_error(&ctx("DELETE"), 503, None, "", "", None);
        assert_eq!(repeatable_read(&write, 1, max), None, "a write is in doubt");
    }
}
