//! The request gate of end-user endpoints after the edge (`edge.rs`: headers,
//! tenant, origin): body limits (the handler's), then identity, then the kill
//! switch, then rate limits, then validation. Each step refuses without side
//! effects; handlers call the steps in that order.

use crate::edge::Edge;
use crate::http::ApiError;
use crate::state::AppState;
use axum::http::{header, HeaderMap};
use switchboard_core::tenant::Tenant;
use switchboard_core::{ErrorCode, Subject};

/// Who is calling, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: Subject,
    /// The display name a user token carries (`name`).
    pub name: Option<String>,
    /// A user token with `role: "admin"` (an agent).
    pub admin: bool,
}

/// The bearer token, if the request has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who is calling. `Ok(None)` only when credentials are optional and absent.
pub fn identify(
    state: &AppState,
    headers: &HeaderMap,
    edge: &Edge,
    required: bool,
) -> Result<Option<Caller>, ApiError> {
    let Some(token) = bearer(headers) else {
        return match (headers.contains_key(header::AUTHORIZATION), required) {
            (true, _) => Err(ApiError::auth_invalid("Authorization is not a bearer token")),
            (false, true) => Err(ErrorCode::AuthMissing.into()),
            (false, false) => Ok(None),
        };
    };
    let caller = crate::identity::bearer_caller(state, token, &edge.tenant)?;
    if edge.query_tenant.as_deref().is_some_and(|q| q != edge.tenant.id) {
        return Err(ErrorCode::AuthContextMismatch.into());
    }
    Ok(Some(caller))
}

/// On a `require_user` tenant only users may chat or start sessions: a
/// visitor (or a request that would create one) gets `auth.forbidden`.
pub fn require_user(tenant: &Tenant, caller: Option<&Caller>) -> Result<(), ApiError> {
    match caller {
        _ if !tenant.require_user => Ok(()),
        Some(Caller { subject: Subject::User(_), .. }) => Ok(()),
        _ => Err(ErrorCode::AuthForbidden.into()),
    }
}

/// Identity where credentials are required.
pub fn caller(state: &AppState, headers: &HeaderMap, edge: &Edge) -> Result<Caller, ApiError> {
    identify(state, headers, edge, true)?.ok_or(ApiError::new(ErrorCode::AuthMissing))
}

/// The tenant's and the global kill switch, as they are now (the tenant's
/// snapshot follows the database; the global flag may be flipped at run time).
pub fn kill_switch(state: &AppState, tenant: &Tenant) -> Result<(), ApiError> {
    if state.kill_switch.load(std::sync::atomic::Ordering::Relaxed) || tenant.kill_switch {
        return Err(ErrorCode::TenantDisabled.into());
    }
    Ok(())
}

/// The whole gate for endpoints without a body that need a caller.
pub fn authorized(state: &AppState, headers: &HeaderMap, edge: &Edge) -> Result<Caller, ApiError> {
    let caller = caller(state, headers, edge)?;
    kill_switch(state, &edge.tenant)?;
    Ok(caller)
}
