//! The simulator's request and response values, independent of hyper so that
//! `$batch` items go through the same handlers as top-level calls, and the
//! error bodies of Graph, login and Partner Center.

use serde_json::{json, Value};

/// A request as the handlers see it.
#[derive(Clone, Debug)]
pub struct Req {
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// Percent-decoded path, version prefix included (`/v1.0/users/…`).
    pub path: String,
    /// The query's pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// `Authorization: Bearer` token, if any.
    pub bearer: Option<String>,
    /// `client-request-id` header, echoed in errors.
    pub client_request_id: Option<String>,
    /// Whether a JSON `Content-Type` was given.
    pub json_content: bool,
    /// The raw request body.
    pub body: bytes::Bytes,
    /// `http://host:port`, for absolute `@odata.nextLink`s.
    pub base: String,
    /// The request id this request is answered with.
    pub request_id: String,
    /// Partner Center's request headers, lower-case names:
    /// `ms-requestid`, `ms-correlationid`, `ms-contract-version`, `if-match`.
    pub partner_headers: Vec<(String, String)>,
}

impl Req {
    /// A Partner Center request header by lower-case name.
    pub fn partner_header(&self, name: &str) -> Option<&str> {
        self.partner_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter by name (`$top`), case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response before it becomes HTTP.
#[derive(Clone, Debug)]
pub struct Resp {
    /// The HTTP status to answer.
    pub status: u16,
    /// Extra headers (`Retry-After`, `x-ms-*`, `Location`).
    pub headers: Vec<(String, String)>,
    /// JSON body; `None` for 204 and other empty answers.
    pub body: Option<Value>,
}

impl Resp {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// An empty answer (204).
    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Graph's error body: `{"error":{"code","message","innerError":{...}}}`.
pub fn graph_error(req: &Req, date: &str, status: u16, code: &str, message: &str) -> Resp {
    Resp::json(
        status,
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": date,
                "request-id": req.request_id,
                "client-request-id": req.client_request_id.clone().unwrap_or_else(|| req.request_id.clone()),
            }
        }}),
    )
}

/// The Graph error code of a transient status.
pub fn transient_code(status: u16) -> &'static str {
    match status {
        429 => "TooManyRequests",
        500 => "generalException",
        502 => "badGateway",
        503 => "serviceNotAvailable",
        _ => "gatewayTimeout",
    }
}

/// Login's error body (AADSTS).
pub fn login_error(
    status: u16,
    error: &str,
    code: u32,
    description: &str,
    date: &str,
    trace: &str,
) -> Resp {
    Resp::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {trace} Timestamp: {date}"),
            "error_codes": [code],
            "timestamp": date,
            "trace_id": trace,
            "correlation_id": trace,
        }),
    )
}

/// Partner Center's error body.
pub fn partner_error(status: u16, code: u32, description: &str) -> Resp {
    Resp::json(
        status,
        json!({"code": code, "description": description, "data": [], "source": "PartnerFD"}),
    )
}
