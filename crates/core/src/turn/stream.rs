//! Following one turn: the events of that turn, in order, with no gap and no
//! duplicate, however late the subscriber joined or far it fell behind (the
//! live text fills any hole, since every delta carries its offset).

use super::live::{LiveTurn, StopReason};
use crate::bus::EventReceiver;
use crate::events::{SessionEvent, Who};
use crate::model::{Message, MessageStatus};
use crate::progress::{CatchUp, Merge, TextProgress};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

pub struct TurnStream {
    events: EventReceiver,
    live: Arc<LiveTurn>,
    user: Message,
    pending: VecDeque<Arc<SessionEvent>>,
    /// How much of the answer's text was handed out.
    text: TextProgress,
    done: bool,
    abort_on_drop: bool,
}

impl TurnStream {
    /// Follows a turn from its beginning (subscribed before it started).
    pub(super) fn new(
        events: EventReceiver,
        live: Arc<LiveTurn>,
        user: Message,
        abort_on_drop: bool,
    ) -> Self {
        Self {
            events,
            live,
            user,
            pending: VecDeque::new(),
            text: TextProgress::default(),
            done: false,
            abort_on_drop,
        }
    }

    /// Joins a running turn: the user message, `stream_start` and the text so
    /// far come first, then the live deltas past it.
    pub(super) fn attach(events: EventReceiver, live: Arc<LiveTurn>, user: Message) -> Self {
        let mut s = Self::new(events, live, user, false);
        s.pending.push_back(Arc::new(SessionEvent::Message(s.user.clone())));
        s.pending.push_back(Arc::new(SessionEvent::StreamStart {
            turn_id: s.live.turn_id,
            seq: s.live.seq,
            user_seq: s.live.user_seq,
        }));
        if let Some(text) = s.fill_gap() {
            s.pending.push_back(text);
        }
        s
    }

    pub fn user_message(&self) -> &Message {
        &self.user
    }

    pub fn turn_id(&self) -> uuid::Uuid {
        self.live.turn_id
    }

    /// The assistant message's seq.
    pub fn seq(&self) -> i64 {
        self.live.seq
    }

    /// The next event of this turn; `None` after its last one.
    pub async fn next(&mut self) -> Option<Arc<SessionEvent>> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        while !self.done {
            let event = match self.events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => {
                    let filled = self.fill_gap();
                    // The end itself may be among what was missed.
                    if let Some(end) = self.live.end() {
                        self.done = true;
                        self.pending.push_back(end);
                    }
                    match filled.or_else(|| self.pending.pop_front()) {
                        Some(event) => return Some(event),
                        None => continue,
                    }
                }
                Err(RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            };
            if let Some(event) = self.accept(event) {
                return Some(event);
            }
        }
        None
    }

    /// Keeps the events of this turn, trims deltas to what is new.
    fn accept(&mut self, event: Arc<SessionEvent>) -> Option<Arc<SessionEvent>> {
        match &*event {
            SessionEvent::Typing { who: Who::Assistant, .. } => Some(event),
            _ if event.turn_id() != Some(self.live.turn_id) => None,
            // Answers to subscribers on other nodes; this follower has the live turn.
            SessionEvent::Snapshot { .. } => None,
            SessionEvent::StreamDelta { revision, offset, text, .. } => {
                match self.text.merge(*revision, *offset, text) {
                    Merge::Drop => None,
                    Merge::Pass => Some(event),
                    Merge::Trimmed { offset, text } => Some(Arc::new(self.delta(*revision, offset, text))),
                    Merge::Gap => self.fill_gap(),
                }
            }
            // A late replace of a revision already handed out repeats it.
            SessionEvent::StreamReplace { revision, text, .. } => {
                self.text.replace(*revision, text).then_some(event)
            }
            SessionEvent::StreamEnd(_) | SessionEvent::Error { .. } => {
                self.done = true;
                Some(event)
            }
            SessionEvent::Message(m) if m.seq == self.live.seq && m.status != MessageStatus::Streaming => {
                self.done = true;
                Some(event)
            }
            _ => Some(event),
        }
    }

    /// Catches up from the live text after missing events (or on joining).
    fn fill_gap(&mut self) -> Option<Arc<SessionEvent>> {
        let snap = self.live.snapshot();
        let event = match self.text.catch_up(snap.revision, &snap.text)? {
            CatchUp::Delta { offset, text } => self.delta(snap.revision, offset, text),
            CatchUp::Replace => SessionEvent::StreamReplace {
                turn_id: self.live.turn_id,
                seq: self.live.seq,
                revision: snap.revision,
                text: snap.text,
            },
        };
        Some(Arc::new(event))
    }

    fn delta(&self, revision: u32, offset: u64, text: String) -> SessionEvent {
        SessionEvent::StreamDelta { turn_id: self.live.turn_id, seq: self.live.seq, revision, offset, text }
    }
}

impl Drop for TurnStream {
    /// The client that started the turn went away before its end.
    fn drop(&mut self) {
        if self.abort_on_drop && !self.done {
            self.live.stop(StopReason::ClientGone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use tokio::sync::broadcast;
    use uuid::Uuid;

    fn user(turn_id: Uuid) -> Message {
        Message {
            tool_calls: Vec::new(),
            session_id: Uuid::nil(),
            seq: 1,
            role: Role::User,
            content: "hi".into(),
            author: None,
            status: MessageStatus::Complete,
            created_at: crate::time::from_millis(0).unwrap(),
            token_count: 1,
            client_message_id: None,
            tools: vec![],
            turn_id: Some(turn_id),
            meta: None,
        }
    }

    /// Publishes `words` as the turn task would, then a `stream_end`-like
    /// final message.
    fn produce(tx: &broadcast::Sender<Arc<SessionEvent>>, live: &LiveTurn, words: &[&str]) {
        for w in words {
            let (revision, offset) = live.append(w);
            let e = SessionEvent::StreamDelta {
                turn_id: live.turn_id,
                seq: live.seq,
                revision,
                offset,
                text: (*w).into(),
            };
            let _ = tx.send(Arc::new(e));
        }
        let mut done = user(live.turn_id);
        done.seq = live.seq;
        done.status = MessageStatus::Interrupted;
        let _ = tx.send(Arc::new(SessionEvent::Message(done)));
    }

    /// Applies the follower's deltas to rebuild the text, checking that each
    /// one starts exactly where the previous ended.
    async fn collect(mut s: TurnStream) -> String {
        let mut text = String::new();
        while let Some(e) = s.next().await {
            if let SessionEvent::StreamDelta { offset, text: t, .. } = &*e {
                assert_eq!(*offset as usize, text.chars().count(), "gap or overlap");
                text.push_str(t);
            }
        }
        text
    }

    #[tokio::test]
    async fn a_lagging_follower_fills_the_gap_from_the_live_text() {
        let (tx, rx) = broadcast::channel(4);
        let live = Arc::new(LiveTurn::new(Uuid::new_v4(), Uuid::nil(), 2, 1));
        let stream = TurnStream::new(rx, live.clone(), user(live.turn_id), false);
        let words: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        produce(&tx, &live, &refs);
        assert_eq!(collect(stream).await, words.concat());
    }

    #[tokio::test]
    async fn an_attached_follower_starts_from_the_text_so_far_without_repeats() {
        let (tx, _) = broadcast::channel(64);
        let live = Arc::new(LiveTurn::new(Uuid::new_v4(), Uuid::nil(), 2, 1));
        live.append("héllo ");
        let stream = TurnStream::attach(tx.subscribe(), live.clone(), user(live.turn_id));
        // A delta the snapshot already holds, published late, is dropped.
        let stale = SessionEvent::StreamDelta {
            turn_id: live.turn_id,
            seq: 2,
            revision: 0,
            offset: 0,
            text: "héllo ".into(),
        };
        let _ = tx.send(Arc::new(stale));
        produce(&tx, &live, &["wörld"]);
        assert_eq!(collect(stream).await, "héllo wörld");
    }

    #[tokio::test]
    async fn overlapping_deltas_are_trimmed() {
        let (tx, rx) = broadcast::channel(64);
        let live = Arc::new(LiveTurn::new(Uuid::new_v4(), Uuid::nil(), 2, 1));
        let mut s = TurnStream::new(rx, live.clone(), user(live.turn_id), false);
        let delta = |offset, text: &str| {
            Arc::new(SessionEvent::StreamDelta {
                turn_id: live.turn_id,
                seq: 2,
                revision: 0,
                offset,
                text: text.into(),
            })
        };
        let _ = tx.send(delta(0, "abc"));
        let _ = tx.send(delta(1, "bcde"));
        let first = s.next().await.unwrap();
        let second = s.next().await.unwrap();
        match (&*first, &*second) {
            (
                SessionEvent::StreamDelta { text: a, .. },
                SessionEvent::StreamDelta { offset, text: b, .. },
            ) => {
                assert_eq!((a.as_str(), *offset, b.as_str()), ("abc", 3, "de"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn dropping_an_unfinished_stream_stops_the_turn_only_when_asked() {
        let (tx, _) = broadcast::channel(4);
        let live = Arc::new(LiveTurn::new(Uuid::new_v4(), Uuid::nil(), 2, 1));
        drop(TurnStream::new(tx.subscribe(), live.clone(), user(live.turn_id), false));
        assert!(!live.is_stopped());
        drop(TurnStream::new(tx.subscribe(), live.clone(), user(live.turn_id), true));
        assert_eq!(live.stop_reason(), Some(StopReason::ClientGone));
    }
}
