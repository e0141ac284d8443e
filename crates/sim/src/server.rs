//! The HTTP/1.1 server (hyper): accepts connections, turns each request into
//! a [`Req`], routes it (login, Graph, `$batch`, Partner Center, `/_sim/`),
//! applies the seeded faults around the handler, records applied changes in
//! the ledger, and answers. A dropped connection is a service error (hyper
//! closes the connection without answering); a hung request awaits shutdown.

use super::faults::Fault;
use super::http::{graph_error, partner_error, transient_code, Req, Resp};
use super::{batch, graph, inspect, lock, login, operator, partner, Error, Sim, SimHandle};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A request the simulator drops on purpose (connection reset).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
struct Dropped;

/// Binds, spawns the accept loop and the clock, returns the handle.
pub async fn serve(sim: Arc<Sim>, listen: SocketAddr, tick: Duration) -> Result<SimHandle, Error> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let clock_sim = sim.clone();
    let mut clock_stop = stopped.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {
                    let mut w = lock(&clock_sim.world);
                    operator::tick(&mut w, Instant::now(), &clock_sim.cfg);
                }
                _ = clock_stop.changed() => return,
            }
        }
    });
    let accept_sim = sim.clone();
    let mut accept_stop = stopped.clone();
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                },
                _ = accept_stop.changed() => return,
            };
            let _ = stream.set_nodelay(true);
            let sim = accept_sim.clone();
            let mut conn_stop = stopped.clone();
            tokio::spawn(async move {
                let svc_stop = conn_stop.clone();
                let service = hyper::service::service_fn(move |r| {
                    handle(sim.clone(), r, svc_stop.clone(), addr)
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    _ = conn => {}
                    _ = conn_stop.changed() => {}
                }
            });
        }
    });
    Ok(SimHandle {
        addr,
        sim,
        stop,
        task: Some(task),
    })
}

/// A fresh request id (GUID-shaped, cheap).
pub fn request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let p = PREFIX.get_or_init(|| uuid::Uuid::new_v4().to_string()[..23].to_string());
    format!("{p}-{:012x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Decodes `%XX` escapes in a path.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which service a path belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Token,
    Discovery,
    Graph,
    Batch,
    Partner,
    Own,
    ReportDownload,
    Unknown,
}

fn service(path: &str) -> Service {
    if path.starts_with("/_sim/") {
        Service::Own
    } else if path.ends_with("/oauth2/v2.0/token") {
        Service::Token
    } else if super::discovery::is_discovery(path) {
        Service::Discovery
    } else if path == "/v1.0/$batch" || path == "/beta/$batch" {
        Service::Batch
    } else if path.starts_with("/v1.0/") || path.starts_with("/beta/") {
        Service::Graph
    } else if path.starts_with("/v1/customers/") {
        Service::Partner
    } else if path.starts_with("/data/download/") {
        Service::ReportDownload
    } else {
        Service::Unknown
    }
}

async fn handle(
    sim: Arc<Sim>,
    r: hyper::Request<Incoming>,
    mut stop: watch::Receiver<bool>,
    addr: SocketAddr,
) -> Result<hyper::Response<Full<Bytes>>, Dropped> {
    let (parts, body) = r.into_parts();
    let body = match Limited::new(body, 8 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let req = Req {
        method: parts.method.as_str().to_string(),
        path: percent_decode(parts.uri.path()),
        query: parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        bearer: header("authorization").and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
                .map(|s| s.trim().to_string())
        }),
        client_request_id: header("client-request-id"),
        json_content: header("content-type").is_some_and(|c| c.contains("json")),
        body,
        base: format!(
            "http://{}",
            header("host").unwrap_or_else(|| addr.to_string())
        ),
        request_id: request_id(),
        partner_headers: [
            "ms-requestid",
            "ms-correlationid",
            "ms-contract-version",
            "if-match",
        ]
        .iter()
        .filter_map(|n| header(n).map(|v| (n.to_string(), v)))
        .collect(),
    };
    let svc = service(&req.path);
    let faulted = sim.faulty && matches!(svc, Service::Graph | Service::Batch | Service::Partner)
        || (sim.faulty && svc == Service::Token && sim.cfg.faults_on_token);
    let (delay, fault) = if faulted {
        let mut f = lock(&sim.faults);
        let d = f.delay();
        (d, f.decide(true))
    } else {
        (Duration::ZERO, Fault::None)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let now = Instant::now();
    let resp = match fault {
        Fault::Error(s) => {
            let date = lock(&sim.world).clock.rfc3339(now);
            fault_answer(svc, &req, &date, s)
        }
        Fault::Reset { applied: false } => return Err(Dropped),
        Fault::Hang { applied: false } => {
            let _ = stop.wait_for(|s| *s).await;
            return Err(Dropped);
        }
        _ => dispatch(&sim, svc, &req, now, fault),
    };
    match fault {
        Fault::Reset { .. } => return Err(Dropped),
        Fault::Hang { .. } => {
            let _ = stop.wait_for(|s| *s).await;
            return Err(Dropped);
        }
        _ => {}
    }
    Ok(to_http(&req, resp))
}

/// Runs the handler under the world lock and records the change, if any.
fn dispatch(sim: &Sim, svc: Service, req: &Req, now: Instant, fault: Fault) -> Resp {
    let mut w = lock(&sim.world);
    let w = &mut *w;
    let final_status = |resp: &Resp| match fault {
        Fault::Ghost(s) => s,
        Fault::Reset { .. } | Fault::Hang { .. } => 0,
        _ => resp.status,
    };
    let (resp, changed) = match svc {
        Service::Own if req.method == "GET" && req.path == "/_sim/faults" => {
            let mut counts = lock(&sim.faults).counts;
            counts.throttled = w.throttle.throttled;
            return Resp::json(200, serde_json::json!(counts));
        }
        Service::Own => {
            return inspect::handle(w, &req.method, &req.path, &req.query, now, &sim.cfg)
        }
        Service::Token => {
            let tenant = req
                .path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let mut rng = lock(&sim.rng);
            return login::token(w, req, &tenant, now, sim.cfg.token_lifetime, &mut *rng);
        }
        Service::Discovery => {
            return super::discovery::openid_configuration(w, req, now);
        }
        Service::Batch => {
            let mut f = lock(&sim.faults);
            return batch::handle(w, &mut f, req, now, &sim.cfg);
        }
        Service::Graph => {
            let out = graph::handle(w, req, now, &sim.cfg);
            (out.resp, out.changed)
        }
        Service::Partner => partner::handle(w, req, now, &sim.cfg),
        // A usage report's pre-authenticated download: no token asked for.
        Service::ReportDownload => {
            let date = w.clock.rfc3339(now);
            let token = req.path.trim_start_matches("/data/download/");
            return graph::reports::download(&w.tenants, token, &date);
        }
        Service::Unknown => {
            let date = w.clock.rfc3339(now);
            return graph_error(
                req,
                &date,
                404,
                "UnknownService",
                &format!("No service at {}.", req.path),
            );
        }
    };
    if let Some(t) = changed {
        let at = w.clock.rfc3339(now);
        w.ledger
            .record(at, &t, &req.method, &req.path, final_status(&resp));
    }
    if let Fault::Ghost(s) = fault {
        let date = w.clock.rfc3339(now);
        return fault_answer(svc, req, &date, s);
    }
    resp
}

/// The answer of an injected failure: Graph's or Partner Center's error body;
/// 429 and 503 carry a `Retry-After`.
fn fault_answer(svc: Service, req: &Req, date: &str, status: u16) -> Resp {
    let resp = if svc == Service::Partner {
        partner_error(
            status,
            500000,
            "The service is temporarily unavailable. Please retry.",
        )
    } else {
        graph_error(
            req,
            date,
            status,
            transient_code(status),
            "The service is temporarily unavailable. Please retry.",
        )
    };
    match status {
        429 => resp.header("Retry-After", "1"),
        503 => resp.header("Retry-After", "1"),
        _ => resp,
    }
}

fn to_http(req: &Req, resp: Resp) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(resp.status)
        .header("request-id", &req.request_id)
        .header(
            "client-request-id",
            req.client_request_id.as_deref().unwrap_or(&req.request_id),
        );
    for (k, v) in &resp.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let raw = resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let body = match &resp.body {
        // A body that is not JSON (a report's CSV) under its own type.
        Some(serde_json::Value::String(text)) if raw => Bytes::from(text.clone()),
        Some(v) => {
            b = b.header("content-type", "application/json; charset=utf-8");
            Bytes::from(serde_json::to_vec(v).unwrap_or_default())
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}
