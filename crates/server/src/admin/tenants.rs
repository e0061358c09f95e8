//! Tenant management for the operator (SPEC §12): list, read, create,
//! patch and delete tenants kept in the database, through the same rules as
//! `switchboard tenant …` (`tenancy::edit`). Tenants of the configuration
//! file are read-only here (`auth.forbidden`), except their kill switch
//! (`kill_switch.rs`). A change is in force on this node before the answer
//! goes out, and other nodes are told over the bus (their poll is the
//! fallback).

use super::audit::{self, Action};
use super::kill_switch::tenant_reason;
use super::{auth, tenant_body};
use crate::http::extract::{self, Path};
use crate::http::ApiError;
use crate::realtime::connections::CloseReason;
use crate::state::AppState;
use crate::tenancy::edit::{self, EditError};
use crate::tenancy::records::raw_settings;
use crate::tenancy::SOURCE_CONFIG;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::bus::Notice;
use switchboard_core::store::TenantRecord;
use switchboard_core::tenant::Tenant;
use switchboard_core::time::format;
use switchboard_core::turn::StopReason;
use switchboard_core::{ErrorCode, TenantId};

/// How long a change may take to be served by this node's reload.
const SETTLE: Duration = Duration::from_secs(5);

/// A refusal of `tenancy::edit` as the API's envelope.
pub fn edit_error(e: EditError) -> ApiError {
    match e {
        EditError::NotFound(_) => ErrorCode::TenantUnknown.into(),
        EditError::OwnedByFile(_) => ErrorCode::AuthForbidden.into(),
        EditError::Exists(_) => ApiError::invalid_field("id", "a tenant with this id already exists"),
        EditError::Invalid(message) => tenant_body::invalid_message(&message),
        EditError::Store(cause) => ApiError::internal(cause),
    }
}

/// A tenant as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    /// `config` (the configuration file's: read-only here) or `db`.
    #[schema(value_type = TenantSource)]
    pub source: String,
    /// The tenant's kill switch in force.
    pub kill_switch: bool,
    /// Why the switch is in its state, when it was given with one.
    pub kill_switch_reason: Option<String>,
    /// This node serves the tenant.
    pub served: bool,
    /// Null for a tenant of the configuration file the database does not know.
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    /// The settings, with credentials in URLs shown as `***`.
    #[schema(value_type = tenant_body::TenantSettings)]
    pub settings: Value,
}

/// Where a tenant is kept.
// The description's: `view` writes the text.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TenantSource {
    Config,
    Db,
}

/// Every tenant; one page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantPage {
    pub items: Vec<TenantView>,
    /// Always null: the whole list is one page.
    pub next_cursor: Option<String>,
}

/// One tenant as the API shows it, from the file (`file`) or the database
/// (`record`), with the kill switch in force and the settings masked.
async fn view(state: &AppState, id: &str) -> Result<Option<TenantView>, ApiError> {
    let record = state.store.get_tenant(id).await.map_err(ApiError::internal)?;
    let file = state.config.tenants.iter().find(|t| t.id == id);
    let (mut raw, name, source) = match (file, &record) {
        (Some(t), _) => (t.raw.clone(), t.name.clone(), SOURCE_CONFIG.to_owned()),
        (None, Some(r)) => (raw_settings(r).map_err(ApiError::internal)?, r.name.clone(), r.source.clone()),
        (None, None) => return Ok(None),
    };
    if let Some(r) = &record {
        raw.kill_switch = r.kill_switch;
    }
    let settings = serde_json::to_value(&raw).map_err(ApiError::internal)?;
    Ok(Some(TenantView {
        id: id.to_owned(),
        name,
        source,
        kill_switch: raw.kill_switch,
        kill_switch_reason: tenant_reason(state, id, raw.kill_switch).await?,
        served: state.tenants.get(id).is_some(),
        created_at: record.as_ref().map(|r| format(&r.created_at)),
        updated_at: record.as_ref().map(|r| format(&r.updated_at)),
        settings: tenant_body::shown(settings),
    }))
}

async fn viewed(state: &AppState, id: &str) -> Result<TenantView, ApiError> {
    view(state, id).await?.ok_or(ApiError::new(ErrorCode::TenantUnknown))
}

/// Every tenant, from the configuration file and the database.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    operation_id = "admin_list_tenants",
    tag = crate::openapi::tag::ADMIN,
    responses((status = 200, body = TenantPage)),
    security(("operator_token" = []))
)]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<TenantPage>, ApiError> {
    auth::operator_only(&auth::authenticate(&state, &headers)?)?;
    let records = state.store.list_tenants().await.map_err(ApiError::internal)?;
    let mut ids: Vec<&str> = state.config.tenants.iter().map(|t| t.id.as_str()).collect();
    ids.extend(records.iter().map(|r| r.id.as_str()));
    ids.sort_unstable();
    ids.dedup();
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.extend(view(&state, id).await?);
    }
    Ok(Json(TenantPage { items, next_cursor: None }))
}

/// One tenant.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}",
    operation_id = "admin_get_tenant",
    tag = crate::openapi::tag::ADMIN,
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = TenantView)),
    security(("operator_token" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    auth::operator_only(&auth::authenticate(&state, &headers)?)?;
    Ok(Json(viewed(&state, &id).await?))
}

/// Creates a tenant in the database.
///
/// The body is one `[[tenants]]` entry as JSON, checked like the
/// configuration file's, and the node must be able to serve it (the
/// provider's API key variable set, the JWT key loadable).
#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    operation_id = "admin_create_tenant",
    tag = crate::openapi::tag::ADMIN,
    request_body(content = tenant_body::TenantSettings, content_type = "application/json"),
    responses((status = 201, description = "Created and served", body = TenantView)),
    security(("operator_token" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = extract::json_body(&headers, body, state.config.max_body_bytes, true).await?;
    let actor = auth::authenticate(&state, &headers)?;
    auth::operator_only(&actor)?;
    let body = extract::json_object(&bytes.unwrap_or_default())?;
    let settings = tenant_body::settings(body)?;
    let now = state.clock.now();
    let record = edit::create(state.store.as_ref(), &state.config.tenants, &settings, now)
        .await
        .map_err(edit_error)?;
    announce(&state, &record.id, Want::Changed(None)).await;
    audit::record(&state, &actor, Action::TenantCreate, &record.id, json!({})).await?;
    Ok((StatusCode::CREATED, Json(viewed(&state, &record.id).await?)).into_response())
}

/// Changes a tenant of the database with a JSON merge patch.
///
/// The patch (RFC 7396) applies to the stored settings; the result is
/// checked as a whole, like a new tenant. Tenants of the configuration file
/// are read-only here (`auth.forbidden`).
#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}",
    operation_id = "admin_update_tenant",
    tag = crate::openapi::tag::ADMIN,
    params(("id" = String, Path, description = "The tenant's id")),
    request_body(content(
        (tenant_body::TenantPatch = "application/merge-patch+json"),
        (tenant_body::TenantPatch = "application/json")
    )),
    responses((status = 200, description = "Changed and served", body = TenantView)),
    security(("operator_token" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<TenantView>, ApiError> {
    let bytes = extract::json_body(&headers, body, state.config.max_body_bytes, true).await?;
    let actor = auth::authenticate(&state, &headers)?;
    auth::operator_only(&actor)?;
    let patch = extract::json_object(&bytes.unwrap_or_default())?;
    if patch.get("id").is_some_and(|v| v.as_str() != Some(id.as_str())) {
        return Err(ApiError::invalid_field("id", "cannot be changed"));
    }
    let changed: Vec<String> = patch.keys().cloned().collect();
    let before = state.tenants.get(&id);
    let mut refusal = None;
    let change = |existing: &TenantRecord| {
        let mut settings = existing.config.clone();
        settings["kill_switch"] = json!(existing.kill_switch);
        tenant_body::merge_patch(&mut settings, serde_json::Value::Object(patch));
        let object = settings.as_object().cloned().unwrap_or_default();
        tenant_body::settings(object).map_err(|e| {
            refusal = Some(e);
            String::new()
        })
    };
    let result =
        edit::update(state.store.as_ref(), &state.config.tenants, &id, change, state.clock.now()).await;
    if let Some(e) = refusal {
        return Err(e);
    }
    result.map_err(edit_error)?;
    announce(&state, &id, Want::Changed(before)).await;
    audit::record(&state, &actor, Action::TenantUpdate, &id, json!({"fields": changed})).await?;
    Ok(Json(viewed(&state, &id).await?))
}

/// Deletes a tenant of the database; its streams and turns end.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}",
    operation_id = "admin_delete_tenant",
    tag = crate::openapi::tag::ADMIN,
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 204, description = "Deleted")),
    security(("operator_token" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    auth::operator_only(&actor)?;
    if TenantId::parse(&id).is_none() {
        return Err(ErrorCode::TenantUnknown.into());
    }
    edit::delete(state.store.as_ref(), &state.config.tenants, &id).await.map_err(edit_error)?;
    announce(&state, &id, Want::Gone).await;
    // Nobody is served by a tenant that is gone: end its streams and turns here.
    state.connections.close_tenant(&id, CloseReason::TenantDisabled);
    state.engine.stop_tenant_turns(&id, StopReason::TenantDisabled);
    audit::record(&state, &actor, Action::TenantDelete, &id, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What this node must serve once a change is in force.
pub enum Want {
    /// The tenant is no longer this instance (`None`: it exists at all).
    Changed(Option<Arc<Tenant>>),
    Gone,
}

/// Tells every node (this one included) that tenants changed, then waits
/// until this node serves the change. One this node cannot pick up within
/// `SETTLE` is logged; the poll catches up.
pub async fn announce(state: &AppState, id: &str, want: Want) {
    state.engine.bus().notify(Notice::TenantsChanged);
    let done = |now: Option<Arc<Tenant>>| match (&want, now) {
        (Want::Gone, now) => now.is_none(),
        (Want::Changed(None), now) => now.is_some(),
        (Want::Changed(Some(b)), Some(n)) => !Arc::ptr_eq(b, &n),
        (Want::Changed(Some(_)), None) => true,
    };
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !done(state.tenants.get(id)) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(tenant = %id, "a tenant change is not served yet on this node; the next poll picks it up");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    crate::tenancy::reload::stop_disabled(state);
}
