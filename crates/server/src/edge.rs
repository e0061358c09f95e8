//! The edge of every end-user endpoint (SPEC §9): duplicated critical headers,
//! then the tenant, then the Origin, before any handler runs. An accepted
//! origin gets the CORS headers on every answer, errors included; a refused
//! one gets none. Preflights are answered here, without a tenant.

use crate::config::Config;
use crate::http::ApiError;
use crate::state::AppState;
use crate::tokens::claimed_tenant;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use switchboard_core::origin::normalize;
use switchboard_core::tenant::Tenant;
use switchboard_core::ErrorCode;

/// What the edge established, for the handler (a request extension).
#[derive(Clone)]
pub struct Edge {
    pub tenant: Arc<Tenant>,
    /// The Origin as sent, when the request had an allowed one.
    pub origin: Option<String>,
    /// The tenant `?tenant=` named, which identity must agree with.
    pub query_tenant: Option<String>,
}

/// Headers that must not appear twice: a proxy and a client disagreeing
/// about them is how requests get smuggled past checks.
const CRITICAL: [&str; 4] = ["authorization", "origin", "x-tenant-id", "content-type"];

/// PUT for the memory API (SPEC §18).
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Tenant-Id, Last-Event-ID, traceparent";
const EXPOSE_HEADERS: &str =
    "X-Trace-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After";

pub async fn end_user(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // First of all, for preflights too: a preflight is where a browser
    // learns whether to send the real request.
    if let Err(refusal) = single_critical_headers(request.headers()) {
        return refusal.into_response();
    }
    let query_tenant = query_param(request.uri().query(), "tenant");
    if request.method() == Method::OPTIONS {
        return preflight(&state, request.headers(), query_tenant.as_deref());
    }
    let query_ticket = query_param(request.uri().query(), "ticket");
    let edge = match admit(&state, request.headers(), query_tenant, query_ticket) {
        Ok(edge) => edge,
        Err(refusal) => return refusal.into_response(),
    };
    let origin = edge.origin.clone();
    request.extensions_mut().insert(edge);
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        allow(response.headers_mut(), &origin);
    }
    response
}

fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query_tenant: Option<String>,
    query_ticket: Option<String>,
) -> Result<Edge, ApiError> {
    let tenant = tenant(state, headers, query_tenant.as_deref(), query_ticket.as_deref())?;
    crate::http::trace::note_tenant(&tenant);
    let origin = origin(state, headers, &tenant)?;
    Ok(Edge { tenant, origin, query_tenant })
}

/// `request.invalid` when a critical header is sent more than once (SPEC
/// §4: the first refusal of every end-user and admin request, preflights
/// included).
pub fn single_critical_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    match CRITICAL.iter().find(|h| headers.get_all(**h).iter().count() > 1) {
        Some(name) => Err(ApiError::invalid_field(name, "must not be sent more than once")),
        None => Ok(()),
    }
}

/// The tenant from `X-Tenant-Id`, else `?tenant=`, else the bearer token's
/// (or the `?ticket=`'s) `tid`, read unverified, only to choose whose rules
/// verify it.
fn tenant(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    ticket: Option<&str>,
) -> Result<Arc<Tenant>, ApiError> {
    let named = match headers.get("x-tenant-id") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::new(ErrorCode::TenantUnknown))?.to_owned()),
        None => query
            .map(str::to_owned)
            .or_else(|| crate::gate::bearer(headers).and_then(claimed_tenant))
            .or_else(|| ticket.and_then(claimed_tenant)),
    };
    let id = named.filter(|s| !s.is_empty()).ok_or(ApiError::new(ErrorCode::TenantMissing))?;
    state.tenants.get(&id).ok_or(ApiError::new(ErrorCode::TenantUnknown))
}

/// `Ok(Some(origin))` for an allowed cross-origin request, `Ok(None)` for an
/// allowed request without one (same origin, or a server-side client).
pub(crate) fn origin(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &Tenant,
) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(header::ORIGIN) else {
        let same_origin = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"same-origin");
        return if same_origin {
            // Browsers omit Origin on same-origin GETs: the page is ours.
            allowed(tenant, &state.config.public_url)
                .then_some(None)
                .ok_or(ApiError::new(ErrorCode::OriginForbidden))
        } else if tenant.allow_no_origin {
            Ok(None)
        } else {
            Err(ErrorCode::OriginMissing.into())
        };
    };
    let raw = raw.to_str().map_err(|_| ApiError::new(ErrorCode::OriginForbidden))?;
    match normalize(raw) {
        Some(n) if allowed(tenant, &n) => Ok(Some(raw.to_owned())),
        _ => Err(ErrorCode::OriginForbidden.into()),
    }
}

fn allowed(tenant: &Tenant, normalized: &str) -> bool {
    tenant.allowed_origins.iter().any(|o| o == normalized)
}

/// A preflight carries no custom headers, so no tenant: it passes when the
/// origin is allowed by the tenant `?tenant=` names, or else by any tenant.
/// The real request is then checked against its own tenant.
fn preflight(state: &AppState, headers: &HeaderMap, query_tenant: Option<&str>) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let normalized = origin.and_then(normalize);
    let ok = match (&normalized, query_tenant) {
        (Some(n), Some(id)) => state.tenants.get(id).is_some_and(|t| allowed(&t, n)),
        (Some(n), None) => state.tenants.any(|t| allowed(t, n)),
        (None, _) => false,
    };
    let (Some(origin), true) = (origin, ok) else {
        let code = if origin.is_none() { ErrorCode::OriginMissing } else { ErrorCode::OriginForbidden };
        return ApiError::new(code).into_response();
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    allow(h, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// The CORS headers of an accepted origin.
pub fn allow(h: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
}

/// The Origin rule of admin endpoints (SPEC §9): no Origin (the CLI,
/// scripts), the server's own (`public_url`), or one of `admin_origins`.
/// The admin API mounts it in front of its routes.
pub fn admin_origin(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(raw) = headers.get(header::ORIGIN) else { return Ok(()) };
    let normalized =
        raw.to_str().ok().and_then(normalize).ok_or(ApiError::new(ErrorCode::OriginForbidden))?;
    if normalized == config.public_url || config.admin_origins.contains(&normalized) {
        Ok(())
    } else {
        Err(ErrorCode::OriginForbidden.into())
    }
}

/// One query parameter, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_endpoints_take_no_origin_their_own_or_admin_origins() {
        let toml = "public_url = \"https://sb.example\"\nadmin_origins = [\"https://ops.example:8443\"]";
        let config = Config::from_parts(toml, Vec::new()).unwrap_or_else(|e| unreachable!("{e}"));
        let with = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("x")));
            admin_origin(&config, &h).map_err(|e| e.code)
        };
        assert!(admin_origin(&config, &HeaderMap::new()).is_ok());
        assert!(with("https://sb.example").is_ok());
        assert!(with("HTTPS://SB.EXAMPLE:443").is_ok());
        assert!(with("https://ops.example:8443").is_ok());
        for bad in ["https://ops.example", "https://sb.example.evil.com", "null", "https://sb.example/"] {
            assert_eq!(with(bad), Err(ErrorCode::OriginForbidden), "{bad}");
        }
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param(Some("a=1&tenant=ac%6De&x"), "tenant").as_deref(), Some("acme"));
        assert_eq!(query_param(Some("tenant="), "tenant").as_deref(), Some(""));
        assert_eq!(query_param(Some("a=1"), "tenant"), None);
        assert_eq!(query_param(None, "tenant"), None);
    }
}
