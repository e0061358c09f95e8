//! The operator acting on a tenant's subject (SPEC §18): everything stored
//! about a visitor or user exported (`GET /v1/admin/subjects/{kind}:{id}/export`)
//! or erased (`DELETE /v1/admin/subjects/{kind}:{id}`), exactly as the subject
//! itself would through `/v1/me`. Operator only (agents act on sessions,
//! not on people's whole data); the tenant is the one `X-Tenant-Id` names.
//! Both are audited, the subject named only by its fingerprint.

use super::audit::{self, subject_fingerprint, Action};
use super::auth::{self, Actor};
use crate::handlers::me;
use crate::http::extract::Path;
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;
use switchboard_core::error::FieldProblem;
use switchboard_core::tenant::Tenant;
use switchboard_core::Subject;

/// Everything stored about a subject of the tenant, as one JSON document.
///
/// What the subject itself gets from `GET /v1/me/export`, streamed.
#[utoipa::path(
    get,
    path = "/v1/admin/subjects/{subject}/export",
    operation_id = "admin_export_subject",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("subject" = String, Path, pattern = "^(visitor:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|user:.+)$", description = "`visitor:<uuid>` or `user:<id>`"),
        ("X-Tenant-Id" = String, Header, description = "The tenant")
    ),
    responses((status = 200, content_type = "application/json", body = me::Export)),
    security(("operator_token" = []))
)]
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (actor, tenant, subject) = operator_and_subject(&state, &headers, &raw)?;
    let detail = json!({"tenant_id": tenant.id, "kind": subject.kind()});
    let target = subject_fingerprint(&tenant.id, &subject);
    audit::record(&state, &actor, Action::SubjectExported, &target, detail).await?;
    Ok(me::export_response(state, tenant, subject))
}

/// Erases everything stored about a subject of the tenant.
///
/// As `DELETE /v1/me` would: running answers stopped, every row wiped, a
/// visitor's token refused from then on.
#[utoipa::path(
    delete,
    path = "/v1/admin/subjects/{subject}",
    operation_id = "admin_erase_subject",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("subject" = String, Path, pattern = "^(visitor:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|user:.+)$", description = "`visitor:<uuid>` or `user:<id>`"),
        ("X-Tenant-Id" = String, Header, description = "The tenant")
    ),
    responses((status = 204, description = "Erased")),
    security(("operator_token" = []))
)]
pub async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (actor, tenant, subject) = operator_and_subject(&state, &headers, &raw)?;
    let erased = me::erase_subject(&state, &tenant.id, &subject).await?;
    let detail = json!({"tenant_id": tenant.id, "kind": subject.kind(), "erased": erased});
    let target = subject_fingerprint(&tenant.id, &subject);
    audit::record(&state, &actor, Action::SubjectErased, &target, detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The operator, the tenant it names, and the subject of the path.
fn operator_and_subject(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
) -> Result<(Actor, Arc<Tenant>, Subject), ApiError> {
    let actor = auth::authenticate(state, headers)?;
    auth::operator_only(&actor)?;
    let tenant = auth::scoped_tenant(state, headers, &actor)?;
    let subject = Subject::parse(raw).ok_or_else(|| {
        ApiError::invalid(vec![FieldProblem::new("subject", "must be visitor:<uuid> or user:<id>")])
    })?;
    Ok((actor, tenant, subject))
}
