//! Kill switches through the admin API (SPEC §12, §13): a tenant's
//! (`PUT /v1/admin/tenants/{id}/kill-switch`, the operator for any tenant, an
//! agent for its own, as the console offers it) and the global one
//! (`GET|PUT /v1/admin/kill-switch`, the operator). Both are kept in the
//! database, so every node and every restart sees them; the global one in
//! `runtime_settings`, with the configuration's `kill_switch = true` as a
//! floor the API cannot lower. A switch turned on takes effect on this node
//! before the answer (open streams end with `tenant.disabled`, running turns
//! stop) and reaches other nodes over the bus, or by their poll.

use super::audit::{self, Action};
use super::auth::{self, Actor};
use super::tenants::edit_error;
use crate::http::extract::{self, Path};
use crate::http::ApiError;
use crate::state::AppState;
use crate::tenancy::edit;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use switchboard_core::bus::Notice;
use switchboard_core::store::admin::RuntimeSetting;
use switchboard_core::tenant::Tenant;
use switchboard_core::time::format;
use switchboard_core::ErrorCode;

/// The `runtime_settings` name of the global switch.
const GLOBAL: &str = "kill_switch";
/// Longest `reason` kept.
const MAX_REASON_CHARS: usize = 500;

fn tenant_key(id: &str) -> String {
    format!("tenant_kill_switch:{id}")
}

/// A kill switch turned on or off.
// The description's: `switch_body` reads the JSON.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SwitchRequest {
    /// On (`true`) or off.
    enabled: bool,
    /// Why; kept trimmed, shown with the switch.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// A tenant's switch as set.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantSwitch {
    pub tenant_id: String,
    pub enabled: bool,
    pub reason: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The global switch.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GlobalSwitch {
    /// In force: set through the API, or by the configuration.
    pub enabled: bool,
    /// The configuration's `kill_switch = true`, which the API cannot lower.
    pub config_floor: bool,
    #[schema(value_type = Option<String>)]
    pub reason: Value,
    /// Null when the API never set it.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// `{enabled, reason?}`: `enabled` required, nothing else allowed.
pub(crate) fn switch_body(mut body: Map<String, Value>) -> Result<(bool, Option<String>), ApiError> {
    let enabled = body.remove("enabled");
    let reason = body.remove("reason");
    let mut problems = extract::unknown_fields(&body);
    let enabled = match enabled {
        Some(Value::Bool(b)) => Some(b),
        _ => {
            problems.push(switchboard_core::error::FieldProblem::new("enabled", "must be true or false"));
            None
        }
    };
    let reason = match reason {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_REASON_CHARS => Some(s.trim().to_owned()),
        Some(_) => {
            problems.push(switchboard_core::error::FieldProblem::new(
                "reason",
                "must be a string of at most 500 characters",
            ));
            None
        }
    };
    match enabled {
        Some(enabled) if problems.is_empty() => Ok((enabled, reason.filter(|r| !r.is_empty()))),
        _ => Err(ApiError::invalid(problems)),
    }
}

async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = extract::json_body(headers, body, state.config.max_body_bytes, true).await?;
    extract::json_object(&bytes.unwrap_or_default())
}

/// The reason recorded with the tenant's switch, if the switch is still in
/// the state it was given for (the CLI flips it without one).
pub async fn tenant_reason(state: &AppState, id: &str, enabled: bool) -> Result<Option<String>, ApiError> {
    let setting = state.store.runtime_setting(&tenant_key(id)).await.map_err(ApiError::internal)?;
    Ok(setting
        .filter(|s| s.value["enabled"].as_bool() == Some(enabled))
        .and_then(|s| s.value["reason"].as_str().map(str::to_owned)))
}

/// Turns a tenant's kill switch on or off.
///
/// The operator for any tenant, an agent for its own. On, the tenant's open
/// streams end with `tenant.disabled` and its running turns stop.
#[utoipa::path(
    put,
    path = "/v1/admin/tenants/{id}/kill-switch",
    operation_id = "admin_set_tenant_kill_switch",
    tag = crate::openapi::tag::ADMIN,
    params(("id" = String, Path, description = "The tenant's id")),
    request_body(content = SwitchRequest, content_type = "application/json"),
    responses((status = 200, body = TenantSwitch)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn put_tenant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<TenantSwitch>, ApiError> {
    let body = read_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    if actor.tenant_id().is_some_and(|own| own != id) {
        return Err(ErrorCode::AuthForbidden.into());
    }
    let (enabled, reason) = switch_body(body)?;
    let now = state.clock.now();
    let record = edit::set_kill_switch(state.store.as_ref(), &state.config.tenants, &id, enabled, now)
        .await
        .map_err(edit_error)?;
    let value = json!({"enabled": enabled, "reason": reason, "by": actor.label()});
    let setting = RuntimeSetting { key: tenant_key(&id), value, updated_at: now };
    state.store.put_runtime_setting(&setting).await.map_err(ApiError::internal)?;
    flip_here(&state, &id, enabled);
    state.engine.bus().notify(Notice::TenantsChanged);
    let detail = json!({"enabled": enabled, "reason": reason});
    audit::record(&state, &actor, Action::TenantKillSwitch, &id, detail).await?;
    Ok(Json(TenantSwitch {
        tenant_id: id,
        enabled: record.kill_switch,
        reason,
        updated_at: format(&record.updated_at),
    }))
}

/// Serves the tenant with its switch flipped at once (same settings and
/// provider client), and stops what the switch forbids. The reload that the
/// notice triggers then finds the database saying the same.
fn flip_here(state: &AppState, id: &str, enabled: bool) {
    let snapshot = state.tenants.snapshot();
    if let Some(current) = snapshot.get(id).filter(|t| t.kill_switch != enabled) {
        let mut map = (*snapshot).clone();
        map.insert(id.to_owned(), Arc::new(Tenant { kill_switch: enabled, ..(**current).clone() }));
        state.tenants.replace(map);
    }
    crate::tenancy::reload::stop_disabled(state);
}

/// The global switch as stored: `(enabled, reason, by, updated_at)`.
async fn stored_global(state: &AppState) -> Result<Option<RuntimeSetting>, ApiError> {
    state.store.runtime_setting(GLOBAL).await.map_err(ApiError::internal)
}

fn global_json(state: &AppState, stored: Option<&RuntimeSetting>) -> GlobalSwitch {
    let set = stored.and_then(|s| s.value["enabled"].as_bool()).unwrap_or(false);
    GlobalSwitch {
        enabled: set || state.config.kill_switch,
        config_floor: state.config.kill_switch,
        reason: stored.and_then(|s| s.value.get("reason").cloned()).unwrap_or(Value::Null),
        updated_at: stored.map(|s| format(&s.updated_at)),
    }
}

/// The global kill switch.
#[utoipa::path(
    get,
    path = "/v1/admin/kill-switch",
    operation_id = "admin_get_global_kill_switch",
    tag = crate::openapi::tag::ADMIN,
    responses((status = 200, body = GlobalSwitch)),
    security(("operator_token" = []))
)]
pub async fn get_global(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<GlobalSwitch>, ApiError> {
    auth::operator_only(&auth::authenticate(&state, &headers)?)?;
    Ok(Json(global_json(&state, stored_global(&state).await?.as_ref())))
}

/// Turns the global kill switch on or off (every tenant).
#[utoipa::path(
    put,
    path = "/v1/admin/kill-switch",
    operation_id = "admin_set_global_kill_switch",
    tag = crate::openapi::tag::ADMIN,
    request_body(content = SwitchRequest, content_type = "application/json"),
    responses((status = 200, body = GlobalSwitch)),
    security(("operator_token" = []))
)]
pub async fn put_global(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<GlobalSwitch>, ApiError> {
    let body = read_body(&state, &headers, body).await?;
    let actor: Actor = auth::authenticate(&state, &headers)?;
    auth::operator_only(&actor)?;
    let (enabled, reason) = switch_body(body)?;
    let value = json!({"enabled": enabled, "reason": reason, "by": actor.label()});
    let setting = RuntimeSetting { key: GLOBAL.into(), value, updated_at: state.clock.now() };
    state.store.put_runtime_setting(&setting).await.map_err(ApiError::internal)?;
    state.kill_switch.store(enabled || state.config.kill_switch, Ordering::Relaxed);
    crate::tenancy::reload::stop_disabled(&state);
    state.engine.bus().notify(Notice::TenantsChanged);
    audit::record(
        &state,
        &actor,
        Action::GlobalKillSwitch,
        "global",
        json!({"enabled": enabled, "reason": reason}),
    )
    .await?;
    Ok(Json(global_json(&state, Some(&setting))))
}

/// Brings this node's global switch in line with the database (at start and
/// on every tenant reload); the configuration's `true` stays a floor. On a
/// database error the switch stays as it was.
pub async fn refresh_global(state: &AppState) {
    match state.store.runtime_setting(GLOBAL).await {
        Ok(stored) => {
            let set = stored.and_then(|s| s.value["enabled"].as_bool()).unwrap_or(false);
            let on = set || state.config.kill_switch;
            if state.kill_switch.swap(on, Ordering::Relaxed) != on {
                tracing::info!(on, "global kill switch changed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the global kill switch; keeping the current one"),
    }
}
