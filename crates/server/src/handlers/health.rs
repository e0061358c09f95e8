//! Liveness and readiness.

use crate::openapi::tag;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use std::time::Duration;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// `ok`, `error` or `timeout`.
    database: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = tag::SERVICE, responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers within a second.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = tag::SERVICE,
    responses((status = 200, body = Readiness), (status = 503, description = "Not ready", body = Readiness))
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let unavailable =
        |database| (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { status: "unavailable", database }));
    match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(Readiness { status: "ready", database: "ok" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            unavailable("error")
        }
        Err(_) => unavailable("timeout"),
    }
}
