//! `GET /v1/sessions/{id}/events`: the resumable SSE subscription (SPEC §6).
//! The gate (credentials from a bearer token or `?ticket=`, kill switch, rate
//! limit, ownership, connection caps, cursor) runs before the 200; then the
//! session's feed is written as it comes, with heartbeats, until the client
//! leaves or the server closes the connection.

use super::connections::{CloseReason, Slot, Transport};
use super::frame_cache::{self, Form};
use super::{cursor, open_slot};
use crate::edge::{query_param, Edge};
use crate::gate::{self, Caller};
use crate::handlers::sessions::owned_session;
use crate::http::{sse, trace, ApiError};
use crate::identity::tickets;
use crate::limits;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use futures_util::stream::{self, StreamExt};
use std::convert::Infallible;
use std::net::SocketAddr;
use switchboard_core::events::SessionEvent;
use switchboard_core::feed::{Feed, FeedError};
use switchboard_core::turn::error_body;
use switchboard_core::ErrorCode;

/// Subscribe to a session's events, resuming after a cursor (SSE).
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/events",
    tag = crate::openapi::tag::SESSIONS,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]*$", description = "Resume after this seq (what the stream's `id:` lines said)"),
        ("last_event_id" = Option<String>, Query, pattern = "^[0-9]*$", description = "The cursor, where a client cannot set the header"),
    ),
    responses(
        (status = 200, description = "The session's events until the client leaves", content_type = "text/event-stream", body = crate::openapi::events::SseEvent),
        (status = 410, description = "The cursor is not valid; reload the history")
    ),
    security(("visitor_token" = []), ("user_jwt" = []), ("ticket" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = subscriber(&state, &headers, &edge, &uri, &raw_id)?;
    gate::kill_switch(&state, &edge.tenant)?;
    limits::admit(&state, &edge, &headers, Some(&caller)).await?;
    let session = owned_session(&state, &edge.tenant, &caller.subject, &raw_id).await?;
    let cursor = cursor::from_request(&headers, uri.query())?;
    let slot = open_slot(&state, &edge.tenant, &caller, peer, &headers, Transport::Sse, false)?;
    let feed = Feed::open(&state.engine, &edge.tenant, session.id, cursor).await.map_err(feed_refusal)?;
    Ok(stream(feed, slot, state.config.heartbeat, trace::current()))
}

/// Credentials from `Authorization: Bearer`, else `?ticket=` (which may be
/// bound to this session).
fn subscriber(
    state: &AppState,
    headers: &HeaderMap,
    edge: &Edge,
    uri: &Uri,
    raw_id: &str,
) -> Result<Caller, ApiError> {
    if let Some(caller) = gate::identify(state, headers, edge, false)? {
        return Ok(caller);
    }
    let ticket = query_param(uri.query(), "ticket").ok_or(ApiError::new(ErrorCode::AuthMissing))?;
    let session = uuid::Uuid::parse_str(raw_id).ok();
    tickets::verify_ticket(state, &ticket, &edge.tenant, session)
}

pub fn feed_refusal(e: FeedError) -> ApiError {
    match e {
        FeedError::NotFound => ErrorCode::SessionNotFound.into(),
        FeedError::CursorInvalid => ErrorCode::CursorInvalid.into(),
        FeedError::Store(e) => ApiError::internal(e),
    }
}

/// The error event a connection closed by the server ends with, if any: a
/// node shutting down just ends the stream (the client resumes elsewhere).
pub fn close_error(reason: Option<CloseReason>, trace_id: &str) -> Option<SessionEvent> {
    let code = reason?.error()?;
    Some(SessionEvent::Error { turn_id: None, error: error_body(code, trace_id) })
}

/// At shutdown, a subscription ends once its feed has been quiet this long.
pub const DRAIN_QUIET: std::time::Duration = std::time::Duration::from_millis(50);

struct Subscription {
    feed: Feed,
    slot: Slot,
    tick: tokio::time::Interval,
    done: bool,
    /// The trace id of the request that opened it, for its error events.
    trace_id: String,
}

/// The subscription's response: the feed as it comes, with heartbeats,
/// until the client leaves or the server closes the slot (also the admin
/// live view's).
pub fn stream(feed: Feed, slot: Slot, heartbeat: std::time::Duration, trace_id: String) -> Response {
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let sub = Subscription { feed, slot, tick, done: false, trace_id };
    let frames = stream::unfold(sub, |mut sub| async move {
        if sub.done {
            return None;
        }
        let chunk = tokio::select! {
            biased;
            _ = sub.slot.closed() => {
                if sub.slot.close_reason() == Some(CloseReason::Shutdown) {
                    // The node saved its turns first: hand out what they
                    // published (a last stream_end) before ending.
                    let event = tokio::time::timeout(DRAIN_QUIET, sub.feed.next()).await;
                    if let Ok(Ok(event)) = event {
                        return Some((Ok(sse::frame(&event)), sub));
                    }
                }
                sub.done = true;
                close_error(sub.slot.close_reason(), &sub.trace_id).map(|e| sse::frame(&e))?
            }
            event = sub.feed.next() => match event {
                Ok(event) => frame_cache::frame(&event, Form::Sse, || sse::frame(&event)),
                Err(e) => {
                    sub.done = true;
                    let code = match e {
                        // Retention deleted what it still had to replay: the client reloads.
                        FeedError::CursorInvalid => ErrorCode::CursorInvalid,
                        e => {
                            tracing::warn!(error = %e, "subscription ended: the store could not be read");
                            ErrorCode::Internal
                        }
                    };
                    let error = error_body(code, &sub.trace_id);
                    sse::frame(&SessionEvent::Error { turn_id: None, error })
                }
            },
            _ = sub.tick.tick() => Bytes::from_static(sse::HEARTBEAT),
        };
        Some((Ok::<_, Infallible>(chunk), sub))
    });
    sse::response(stream::once(async { Ok(Bytes::from_static(sse::PREAMBLE)) }).chain(frames))
}
