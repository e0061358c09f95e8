//! Takeover (SPEC §12): an agent takes a session over from the AI, writes to
//! the visitor as itself, and gives the session back. The work is
//! `SessionLifecycle`'s (a running answer is stopped first, wherever it
//! runs, and the change is published after it is committed); these handlers
//! check the caller, call it, record the action in the audit log and answer.

use super::audit::{self, Action};
use super::auth;
use super::sessions::{empty_body, AdminSession, NoFields};
use crate::handlers::chat_body;
use crate::handlers::sessions::lifecycle_refusal;
use crate::http::extract::{self, Path};
use crate::http::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use switchboard_core::error::FieldProblem;
use switchboard_core::lifecycle::Hold;
use switchboard_core::model::AgentRef;
use switchboard_core::Message;

/// Takes the session over from the AI.
///
/// Status `human`, the agent named on the session and in a `system` note, a
/// `takeover` event. Taking a session the same agent holds changes nothing;
/// one another agent holds is handed over (a new note and event name the
/// new agent).
#[utoipa::path(
    post,
    path = "/v1/admin/sessions/{id}/takeover",
    operation_id = "admin_take_over_session",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")
    ),
    request_body(content = Option<NoFields>, content_type = "application/json", description = "None, or `{}`"),
    responses(
        (status = 200, description = "The session, now held by the caller", body = AdminSession),
        (status = 409, description = "The session is closed, or its answer did not stop in time")
    ),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn take(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<AdminSession>, ApiError> {
    empty_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let session_id = extract::session_id(&id)?;
    let agent = AgentRef { name: actor.display_name().to_owned() };
    let hold = state.lifecycle().take_over(&tenant, session_id, agent).await.map_err(lifecycle_refusal)?;
    answer(&state, &actor, &tenant.id, hold, Action::SessionTakeover).await
}

/// Gives the session back to the AI.
///
/// The note and the event name the agent who held the session (the one the
/// visitor knows), whoever releases it.
#[utoipa::path(
    post,
    path = "/v1/admin/sessions/{id}/release",
    operation_id = "admin_release_session",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")
    ),
    request_body(content = Option<NoFields>, content_type = "application/json", description = "None, or `{}`"),
    responses(
        (status = 200, description = "The session, back with the AI", body = AdminSession),
        (status = 409, description = "The session is closed, or no agent holds it")
    ),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn release(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<AdminSession>, ApiError> {
    empty_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let session_id = extract::session_id(&id)?;
    let releaser = actor.display_name();
    let hold = state.lifecycle().release(&tenant, session_id, releaser).await.map_err(lifecycle_refusal)?;
    answer(&state, &actor, &tenant.id, hold, Action::SessionRelease).await
}

/// Records a change in the audit log and answers with the session; a
/// change that altered nothing (the same agent taking over again) is
/// answered as is.
async fn answer(
    state: &AppState,
    actor: &auth::Actor,
    tenant_id: &str,
    hold: Hold,
    action: Action,
) -> Result<Json<AdminSession>, ApiError> {
    let (session, agent) = match hold {
        Hold::Changed { session, agent } => (session, agent),
        Hold::Unchanged(session) => return Ok(Json(AdminSession::from(&session))),
    };
    let detail = json!({"tenant_id": tenant_id, "agent": agent.name});
    audit::record(state, actor, action, &session.id.to_string(), detail).await?;
    Ok(Json(AdminSession::from(&session)))
}

/// An agent's message to the visitor.
// The description's: `parse_message` reads the JSON.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AgentMessageRequest {
    /// 1 to 10000 characters after trimming; the trimmed text is stored.
    #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
    content: String,
}

/// The stored agent message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentMessageCreated {
    pub message: Message,
}

/// Writes to the visitor as the agent holding the session.
///
/// An `agent` message authored by the caller's display name, while an agent
/// holds the session.
#[utoipa::path(
    post,
    path = "/v1/admin/sessions/{id}/messages",
    operation_id = "admin_send_agent_message",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")
    ),
    request_body(content = AgentMessageRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored and sent", body = AgentMessageCreated),
        (status = 409, description = "The session is closed, or no agent holds it")
    ),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<AgentMessageCreated>), ApiError> {
    let bytes =
        extract::json_body(&headers, body, state.config.max_body_bytes, true).await?.unwrap_or_default();
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let content = parse_message(extract::json_object(&bytes)?)?;
    let session_id = extract::session_id(&id)?;
    let author = actor.display_name();
    let stored = state
        .lifecycle()
        .agent_message(&tenant, session_id, author, content)
        .await
        .map_err(lifecycle_refusal)?;
    // The content stays out of the audit log: it is in the (encrypted) history.
    let detail = json!({"tenant_id": tenant.id, "seq": stored.seq, "author": stored.author});
    audit::record(&state, &actor, Action::SessionMessage, &session_id.to_string(), detail).await?;
    Ok((StatusCode::CREATED, Json(AgentMessageCreated { message: stored })))
}

/// `{content}`: validated like an end-user message (1..10000 characters
/// after trimming; the trimmed text is stored).
pub(crate) fn parse_message(mut body: serde_json::Map<String, Value>) -> Result<String, ApiError> {
    let content = chat_body::message(body.remove("content"));
    let mut problems: Vec<FieldProblem> = Vec::new();
    if let Err(p) = &content {
        problems.push(FieldProblem::new("content", *p));
    }
    problems.extend(extract::unknown_fields(&body));
    match content {
        Ok(c) if problems.is_empty() => Ok(c),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Result<String, Vec<String>> {
        parse_message(v.as_object().unwrap().clone()).map_err(|e| e.problem_fields())
    }

    #[test]
    fn agent_messages_are_validated_like_visitors() {
        assert_eq!(fields(json!({"content": "  hello "})), Ok("hello".into()));
        assert_eq!(fields(json!({})), Err(vec!["content".into()]));
        assert_eq!(fields(json!({"content": "   "})), Err(vec!["content".into()]));
        assert_eq!(fields(json!({"content": "x".repeat(10_001)})), Err(vec!["content".into()]));
        assert_eq!(
            fields(json!({"content": 7, "author": "me"})),
            Err(vec!["content".into(), "author".into()])
        );
    }
}
