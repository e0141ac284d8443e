//! The HTTP endpoint of the metrics: `GET /metrics` on the address of
//! `[metrics] listen` (loopback unless explicitly allowed otherwise, see
//! `config::MetricsSettings`). Anything else is 404. The server lives as long
//! as the [`Server`] handle. Connections are capped and time-limited: the
//! port is open to every local user.

use super::{render, Error, CONTENT_TYPE};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The running metrics endpoint; stops when dropped.
#[derive(Debug)]
pub struct Server {
    /// The address actually bound (port 0 in the config picks a free one).
    pub addr: SocketAddr,
    /// The serving task, aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a scrape reads from the engine.
type Source = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr` and serves `GET /metrics` with the sagas and health that
/// `read` returns at each scrape, with the default connection limits.
pub async fn serve(
    addr: SocketAddr,
    read: impl Fn() -> (Vec<super::SagaGauge>, bool) + Send + Sync + 'static,
) -> Result<Server, Error> {
    serve_with(addr, read, 64, Duration::from_secs(30)).await
}

/// Binds `addr` and serves `GET /metrics`: at most `max_connections` at once
/// (more are closed at once, so a flood of idle connections costs the
/// daemon no more descriptors than that), each closed after
/// `idle_timeout` whatever it does (a scraper reconnects).
pub async fn serve_with(
    addr: SocketAddr,
    read: impl Fn() -> (Vec<super::SagaGauge>, bool) + Send + Sync + 'static,
    max_connections: usize,
    idle_timeout: Duration,
) -> Result<Server, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let source: Source = Arc::new(move || {
        let (sagas, healthy) = read();
        render(&sagas, healthy)
    });
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(source);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::debug!("metrics: connection cap reached; closing a new connection");
                drop(stream);
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(idle_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(idle_timeout, conn).await;
            });
        }
    });
    tracing::info!(addr = %bound, "serving metrics at http://{bound}/metrics");
    Ok(Server { addr: bound, task })
}

async fn scrape(State(source): State<Source>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], source())
}
