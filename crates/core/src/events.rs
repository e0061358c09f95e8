//! The streaming vocabulary shared by SSE and WebSocket (SPEC §5). Each event
//! knows its type name, its payload and, for SSE, its `id:` when it has one.

use crate::model::{FinishReason, Latency, Message, Session, Usage};
use serde::Serialize;
use uuid::Uuid;

/// The error envelope's body, as carried by an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    pub http_status: u16,
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    Assistant,
    Agent,
    User,
}

/// One event of a session's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    Session { session: Session, latest_seq: i64 },
    ResumeCursor { last_event_id: i64, latest_seq: i64 },
    Message(Message),
    StreamStart { turn_id: Uuid, seq: i64, user_seq: i64 },
    StreamDelta { turn_id: Uuid, seq: i64, revision: u32, offset: u64, text: String },
    StreamReplace { turn_id: Uuid, seq: i64, revision: u32, text: String },
    StreamEnd(Box<StreamEnd>),
    Typing { who: Who, active: bool },
    Error { turn_id: Option<Uuid>, error: ErrorBody },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamEnd {
    pub turn_id: Uuid,
    pub seq: i64,
    pub message: Message,
    pub usage: Usage,
    pub latency_ms: Latency,
    pub finish_reason: FinishReason,
    pub provider: String,
    pub model: String,
}

#[derive(Serialize)]
struct SessionPayload<'a> {
    session: &'a Session,
    latest_seq: i64,
}

#[derive(Serialize)]
struct ResumePayload {
    last_event_id: i64,
    latest_seq: i64,
}

#[derive(Serialize)]
struct StartPayload {
    turn_id: Uuid,
    seq: i64,
    user_seq: i64,
}

#[derive(Serialize)]
struct DeltaPayload<'a> {
    turn_id: Uuid,
    seq: i64,
    revision: u32,
    offset: u64,
    text: &'a str,
}

#[derive(Serialize)]
struct ReplacePayload<'a> {
    turn_id: Uuid,
    seq: i64,
    revision: u32,
    text: &'a str,
}

#[derive(Serialize)]
struct TypingPayload<'a> {
    who: &'a Who,
    active: bool,
}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    error: &'a ErrorBody,
}

impl SessionEvent {
    /// The event's type name on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Session { .. } => "session",
            Self::ResumeCursor { .. } => "resume_cursor",
            Self::Message(_) => "message",
            Self::StreamStart { .. } => "stream_start",
            Self::StreamDelta { .. } => "stream_delta",
            Self::StreamReplace { .. } => "stream_replace",
            Self::StreamEnd(_) => "stream_end",
            Self::Typing { .. } => "typing",
            Self::Error { .. } => "error",
        }
    }

    /// The SSE `id:` of the event: the seq of what is final and complete.
    pub fn sse_id(&self) -> Option<i64> {
        match self {
            Self::Session { latest_seq, .. } => Some(*latest_seq),
            Self::Message(m) if m.status != crate::model::MessageStatus::Streaming => Some(m.seq),
            Self::StreamEnd(end) => Some(end.seq),
            _ => None,
        }
    }

    /// The payload as one line of JSON.
    pub fn payload_json(&self) -> String {
        let result = match self {
            Self::Session { session, latest_seq } => {
                serde_json::to_string(&SessionPayload { session, latest_seq: *latest_seq })
            }
            Self::ResumeCursor { last_event_id, latest_seq } => serde_json::to_string(&ResumePayload {
                last_event_id: *last_event_id,
                latest_seq: *latest_seq,
            }),
            Self::Message(m) => serde_json::to_string(m),
            Self::StreamStart { turn_id, seq, user_seq } => {
                serde_json::to_string(&StartPayload { turn_id: *turn_id, seq: *seq, user_seq: *user_seq })
            }
            Self::StreamDelta { turn_id, seq, revision, offset, text } => {
                serde_json::to_string(&DeltaPayload {
                    turn_id: *turn_id,
                    seq: *seq,
                    revision: *revision,
                    offset: *offset,
                    text,
                })
            }
            Self::StreamReplace { turn_id, seq, revision, text } => serde_json::to_string(&ReplacePayload {
                turn_id: *turn_id,
                seq: *seq,
                revision: *revision,
                text,
            }),
            Self::StreamEnd(end) => serde_json::to_string(end),
            Self::Typing { who, active } => serde_json::to_string(&TypingPayload { who, active: *active }),
            Self::Error { error, .. } => serde_json::to_string(&ErrorPayload { error }),
        };
        // Serialising these plain structs cannot fail; an empty object keeps
        // the stream well-formed if it ever did.
        result.unwrap_or_else(|_| "{}".to_owned())
    }

    /// The turn this event belongs to, if any.
    pub fn turn_id(&self) -> Option<Uuid> {
        match self {
            Self::Message(m) => m.turn_id,
            Self::StreamStart { turn_id, .. }
            | Self::StreamDelta { turn_id, .. }
            | Self::StreamReplace { turn_id, .. } => Some(*turn_id),
            Self::StreamEnd(end) => Some(end.turn_id),
            Self::Error { turn_id, .. } => *turn_id,
            _ => None,
        }
    }
}
