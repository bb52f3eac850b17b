//! What load balancers, orchestrators and Prometheus ask of a server:
//! `GET /healthz` (the process serves), `GET /readyz` (it can take new
//! answers) and `GET /metrics` ([`crate::telemetry`]).
//!
//! These routes sit outside the browser defences: a probe names the server
//! by its address, not by a configured host name, and sends no cookie.
//! They carry no user data.

use crate::server::AppState;
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;

pub const HEALTH_PATH: &str = "/healthz";
pub const READY_PATH: &str = "/readyz";
pub const METRICS_PATH: &str = "/metrics";

/// `/healthz`, `/readyz`, and `/metrics` unless it has a listener of its
/// own (or is off).
pub fn router(state: &AppState) -> Router<AppState> {
    let router = Router::new()
        .route(HEALTH_PATH, get(healthz))
        .route(READY_PATH, get(readyz));
    if state.metrics.is_some() && state.settings.metrics.own_listener().is_none() {
        router.route(METRICS_PATH, get(metrics))
    } else {
        router
    }
}

/// `/metrics` alone, for its own listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route(METRICS_PATH, get(metrics)).with_state(state)
}

/// The process is up and serving HTTP.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// Whether this instance should be sent new answers: not draining, the
/// database reachable and migrated. 503 with the reason otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let bedrock = if state.bedrock.is_demo() {
        "simulator"
    } else {
        "aws"
    };
    if state.generations.is_closed() {
        return not_ready("draining", "the server is shutting down and takes no new answers");
    }
    if let Err(err) = state.store.check_ready().await {
        let reason = match err.kind {
            crate::conversations::store::StoreErrorKind::Unavailable => {
                "the database cannot be reached".to_owned()
            }
            _ => format!(
                "the database is not ready: {}",
                crate::server::without_password(&err.detail)
            ),
        };
        return not_ready("database", &reason);
    }
    Json(json!({
        "status": "ready",
        "database": state.store.backend().name(),
        "bedrock": bedrock,
    }))
    .into_response()
}

fn not_ready(check: &str, reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unavailable", "check": check, "reason": reason })),
    )
        .into_response()
}

/// The Prometheus text format, with the gauges read now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    metrics::gauge!(crate::telemetry::ANSWERS_IN_PROGRESS).set(state.generations.running() as f64);
    metrics::gauge!(crate::telemetry::LISTENERS).set(state.generations.listeners() as f64);
    if let Some(figures) = state.store.group_commit_figures() {
        metrics::counter!(crate::telemetry::STORE_COMMITS).absolute(figures.transactions);
        metrics::counter!(crate::telemetry::STORE_WRITES).absolute(figures.writes);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}
