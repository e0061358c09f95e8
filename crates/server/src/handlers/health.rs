//! Liveness and readiness.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers within a second.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready", "database": "ok"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "error"})))
        }
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "timeout"})))
        }
    }
}
