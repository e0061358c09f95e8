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
pub(crate) mod query;
pub mod sessions;
mod subjects;
pub mod takeover;
pub(crate) mod tenant_body;
pub mod tenants;
pub mod usage;

use crate::edge;
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use switchboard_core::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Tenant-Id, traceparent";

/// The `/v1/admin` routes and their description (one `routes!` per path).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::get))
        .routes(routes!(sessions::close))
        .routes(routes!(takeover::take))
        .routes(routes!(takeover::release))
        .routes(routes!(takeover::message))
        .routes(routes!(live::events))
        .routes(routes!(live::mint))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(kill_switch::put_tenant))
        .routes(routes!(kill_switch::get_global, kill_switch::put_global))
        .routes(routes!(usage::get))
        .routes(routes!(audit_log::list))
        .routes(routes!(audit_log::check))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::resume))
        .routes(routes!(deliveries::retry))
        .routes(routes!(subjects::erase))
        .routes(routes!(subjects::export))
}

/// The admin routes behind the admin edge.
pub fn behind_edge(router: Router<AppState>, state: AppState) -> Router<AppState> {
    router
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
