//! Who may call the admin API (SPEC §3, §12): the operator (the token the
//! `operator_token_env` variable holds, compared in constant time) or an
//! agent (the tenant's user JWT with `role: "admin"`, living at most
//! `agent_token_max_ttl_secs`), who acts only within its own tenant. Visitor
//! tokens and tickets are never admin credentials; a user without the admin
//! role is authenticated but not allowed (`auth.forbidden`).

use crate::gate::{bearer, Caller};
use crate::http::ApiError;
use crate::state::AppState;
use crate::tokens::claimed_tenant;
use axum::http::{header, HeaderMap};
use std::sync::Arc;
use switchboard_core::tenant::Tenant;
use switchboard_core::{ErrorCode, Subject};

/// A verified admin caller.
#[derive(Clone)]
pub enum Actor {
    Operator,
    Agent {
        tenant: Arc<Tenant>,
        /// The token's `sub`.
        sub: String,
        /// The token's `name`, shown to visitors during a takeover.
        name: Option<String>,
    },
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl Actor {
    /// How the audit log names the actor: `operator`, or `agent:<sub>`.
    pub fn label(&self) -> String {
        match self {
            Self::Operator => "operator".into(),
            Self::Agent { sub, .. } => format!("agent:{sub}"),
        }
    }

    /// What others are shown: the agent's `name` (else "Agent"), or "Operator".
    pub fn display_name(&self) -> &str {
        match self {
            Self::Operator => "Operator",
            Self::Agent { name, .. } => crate::identity::user::agent_display_name(name.as_deref()),
        }
    }

    /// The agent's tenant; `None` for the operator.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Self::Operator => None,
            Self::Agent { tenant, .. } => Some(&tenant.id),
        }
    }
}

/// Verifies the bearer token. An agent's token is verified with the key of
/// the tenant it names (`tid`, or a single `aud`), or else of the tenant
/// `X-Tenant-Id` names; a token that verifies for one tenant while the
/// header names another is `auth.context_mismatch`.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Actor, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            ApiError::auth_invalid("Authorization is not a bearer token")
        } else {
            ErrorCode::AuthMissing.into()
        });
    };
    if state.identity.is_operator_token(token) {
        return Ok(Actor::Operator);
    }
    let named = named_tenant(headers)?;
    let Some(id) = claimed_tenant(token).or_else(|| named.clone()) else {
        return Err(ApiError::auth_invalid("an admin token that names no tenant"));
    };
    // A tenant that does not exist cannot have issued the token.
    let tenant =
        state.tenants.get(&id).ok_or_else(|| ApiError::auth_invalid("the token's tenant is unknown"))?;
    let caller = crate::identity::bearer_caller(state, token, &tenant)?;
    let Caller { subject: Subject::User(sub), name, admin } = caller else {
        return Err(ApiError::auth_invalid("a visitor token on an admin endpoint"));
    };
    if !admin {
        tracing::info!(trace_id = %crate::http::trace::current(), "a user token without the admin role on an admin endpoint");
        return Err(ErrorCode::AuthForbidden.into());
    }
    if named.is_some_and(|n| n != tenant.id) {
        return Err(ErrorCode::AuthContextMismatch.into());
    }
    crate::http::trace::note_tenant(&tenant);
    Ok(Actor::Agent { tenant, sub, name })
}

/// `X-Tenant-Id`, if sent.
fn named_tenant(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("x-tenant-id") {
        None => Ok(None),
        Some(v) => {
            let id = v.to_str().map_err(|_| ApiError::new(ErrorCode::TenantUnknown))?;
            Ok((!id.is_empty()).then(|| id.to_owned()))
        }
    }
}

/// The tenant a tenant-scoped route acts on: the agent's own, or the one the
/// operator names with `X-Tenant-Id`. Served tenants only, kill switch or not.
pub fn scoped_tenant(state: &AppState, headers: &HeaderMap, actor: &Actor) -> Result<Arc<Tenant>, ApiError> {
    match actor {
        Actor::Agent { tenant, .. } => Ok(tenant.clone()),
        Actor::Operator => {
            let id = named_tenant(headers)?.ok_or(ApiError::new(ErrorCode::TenantMissing))?;
            let tenant = state.tenants.get(&id).ok_or(ApiError::new(ErrorCode::TenantUnknown))?;
            crate::http::trace::note_tenant(&tenant);
            Ok(tenant)
        }
    }
}

/// Routes only the operator may call (tenant management, the global switch).
pub fn operator_only(actor: &Actor) -> Result<(), ApiError> {
    match actor {
        Actor::Operator => Ok(()),
        Actor::Agent { .. } => Err(ErrorCode::AuthForbidden.into()),
    }
}
