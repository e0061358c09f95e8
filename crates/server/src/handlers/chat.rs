//! `POST /v1/chat`: sends a message and answers with the turn's events (SSE)
//! or, with `stream: false`, with its final result as JSON. The turn itself
//! runs on its own; this response is just one of its subscribers.

use super::chat_body;
use crate::edge::Edge;
use crate::gate;
use crate::http::{extract, sse, trace, ApiError};
use crate::limits;
use crate::openapi::tag;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use switchboard_core::events::SessionEvent;
use switchboard_core::model::Latency;
use switchboard_core::turn::{finished_turn_events, SendError, SendMessage, SendOutcome, TurnStream};
use switchboard_core::{ErrorCode, Message, Usage};

/// The answer of `stream: false`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ChatResult<'a> {
    message: &'a Message,
    user_message: &'a Message,
    usage: Usage,
    latency_ms: Latency,
}

/// A message stored while an agent holds the session: the agent answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HandledByAgent {
    user_message: Message,
    /// Always `agent`.
    #[schema(pattern = "^agent$")]
    handled_by: &'static str,
}

/// Send a message; the answer streams as SSE (or comes whole with `stream: false`).
#[utoipa::path(
    post,
    path = "/v1/chat",
    tag = tag::CHAT,
    request_body(content = chat_body::ChatRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The turn's events (`stream: true`), or its result (`stream: false`)",
            content((crate::openapi::events::SseEvent = "text/event-stream"), (ChatResult = "application/json"))),
        (status = 202, description = "An agent holds the session; the message was stored", body = HandledByAgent),
        (status = 409, description = "The session is closed, or an answer is still streaming"),
        (status = 502, description = "The provider failed (`stream: false`); the partial answer is kept"),
        (status = 504, description = "The provider was too slow (`stream: false`); the partial answer is kept")
    ),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn chat(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes =
        extract::json_body(&headers, body, state.config.max_body_bytes, true).await?.unwrap_or_default();
    let caller = gate::caller(&state, &headers, &edge)?;
    gate::require_user(&edge.tenant, Some(&caller))?;
    gate::kill_switch(&state, &edge.tenant)?;
    limits::admit(&state, &edge, &headers, Some(&caller)).await?;
    let body = chat_body::parse(extract::json_object(&bytes)?)?;
    let send = SendMessage {
        tenant: edge.tenant.clone(),
        subject: caller.subject,
        session_id: body.session_id,
        content: body.message,
        client_message_id: body.client_message_id,
        trace_id: trace::current(),
        context: body.context,
    };
    let outcome = state.engine.send(send).await.map_err(refusal)?;
    Ok(match (outcome, body.stream) {
        (SendOutcome::Streaming(turn), true) => live_sse(turn, state.config.heartbeat),
        (SendOutcome::Streaming(turn), false) => live_json(turn).await?,
        (SendOutcome::Finished { user, assistant }, stream) => {
            let events = finished_turn_events(&user, assistant.as_ref(), &trace::current());
            if stream {
                replay_sse(events)
            } else {
                final_json(&user, events.last())?
            }
        }
        (SendOutcome::HandledByAgent { user }, _) => {
            (StatusCode::ACCEPTED, Json(HandledByAgent { user_message: user, handled_by: "agent" }))
                .into_response()
        }
    })
}

pub fn refusal(e: SendError) -> ApiError {
    match e {
        SendError::NotFound => ErrorCode::SessionNotFound.into(),
        SendError::Closed => ErrorCode::SessionClosed.into(),
        SendError::InProgress => ErrorCode::TurnInProgress.into(),
        SendError::ReusedClientMessageId => {
            ApiError::invalid_field("client_message_id", "was already used with a different message")
        }
        SendError::QuotaExceeded { reset_at } => quota_exceeded(reset_at),
        SendError::Store(e) => ApiError::internal(e),
        SendError::Time(e) => ApiError::internal(e),
    }
}

/// `quota.exceeded` (SPEC §8): `Retry-After` until the budget's day ends,
/// and that moment as `details.reset_at`.
fn quota_exceeded(reset_at: switchboard_core::time::Timestamp) -> ApiError {
    let wait = (reset_at - chrono::Utc::now()).num_seconds().max(1);
    ApiError {
        details: Some(json!({ "reset_at": switchboard_core::time::format(&reset_at) })),
        retry_after: Some(u64::try_from(wait).unwrap_or(1)),
        ..ApiError::new(ErrorCode::QuotaExceeded)
    }
}

/// The turn's events as they happen, with heartbeats while it is quiet.
fn live_sse(turn: TurnStream, heartbeat: Duration) -> Response {
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    // Boxed: `unfold` moves its state in and out for every event, and a
    // pointer is cheaper to move than the stream and its timer.
    let events = stream::unfold(Box::new((turn, tick)), |mut state| async move {
        let (turn, tick) = &mut *state;
        let chunk = tokio::select! {
            event = turn.next() => sse::frame(event?.as_ref()),
            _ = tick.tick() => Bytes::from_static(sse::HEARTBEAT),
        };
        Some((Ok::<_, Infallible>(chunk), state))
    });
    sse::response(stream::once(async { Ok(Bytes::from_static(sse::PREAMBLE)) }).chain(events))
}

fn replay_sse(events: Vec<SessionEvent>) -> Response {
    let frames = events.iter().map(sse::frame);
    let chunks: Vec<Result<Bytes, Infallible>> =
        std::iter::once(Bytes::from_static(sse::PREAMBLE)).chain(frames).map(Ok).collect();
    sse::response(stream::iter(chunks))
}

async fn live_json(mut turn: TurnStream) -> Result<Response, ApiError> {
    let user = turn.user_message().clone();
    let mut last = None;
    while let Some(event) = turn.next().await {
        last = Some(event);
    }
    final_json(&user, last.as_deref())
}

/// The JSON answer for a turn that ended with `last`.
fn final_json(user: &Message, last: Option<&SessionEvent>) -> Result<Response, ApiError> {
    match last {
        Some(SessionEvent::StreamEnd(end)) => Ok(Json(ChatResult {
            message: &end.message,
            user_message: user,
            usage: end.usage,
            latency_ms: end.latency_ms,
        })
        .into_response()),
        Some(SessionEvent::Error { error, .. }) => {
            Err(ErrorCode::parse(error.code).unwrap_or(ErrorCode::LlmUnavailable).into())
        }
        // Interrupted (the node is stopping) or no final event at all.
        _ => Err(ErrorCode::LlmUnavailable.into()),
    }
}
