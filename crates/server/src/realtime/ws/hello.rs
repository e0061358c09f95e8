//! The opening of a WebSocket (SPEC §7): the `hello` frame within the
//! timeout, then the same gate as the SSE subscription — context, identity
//! (the hello's token, else the URL's ticket), kill switch, rate limit,
//! ownership, cursor, connection cap. A refusal is an envelope, then a close
//! code (4003 for auth/context/cursor, 4008 for limits).

use super::frames::{self, Hello};
use super::Ctx;
use crate::gate::{self, Caller};
use crate::handlers::sessions::owned_session;
use crate::http::ApiError;
use crate::identity::{self, tickets};
use crate::limits;
use crate::realtime::connections::Slot;
use crate::realtime::cursor;
use crate::realtime::subscribe::feed_refusal;
use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use switchboard_core::feed::Feed;
use switchboard_core::ErrorCode;
use uuid::Uuid;

/// Close codes of the application (SPEC §7).
pub const CLOSE_AUTH: u16 = 4003;
pub const CLOSE_LIMIT: u16 = 4008;

/// A refusal: the envelope to send (if any), then the close code.
pub struct Refusal {
    pub error: Option<ApiError>,
    pub close: u16,
}

impl Refusal {
    pub fn auth(error: ApiError) -> Self {
        let close = match error.code {
            ErrorCode::ConnectionLimit | ErrorCode::RateLimited => CLOSE_LIMIT,
            _ => CLOSE_AUTH,
        };
        Self { error: Some(error), close }
    }
}

/// The first frame, if it is a `hello` in time.
pub async fn receive(rx: &mut SplitStream<WebSocket>, ctx: &Ctx) -> Result<Hello, Refusal> {
    let silent = || Refusal { error: None, close: CLOSE_AUTH };
    let first = tokio::time::timeout(ctx.state.config.connections.hello_timeout, rx.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else { return Err(silent()) };
    match frames::object(&text) {
        Ok((kind, map)) if kind == "hello" => frames::hello(map).map_err(Refusal::auth),
        _ => Err(silent()),
    }
}

/// Who the hello says is connecting, checked against the URL's tenant.
pub async fn caller(ctx: &Ctx, hello: &Hello) -> Result<Caller, Refusal> {
    match hello.context_tenant.as_deref() {
        None => return Err(Refusal::auth(ErrorCode::TenantMissing.into())),
        Some(t) if t != ctx.tenant.id => return Err(Refusal::auth(ErrorCode::AuthContextMismatch.into())),
        Some(_) => {}
    }
    let caller = match (&hello.token, &ctx.ticket) {
        (Some(token), _) => identity::bearer_caller(&ctx.state, token, &ctx.tenant),
        (None, Some(ticket)) => tickets::verify_ticket(&ctx.state, ticket, &ctx.tenant, hello.session_id),
        (None, None) => Err(ErrorCode::AuthMissing.into()),
    }
    .map_err(Refusal::auth)?;
    gate::kill_switch(&ctx.state, &ctx.tenant).map_err(Refusal::auth)?;
    let client = Some(ctx.ip);
    limits::check(&ctx.state, &ctx.tenant, client, Some(&caller.subject))
        .await
        .map_err(|(e, _)| Refusal::auth(e))?;
    Ok(caller)
}

/// Opens one session for the socket (the hello's, or a `subscribe`): the
/// ticket's binding, ownership, the cursor, then the feed.
pub async fn open_feed(
    ctx: &Ctx,
    caller: &Caller,
    used_ticket: bool,
    session_id: Uuid,
    last_event_id: Option<&serde_json::Value>,
) -> Result<Feed, Refusal> {
    if used_ticket {
        if let Some(ticket) = &ctx.ticket {
            tickets::verify_ticket(&ctx.state, ticket, &ctx.tenant, Some(session_id))
                .map_err(Refusal::auth)?;
        }
    }
    let session = owned_session(&ctx.state, &ctx.tenant, &caller.subject, &session_id.to_string())
        .await
        .map_err(Refusal::auth)?;
    let cursor = cursor::from_json(last_event_id).map_err(Refusal::auth)?;
    Feed::open(&ctx.state.engine, &ctx.tenant, session.id, cursor)
        .await
        .map_err(|e| Refusal::auth(feed_refusal(e)))
}

/// Counts the socket against its subject's cap.
pub fn identify(ctx: &Ctx, slot: &mut Slot, caller: &Caller) -> Result<(), Refusal> {
    slot.identify(&ctx.tenant.id, &caller.subject.to_string(), ctx.tenant.max_connections_per_subject)
        .map_err(|_| Refusal::auth(ErrorCode::ConnectionLimit.into()))
}
