//! The shared HTTP client: one reqwest client over rustls (pooled
//! connections, connect and per-request timeouts), the overall in-flight
//! ceiling, and the per-tenant throttles. Hands out [`TenantClient`]s and
//! [`PartnerClient`]s.

use super::error::{self, TransportKind};
use super::throttle::Throttle;
use super::{ClientOptions, Endpoints, Error, PartnerClient, TenantClient};
use crate::model::Secret;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use url::Url;

/// The Graph client shared by every tenant of the daemon. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    /// State shared with every tenant and partner client.
    pub(crate) shared: Arc<Shared>,
}

/// What all tenant clients share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The pooled HTTP client.
    pub http: reqwest::Client,
    /// Where the services are.
    pub endpoints: Endpoints,
    /// Timeouts, limits and caps of the client.
    pub options: ClientOptions,
    /// The overall in-flight ceiling.
    pub global: Semaphore,
    /// One throttle per tenant, shared by every client of that tenant.
    pub throttles: Mutex<HashMap<String, Arc<Throttle>>>,
}

/// A request body.
pub(crate) enum Body<'a> {
    /// No body is sent.
    None,
    /// A JSON body, sent with `Content-Type: application/json`.
    Json(&'a serde_json::Value),
    /// `application/x-www-form-urlencoded` (the token request).
    Form(String),
}

/// A response as received, before classification.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The HTTP status as received.
    pub status: u16,
    /// The response headers (`Retry-After`, `request-id`, ...), read when classifying.
    pub headers: HeaderMap,
    /// The whole body, read before classification (an error object, or the entity).
    pub body: Bytes,
}

impl Reply {
    /// A header as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `request-id` header, or empty.
    pub fn request_id(&self) -> String {
        self.header("request-id").unwrap_or("").to_string()
    }

    /// The `Retry-After` header, parsed.
    pub fn retry_after(&self) -> Option<Duration> {
        error::parse_retry_after(self.header("retry-after")?, SystemTime::now())
    }

    /// The budget hint.
    pub fn limit_hint(&self) -> Option<f64> {
        error::parse_limit_hint(self.header("x-ms-throttle-limit-percentage")?)
    }

    /// A description of a body that is not a Graph error, for messages.
    pub fn body_hint(&self) -> String {
        error::body_hint(self.header("content-type").unwrap_or(""), &self.body)
    }
}

impl Client {
    /// Builds the shared client.
    pub fn new(endpoints: Endpoints, options: ClientOptions) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_max_idle_per_host(options.max_in_flight_total.max(1))
            .user_agent(concat!("closeout/", env!("CARGO_PKG_VERSION")))
            // A redirect would re-send the token request (client secret
            // included) or the bearer token to the host it names: 3xx
            // answers are returned and refused in `send`.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::Build)?;
        Ok(Client {
            shared: Arc::new(Shared {
                http,
                global: Semaphore::new(options.max_in_flight_total.max(1)),
                endpoints,
                options,
                throttles: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The client for one customer tenant, authenticating as its app.
    pub fn tenant(
        &self,
        tenant_id: &str,
        client_id: &str,
        credential: impl Into<super::Credential>,
    ) -> TenantClient {
        TenantClient::new(self.shared.clone(), tenant_id, client_id, credential.into())
    }

    /// The client for Partner Center, authenticating as the partner's app in
    /// the partner's own tenant.
    pub fn partner(
        &self,
        partner_tenant: &str,
        client_id: &str,
        credential: impl Into<super::Credential>,
    ) -> PartnerClient {
        PartnerClient::new(
            self.shared.clone(),
            partner_tenant,
            client_id,
            credential.into(),
        )
    }
}

impl Shared {
    /// The throttle of a tenant (created on first use).
    pub fn throttle(&self, tenant: &str) -> Arc<Throttle> {
        self.throttle_with(tenant, self.options.max_in_flight_per_tenant)
    }

    /// The throttle of `key` (created on first use, with window ceiling
    /// `ceiling`).
    pub fn throttle_with(&self, key: &str, ceiling: usize) -> Arc<Throttle> {
        let mut map = match self.throttles.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(key.to_string())
            .or_insert_with(|| {
                crate::metrics::graph_tenant_added();
                Arc::new(Throttle::new(
                    self.options.initial_in_flight_per_tenant,
                    ceiling,
                    self.options.throttle_probe_pause,
                    self.options.max_retry_after,
                ))
            })
            .clone()
    }

    /// Sends one request and reads the whole answer, within the overall
    /// ceiling. Returns how it failed when no answer arrived.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        bearer: Option<&Secret>,
        body: Body<'_>,
    ) -> Result<Reply, (TransportKind, String)> {
        self.send_with(method, url, bearer, body, &[]).await
    }

    /// [`Shared::send`] with extra request headers (Partner Center's
    /// `MS-RequestId`, `MS-CorrelationId`, `MS-Contract-Version`, `If-Match`).
    pub async fn send_with(
        &self,
        method: Method,
        url: Url,
        bearer: Option<&Secret>,
        body: Body<'_>,
        extra: &[(&'static str, String)],
    ) -> Result<Reply, (TransportKind, String)> {
        self.exchange(method, url, bearer, body, extra, false).await
    }

    /// A `GET` whose 3xx answer is returned (its headers, no body) instead
    /// of refused: the usage reports answer with a redirect to a
    /// pre-authenticated download URL, which `graph::reports` checks and
    /// follows itself, without credentials. Nothing is followed here.
    pub async fn get_redirectable(
        &self,
        url: Url,
        bearer: Option<&Secret>,
    ) -> Result<Reply, (TransportKind, String)> {
        self.exchange(Method::GET, url, bearer, Body::None, &[], true)
            .await
    }

    async fn exchange(
        &self,
        method: Method,
        url: Url,
        bearer: Option<&Secret>,
        body: Body<'_>,
        extra: &[(&'static str, String)],
        redirect_answer: bool,
    ) -> Result<Reply, (TransportKind, String)> {
        let _slot = self.global.acquire().await;
        let verb = method.clone();
        let mut req = self.http.request(method, url);
        for (name, value) in extra {
            req = req.header(*name, value.as_str());
        }
        if let Some(token) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| (TransportKind::Connect, "token is not a valid header".into()))?;
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Form(f) => req
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(f),
        };
        let resp = req
            .send()
            .await
            .inspect_err(|_| crate::metrics::graph_unanswered(verb.as_str()))
            .map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        crate::metrics::graph_answered(verb.as_str(), status, headers.contains_key("retry-after"));
        if (300..400).contains(&status) {
            if redirect_answer {
                return Ok(Reply {
                    status,
                    headers,
                    body: Bytes::new(),
                });
            }
            return Err((TransportKind::Redirect, redirect_detail(&resp)));
        }
        let body = read_capped(resp, self.options.max_response_bytes).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

fn describe(e: &reqwest::Error) -> (TransportKind, String) {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    (error::transport_kind(e), text)
}

/// What a refused redirect is described by: the host that answered and the
/// host it pointed to.
fn redirect_detail(resp: &reqwest::Response) -> String {
    let from = resp.url().host_str().unwrap_or("?").to_string();
    let to = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| match resp.url().join(l) {
            Ok(u) => u.host_str().unwrap_or("?").to_string(),
            Err(_) => "an unreadable location".to_string(),
        })
        .unwrap_or_else(|| "no location".to_string());
    format!(
        "{from} answered {} redirecting to {to}; redirects are never followed (credentials would go with them)",
        resp.status().as_u16()
    )
}

/// The body, read chunk by chunk and abandoned at `cap` bytes, so that a
/// hostile or broken server cannot make the daemon buffer without bound.
async fn read_capped(
    mut resp: reqwest::Response,
    cap: u64,
) -> Result<Bytes, (TransportKind, String)> {
    let host = resp.url().host_str().unwrap_or("?").to_string();
    let too_large = |what: String| {
        (
            TransportKind::TooLarge,
            format!("{host} sent {what}, more than [limits] max_response_bytes = {cap}"),
        )
    };
    if let Some(len) = resp.content_length().filter(|l| *l > cap) {
        return Err(too_large(format!("a body of {len} bytes")));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large("a longer body".to_string()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
