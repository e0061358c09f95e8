//! A subscription to one session's events (SPEC §6), shared by the SSE
//! endpoint and the WebSocket: subscribe to the live stream first, then
//! replay what the store holds after the cursor, then merge, dropping live
//! events already replayed (by seq, and by offset within a streaming answer).
//!
//! A streaming answer is replayed with its live text: from the turn itself
//! when it runs on this node, else from a `Snapshot` its node publishes when
//! asked over the bus (`Notice::SnapshotWanted`). Whatever a subscriber
//! misses later (it lagged, or a cluster link dropped events) is caught up the
//! same way, so a subscriber never shows a gap or a duplicate.

mod position;

pub use position::{Following, Position, Step};

use crate::bus::{EventReceiver, Notice};
use crate::events::SessionEvent;
use crate::model::{Message, MessageStatus, Session};
use crate::progress::TextProgress;
use crate::retention::retained_since;
use crate::store::StoreError;
use crate::tenant::Tenant;
use crate::time::Timestamp;
use crate::turn::TurnEngine;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use uuid::Uuid;

/// Messages read from the store per replay query.
const REPLAY_PAGE: u32 = 256;
/// How long a new subscriber waits for another node's live text before it
/// falls back to the answer's last checkpoint.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(1);
/// At most one live-text request per subscriber in this interval.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("session not found")]
    NotFound,
    /// Not a cursor this session can resume from completely.
    #[error("invalid resume cursor")]
    CursorInvalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A streaming answer found in the store whose live text is on another node.
struct Awaiting {
    stored: Message,
    until: Instant,
}

pub struct Feed {
    engine: TurnEngine,
    tenant_id: String,
    session_id: Uuid,
    events: EventReceiver,
    pos: Position,
    /// Ready to hand out.
    out: VecDeque<Arc<SessionEvent>>,
    /// Live events received while waiting for a snapshot, not yet stepped.
    held: VecDeque<Arc<SessionEvent>>,
    /// Replay in progress: the last seq read from the store.
    replay_after: Option<i64>,
    awaiting: Option<Awaiting>,
    last_request: Option<Instant>,
}

impl Feed {
    /// Opens a subscription. `cursor`: the client's last event id, if it
    /// sent one (already parsed; negative means invalid).
    pub async fn open(
        engine: &TurnEngine,
        tenant: &Tenant,
        session_id: Uuid,
        cursor: Option<i64>,
    ) -> Result<Self, FeedError> {
        let tenant_id = tenant.id.as_str();
        let events = engine.bus().subscribe(session_id);
        let store = engine.store();
        let session = store.get_session(tenant_id, session_id).await?.ok_or(FeedError::NotFound)?;
        let newest = store.list_messages(tenant_id, session_id, 1, None).await?;
        let streaming = newest.first().filter(|m| m.status == MessageStatus::Streaming).map(|m| m.seq);
        let final_latest = streaming.map_or(session.latest_seq, |s| s - 1);
        let mut feed = Self {
            engine: engine.clone(),
            tenant_id: tenant_id.to_owned(),
            session_id,
            events,
            pos: Position::new(final_latest),
            out: VecDeque::new(),
            held: VecDeque::new(),
            replay_after: None,
            awaiting: None,
            last_request: None,
        };
        // A cursor at a streaming answer (only a hand-made one can be) replays
        // that answer like any cursor before it.
        let from = cursor.map(|n| n.min(final_latest));
        feed.out.push_back(Arc::new(SessionEvent::Session {
            session: session.clone(),
            latest_seq: final_latest,
            resumed_from: from,
        }));
        match cursor {
            None => {
                if let Some(stored) = newest.into_iter().find(|m| m.status == MessageStatus::Streaming) {
                    feed.streaming(stored);
                }
            }
            Some(n) => {
                let since = retained_since(engine.clock().now(), tenant.retention_days);
                validate_cursor(store.as_ref(), &feed, &session, n, since).await?;
                feed.out.push_back(Arc::new(SessionEvent::ResumeCursor {
                    last_event_id: n,
                    latest_seq: final_latest,
                }));
                let from = n.min(final_latest);
                feed.pos = Position::new(from);
                feed.replay_after = Some(from);
            }
        }
        Ok(feed)
    }

    pub fn session_id(&self) -> Uuid {
        self.session_id
    }

    /// The next event for this subscriber; waits for live events. An error
    /// means the store could not be read (the caller ends the subscription).
    pub async fn next(&mut self) -> Result<Arc<SessionEvent>, FeedError> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Ok(event);
            }
            // Boxed: these rare steps (store reads, waits) would otherwise size
            // the future every idle subscriber holds while it waits below.
            if let Some(after) = self.replay_after {
                Box::pin(self.replay_page(after)).await?;
                continue;
            }
            if self.awaiting.is_some() {
                Box::pin(self.await_snapshot()).await;
                continue;
            }
            let event = match self.held.pop_front() {
                Some(event) => event,
                None => match self.events.recv().await {
                    Ok(event) => event,
                    Err(missed) => {
                        self.recover(missed);
                        continue;
                    }
                },
            };
            match self.pos.step(event) {
                Step::Pass(event) => return Ok(event),
                Step::Drop => {}
                Step::Resync => self.resync(),
                Step::FillText => self.fill_text(),
            }
        }
    }

    /// The live stream dropped events (it lagged, or its channel closed):
    /// follow it again and catch up from the store.
    fn recover(&mut self, missed: RecvError) {
        if let RecvError::Closed = missed {
            self.events = self.engine.bus().subscribe(self.session_id);
        }
        self.resync();
    }

    /// Catch up on durable events from the store, from what was handed out.
    fn resync(&mut self) {
        self.held.clear();
        self.replay_after = Some(self.pos.final_upto);
    }

    /// An error ends the subscription: `CursorInvalid` when what comes
    /// after `after` was deleted meanwhile (retention's cap or sweeper
    /// overtook a subscriber still catching up), which the client must
    /// answer by reloading, as it would a cursor refused at the start.
    async fn replay_page(&mut self, after: i64) -> Result<(), FeedError> {
        let page =
            self.engine.store().messages_after(&self.tenant_id, self.session_id, after, REPLAY_PAGE).await?;
        // Seqs have no holes but what retention deleted.
        if page.first().is_some_and(|m| m.seq != after + 1) {
            return Err(FeedError::CursorInvalid);
        }
        self.replay_after =
            (page.len() == REPLAY_PAGE as usize).then(|| page.last().map_or(after, |m| m.seq));
        for message in page {
            if message.status == MessageStatus::Streaming {
                // The last message a session can hold while it streams.
                self.replay_after = None;
                self.streaming(message);
                break;
            }
            if message.seq > self.pos.final_upto {
                let seq = message.seq;
                self.out.push_back(Arc::new(SessionEvent::Message(message)));
                self.pos.finished(seq);
            }
        }
        Ok(())
    }

    /// A streaming answer found in the store: hand it out with its live text
    /// (or, if it is already being followed, just what is missing of it).
    fn streaming(&mut self, stored: Message) {
        if self.pos.following.as_ref().is_some_and(|f| f.seq == stored.seq) {
            self.fill_text();
            return;
        }
        match self.engine.live_turn(self.session_id).filter(|t| t.seq == stored.seq) {
            Some(turn) => {
                let snap = turn.snapshot();
                self.hand_out_streaming(stored, Some(turn.turn_id), snap.revision, snap.text);
            }
            None => {
                self.request_snapshot();
                self.awaiting = Some(Awaiting { stored, until: Instant::now() + SNAPSHOT_WAIT });
            }
        }
    }

    fn hand_out_streaming(
        &mut self,
        mut message: Message,
        turn_id: Option<Uuid>,
        revision: u32,
        text: String,
    ) {
        let text_handed_out = TextProgress { revision, sent: text.chars().count() as u64 };
        message.content = text;
        self.pos.following = Some(Following { seq: message.seq, turn_id, text: text_handed_out });
        self.out.push_back(Arc::new(SessionEvent::StreamingMessage { message, revision }));
    }

    /// Waits for the live text of another node's answer; other events wait
    /// in `held`. Its final event, or the deadline, ends the wait too.
    /// Cancel-safe (an SSE heartbeat may interrupt it): `awaiting` is only
    /// cleared once the wait is over, and nothing received is dropped.
    async fn await_snapshot(&mut self) {
        let Some((seq, until)) = self.awaiting.as_ref().map(|a| (a.stored.seq, a.until)) else { return };
        loop {
            let received = tokio::select! {
                r = self.events.recv() => r,
                _ = tokio::time::sleep_until(until) => break,
            };
            match received {
                Ok(event) => match &*event {
                    SessionEvent::Snapshot { seq: s, turn_id, revision, text } if *s == seq => {
                        let (turn_id, revision, text) = (*turn_id, *revision, text.clone());
                        if let Some(awaiting) = self.awaiting.take() {
                            self.hand_out_streaming(awaiting.stored, Some(turn_id), revision, text);
                        }
                        return;
                    }
                    // The answer ended meanwhile: its final event says it all.
                    SessionEvent::StreamEnd(end) if end.seq == seq => return self.answer_ended(event),
                    SessionEvent::Message(m) if m.seq == seq && m.status != MessageStatus::Streaming => {
                        return self.answer_ended(event)
                    }
                    _ => self.held.push_back(event),
                },
                // Missed events may include durable ones: catch up after this.
                Err(missed) => {
                    self.recover(missed);
                    break;
                }
            }
        }
        // No answer in time (its node may be gone): the last checkpoint.
        if let Some(awaiting) = self.awaiting.take() {
            let text = awaiting.stored.content.clone();
            self.hand_out_streaming(awaiting.stored, None, 0, text);
        }
    }

    /// The awaited answer ended before its text came (its turn was over by
    /// the time this subscriber looked for it, though the store read before
    /// still saw it streaming). Handing out the last checkpoint would show
    /// older text than the answer had (SPEC §6), and a `stream_end` would
    /// close text this connection never carried (a client may still hold
    /// the answer's start from an earlier connection). So it is handed out
    /// as a replay hands out what has ended: its final `message`; the
    /// answer's live events held meanwhile go.
    fn answer_ended(&mut self, event: Arc<SessionEvent>) {
        if let Some(awaiting) = self.awaiting.take() {
            let seq = awaiting.stored.seq;
            self.held.retain(|e| !is_live_text_of(e, seq));
        }
        let event = match &*event {
            SessionEvent::StreamEnd(end) => Arc::new(SessionEvent::Message(end.message.clone())),
            _ => event,
        };
        self.held.push_back(event);
    }

    /// Hands out the followed answer's missing text from its live state.
    fn fill_text(&mut self) {
        let Some(seq) = self.pos.following.as_ref().map(|f| f.seq) else { return };
        match self.engine.live_turn(self.session_id).filter(|t| t.seq == seq) {
            Some(turn) => {
                let snap = turn.snapshot();
                if let Some(event) = self.pos.snapshot(seq, turn.turn_id, snap.revision, &snap.text) {
                    self.out.push_back(Arc::new(event));
                }
            }
            // Its node answers with a `Snapshot`, which `Position::step` merges.
            None => self.request_snapshot(),
        }
    }

    fn request_snapshot(&mut self) {
        let now = Instant::now();
        if self.last_request.is_some_and(|at| now < at + SNAPSHOT_EVERY) {
            return;
        }
        self.last_request = Some(now);
        self.engine.bus().notify(Notice::SnapshotWanted { session_id: self.session_id });
    }
}

/// Whether `event` carries (or starts) the live text of answer `seq`.
fn is_live_text_of(event: &SessionEvent, seq: i64) -> bool {
    match event {
        SessionEvent::StreamStart { seq: s, .. }
        | SessionEvent::StreamDelta { seq: s, .. }
        | SessionEvent::StreamReplace { seq: s, .. }
        | SessionEvent::Snapshot { seq: s, .. } => *s == seq,
        _ => false,
    }
}

/// SPEC §6: a cursor N is valid when earliest_retained_seq − 1 ≤ N ≤
/// latest_seq; the first replay page tells whether anything after N is gone:
/// deleted (the cap, the sweeper, a wipe) or created before `since`, past the
/// tenant's retention though not swept yet. Later messages are newer, so
/// when N + 1 is kept the whole replay is.
async fn validate_cursor(
    store: &dyn crate::store::Store,
    feed: &Feed,
    session: &Session,
    n: i64,
    since: Timestamp,
) -> Result<(), FeedError> {
    if n < 0 || n > session.latest_seq {
        return Err(FeedError::CursorInvalid);
    }
    if n == session.latest_seq {
        return Ok(());
    }
    let first = store.messages_after(&feed.tenant_id, feed.session_id, n, 1).await?;
    match first.first() {
        Some(m) if m.seq == n + 1 && m.created_at >= since => Ok(()),
        _ => Err(FeedError::CursorInvalid),
    }
}
