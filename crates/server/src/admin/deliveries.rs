//! The outbox as admins see it (SPEC §19): `GET /v1/admin/deliveries`
//! (`status`, `cursor`, `limit`; newest first), `POST
//! /v1/admin/deliveries/{id}/retry` (due now, same id, a fresh schedule;
//! `events.disabled` while the endpoint is) and `POST
//! /v1/admin/deliveries/resume` (the endpoint enabled again after a `410`,
//! held deliveries pending). Agents act within their tenant, the operator
//! within the one `X-Tenant-Id` names; the two `POST`s are audited.

use super::audit::{self, Action};
use super::auth;
use super::sessions::{empty_body, NoFields};
use crate::http::extract::Path;
use crate::http::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use switchboard_core::error::FieldProblem;
use switchboard_core::outbound::DeliveryStatus;
use switchboard_core::store::outbox::{DeliveryQuery, DeliveryRecord, RetryOutcome};
use switchboard_core::time::format;
use switchboard_core::ErrorCode;
use uuid::Uuid;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// A page of deliveries, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Continues the list; null on the last page.
    pub next_cursor: Option<String>,
}

/// One outbound event's delivery (SPEC §19).
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The event's id (its `Webhook-Id`).
    pub id: Uuid,
    /// The event type (`session.closed`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub session_id: Uuid,
    #[schema(value_type = DeliveryStatus)]
    pub status: &'static str,
    pub attempts: u32,
    /// When a pending delivery is tried next.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// The HTTP status of the last try, if it got one.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
}

/// A delivery queued again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryRetried {
    pub id: Uuid,
    /// `pending`.
    #[schema(value_type = DeliveryStatus)]
    pub status: &'static str,
}

/// What a resume did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveriesResumed {
    /// Held deliveries made pending again.
    pub resumed: u64,
}

/// The tenant's outbound deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/admin/deliveries",
    operation_id = "admin_list_deliveries",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)"),
        ("status" = inline(Option<DeliveryStatus>), Query, description = "Only deliveries in this state"),
        ("cursor" = Option<Uuid>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50")
    ),
    responses((status = 200, body = DeliveryPage)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<DeliveryPage>, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let mut query = parse(&tenant.id, uri.query())?;
    let limit = query.limit as usize;
    // One more than asked: whether another page follows, without a count.
    query.limit += 1;
    let mut items = state.store.list_deliveries(&query).await.map_err(ApiError::internal)?;
    let next_cursor = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|d| d.id.to_string())
    });
    let items = items.iter().map(record_json).collect();
    Ok(Json(DeliveryPage { items, next_cursor: next_cursor.flatten() }))
}

/// Tries a delivery again now (same id, a fresh schedule).
#[utoipa::path(
    post,
    path = "/v1/admin/deliveries/{id}/retry",
    operation_id = "admin_retry_delivery",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("id" = Uuid, Path, description = "The delivery"),
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")
    ),
    request_body(content = Option<NoFields>, content_type = "application/json", description = "None, or `{}`"),
    responses(
        (status = 200, body = DeliveryRetried),
        (status = 409, description = "The tenant's endpoint is disabled (it answered 410); resume it first")
    ),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Body,
) -> Result<Json<DeliveryRetried>, ApiError> {
    empty_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let id = Uuid::parse_str(&raw).map_err(|_| ApiError::new(ErrorCode::DeliveryNotFound))?;
    let outcome = state.store.retry_delivery(&tenant.id, id, state.clock.now()).await;
    match outcome.map_err(ApiError::internal)? {
        RetryOutcome::Queued => {}
        RetryOutcome::NotFound => return Err(ApiError::new(ErrorCode::DeliveryNotFound)),
        RetryOutcome::Disabled => return Err(ApiError::new(ErrorCode::EventsDisabled)),
    }
    audit::record(&state, &actor, Action::DeliveryRetry, &id.to_string(), json!({"tenant_id": tenant.id}))
        .await?;
    Ok(Json(DeliveryRetried { id, status: DeliveryStatus::Pending.as_str() }))
}

/// Enables the tenant's events endpoint again after a `410`.
///
/// Held deliveries become pending.
#[utoipa::path(
    post,
    path = "/v1/admin/deliveries/resume",
    operation_id = "admin_resume_deliveries",
    tag = crate::openapi::tag::ADMIN,
    params(("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")),
    request_body(content = Option<NoFields>, content_type = "application/json", description = "None, or `{}`"),
    responses((status = 200, body = DeliveriesResumed)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeliveriesResumed>, ApiError> {
    empty_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let resumed = state.store.resume_deliveries(&tenant.id, state.clock.now()).await;
    let resumed = resumed.map_err(ApiError::internal)?;
    let detail = json!({"tenant_id": tenant.id, "resumed": resumed});
    audit::record(&state, &actor, Action::DeliveriesResume, &tenant.id, detail).await?;
    Ok(Json(DeliveriesResumed { resumed }))
}

fn record_json(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id,
        kind: d.kind.clone(),
        session_id: d.session_id,
        status: d.status.as_str(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at.as_ref().map(format),
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        created_at: format(&d.created_at),
        delivered_at: d.delivered_at.as_ref().map(format),
    }
}

/// `status`, `cursor` (the last id of the page before) and `limit`.
fn parse(tenant_id: &str, query: Option<&str>) -> Result<DeliveryQuery, ApiError> {
    let mut q =
        DeliveryQuery { tenant_id: tenant_id.to_owned(), status: None, before: None, limit: DEFAULT_LIMIT };
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "status" => match DeliveryStatus::parse(&value) {
                Some(status) => q.status = Some(status),
                None => problems
                    .push(FieldProblem::new("status", "must be pending, delivered, dead, held or gone")),
            },
            "cursor" => match Uuid::parse_str(&value) {
                Ok(id) => q.before = Some(id),
                Err(_) => problems.push(FieldProblem::new("cursor", "is not a cursor of this list")),
            },
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                _ => problems.push(FieldProblem::new("limit", "must be 1 to 200")),
            },
            other => problems.push(FieldProblem::new(other, "is not a parameter of this list")),
        }
    }
    if problems.is_empty() {
        Ok(q)
    } else {
        Err(ApiError::invalid(problems))
    }
}
