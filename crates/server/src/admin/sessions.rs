//! Agents' and the operator's view of a tenant's sessions (SPEC §12): the
//! filtered, sorted, keyset-paged list; one session with its recent
//! messages; closing a session. Unlike the end-user API these show who owns
//! a session (`owner`, and `user_id` for users).

use super::audit::{self, Action};
use super::{auth, query};
use crate::handlers::sessions::lifecycle_refusal;
use crate::http::extract::{self, Path};
use crate::http::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde_json::{json, Value};
use switchboard_core::retention::retained_messages;
use switchboard_core::store::admin::SessionKey;
use switchboard_core::{ErrorCode, Session, Subject};

/// How many of the newest messages `GET /v1/admin/sessions/{id}` carries.
pub const RECENT_MESSAGES: u32 = 50;

/// A session as agents see it: the end-user object plus its owner.
pub fn session_json(s: &Session) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    let user_id = match Subject::parse(&s.owner) {
        Some(Subject::User(sub)) => Some(sub),
        _ => None,
    };
    v["owner"] = json!(s.owner);
    v["user_id"] = json!(user_id);
    v
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let mut q = query::parse(&tenant.id, uri.query())?;
    let limit = q.limit as usize;
    // One more than asked: whether another page follows, without a count.
    q.limit += 1;
    let mut items = state.store.admin_list_sessions(&q).await.map_err(ApiError::internal)?;
    let next_cursor = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|s| query::encode_cursor(&q, SessionKey { key: q.sort.key_of(s), id: s.id }))
    });
    let items: Vec<Value> = items.iter().map(session_json).collect();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor.flatten()})))
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let session = tenant_session(&state, &tenant.id, &id).await?;
    let now = state.clock.now();
    let mut messages =
        retained_messages(state.store.as_ref(), &tenant, now, session.id, RECENT_MESSAGES, None)
            .await
            .map_err(ApiError::internal)?;
    // A transcript reads oldest first.
    messages.reverse();
    let messages: Vec<Value> = messages.iter().map(agent_view).collect();
    // The visitor's latest page (SPEC §16): agents only.
    let context = state.store.session_context(&tenant.id, session.id).await.map_err(ApiError::internal)?;
    let mut session = session_json(&session);
    session["context"] = json!(context);
    Ok(Json(json!({"session": session, "messages": messages})))
}

/// A message as agents see it: an answer carries its tool calls whole
/// (`tool_calls`: arguments, results, errors, timing; SPEC §16).
fn agent_view(message: &switchboard_core::Message) -> Value {
    let mut v = serde_json::to_value(message).unwrap_or_default();
    if message.role == switchboard_core::model::Role::Assistant {
        v["tool_calls"] = serde_json::to_value(&message.tool_calls).unwrap_or_default();
    }
    v
}

/// Closes the session (`SessionLifecycle::close`): an answer still
/// streaming is stopped first, on whichever node runs it (its partial
/// answer kept as `aborted`), then the session is `closed`, and every later
/// message gets `session.closed`. Closing a closed session answers the same.
pub async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    empty_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let session_id = extract::session_id(&id)?;
    // Who closed it, as `session.closed` tells the tenant (SPEC §19).
    let by = match &actor {
        auth::Actor::Operator => json!({"kind": "operator"}),
        auth::Actor::Agent { .. } => json!({"kind": "agent", "name": actor.display_name()}),
    };
    let closed = state.lifecycle().close(&tenant, session_id, by).await.map_err(lifecycle_refusal)?;
    let detail = json!({"tenant_id": tenant.id, "status_before": closed.status_before.as_str()});
    audit::record(&state, &actor, Action::SessionClose, &session_id.to_string(), detail).await?;
    Ok(Json(session_json(&closed.session)))
}

/// The session if it exists in the tenant, else `session.not_found` (the
/// same answer whether it does not exist or belongs to another tenant).
pub(super) async fn tenant_session(
    state: &AppState,
    tenant_id: &str,
    raw_id: &str,
) -> Result<Session, ApiError> {
    let id = extract::session_id(raw_id)?;
    let session = state.store.get_session(tenant_id, id).await.map_err(ApiError::internal)?;
    session.ok_or(ApiError::new(ErrorCode::SessionNotFound))
}

/// An action's body: none, or `{}`.
pub(super) async fn empty_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<(), ApiError> {
    if let Some(bytes) = extract::json_body(headers, body, state.config.max_body_bytes, false).await? {
        let body = extract::json_object(&bytes)?;
        if !body.is_empty() {
            return Err(ApiError::invalid(extract::unknown_fields(&body)));
        }
    }
    Ok(())
}
