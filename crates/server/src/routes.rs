//! The routing table, and nothing else.

use crate::edge;
use crate::handlers::{chat, health, link, me, memory, sessions, tickets};
use crate::http::{trace, ApiError};
use crate::limits;
use crate::realtime::{subscribe, ws};
use crate::state::AppState;
use crate::telemetry;
use axum::routing::{get, post};
use axum::Router;
use switchboard_core::ErrorCode;

pub fn router(state: AppState) -> Router {
    let end_user = Router::new()
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route("/v1/sessions/{id}", get(sessions::get).delete(sessions::delete))
        .route("/v1/sessions/{id}/messages", get(sessions::messages))
        .route("/v1/sessions/{id}/events", get(subscribe::events))
        .route("/v1/ws", get(ws::ws))
        .route("/v1/chat", post(chat::chat))
        .route("/v1/tickets", post(tickets::create))
        .route("/v1/identity/link", post(link::link))
        .route("/v1/me", axum::routing::delete(me::erase))
        .route("/v1/me/export", get(me::export))
        .route("/v1/memory", get(memory::list).delete(memory::forget_all))
        .route("/v1/memory/{key}", get(memory::get).put(memory::put).delete(memory::forget))
        // Set before the edge layer, so the edge also sees requests for methods
        // a route lacks (preflights are OPTIONS).
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::end_user))
        // X-RateLimit-* headers of the endpoints that call `limits::admit`.
        .layer(axum::middleware::from_fn(limits::layer));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(telemetry::render))
        .merge(end_user)
        .merge(crate::web::router())
        .merge(crate::demo_shop::router())
        .merge(crate::admin::router(state.clone()))
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound) })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(telemetry::track_http))
        .layer(axum::middleware::from_fn(trace::middleware))
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed)
}
