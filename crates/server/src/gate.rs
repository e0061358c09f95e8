//! The request gate of end-user endpoints, one ordered pipeline shared by
//! every transport: critical headers → tenant → (origin, next issue) → body
//! limits (the handler's) → identity → kill switch. Each step refuses without
//! side effects; handlers call the steps in that order.

use crate::http::ApiError;
use crate::state::AppState;
use crate::tokens::{claimed_tenant, TokenType};
use axum::http::{header, HeaderMap};
use std::sync::Arc;
use switchboard_core::tenant::Tenant;
use switchboard_core::{ErrorCode, Subject};

/// Headers that must not appear twice: a proxy and a client disagreeing
/// about them is how requests get smuggled past checks.
const CRITICAL: [&str; 4] = ["authorization", "origin", "x-tenant-id", "content-type"];

/// Steps 1–2: one copy of each critical header, and a known tenant (from
/// `X-Tenant-Id`, else the bearer token's `tid`).
pub fn tenant(state: &AppState, headers: &HeaderMap) -> Result<Arc<Tenant>, ApiError> {
    if let Some(name) = CRITICAL.iter().find(|h| headers.get_all(**h).iter().count() > 1) {
        return Err(ApiError::invalid_field(name, "must not be sent more than once"));
    }
    let named = match headers.get("x-tenant-id") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::new(ErrorCode::TenantUnknown))?.to_owned()),
        None => bearer(headers).and_then(claimed_tenant),
    };
    let id = named.filter(|s| !s.is_empty()).ok_or(ApiError::new(ErrorCode::TenantMissing))?;
    state.tenants.get(&id).ok_or(ApiError::new(ErrorCode::TenantUnknown))
}

/// The bearer token, if the request has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Step: who is calling. `Ok(None)` only when credentials are optional and
/// absent.
pub fn identify(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &Tenant,
    required: bool,
) -> Result<Option<Subject>, ApiError> {
    let Some(token) = bearer(headers) else {
        return match (headers.contains_key(header::AUTHORIZATION), required) {
            (true, _) => Err(ApiError::auth_invalid("Authorization is not a bearer token")),
            (false, true) => Err(ErrorCode::AuthMissing.into()),
            (false, false) => Ok(None),
        };
    };
    let claims = state.signer.verify(token, TokenType::Visitor).map_err(ApiError::auth_invalid)?;
    if claims.tid != tenant.id {
        return Err(ErrorCode::AuthContextMismatch.into());
    }
    match Subject::parse(&claims.sub) {
        Some(subject @ Subject::Visitor(_)) => Ok(Some(subject)),
        _ => Err(ApiError::auth_invalid("visitor token with a non-visitor subject")),
    }
}

/// Step: the tenant's and the global kill switch.
pub fn kill_switch(state: &AppState, tenant: &Tenant) -> Result<(), ApiError> {
    if state.config.kill_switch || tenant.kill_switch {
        return Err(ErrorCode::TenantDisabled.into());
    }
    Ok(())
}

/// The whole gate for endpoints without a body that need a caller.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<(Arc<Tenant>, Subject), ApiError> {
    let tenant = tenant(state, headers)?;
    let subject = identify(state, headers, &tenant, true)?.ok_or(ApiError::new(ErrorCode::AuthMissing))?;
    kill_switch(state, &tenant)?;
    Ok((tenant, subject))
}
