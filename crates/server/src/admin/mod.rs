//! The admin API (`/v1/admin`, SPEC §12): for agents (a tenant's user JWT
//! with `role: "admin"`) and the operator. Its own edge (duplicated headers,
//! the admin Origin rule, CORS for `admin_origins`), no end-user rate limits
//! and no kill switch: the people who turn a switch on must be able to turn
//! it off again.
//!
//! Extension points for what comes next:
//! - every mutating action goes through [`audit::record`], which appends it
//!   to the HMAC-chained audit log (`GET /v1/admin/audit`, `…/audit/verify`);
//! - takeover, agent messages and release ([`takeover`]), admin tickets and
//!   the live view ([`live`]) mount in [`router`] beside the session routes,
//!   and authenticate with [`auth::authenticate`] and [`auth::scoped_tenant`]
//!   like them.

pub mod audit;
mod audit_log;
pub mod auth;
mod deliveries;
pub mod kill_switch;
pub mod live;
mod query;
pub mod sessions;
mod subjects;
pub mod takeover;
mod tenant_body;
pub mod tenants;
pub mod usage;

use crate::edge;
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use switchboard_core::ErrorCode;

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Tenant-Id, traceparent";

/// The `/v1/admin` routes, behind the admin edge.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/admin/sessions", get(sessions::list))
        .route("/v1/admin/sessions/{id}", get(sessions::get))
        .route("/v1/admin/sessions/{id}/close", post(sessions::close))
        .route("/v1/admin/sessions/{id}/takeover", post(takeover::take))
        .route("/v1/admin/sessions/{id}/release", post(takeover::release))
        .route("/v1/admin/sessions/{id}/messages", post(takeover::message))
        .route("/v1/admin/sessions/{id}/events", get(live::events))
        .route("/v1/admin/tickets", post(live::mint))
        .route("/v1/admin/tenants", get(tenants::list).post(tenants::create))
        .route("/v1/admin/tenants/{id}", get(tenants::get).patch(tenants::update).delete(tenants::delete))
        .route("/v1/admin/tenants/{id}/kill-switch", put(kill_switch::put_tenant))
        .route("/v1/admin/kill-switch", get(kill_switch::get_global).put(kill_switch::put_global))
        .route("/v1/admin/usage", get(usage::get))
        .route("/v1/admin/audit", get(audit_log::list))
        .route("/v1/admin/audit/verify", get(audit_log::check))
        .route("/v1/admin/deliveries", get(deliveries::list))
        .route("/v1/admin/deliveries/resume", post(deliveries::resume))
        .route("/v1/admin/deliveries/{id}/retry", post(deliveries::retry))
        .route("/v1/admin/subjects/{subject}", axum::routing::delete(subjects::erase))
        .route("/v1/admin/subjects/{subject}/export", get(subjects::export))
        .method_not_allowed_fallback(|| async { ApiError::new(ErrorCode::MethodNotAllowed) })
        .layer(axum::middleware::from_fn_with_state(state, admin_edge))
}

/// Duplicated critical headers, then the admin Origin rule (SPEC §9): no
/// Origin (CLI, scripts), the server's own, or one of `admin_origins`, which
/// also get CORS headers so a console served elsewhere can read the answers.
async fn admin_edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    // Before the preflight, as on end-user endpoints.
    if let Err(refusal) = edge::single_critical_headers(headers) {
        return refusal.into_response();
    }
    if let Err(refusal) = edge::admin_origin(&state.config, headers) {
        return refusal.into_response();
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if request.method() == Method::OPTIONS {
        return preflight(origin.as_deref());
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        edge::allow(response.headers_mut(), &origin);
    }
    response
}

fn preflight(origin: Option<&str>) -> Response {
    let Some(origin) = origin else { return ApiError::new(ErrorCode::OriginMissing).into_response() };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h: &mut HeaderMap = response.headers_mut();
    edge::allow(h, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}
