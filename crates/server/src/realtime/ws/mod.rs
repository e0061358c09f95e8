//! `GET /v1/ws` (SPEC §7). The edge has checked the tenant (the ticket's, or
//! `?tenant=`) and the Origin before this handler runs, so those refusals
//! are plain HTTP answers; every other refusal happens after the upgrade, as
//! an envelope frame and a close code, because browsers hide the status of a
//! refused upgrade from JavaScript.
//!
//! Buffers are set small and explicitly: the library defaults (a 128 KiB
//! read buffer, 64 MiB messages) would make idle sockets expensive.

mod conn;
pub(crate) mod frames;
mod hello;

use crate::edge::{query_param, Edge};
use crate::http::{trace, ApiError};
use crate::limits;
use crate::realtime::connections::Transport;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use conn::{Conn, Opened};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hello::{Refusal, CLOSE_LIMIT};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use switchboard_core::tenant::Tenant;
use switchboard_core::ErrorCode;
use uuid::Uuid;

/// Largest client frame and message (SPEC §7: larger ones close with 1009).
const MAX_FRAME: usize = 128 * 1024;
/// Bytes read from the socket at a time. Every socket keeps this buffer
/// (filled in full before each read) for its life, and client frames are
/// small (pongs, hellos, messages); a larger frame gets a buffer of its size.
const READ_BUFFER: usize = 1024;
/// Frames queued together are written once they reach this size (or at the
/// flush that ends a batch, see `conn`): a replay goes out in few writes.
const WRITE_BUFFER: usize = 8 * 1024;
/// How long a refused client gets to take its envelope and close frame.
const REFUSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Outgoing bytes a slow client may leave unread before the socket fails.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// What a socket knows from its upgrade request.
pub struct Ctx {
    pub state: AppState,
    pub tenant: Arc<Tenant>,
    pub ip: IpAddr,
    /// The URL's `?ticket=`, if any.
    pub ticket: Option<String>,
}

/// A WebSocket (SPEC §7): JSON text frames, the same events as SSE.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = crate::openapi::tag::SESSIONS,
    params(
        ("tenant" = Option<String>, Query, description = "The tenant, when no ticket names it (then `hello` authenticates)"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are one JSON object each: `{type, session_id, …payload}`"),
    ),
    security(("ticket" = []), ())
)]
pub async fn ws(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return ApiError::invalid_field("upgrade", "this endpoint takes a WebSocket upgrade").into_response();
    };
    let ip = limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    let ctx = Ctx { state, tenant: edge.tenant, ip, ticket: query_param(uri.query(), "ticket") };
    let trace_id = trace::current();
    // The request's exported span (none unless spans are exported) lasts as
    // long as the socket, so the turns its messages start are its children.
    let span = tracing::Span::current();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| {
            tracing::Instrument::instrument(trace::within(trace_id, open(socket, ctx)), span)
        })
}

/// Counts the socket, waits for its hello, opens its first session, then
/// serves it. Not an `async fn`: its arguments would stay in the state of
/// the socket's task for its whole life. The opening is boxed and gone once
/// the hello is through, so an idle socket's task keeps only the state of
/// `Conn::run`.
fn open(socket: WebSocket, ctx: Ctx) -> impl std::future::Future<Output = ()> {
    let admitting = Box::pin(admit(socket, ctx));
    async move {
        if let Some(conn) = admitting.await {
            conn.run().await;
        }
    }
}

/// The socket's opening: its slot, its hello, the gate and its first
/// session, or the refusal and close that end it.
async fn admit(socket: WebSocket, ctx: Ctx) -> Option<Conn> {
    let (mut tx, mut rx) = socket.split();
    let mut slot = match ctx.state.connections.open(ctx.ip, Transport::WebSocket, true) {
        Ok(slot) => slot,
        Err(_) => {
            let refusal = Refusal { error: Some(ErrorCode::ConnectionLimit.into()), close: CLOSE_LIMIT };
            refuse(&mut tx, None, refusal).await;
            return None;
        }
    };
    let opened = async {
        let hello = hello::receive(&mut rx, &ctx).await?;
        let caller = hello::caller(&ctx, &hello).await?;
        let feed = match hello.session_id {
            Some(id) => Some((
                id,
                hello::open_feed(&ctx, &caller, hello.token.is_none(), id, hello.last_event_id.as_ref())
                    .await?,
            )),
            None => None,
        };
        hello::identify(&ctx, &mut slot, &caller)?;
        Ok::<_, Refusal>((hello, caller, feed))
    }
    .await;
    let (hello, caller, feed) = match opened {
        Ok(opened) => opened,
        Err(refusal) => {
            refuse(&mut tx, None, refusal).await;
            return None;
        }
    };
    let opened = Opened { ctx, slot, caller, used_ticket: hello.token.is_none(), home: hello.session_id };
    let mut conn = Conn::new(opened, tx, rx);
    if let Some((id, feed)) = feed {
        conn.follow(id, feed);
    }
    Some(conn)
}

/// The envelope of a refusal (if it has one), then its close code.
async fn refuse(tx: &mut SplitSink<WebSocket, Message>, session_id: Option<Uuid>, refusal: Refusal) {
    let send = async {
        if let Some(e) = refusal.error {
            crate::telemetry::refused(e.code);
            tx.send(Message::Text(frames::error(session_id, &e.body()).into())).await?;
        }
        tx.send(Message::Close(Some(CloseFrame { code: refusal.close, reason: "refused".into() }))).await
    };
    // A client that does not read is not waited for.
    let _ = tokio::time::timeout(REFUSE_WITHIN, send).await;
}
