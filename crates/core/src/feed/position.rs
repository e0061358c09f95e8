//! Where a subscriber stands in its session's stream, and the rule that turns
//! each live event into what this subscriber still needs: nothing (already
//! seen), the event itself, a trimmed delta, or "resync" (something was
//! missed; catch up from state). This is the de-duplication half of
//! "subscribe, then replay, then merge".

use crate::events::SessionEvent;
use crate::model::MessageStatus;
use crate::progress::{CatchUp, Merge, TextProgress};
use std::sync::Arc;
use uuid::Uuid;

/// The answer a subscriber is following while it streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Following {
    pub seq: i64,
    pub turn_id: Option<Uuid>,
    /// How much of its text was handed out.
    pub text: TextProgress,
}

/// What to do with one live event.
#[derive(Debug, PartialEq)]
pub enum Step {
    Drop,
    Pass(Arc<SessionEvent>),
    /// A durable event before this one was missed: catch up from the store
    /// (and the live text of the running answer).
    Resync,
    /// Text of the followed answer was missed: catch up from its live text.
    FillText,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Every message up to this seq has been handed out in its final state.
    pub final_upto: i64,
    /// The streaming answer handed out so far, if any.
    pub following: Option<Following>,
}

impl Position {
    pub fn new(final_upto: i64) -> Self {
        Self { final_upto, following: None }
    }

    fn following_seq(&self) -> Option<i64> {
        self.following.as_ref().map(|f| f.seq)
    }

    /// Marks `seq` as handed out in its final state.
    pub fn finished(&mut self, seq: i64) {
        self.final_upto = self.final_upto.max(seq);
        if self.following_seq().is_some_and(|f| f <= seq) {
            self.following = None;
        }
    }

    /// Decides what a live event means for this subscriber.
    pub fn step(&mut self, event: Arc<SessionEvent>) -> Step {
        match &*event {
            SessionEvent::Message(m) if m.status == MessageStatus::Streaming => Step::Drop,
            SessionEvent::Message(m) => self.durable(m.seq, event.clone()),
            SessionEvent::StreamEnd(end) => self.durable(end.seq, event.clone()),
            SessionEvent::StreamStart { seq, turn_id, .. } => {
                let seq = *seq;
                if seq <= self.final_upto || self.following_seq() == Some(seq) {
                    Step::Drop
                } else if seq > self.final_upto + 1 {
                    Step::Resync
                } else {
                    self.following =
                        Some(Following { seq, turn_id: Some(*turn_id), text: TextProgress::default() });
                    Step::Pass(event)
                }
            }
            SessionEvent::StreamDelta { seq, revision, offset, text, .. } => {
                self.delta(*seq, *revision, *offset, text, &event)
            }
            SessionEvent::StreamReplace { seq, revision, text, .. } => {
                match self.following.as_mut().filter(|f| f.seq == *seq) {
                    Some(f) => {
                        if f.text.replace(*revision, text) {
                            Step::Pass(event.clone())
                        } else {
                            Step::Drop
                        }
                    }
                    None if *seq > self.final_upto => Step::Resync,
                    None => Step::Drop,
                }
            }
            SessionEvent::Snapshot { seq, revision, text, turn_id } => {
                self.snapshot(*seq, *turn_id, *revision, text).map_or(Step::Drop, |e| Step::Pass(Arc::new(e)))
            }
            // A turn's error belongs to the answer being followed; one for an
            // answer already handed out final is stale.
            SessionEvent::Error { turn_id: Some(_), .. } if self.following.is_none() => Step::Drop,
            SessionEvent::Typing { .. }
            | SessionEvent::TypingFrom { .. }
            | SessionEvent::Error { .. }
            | SessionEvent::Takeover { .. }
            | SessionEvent::Tool(_)
            | SessionEvent::Handoff { .. } => Step::Pass(event),
            // Built per subscriber, never published.
            SessionEvent::Session { .. }
            | SessionEvent::ResumeCursor { .. }
            | SessionEvent::StreamingMessage { .. } => Step::Drop,
        }
    }

    /// A message (or `stream_end`) in its final state.
    fn durable(&mut self, seq: i64, event: Arc<SessionEvent>) -> Step {
        if seq <= self.final_upto {
            return Step::Drop;
        }
        if seq > self.final_upto + 1 && self.following_seq() != Some(seq) {
            return Step::Resync;
        }
        self.finished(seq);
        Step::Pass(event)
    }

    fn delta(&mut self, seq: i64, revision: u32, offset: u64, text: &str, event: &Arc<SessionEvent>) -> Step {
        let Some(f) = self.following.as_mut().filter(|f| f.seq == seq) else {
            return if seq > self.final_upto { Step::Resync } else { Step::Drop };
        };
        match f.text.merge(revision, offset, text) {
            Merge::Drop => Step::Drop,
            Merge::Gap => Step::FillText,
            Merge::Pass => Step::Pass(event.clone()),
            Merge::Trimmed { offset, text } => {
                let SessionEvent::StreamDelta { turn_id, .. } = &**event else { return Step::Drop };
                Step::Pass(Arc::new(SessionEvent::StreamDelta {
                    turn_id: *turn_id,
                    seq,
                    revision,
                    offset,
                    text,
                }))
            }
        }
    }

    /// The live text of the followed answer: the part this subscriber lacks,
    /// as a delta (same revision) or a replace (newer revision).
    pub fn snapshot(&mut self, seq: i64, turn_id: Uuid, revision: u32, text: &str) -> Option<SessionEvent> {
        let f = self.following.as_mut().filter(|f| f.seq == seq)?;
        let event = match f.text.catch_up(revision, text)? {
            CatchUp::Delta { offset, text } => {
                SessionEvent::StreamDelta { turn_id, seq, revision, offset, text }
            }
            CatchUp::Replace => SessionEvent::StreamReplace { turn_id, seq, revision, text: text.to_owned() },
        };
        f.turn_id = Some(turn_id);
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Message, Role};

    fn msg(seq: i64, status: MessageStatus) -> Arc<SessionEvent> {
        Arc::new(SessionEvent::Message(Message {
            tool_calls: Vec::new(),
            session_id: Uuid::nil(),
            seq,
            role: Role::User,
            content: "x".into(),
            author: None,
            status,
            created_at: crate::time::from_millis(0).unwrap(),
            token_count: 1,
            client_message_id: None,
            tools: vec![],
            turn_id: None,
            meta: None,
        }))
    }

    fn start(seq: i64) -> Arc<SessionEvent> {
        Arc::new(SessionEvent::StreamStart { turn_id: Uuid::nil(), seq, user_seq: seq - 1 })
    }

    fn delta(seq: i64, revision: u32, offset: u64, text: &str) -> Arc<SessionEvent> {
        Arc::new(SessionEvent::StreamDelta { turn_id: Uuid::nil(), seq, revision, offset, text: text.into() })
    }

    fn passed_text(step: Step) -> String {
        match step {
            Step::Pass(e) => match &*e {
                SessionEvent::StreamDelta { text, offset, .. } => format!("{offset}:{text}"),
                SessionEvent::StreamReplace { text, revision, .. } => format!("r{revision}:{text}"),
                other => other.kind().to_owned(),
            },
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn durable_events_already_replayed_are_dropped_and_gaps_ask_for_resync() {
        let mut p = Position::new(4);
        assert_eq!(p.step(msg(3, MessageStatus::Complete)), Step::Drop);
        assert_eq!(p.step(msg(4, MessageStatus::Complete)), Step::Drop);
        assert!(matches!(p.step(msg(5, MessageStatus::Complete)), Step::Pass(_)));
        assert_eq!(p.final_upto, 5);
        assert_eq!(p.step(msg(7, MessageStatus::Complete)), Step::Resync);
        assert_eq!(p.step(start(8)), Step::Resync);
    }

    #[test]
    fn a_followed_answer_merges_deltas_by_offset() {
        let mut p = Position::new(1);
        assert!(matches!(p.step(start(2)), Step::Pass(_)));
        assert_eq!(p.step(start(2)), Step::Drop);
        assert_eq!(passed_text(p.step(delta(2, 0, 0, "héllo"))), "0:héllo");
        assert_eq!(p.step(delta(2, 0, 0, "hé")), Step::Drop);
        assert_eq!(passed_text(p.step(delta(2, 0, 3, "lo wörld"))), "5: wörld");
        assert_eq!(p.step(delta(2, 0, 20, "late")), Step::FillText);
        assert_eq!(p.step(delta(2, 1, 0, "newer revision")), Step::FillText);
        assert_eq!(p.step(delta(9, 0, 0, "other answer")), Step::Resync);
        // The final message ends following.
        assert!(matches!(p.step(msg(2, MessageStatus::Interrupted)), Step::Pass(_)));
        assert_eq!((p.final_upto, p.following.clone()), (2, None));
        assert_eq!(p.step(delta(2, 0, 11, "!")), Step::Drop);
    }

    #[test]
    fn snapshots_fill_what_is_missing_and_nothing_else() {
        let mut p = Position::new(1);
        p.step(start(2));
        p.step(delta(2, 0, 0, "abc"));
        assert_eq!(p.snapshot(2, Uuid::nil(), 0, "ab"), None);
        assert_eq!(
            passed_text(p.step(Arc::new(SessionEvent::Snapshot {
                turn_id: Uuid::nil(),
                seq: 2,
                revision: 0,
                text: "abcdef".into(),
            }))),
            "3:def"
        );
        let replaced = p.snapshot(2, Uuid::nil(), 1, "new").unwrap();
        assert!(matches!(replaced, SessionEvent::StreamReplace { revision: 1, .. }));
        assert_eq!(p.step(delta(2, 0, 6, "old revision")), Step::Drop);
        assert_eq!(passed_text(p.step(delta(2, 1, 3, "er"))), "3:er");
    }

    #[test]
    fn a_turn_error_without_a_followed_answer_is_stale() {
        let mut p = Position::new(2);
        let error = Arc::new(SessionEvent::Error {
            turn_id: Some(Uuid::nil()),
            error: crate::turn::error_body(crate::ErrorCode::LlmTimeout, "t"),
        });
        assert_eq!(p.step(error.clone()), Step::Drop);
        p.step(start(3));
        assert!(matches!(p.step(error), Step::Pass(_)));
    }
}
