//! The HTTP endpoint of the metrics: `GET /metrics` on the address of
//! `[metrics] listen` (loopback unless explicitly allowed otherwise, see
//! `config::MetricsSettings`). Anything else is 404. The server lives as long
//! as the [`Server`] handle.

use super::{render, Error, CONTENT_TYPE};
use crate::runtime::control::Engine;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

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

/// Binds `addr` and serves `GET /metrics` with the sagas and health of
/// `engine`.
pub async fn serve<E: Engine>(addr: SocketAddr, engine: Arc<E>) -> Result<Server, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let source: Source = Arc::new(move || {
        let rows = engine.status(None).unwrap_or_default();
        render(&rows, engine.healthy())
    });
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(source);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "serving metrics at http://{bound}/metrics");
    Ok(Server { addr: bound, task })
}

async fn scrape(State(source): State<Source>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], source())
}
