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
use serde::Serialize;
use serde_json::{json, Value};
use switchboard_core::retention::retained_messages;
use switchboard_core::store::admin::{SessionKey, SessionSort};
use switchboard_core::tools::ToolCallRecord;
use switchboard_core::{ErrorCode, Message, Session, SessionStatus, Subject};

/// How many of the newest messages `GET /v1/admin/sessions/{id}` carries.
pub const RECENT_MESSAGES: u32 = 50;

/// A session as agents see it: the end-user object plus its owner.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminSession {
    #[serde(flatten)]
    pub session: Session,
    /// The owner subject: `visitor:<uuid>` or `user:<id>`.
    pub owner: String,
    /// The user's id (the JWT `sub`) when a user owns the session; null for a visitor.
    pub user_id: Option<String>,
}

impl From<&Session> for AdminSession {
    fn from(s: &Session) -> Self {
        let user_id = match Subject::parse(&s.owner) {
            Some(Subject::User(sub)) => Some(sub),
            _ => None,
        };
        Self { session: s.clone(), owner: s.owner.clone(), user_id }
    }
}

/// A page of sessions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminSessionPage {
    pub items: Vec<AdminSession>,
    /// Continues this query (same filters, sort and order); null on the last page.
    pub next_cursor: Option<String>,
}

/// A session with the visitor's latest page, as `GET /v1/admin/sessions/{id}` shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminSessionWithContext {
    #[serde(flatten)]
    pub session: AdminSession,
    /// The visitor's latest page context (SPEC §16); null when none was sent.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

/// One session and its newest messages.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminSessionDetail {
    pub session: AdminSessionWithContext,
    /// At most the 50 newest retained messages, oldest first.
    pub messages: Vec<AgentMessage>,
}

/// A message as agents see it: an answer carries its tool calls whole
/// (`tool_calls`: arguments, results, errors, timing; SPEC §16).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentMessage {
    #[serde(flatten)]
    pub message: Message,
    /// Assistant messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallRecord>>,
}

impl From<&Message> for AgentMessage {
    fn from(message: &Message) -> Self {
        let answer = message.role == switchboard_core::model::Role::Assistant;
        Self { message: message.clone(), tool_calls: answer.then(|| message.tool_calls.clone()) }
    }
}

/// Sessions of the tenant, filtered, sorted and paged.
#[utoipa::path(
    get,
    path = "/v1/admin/sessions",
    operation_id = "admin_list_sessions",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (the operator must name one; an agent's token names its own)"),
        ("user_id" = Option<String>, Query, min_length = 1, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
            description = "Only sessions of this user: the JWT `sub` (at most 255 characters, no control characters)"),
        ("status" = inline(Option<SessionStatus>), Query, description = "Only sessions in this status"),
        ("admin_assisted" = Option<bool>, Query, description = "Only sessions an agent did (`true`) or did not (`false`) take over"),
        ("created_from" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("created_to" = Option<String>, Query, format = DateTime, description = "Created at or before (RFC 3339); not before `created_from`"),
        ("sort" = inline(Option<SessionSort>), Query, description = "Sort key, default `created_at`"),
        ("order" = inline(Option<query::Order>), Query, description = "Default `desc`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before, with the same filters, sort and order")
    ),
    responses((status = 200, body = AdminSessionPage)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<AdminSessionPage>, ApiError> {
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
    let items = items.iter().map(AdminSession::from).collect();
    Ok(Json(AdminSessionPage { items, next_cursor: next_cursor.flatten() }))
}

/// One session of the tenant with its newest messages.
#[utoipa::path(
    get,
    path = "/v1/admin/sessions/{id}",
    operation_id = "admin_get_session",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")
    ),
    responses((status = 200, body = AdminSessionDetail)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AdminSessionDetail>, ApiError> {
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
    let messages = messages.iter().map(AgentMessage::from).collect();
    // The visitor's latest page (SPEC §16): agents only.
    let context = state.store.session_context(&tenant.id, session.id).await.map_err(ApiError::internal)?;
    let session = AdminSessionWithContext { session: AdminSession::from(&session), context };
    Ok(Json(AdminSessionDetail { session, messages }))
}

/// Closes a session of the tenant.
///
/// `SessionLifecycle::close`: an answer still
/// streaming is stopped first, on whichever node runs it (its partial
/// answer kept as `aborted`), then the session is `closed`, and every later
/// message gets `session.closed`. Closing a closed session answers the same.
#[utoipa::path(
    post,
    path = "/v1/admin/sessions/{id}/close",
    operation_id = "admin_close_session",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")
    ),
    request_body(content = Option<NoFields>, content_type = "application/json", description = "None, or `{}`"),
    responses(
        (status = 200, description = "The closed session", body = AdminSession),
        (status = 409, description = "An answer still streaming did not stop in time; nothing changed")
    ),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<AdminSession>, ApiError> {
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
    Ok(Json(AdminSession::from(&closed.session)))
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

/// The body of an action: none, or `{}`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

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
