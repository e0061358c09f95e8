//! Takeover (SPEC §12): an agent takes a session over from the AI, writes to
//! the visitor as itself, and gives the session back. A running answer is
//! stopped first (kept as `aborted`), on this node or, through the bus, on
//! the node running it; the store then refuses the change while any answer
//! still streams, so the `system` note never takes a seq before an answer's
//! end. Every change is published to the session's connections (SSE,
//! WebSocket, other nodes) after it is committed.

use super::audit::{self, Action};
use super::auth;
use super::sessions::{empty_body, session_json, tenant_session};
use crate::handlers::chat_body;
use crate::http::extract::{self, Path};
use crate::http::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::bus::{EventReceiver, Notice};
use switchboard_core::error::FieldProblem;
use switchboard_core::events::SessionEvent;
use switchboard_core::model::{estimate_tokens, AgentRef, Takeover};
use switchboard_core::store::takeover::{AgentMessage, AgentMessageOutcome, HoldChange, HoldOutcome};
use switchboard_core::turn::StopReason;
use switchboard_core::{ErrorCode, Session};
use uuid::Uuid;

/// How long a takeover waits for a running answer to stop and be stored.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// How often the store is asked again while an answer is being stopped (an
/// answer's end event usually wakes the wait sooner).
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// `POST /v1/admin/sessions/{id}/takeover`: status `human`, the agent named
/// on the session and in a `system` note, a `takeover` event. Taking a
/// session the same agent holds changes nothing; one another agent holds is
/// handed over (a new note and event name the new agent).
pub async fn take(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    empty_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let session = tenant_session(&state, &tenant.id, &id).await?;
    let name = actor.display_name().to_owned();
    let agent = AgentRef { name: name.clone() };
    let now = state.clock.now();
    let change = HoldChange {
        tenant_id: tenant.id.clone(),
        session_id: session.id,
        takeover: Some(Takeover { agent: agent.clone(), since: now }),
        note: format!("{name} joined the conversation"),
        max_messages: tenant.max_messages_per_session,
        now,
    };
    announce(&state, &actor, &change, (true, agent), Action::SessionTakeover).await
}

/// `POST /v1/admin/sessions/{id}/release`: back to the AI. The note and the
/// event name the agent who held the session (the one the visitor knows),
/// whoever releases it.
pub async fn release(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    empty_body(&state, &headers, body).await?;
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let session = tenant_session(&state, &tenant.id, &id).await?;
    let holder =
        session.takeover.as_ref().map_or_else(|| actor.display_name().to_owned(), |t| t.agent.name.clone());
    let change = HoldChange {
        tenant_id: tenant.id.clone(),
        session_id: session.id,
        takeover: None,
        note: format!("{holder} left the conversation"),
        max_messages: tenant.max_messages_per_session,
        now: state.clock.now(),
    };
    announce(&state, &actor, &change, (false, AgentRef { name: holder }), Action::SessionRelease).await
}

/// Makes a hold change, then tells every connection of the session (the note
/// and a `takeover` event `{active, agent}`) and records it. A change that
/// alters nothing (the same agent taking over again) is answered as is.
async fn announce(
    state: &AppState,
    actor: &auth::Actor,
    change: &HoldChange,
    (active, agent): (bool, AgentRef),
    action: Action,
) -> Result<Json<Value>, ApiError> {
    let (session, note) = match change_hold(state, change).await? {
        Changed::Done(session, note) => (session, note),
        Changed::Unchanged(session) => return Ok(Json(session_json(&session))),
    };
    publish(state, session.id, SessionEvent::Message(note));
    let detail = json!({"tenant_id": change.tenant_id, "agent": agent.name});
    publish(state, session.id, SessionEvent::Takeover { active, agent });
    audit::record(state, actor, action, &session.id.to_string(), detail).await?;
    Ok(Json(session_json(&session)))
}

/// `POST /v1/admin/sessions/{id}/messages {content}`: an `agent` message
/// authored by the caller's display name, while an agent holds the session.
pub async fn message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes =
        extract::json_body(&headers, body, state.config.max_body_bytes, true).await?.unwrap_or_default();
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let content = parse_message(extract::json_object(&bytes)?)?;
    let session = tenant_session(&state, &tenant.id, &id).await?;
    let new = AgentMessage {
        tenant_id: tenant.id.clone(),
        session_id: session.id,
        author: actor.display_name().to_owned(),
        token_count: i64::from(estimate_tokens(&content)),
        content,
        max_messages: tenant.max_messages_per_session,
        now: state.clock.now(),
    };
    let stored = match state.store.add_agent_message(&new).await.map_err(ApiError::internal)? {
        AgentMessageOutcome::Stored(m) => m,
        AgentMessageOutcome::NotFound => return Err(ErrorCode::SessionNotFound.into()),
        AgentMessageOutcome::Closed => return Err(ErrorCode::SessionClosed.into()),
        AgentMessageOutcome::NotHuman => return Err(ErrorCode::SessionNotHuman.into()),
    };
    publish(&state, session.id, SessionEvent::Message(stored.clone()));
    // The content stays out of the audit log: it is in the (encrypted) history.
    let detail = json!({"tenant_id": tenant.id, "seq": stored.seq, "author": stored.author});
    audit::record(&state, &actor, Action::SessionMessage, &session.id.to_string(), detail).await?;
    Ok((StatusCode::CREATED, Json(json!({"message": stored}))))
}

/// What [`change_hold`] did. Lives for one request: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
enum Changed {
    Done(Session, switchboard_core::Message),
    Unchanged(Session),
}

/// Writes the change, first stopping an answer that still streams: here,
/// or on the node running it (`Notice::TakenOver`). Gives up with
/// `turn.in_progress` when it has not ended within [`STOP_WAIT`].
async fn change_hold(state: &AppState, change: &HoldChange) -> Result<Changed, ApiError> {
    let session_id = change.session_id;
    // Subscribed before stopping, so the answer's end cannot be missed.
    let mut events = state.engine.bus().subscribe(session_id);
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    let mut stopped: Option<Uuid> = None;
    let mut ended = false;
    loop {
        match state.store.set_takeover(change).await.map_err(ApiError::internal)? {
            HoldOutcome::Changed { session, note } => {
                // The stopped answer publishes its end right after storing it:
                // let that go out first, so clients see the seqs in order.
                if stopped.is_some() && !ended {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let _ =
                        tokio::time::timeout(left.min(RETRY_EVERY), until_end(&mut events, stopped)).await;
                }
                return Ok(Changed::Done(session, note));
            }
            HoldOutcome::Unchanged { session } => return Ok(Changed::Unchanged(session)),
            HoldOutcome::NotFound => return Err(ErrorCode::SessionNotFound.into()),
            HoldOutcome::Closed => return Err(ErrorCode::SessionClosed.into()),
            HoldOutcome::NotHuman => return Err(ErrorCode::SessionNotHuman.into()),
            HoldOutcome::InProgress => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ErrorCode::TurnInProgress.into());
        }
        match state.engine.live_turn(session_id) {
            Some(turn) => {
                turn.stop(StopReason::Takeover);
                stopped = Some(turn.turn_id);
            }
            None if stopped.is_none() => state.engine.bus().notify(Notice::TakenOver { session_id }),
            None => {}
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        ended = tokio::time::timeout(left.min(RETRY_EVERY), until_end(&mut events, stopped)).await.is_ok();
    }
}

/// Waits for an answer's end: `turn`'s if known, else any.
pub(super) async fn until_end(events: &mut EventReceiver, turn: Option<Uuid>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let is_end = match &*event {
                    SessionEvent::StreamEnd(end) => Some(end.turn_id),
                    SessionEvent::Error { turn_id: Some(id), .. } => Some(*id),
                    _ => None,
                };
                if is_end.is_some_and(|id| turn.is_none_or(|t| t == id)) {
                    return;
                }
            }
            // Lagged: the store is the judge; ask it again.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
        }
    }
}

fn publish(state: &AppState, session_id: Uuid, event: SessionEvent) {
    state.engine.bus().publish(session_id, Arc::new(event));
}

/// `{content}`: validated like an end-user message (1..10000 characters
/// after trimming; the trimmed text is stored).
fn parse_message(mut body: serde_json::Map<String, Value>) -> Result<String, ApiError> {
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
    #![allow(clippy::unwrap_used)]
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
