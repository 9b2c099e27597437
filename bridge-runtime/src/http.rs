//! The HTTP endpoint: `/metrics` (Prometheus), `/healthz` (liveness: no part of the process
//! has failed for good), `/readyz` (every connection up, every subscription granted, the
//! dead-letter topic usable; otherwise the list of what is not, with reasons).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Binds `listen` and serves until `stop` is cancelled.
pub async fn serve(
    listen: SocketAddr,
    serve_metrics: bool,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut app = Router::new();
    if serve_metrics {
        app = app.route("/metrics", get(metrics_handler));
    }
    let app = app
        .route("/healthz", get(live_handler))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, health });
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP endpoint failed");
        }
    }))
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn live_handler(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(failure) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("failed: {failure}\n"),
        ),
    }
}

async fn ready_handler(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(not_ready) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", not_ready.join(", ")),
        ),
    }
}
