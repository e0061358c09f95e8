//! Sessions and their history: create, list, get, read messages, delete.

use crate::edge::Edge;
use crate::gate;
use crate::http::extract::{self, Path, Query};
use crate::http::ApiError;
use crate::limits;
use crate::openapi::tag;
use crate::state::AppState;
use crate::tokens::TokenType;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchboard_core::lifecycle::LifecycleError;
use switchboard_core::outbound::{subject_json, EventType};
use switchboard_core::retention::retained_messages;
use switchboard_core::store::{NewSession, SessionCursor};
use switchboard_core::tenant::Tenant;
use switchboard_core::time::{format, from_millis};
use switchboard_core::{ErrorCode, Message, Session, Subject};
use uuid::Uuid;

/// Largest accepted `metadata` object, serialised.
const MAX_METADATA_BYTES: usize = 4096;

/// A page of the caller's sessions, newest activity first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    items: Vec<Session>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// A page of a session's messages, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    items: Vec<Message>,
    /// Pass as `cursor` (or `before_seq`) for the next page; null on the last.
    next_cursor: Option<String>,
}

// The description's shape of what `create_body` accepts.
/// Optional: what to attach to the new session.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the shape of the description; `create_body` reads the JSON
pub struct CreateSessionBody {
    /// At most 4096 bytes as JSON.
    metadata: Option<serde_json::Map<String, Value>>,
}

/// A new session, the credentials to use it and, for a new visitor, its token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedSession {
    session: Session,
    /// The new visitor's id (no credentials were sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    visitor_id: Option<Uuid>,
    /// The new visitor's token: send it as `Authorization: Bearer` from now on.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    token_expires_at: Option<String>,
    /// A ticket bound to this session (SSE and WebSocket `?ticket=`).
    ticket: String,
    #[schema(format = DateTime)]
    ticket_expires_at: String,
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    before_seq: Option<i64>,
}

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(50) {
        n @ 1..=200 => Ok(n),
        _ => Err(ApiError::invalid_field("limit", "must be between 1 and 200")),
    }
}

/// Create a session (a new visitor without credentials).
#[utoipa::path(
    post,
    path = "/v1/sessions",
    operation_id = "create_session",
    tag = tag::SESSIONS,
    request_body(content = Option<CreateSessionBody>, content_type = "application/json"),
    responses((status = 201, description = "Created", body = CreatedSession)),
    security((), ("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = &edge.tenant;
    let bytes = extract::json_body(&headers, body, state.config.max_body_bytes, false).await?;
    let caller = gate::identify(&state, &headers, &edge, false)?;
    gate::require_user(tenant, caller.as_ref())?;
    gate::kill_switch(&state, tenant)?;
    // Without credentials there is no subject yet: ip and tenant scopes only.
    limits::admit(&state, &edge, &headers, caller.as_ref()).await?;
    let metadata = match bytes {
        Some(b) => create_body(extract::json_object(&b)?)?,
        None => None,
    };
    let now = state.clock.now();
    let (subject, visitor) = match caller {
        Some(caller) => (caller.subject, None),
        None => {
            let id = Uuid::now_v7();
            let subject = Subject::Visitor(id);
            let ttl = state.config.visitor_token_ttl;
            let signed = state
                .signer
                .sign(TokenType::Visitor, &tenant.id, &subject.to_string(), None, now, ttl)
                .map_err(ApiError::internal)?;
            (subject, Some((id, signed)))
        }
    };
    // Time-ordered (v7) like the visitor's id above: every index keyed by
    // session (messages, usage, outbound events) or by owner then takes the
    // rows of recent sessions near its end, where a commit's pages are
    // shared and stay cached, instead of at a random page each.
    let id = Uuid::now_v7();
    let new = NewSession {
        event: tenant.event(
            EventType::SessionCreated,
            id,
            now,
            || json!({"subject": subject_json(&subject)}),
        ),
        id,
        tenant_id: tenant.id.clone(),
        owner: subject.to_string(),
        metadata,
        now,
    };
    let session = state.store.create_session(&new).await.map_err(ApiError::internal)?;
    let (ticket, ticket_expires) = state
        .signer
        .sign(
            TokenType::Ticket,
            &tenant.id,
            &subject.to_string(),
            Some(session.id),
            now,
            state.config.ticket_ttl,
        )
        .map_err(ApiError::internal)?;
    let (visitor_id, token, token_expires_at) = match visitor {
        Some((id, (token, expires))) => (Some(id), Some(token), Some(format(&expires))),
        None => (None, None, None),
    };
    let out = CreatedSession {
        session,
        visitor_id,
        token,
        token_expires_at,
        ticket,
        ticket_expires_at: format(&ticket_expires),
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `{metadata?}`: a small JSON object the tenant may attach to a session.
pub(crate) fn create_body(mut body: serde_json::Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let metadata = body.remove("metadata");
    if let Some(field) = body.keys().next() {
        return Err(ApiError::invalid_field(field, "unknown field"));
    }
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(m @ Value::Object(_)) if m.to_string().len() <= MAX_METADATA_BYTES => Ok(Some(m)),
        Some(Value::Object(_)) => {
            Err(ApiError::invalid_field("metadata", "must be at most 4096 bytes of JSON"))
        }
        Some(_) => Err(ApiError::invalid_field("metadata", "must be an object")),
    }
}

/// The caller's own sessions, newest activity first (every device).
#[utoipa::path(
    get,
    path = "/v1/sessions",
    operation_id = "list_sessions",
    tag = tag::SESSIONS,
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before")
    ),
    responses((status = 200, body = SessionPage)),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<SessionPage>, ApiError> {
    let (tenant, subject) = (&edge.tenant, gate::authorized(&state, &headers, &edge)?.subject);
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(decode_session_cursor).transpose()?;
    let mut items = state
        .store
        .list_sessions(&tenant.id, &subject.to_string(), limit + 1, after.as_ref())
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items.last().map(encode_session_cursor)
    });
    Ok(Json(SessionPage { items, next_cursor: next_cursor.flatten() }))
}

/// One of the caller's sessions.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    operation_id = "get_session",
    tag = tag::SESSIONS,
    params(("id" = Uuid, Path, description = "The session")),
    responses((status = 200, body = Session)),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    let subject = gate::authorized(&state, &headers, &edge)?.subject;
    let session = owned_session(&state, &edge.tenant, &subject, &id).await?;
    Ok(Json(session))
}

/// A session's history, newest first.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/messages",
    operation_id = "list_messages",
    tag = tag::SESSIONS,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
        ("before_seq" = Option<i64>, Query, minimum = 1, description = "Only messages before this seq"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before")
    ),
    responses((status = 200, body = MessagePage)),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn messages(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let (tenant, subject) = (&edge.tenant, gate::authorized(&state, &headers, &edge)?.subject);
    let limit = page_limit(q.limit)?;
    let before = match q.cursor.as_deref() {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_field("cursor", "is not a cursor from this API"))?,
        ),
        None => q.before_seq,
    };
    if before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid_field("before_seq", "must be at least 1"));
    }
    let session = owned_session(&state, tenant, &subject, &id).await?;
    let now = state.clock.now();
    let mut items = retained_messages(state.store.as_ref(), tenant, now, session.id, limit + 1, before)
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items.last().map(|m| m.seq.to_string())
    });
    Ok(Json(MessagePage { items, next_cursor: next_cursor.flatten() }))
}

/// Wipe a session's messages.
#[utoipa::path(
    delete,
    path = "/v1/sessions/{id}",
    operation_id = "delete_session",
    tag = tag::SESSIONS,
    params(("id" = Uuid, Path, description = "The session")),
    responses((status = 204, description = "Wiped"), (status = 409, description = "An answer is still streaming")),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subject = gate::authorized(&state, &headers, &edge)?.subject;
    let session_id = extract::session_id(&id)?;
    state.lifecycle().delete(&edge.tenant.id, &subject, session_id).await.map_err(lifecycle_refusal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// How a lifecycle change (here and in the admin API) is refused.
pub fn lifecycle_refusal(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::NotFound => ErrorCode::SessionNotFound.into(),
        LifecycleError::Closed => ErrorCode::SessionClosed.into(),
        LifecycleError::NotHuman => ErrorCode::SessionNotHuman.into(),
        LifecycleError::InProgress => ErrorCode::TurnInProgress.into(),
        LifecycleError::Store(e) => ApiError::internal(e),
    }
}

/// The session if the caller owns it; anything else is `session.not_found`,
/// so nobody learns whether someone else's session exists.
pub async fn owned_session(
    state: &AppState,
    tenant: &Tenant,
    subject: &Subject,
    raw_id: &str,
) -> Result<Session, ApiError> {
    let id = extract::session_id(raw_id)?;
    let session = state.store.get_session(&tenant.id, id).await.map_err(ApiError::internal)?;
    session.filter(|s| s.owner == subject.to_string()).ok_or(ApiError::new(ErrorCode::SessionNotFound))
}

fn encode_session_cursor(s: &Session) -> String {
    session_cursor(s.last_activity_at, s.id)
}

/// The cursor after the session with this last activity and id.
pub(crate) fn session_cursor(last_activity_at: switchboard_core::time::Timestamp, id: Uuid) -> String {
    let raw = format!("{}.{}", last_activity_at.timestamp_millis(), id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_session_cursor(c: &str) -> Result<SessionCursor, ApiError> {
    let bad = || ApiError::invalid_field("cursor", "is not a cursor from this API");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, id) = raw.split_once('.').ok_or_else(bad)?;
    Ok(SessionCursor {
        last_activity_at: from_millis(ms.parse().map_err(|_| bad())?).map_err(|_| bad())?,
        id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(raw: &str) -> Result<SessionCursor, ApiError> {
        decode_session_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }

    #[test]
    fn a_cursor_beyond_the_range_of_timestamps_is_refused_not_read_as_1970() {
        let id = Uuid::nil();
        let ok = cursor(&format!("1700000000123.{id}")).unwrap();
        assert_eq!((ok.last_activity_at.timestamp_millis(), ok.id), (1_700_000_000_123, id));
        for ms in [i64::MAX, i64::MIN] {
            assert_eq!(cursor(&format!("{ms}.{id}")).unwrap_err().problem_fields(), ["cursor"]);
        }
    }
}
