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
use serde_json::{json, Value};
use switchboard_core::audit::{verify, AuditEntry, VerifyError, GENESIS};
use switchboard_core::error::FieldProblem;

/// Entries read per round trip while verifying.
const VERIFY_PAGE: u32 = 1000;
const MAX_LIMIT: u32 = 200;
const DEFAULT_LIMIT: u32 = 50;

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
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
    let items: Vec<Value> = items.iter().map(entry_json).collect();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor.flatten()})))
}

pub async fn check(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    auth::operator_only(&actor)?;
    let keys = &state.audit_keys;
    let mut last = (0, GENESIS.to_owned());
    loop {
        let page = state.store.audit_after(last.0, VERIFY_PAGE).await.map_err(ApiError::internal)?;
        if page.is_empty() {
            return Ok(Json(json!({"intact": true, "entries": last.0, "first_broken": null})));
        }
        match verify(&page, last, |kid| keys.key(kid).map(|k| k.as_slice())) {
            Ok(next) => last = next,
            Err(VerifyError::Seal(e)) => return Err(ApiError::internal(e)),
            Err(VerifyError::Broken(broken)) => {
                tracing::warn!(seq = broken.seq, reason = broken.reason, "the audit chain is broken");
                let first_broken = json!({"seq": broken.seq, "reason": broken.reason});
                return Ok(Json(json!({"intact": false, "entries": null, "first_broken": first_broken})));
            }
        }
    }
}

fn entry_json(e: &AuditEntry) -> Value {
    let detail: Value = serde_json::from_str(&e.entry.detail).unwrap_or(Value::Null);
    json!({
        "seq": e.seq,
        "at": switchboard_core::time::format(&e.entry.at),
        "actor": e.entry.actor,
        "actor_name": e.entry.actor_name,
        "tenant_id": e.entry.tenant_id,
        "action": e.entry.action,
        "target": e.entry.target,
        "detail": detail,
        "mac": e.mac,
    })
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
