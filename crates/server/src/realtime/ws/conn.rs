//! One WebSocket after its `hello`: the subscribed sessions' feeds, the
//! client's frames (messages run turns through the same engine and limits as
//! `POST /v1/chat`), server pings, the frame budget, and the ways it ends.

use super::frames::{self, ClientFrame};
use super::hello::{self, Refusal, CLOSE_AUTH, CLOSE_LIMIT};
use super::Ctx;
use crate::gate::{self, Caller};
use crate::handlers::chat::refusal as send_refusal;
use crate::http::{trace, ApiError};
use crate::identity::tickets;
use crate::limits;
use crate::realtime::connections::{CloseReason, Slot};
use crate::realtime::frame_cache::{self, Form};
use crate::realtime::subscribe::DRAIN_QUIET;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{self, BoxStream, SelectAll, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_core::events::{SessionEvent, Who};
use switchboard_core::feed::Feed;
use switchboard_core::turn::{finished_turn_events, SendMessage, SendOutcome, TurnStream};
use switchboard_core::ErrorCode;
use tokio::time::Instant;
use uuid::Uuid;

/// At most this many sessions per socket (SPEC §7).
const MAX_SUBSCRIPTIONS: usize = 20;
const CLOSE_GOING_AWAY: u16 = 1001;
/// Frames written together at most, when several are ready at once.
const BATCH: usize = 64;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// An event for the socket, and where it comes from.
struct Item {
    session_id: Uuid,
    event: Arc<SessionEvent>,
    source: Source,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A subscribed session's feed.
    Feed,
    /// The last event of a feed that could not read the store, or whose
    /// replay retention overtook.
    FeedFailed,
    /// A turn this socket started: sent only while the socket does not
    /// follow that session (else its feed carries the same events); the
    /// stream is polled anyway, to keep the turn's `on_disconnect` rule tied
    /// to this socket.
    Turn,
}

/// Why the loop ended, and how to close.
enum End {
    ClientGone,
    Close(u16, &'static str),
    Refused(Refusal),
}

pub struct Conn {
    ctx: Ctx,
    slot: Slot,
    caller: Caller,
    /// Whether the URL's ticket (not a token) authenticated the socket.
    used_ticket: bool,
    tx: SplitSink<WebSocket, Message>,
    rx: SplitStream<WebSocket>,
    /// The hello's session: the default of `message` and `typing`.
    home: Option<Uuid>,
    subscribed: HashSet<Uuid>,
    streams: SelectAll<BoxStream<'static, Item>>,
}

/// A socket that passed its hello.
pub struct Opened {
    pub ctx: Ctx,
    pub slot: Slot,
    pub caller: Caller,
    pub used_ticket: bool,
    pub home: Option<Uuid>,
}

impl Conn {
    pub fn new(o: Opened, tx: SplitSink<WebSocket, Message>, rx: SplitStream<WebSocket>) -> Self {
        let (ctx, slot, caller, used_ticket, home) = (o.ctx, o.slot, o.caller, o.used_ticket, o.home);
        let (subscribed, streams) = (HashSet::new(), SelectAll::new());
        Self { ctx, slot, caller, used_ticket, tx, rx, home, subscribed, streams }
    }

    pub fn follow(&mut self, session_id: Uuid, feed: Feed) {
        self.subscribed.insert(session_id);
        self.streams.push(feed_stream(session_id, feed));
    }

    /// Serves the socket until it ends. Its future is what an idle socket
    /// holds, so it is kept small: not an `async fn` (which would hold `self`
    /// twice, as the argument and as a local), and the steps before and after
    /// `serve` are boxed.
    #[allow(clippy::manual_async_fn)]
    pub fn run(mut self) -> impl std::future::Future<Output = ()> {
        async move {
            // A hello without a session still learns its connection id.
            let welcome = self.home.is_none().then(|| frames::welcome_alone(self.slot.id()));
            if let Some(welcome) = welcome {
                if Box::pin(self.send(welcome)).await.is_err() {
                    return;
                }
            }
            let end = self.serve().await;
            Box::pin(self.end(end)).await;
        }
    }

    /// Closes the socket the way `end` says.
    async fn end(&mut self, end: End) {
        let refusal = match end {
            End::ClientGone => return,
            End::Close(code, reason) => {
                let _ = self.write(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                return;
            }
            End::Refused(r) => r,
        };
        super::refuse(&mut self.tx, self.home, refusal).await;
    }

    async fn serve(&mut self) -> End {
        let settings = self.ctx.state.config.connections.clone();
        let mut ping = tokio::time::interval_at(Instant::now() + settings.ws_ping, settings.ws_ping);
        let mut last_pong = Instant::now();
        let mut budget = Budget::new(settings.ws_frames_per_sec);
        loop {
            tokio::select! {
                biased;
                _ = self.slot.closed() => {
                    if self.slot.close_reason() == Some(CloseReason::Shutdown) {
                        Box::pin(self.drain()).await;
                    }
                    return self.closed_by_server();
                }
                frame = self.rx.next() => {
                    let text = match frame {
                        None | Some(Ok(Message::Close(_))) => return End::ClientGone,
                        Some(Err(e)) => return too_big_or_gone(&e),
                        Some(Ok(Message::Pong(_))) => { last_pong = Instant::now(); continue; }
                        Some(Ok(Message::Ping(_))) => continue,
                        Some(Ok(Message::Binary(_))) => None,
                        Some(Ok(Message::Text(t))) => Some(t),
                    };
                    if !budget.take() {
                        if budget.refused_in_a_row > settings.ws_frames_per_sec {
                            return End::Refused(Refusal { error: Some(ErrorCode::RateLimited.into()), close: CLOSE_LIMIT });
                        }
                        if Box::pin(self.send_error(None, ErrorCode::RateLimited.into())).await.is_err() {
                            return End::ClientGone;
                        }
                        continue;
                    }
                    let outcome = match text {
                        // Boxed: a message runs a turn's start, which would
                        // otherwise size the state every idle socket holds.
                        Some(t) => Box::pin(self.frame(t.as_str())).await,
                        None => Err(Some(ApiError::invalid_field("frame", "binary frames are not accepted"))),
                    };
                    match outcome {
                        Ok(()) => {}
                        Err(Some(e)) => if Box::pin(self.send_error(None, e)).await.is_err() { return End::ClientGone },
                        Err(None) => return End::ClientGone,
                    }
                }
                Some(item) = self.streams.next() => {
                    if self.emit_ready(item).await.is_err() { return End::ClientGone; }
                }
                _ = ping.tick() => {
                    if last_pong.elapsed() > settings.ws_pong_timeout {
                        return End::Close(CLOSE_GOING_AWAY, "no pong");
                    }
                    if self.write(Message::Ping(Default::default())).await.is_err() { return End::ClientGone; }
                }
            }
        }
    }

    /// Sends what the feeds still hold (the node saved its turns before
    /// closing sockets: their last events are already published).
    async fn drain(&mut self) {
        while let Ok(Some(item)) = tokio::time::timeout(DRAIN_QUIET, self.streams.next()).await {
            if self.emit(item, true).await.is_err() {
                return;
            }
        }
    }

    /// Sends `first` and whatever else is ready at once (a replay, a burst
    /// of deltas) as one write: one system call instead of one per frame.
    async fn emit_ready(&mut self, first: Item) -> Result<(), ()> {
        self.emit(first, false).await?;
        for _ in 1..BATCH {
            match self.streams.next().now_or_never() {
                Some(Some(item)) => self.emit(item, false).await?,
                _ => break,
            }
        }
        self.flush().await.map_err(|_| ())
    }

    /// Sends (or, without `flush`, queues) one item, if this socket should see it.
    async fn emit(&mut self, item: Item, flush: bool) -> Result<(), ()> {
        let wanted = match item.source {
            Source::Feed => !self.own_typing(&item.event),
            Source::FeedFailed => {
                // Subscribing again is the client's way to recover.
                self.subscribed.remove(&item.session_id);
                true
            }
            Source::Turn => !self.subscribed.contains(&item.session_id),
        };
        if !wanted {
            return Ok(());
        }
        let frame = self.event_frame(&item);
        let written = match flush {
            true => self.write(frame).await,
            false => self.queue(frame).await,
        };
        written.map_err(|_| ())
    }

    /// The frame of an item; a published event's is rendered once per
    /// thread for all sockets (a `welcome` names this connection, so not it).
    fn event_frame(&self, item: &Item) -> Message {
        let connection = self.slot.id();
        let render = || frames::event(item.session_id, &item.event, connection);
        if matches!(*item.event, SessionEvent::Session { .. }) {
            return Message::Text(render().into());
        }
        let bytes = frame_cache::frame(&item.event, Form::WebSocket, || Bytes::from(render()));
        // Rendered from a `String`, so always UTF-8.
        Utf8Bytes::try_from(bytes).map_or_else(|_| Message::Text(render().into()), Message::Text)
    }

    fn closed_by_server(&self) -> End {
        match self.slot.close_reason().and_then(CloseReason::error) {
            Some(code) => End::Refused(Refusal { error: Some(code.into()), close: CLOSE_AUTH }),
            None => End::Close(CLOSE_GOING_AWAY, "server shutting down"),
        }
    }

    /// Handles one client text frame. `Err(Some(e))`: answer `e`, stay open;
    /// `Err(None)`: the socket is gone (or was closed by a refusal).
    async fn frame(&mut self, text: &str) -> Result<(), Option<ApiError>> {
        let (kind, map) = frames::object(text)?;
        match frames::client(&kind, map)? {
            ClientFrame::Ping { ts } => self.send(frames::pong(&ts)).await.map_err(|_| None),
            ClientFrame::Hello => Err(Some(ApiError::invalid_field("type", "hello was already sent"))),
            ClientFrame::Typing { session_id, active } => {
                let session_id = self.subscribed_session(session_id)?;
                let who = if self.caller.admin { Who::Agent } else { Who::User };
                let event = SessionEvent::TypingFrom { who, active, connection: self.slot.id() };
                self.ctx.state.engine.bus().publish(session_id, Arc::new(event));
                Ok(())
            }
            ClientFrame::Subscribe { session_id, last_event_id } => {
                if self.subscribed.contains(&session_id) {
                    return Err(Some(ApiError::invalid_field("session_id", "is already subscribed")));
                }
                if self.subscribed.len() >= MAX_SUBSCRIPTIONS {
                    return Err(Some(ApiError::invalid_field(
                        "session_id",
                        "at most 20 sessions per socket",
                    )));
                }
                match hello::open_feed(
                    &self.ctx,
                    &self.caller,
                    self.used_ticket,
                    session_id,
                    last_event_id.as_ref(),
                )
                .await
                {
                    Ok(feed) => {
                        self.follow(session_id, feed);
                        Ok(())
                    }
                    Err(refusal) => {
                        // Checked like the first session: refused, then closed.
                        super::refuse(&mut self.tx, Some(session_id), refusal).await;
                        Err(None)
                    }
                }
            }
            ClientFrame::Message { session_id, content, client_message_id, context } => {
                let session_id = session_id.or(self.home).ok_or_else(|| {
                    Some(ApiError::invalid_field("session_id", "is required when hello named no session"))
                })?;
                self.send_message(session_id, content, client_message_id, context).await
            }
        }
    }

    /// A `message` frame: the gate of `POST /v1/chat`, then the engine.
    async fn send_message(
        &mut self,
        session_id: Uuid,
        content: String,
        client_message_id: Option<String>,
        context: Option<serde_json::Value>,
    ) -> Result<(), Option<ApiError>> {
        let state = &self.ctx.state;
        if self.used_ticket {
            // A ticket bound to one session opens only that one, for writing too.
            if let Some(ticket) = &self.ctx.ticket {
                tickets::verify_ticket(state, ticket, &self.ctx.tenant, Some(session_id))?;
            }
        }
        gate::require_user(&self.ctx.tenant, Some(&self.caller))?;
        gate::kill_switch(state, &self.ctx.tenant)?;
        limits::check(state, &self.ctx.tenant, Some(self.ctx.ip), Some(&self.caller.subject))
            .await
            .map_err(|(e, _)| e)?;
        let send = SendMessage {
            tenant: self.ctx.tenant.clone(),
            subject: self.caller.subject.clone(),
            session_id,
            content,
            client_message_id,
            trace_id: trace::current(),
            context,
        };
        let outcome = state.engine.send(send).await.map_err(send_refusal)?;
        let forward = !self.subscribed.contains(&session_id);
        match outcome {
            SendOutcome::Streaming(turn) => self.streams.push(turn_stream(session_id, turn)),
            SendOutcome::Finished { user, assistant } if forward => {
                let events = finished_turn_events(&user, assistant.as_ref(), &trace::current());
                let items = events.into_iter().map(move |e| Item {
                    session_id,
                    event: Arc::new(e),
                    source: Source::Turn,
                });
                self.streams.push(stream::iter(items).boxed());
            }
            SendOutcome::HandledByAgent { user } if forward => {
                let frame = frames::event(session_id, &SessionEvent::Message(user), self.slot.id());
                self.send(frame).await.map_err(|_| None)?;
            }
            // Subscribed: the session's feed carries (or carried) these.
            SendOutcome::Finished { .. } | SendOutcome::HandledByAgent { .. } => {}
        }
        Ok(())
    }

    fn subscribed_session(&self, session_id: Option<Uuid>) -> Result<Uuid, Option<ApiError>> {
        session_id
            .or(self.home)
            .filter(|s| self.subscribed.contains(s))
            .ok_or_else(|| Some(ErrorCode::SessionNotFound.into()))
    }

    fn own_typing(&self, event: &SessionEvent) -> bool {
        matches!(event, SessionEvent::TypingFrom { connection, .. } if *connection == self.slot.id())
    }

    async fn send_error(&mut self, session_id: Option<Uuid>, e: ApiError) -> Result<(), axum::Error> {
        crate::telemetry::refused(e.code);
        self.send(frames::error(session_id, &e.body())).await
    }

    /// Sends a frame; a client that has not taken it within the pong
    /// timeout (it stopped reading) is treated as gone, so a stuck socket
    /// cannot hold its connection slot or miss being closed.
    async fn send(&mut self, frame: String) -> Result<(), axum::Error> {
        self.write(Message::Text(frame.into())).await
    }

    async fn write(&mut self, message: Message) -> Result<(), axum::Error> {
        within(self.ctx.state.config.connections.ws_pong_timeout, self.tx.send(message)).await
    }

    /// Queues a frame without flushing it.
    async fn queue(&mut self, message: Message) -> Result<(), axum::Error> {
        within(self.ctx.state.config.connections.ws_pong_timeout, self.tx.feed(message)).await
    }

    async fn flush(&mut self) -> Result<(), axum::Error> {
        within(self.ctx.state.config.connections.ws_pong_timeout, self.tx.flush()).await
    }
}

/// A write that may take at most `limit`: a client that has not taken a
/// frame for that long stopped reading, and counts as gone. Not an `async
/// fn`, which would hold `write` twice in every socket's state.
fn within(
    limit: std::time::Duration,
    write: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> impl std::future::Future<Output = Result<(), axum::Error>> {
    tokio::time::timeout(limit, write)
        .map(|done| done.unwrap_or_else(|_| Err(axum::Error::new("the client stopped reading"))))
}

/// A socket error: a frame over the limit gets 1009; anything else means
/// the client is gone.
fn too_big_or_gone(e: &axum::Error) -> End {
    let text = e.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
        End::Close(CLOSE_TOO_BIG, "frame too big")
    } else {
        End::ClientGone
    }
}

fn feed_stream(session_id: Uuid, feed: Feed) -> BoxStream<'static, Item> {
    stream::unfold(Some(feed), move |feed| async move {
        let mut feed = feed?;
        match feed.next().await {
            Ok(event) => Some((Item { session_id, event, source: Source::Feed }, Some(feed))),
            Err(e) => {
                // A cursor overtaken by retention is `chat.cursor_invalid`, as at the start.
                let error = crate::realtime::subscribe::feed_refusal(e).body();
                let event = Arc::new(SessionEvent::Error { turn_id: None, error });
                Some((Item { session_id, event, source: Source::FeedFailed }, None))
            }
        }
    })
    .boxed()
}

/// A running turn's events; dropping it (the socket closed) is a client
/// disconnect for the tenant's `on_disconnect` rule.
fn turn_stream(session_id: Uuid, turn: TurnStream) -> BoxStream<'static, Item> {
    // Boxed, as in the SSE chat stream: `unfold` moves its state for every event.
    stream::unfold(Box::new(turn), move |mut turn| async move {
        let event = turn.next().await?;
        Some((Item { session_id, event, source: Source::Turn }, turn))
    })
    .boxed()
}

/// The frame budget: `rate` frames a second sustained, bursts up to `rate`.
struct Budget {
    rate: f64,
    tokens: f64,
    at: Instant,
    refused_in_a_row: u32,
}

impl Budget {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate);
        Self { rate, tokens: rate, at: Instant::now(), refused_in_a_row: 0 }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            true
        } else {
            self.refused_in_a_row += 1;
            false
        }
    }
}
