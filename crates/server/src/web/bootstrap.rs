//! `GET /v1/widget/bootstrap?tenant=ID` (SPEC §14): the one question a
//! widget may ask from any origin, before anything else: may this page use
//! the tenant's chat, and is the tenant switched off? Refused origins get no
//! CORS headers anywhere else, so without this the widget could not tell
//! "not allowed here" from "offline". It answers with
//! `Access-Control-Allow-Origin: *` (never credentials), reveals nothing but
//! the display name, and changes nothing.

use crate::edge;
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard_core::ErrorCode;

/// What the widget may know before anything else.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Bootstrap {
    /// The request's `Origin` is in the tenant's allowlist.
    origin_allowed: bool,
    /// The tenant's (or the global) kill switch is on.
    disabled: bool,
    tenant: BootstrapTenant,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BootstrapTenant {
    name: String,
}

/// May this page use the tenant's chat, and is it switched off? Any origin.
#[utoipa::path(
    get,
    path = "/v1/widget/bootstrap",
    tag = crate::openapi::tag::SESSIONS,
    params(("tenant" = String, Query, min_length = 1, description = "The tenant's id")),
    responses(
        (status = 200, body = Bootstrap),
        (status = 400, description = "No tenant given, or a duplicated Origin"),
        (status = 404, description = "No such tenant")
    )
)]
pub async fn bootstrap(State(state): State<AppState>, request: Request) -> Response {
    let mut response = match answer(&state, &request) {
        Ok(body) => Json(body).into_response(),
        Err(refusal) => refusal.into_response(),
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("X-Trace-Id"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn answer(state: &AppState, request: &Request) -> Result<Bootstrap, ApiError> {
    let headers = request.headers();
    if headers.get_all(header::ORIGIN).iter().count() > 1 {
        return Err(ApiError::invalid_field("origin", "must not be sent more than once"));
    }
    let id = edge::query_param(request.uri().query(), "tenant")
        .filter(|id| !id.is_empty())
        .ok_or(ApiError::new(ErrorCode::TenantMissing))?;
    let tenant = state.tenants.get(&id).ok_or(ApiError::new(ErrorCode::TenantUnknown))?;
    let origin_allowed = edge::origin(state, headers, &tenant).is_ok();
    let disabled = crate::gate::kill_switch(state, &tenant).is_err();
    Ok(Bootstrap { origin_allowed, disabled, tenant: BootstrapTenant { name: tenant.name.clone() } })
}
