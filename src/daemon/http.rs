//! The daemon's HTTP endpoints: `/metrics` for Prometheus, `/healthz` for liveness (the
//! process and its scheduler loop are alive; never asks HSS), `/readyz` for readiness (the
//! database answers and a valid configuration runs), `/status` (what `status --output json`
//! prints).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Daemon;

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(daemon)
}

async fn metrics(State(daemon): State<Arc<Daemon>>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        daemon.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(daemon): State<Arc<Daemon>>) -> Response {
    match daemon.scheduler_stalled() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn readyz(State(daemon): State<Arc<Daemon>>) -> Response {
    if !daemon.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n").into_response();
    }
    match daemon.app().store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer\n",
            )
                .into_response()
        }
    }
}

async fn status(State(daemon): State<Arc<Daemon>>) -> Response {
    let app = daemon.app();
    match daemon.status(&app).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "/status: cannot read the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot read the database\n",
            )
                .into_response()
        }
    }
}
