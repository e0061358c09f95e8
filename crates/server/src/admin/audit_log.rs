//! Reading the audit log (SPEC §12): `GET /v1/admin/audit` pages through it,
//! newest first (the operator sees every entry, or one tenant's with
//! `X-Tenant-Id`; an agent sees its tenant's); `GET /v1/admin/audit/verify`
//! (operator only) walks the whole chain and names the first entry that
//! breaks it.

use super::auth::{self, Actor};
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use switchboard_core::audit::{verify, AuditEntry, VerifyError, GENESIS};
use switchboard_core::error::FieldProblem;

/// Entries read per round trip while verifying.
const VERIFY_PAGE: u32 = 1000;
const MAX_LIMIT: u32 = 200;
const DEFAULT_LIMIT: u32 = 50;

/// A page of the audit log, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditItem>,
    /// Continues the list; null on the last page.
    pub next_cursor: Option<String>,
}

/// One entry of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditItem {
    /// Its place in the chain, from 1.
    pub seq: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// `operator`, `agent:<sub>`, `cli` (the command line) or `self` (a subject erasing its own data).
    pub actor: String,
    pub actor_name: String,
    /// The tenant acted on, when there is one.
    pub tenant_id: Option<String>,
    /// What was done (`session.takeover`, `tenant.create`, …).
    pub action: String,
    /// What it was done to: a session id, a tenant id, a subject's fingerprint.
    pub target: String,
    /// Particulars of the action, never content.
    #[schema(value_type = Option<Object>)]
    pub detail: Value,
    /// The entry's seal (HMAC-SHA256, hex).
    pub mac: String,
}

/// The chain's check.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditVerification {
    pub intact: bool,
    /// The entries checked when the chain is intact; null when it is broken.
    pub entries: Option<i64>,
    /// The first entry that breaks the chain; null when it is intact.
    pub first_broken: Option<BrokenLink>,
}

/// Where and why the chain breaks.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: &'static str,
}

/// The audit log, newest first.
///
/// The operator sees every entry, or one tenant's with `X-Tenant-Id`; an
/// agent sees its tenant's.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    operation_id = "admin_audit_log",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "Only this tenant's entries (operator)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
        ("cursor" = Option<String>, Query, pattern = "^[1-9][0-9]{0,17}$", description = "`next_cursor` of the page before")
    ),
    responses((status = 200, body = AuditPage)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<AuditPage>, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = match &actor {
        Actor::Agent { tenant, .. } => Some(tenant.id.clone()),
        Actor::Operator if headers.contains_key("x-tenant-id") => {
            Some(auth::scoped_tenant(&state, &headers, &actor)?.id.clone())
        }
        Actor::Operator => None,
    };
    let (limit, before) = page(uri.query())?;
    let mut items =
        state.store.audit_page(tenant.as_deref(), before, limit + 1).await.map_err(ApiError::internal)?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items.last().map(|e| e.seq.to_string())
    });
    let items = items.iter().map(entry_json).collect();
    Ok(Json(AuditPage { items, next_cursor: next_cursor.flatten() }))
}

/// Walks the whole audit chain and names the first entry that breaks it.
#[utoipa::path(
    get,
    path = "/v1/admin/audit/verify",
    operation_id = "admin_verify_audit_log",
    tag = crate::openapi::tag::ADMIN,
    responses((status = 200, body = AuditVerification)),
    security(("operator_token" = []))
)]
pub async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AuditVerification>, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    auth::operator_only(&actor)?;
    let keys = &state.audit_keys;
    let mut last = (0, GENESIS.to_owned());
    loop {
        let page = state.store.audit_after(last.0, VERIFY_PAGE).await.map_err(ApiError::internal)?;
        if page.is_empty() {
            return Ok(Json(AuditVerification { intact: true, entries: Some(last.0), first_broken: None }));
        }
        match verify(&page, last, |kid| keys.key(kid).map(|k| k.as_slice())) {
            Ok(next) => last = next,
            Err(VerifyError::Seal(e)) => return Err(ApiError::internal(e)),
            Err(VerifyError::Broken(broken)) => {
                tracing::warn!(seq = broken.seq, reason = broken.reason, "the audit chain is broken");
                let first_broken = Some(BrokenLink { seq: broken.seq, reason: broken.reason });
                return Ok(Json(AuditVerification { intact: false, entries: None, first_broken }));
            }
        }
    }
}

fn entry_json(e: &AuditEntry) -> AuditItem {
    let detail: Value = serde_json::from_str(&e.entry.detail).unwrap_or(Value::Null);
    AuditItem {
        seq: e.seq,
        at: switchboard_core::time::format(&e.entry.at),
        actor: e.entry.actor.clone(),
        actor_name: e.entry.actor_name.clone(),
        tenant_id: e.entry.tenant_id.clone(),
        action: e.entry.action.clone(),
        target: e.entry.target.clone(),
        detail,
        mac: e.mac.clone(),
    }
}

/// `limit` (1..200, default 50) and `cursor` (the last seq of the page before).
fn page(query: Option<&str>) -> Result<(u32, i64), ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut before = i64::MAX;
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => problems.push(FieldProblem::new("limit", "must be a whole number from 1 to 200")),
            },
            "cursor" => match value.parse::<i64>() {
                Ok(n) if n > 0 => before = n,
                _ => problems.push(FieldProblem::new("cursor", "must be a cursor this list returned")),
            },
            other => problems.push(FieldProblem::new(other, "unknown parameter")),
        }
    }
    if problems.is_empty() {
        Ok((limit, before))
    } else {
        Err(ApiError::invalid(problems))
    }
}
