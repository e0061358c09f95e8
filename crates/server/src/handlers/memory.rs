//! A user's memory over HTTP (SPEC §18): `GET` and `DELETE /v1/memory`,
//! `GET`, `PUT` and `DELETE /v1/memory/{key}`. The rules are core's
//! (`switchboard_core::memory`); this extracts, runs the gate and maps the
//! outcome. Users only: a visitor gets `auth.forbidden`. The API works
//! whatever the tenant's settings: `memory = true` is what gives the model
//! the memory, never what gives the user theirs.
//!
//! Gate: (a `PUT`'s body limits,) identity, users only, kill switch, then
//! validation. Not rate-limited: SPEC §10 limits session creation, chat
//! messages and tickets, and a memory holds at most 50 keys.

use crate::edge::Edge;
use crate::gate;
use crate::http::extract::{self, Path};
use crate::http::ApiError;
use crate::openapi::tag;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;
use switchboard_core::memory::{self, Memory, MemoryError, MemoryItem};
use switchboard_core::ErrorCode;

/// Why a visitor is refused, said plainly: the widget can tell its user to
/// sign in rather than show a bare "Not allowed."
const USERS_ONLY: &str = "Memory is kept for signed-in users only; a visitor has none.";

/// The caller's memory, once the gate has let the request through.
fn memory_of<'a>(state: &'a AppState, headers: &HeaderMap, edge: &'a Edge) -> Result<Memory<'a>, ApiError> {
    let caller = gate::caller(state, headers, edge)?;
    let memory = Memory::of(state.store.as_ref(), &edge.tenant.id, &caller.subject).map_err(refusal)?;
    gate::kill_switch(state, &edge.tenant)?;
    Ok(memory)
}

/// How a memory call is refused on the wire. Limits name their field.
fn refusal(e: MemoryError) -> ApiError {
    match e {
        MemoryError::NotAUser => ApiError::with_message(ErrorCode::AuthForbidden, USERS_ONLY),
        MemoryError::Key(problem) => ApiError::invalid_field("key", problem),
        MemoryError::Value(problem) => ApiError::invalid_field("value", problem),
        MemoryError::Full => ApiError::invalid_field("key", memory::FULL_PROBLEM),
        MemoryError::NotFound => ErrorCode::MemoryNotFound.into(),
        MemoryError::Store(e) => ApiError::internal(e),
    }
}

/// Every entry of a user's memory, sorted by key.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MemoryList {
    items: Vec<MemoryItem>,
}

// The description's shape of what `put_body` accepts.
/// The value to remember under the key.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the description's; `put_body` reads the JSON
pub struct MemoryValue {
    /// One line, 1 to 200 characters after trimming, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    value: String,
}

/// `GET /v1/memory`: every entry, sorted by key.
#[utoipa::path(get, path = "/v1/memory", operation_id = "list_memory", tag = tag::MEMORY, responses((status = 200, body = MemoryList)), security(("user_jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
) -> Result<Json<MemoryList>, ApiError> {
    let items = memory_of(&state, &headers, &edge)?.list().await.map_err(refusal)?;
    Ok(Json(MemoryList { items }))
}

/// `GET /v1/memory/{key}`.
#[utoipa::path(get, path = "/v1/memory/{key}", operation_id = "get_memory", tag = tag::MEMORY, params(("key" = String, Path, pattern = "^[a-z0-9_.-]{1,64}$", description = "1-64 characters of a-z 0-9 _ . -")), responses((status = 200, body = MemoryItem)), security(("user_jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Json<MemoryItem>, ApiError> {
    let item = memory_of(&state, &headers, &edge)?.get(&key).await.map_err(refusal)?;
    Ok(Json(item))
}

/// `PUT /v1/memory/{key}` with `{value}`: a new key or over the one there.
#[utoipa::path(
    put,
    path = "/v1/memory/{key}",
    operation_id = "put_memory",
    tag = tag::MEMORY,
    params(("key" = String, Path, pattern = "^[a-z0-9_.-]{1,64}$", description = "1-64 characters of a-z 0-9 _ . -")),
    request_body(content = MemoryValue, content_type = "application/json"),
    responses((status = 200, body = MemoryItem)),
    security(("user_jwt" = []))
)]
pub async fn put(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Body,
) -> Result<Json<MemoryItem>, ApiError> {
    // Size and media type first (they need no caller); a missing body is a
    // validation error, so it waits for the gate's identity step.
    let bytes = extract::json_body(&headers, body, state.config.max_body_bytes, false).await?;
    let memory = memory_of(&state, &headers, &edge)?;
    let bytes = bytes.ok_or_else(|| ApiError::invalid_field("body", "a JSON object is required"))?;
    let value = put_body(&key, extract::json_object(&bytes)?)?;
    let item = memory.put(&key, &value, state.clock.now()).await.map_err(refusal)?;
    Ok(Json(item))
}

/// `DELETE /v1/memory/{key}`: 204, or `memory.not_found`.
#[utoipa::path(delete, path = "/v1/memory/{key}", operation_id = "forget_memory", tag = tag::MEMORY, params(("key" = String, Path, pattern = "^[a-z0-9_.-]{1,64}$", description = "1-64 characters of a-z 0-9 _ . -")), responses((status = 204, description = "Forgotten")), security(("user_jwt" = [])))]
pub async fn forget(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    memory_of(&state, &headers, &edge)?.forget(&key).await.map_err(refusal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/memory`: 204, also when there was nothing to forget.
#[utoipa::path(delete, path = "/v1/memory", operation_id = "forget_all_memory", tag = tag::MEMORY, responses((status = 204, description = "Forgotten")), security(("user_jwt" = [])))]
pub async fn forget_all(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    memory_of(&state, &headers, &edge)?.forget_all().await.map_err(refusal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{value}`: a string, checked with the path's key so a client learns
/// every problem at once; nothing else in the body.
pub(crate) fn put_body(key: &str, mut body: Map<String, Value>) -> Result<String, ApiError> {
    let mut problems = Vec::new();
    if let Err(problem) = memory::check_key(key) {
        problems.push(FieldProblem::new("key", problem));
    }
    let value = match body.remove("value") {
        None | Some(Value::Null) => Err("is required"),
        Some(Value::String(s)) => memory::check_value(&s).map(|_| s.clone()),
        Some(_) => Err("must be a string"),
    };
    if let Err(problem) = &value {
        problems.push(FieldProblem::new("value", *problem));
    }
    problems.extend(extract::unknown_fields(&body));
    match value {
        Ok(value) if problems.is_empty() => Ok(value),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(key: &str, body: Value) -> Result<String, Vec<String>> {
        put_body(key, body.as_object().unwrap().clone()).map_err(|e| e.problem_fields())
    }

    #[test]
    fn the_body_is_one_string_value_checked_with_the_key() {
        assert_eq!(fields("size", json!({"value": " M "})), Ok(" M ".into()));
        for bad in [json!({}), json!({"value": null}), json!({"value": 3}), json!({"value": "  "})] {
            assert_eq!(fields("size", bad.clone()), Err(vec!["value".into()]), "{bad}");
        }
        assert_eq!(fields("size", json!({"value": "x".repeat(201)})), Err(vec!["value".into()]));
        assert_eq!(fields("Size", json!({"value": "M", "z": 1})), Err(vec!["key".into(), "z".into()]));
        assert_eq!(fields("a b", json!({})), Err(vec!["key".into(), "value".into()]));
    }

    #[test]
    fn visitors_are_told_why() {
        let e = refusal(MemoryError::NotAUser);
        assert_eq!((e.code, e.body().message), (ErrorCode::AuthForbidden, USERS_ONLY.to_owned()));
        assert_eq!(refusal(MemoryError::Full).problem_fields(), ["key"]);
        assert_eq!(refusal(MemoryError::NotFound).code, ErrorCode::MemoryNotFound);
    }
}
