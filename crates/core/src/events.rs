//! The streaming vocabulary shared by SSE and WebSocket (SPEC §5). Each event
//! knows its type name, its payload and, for SSE, its `id:` when it has one.
//!
//! Clients see `kind()` and `payload_json()`. The serde derives are the form
//! events take between nodes on a cluster bus; they are not a client format.

use crate::error::ErrorCode;
use crate::model::{AgentRef, FinishReason, Latency, Message, Session, Usage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The error envelope's body, as carried by an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCode))]
    pub code: &'static str,
    pub message: String,
    pub http_status: u16,
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// An error body read back from the bus; an unknown code becomes `internal`.
#[derive(Deserialize)]
struct BusErrorBody {
    code: String,
    message: String,
    http_status: u16,
    trace_id: String,
    details: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for ErrorBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = BusErrorBody::deserialize(d)?;
        let code = ErrorCode::parse(&b.code).unwrap_or(ErrorCode::Internal).as_str();
        Ok(Self {
            code,
            message: b.message,
            http_status: b.http_status,
            trace_id: b.trace_id,
            details: b.details,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Who {
    Assistant,
    Agent,
    User,
}

/// One event of a session's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "d", rename_all = "snake_case")]
pub enum SessionEvent {
    /// `resumed_from`: the client's cursor, when it sent one. The SSE id is
    /// then that cursor, not `latest_seq`: a client that drops before the
    /// replay reaches `latest_seq` must reconnect from where it really is.
    Session {
        session: Session,
        latest_seq: i64,
        resumed_from: Option<i64>,
    },
    ResumeCursor {
        last_event_id: i64,
        latest_seq: i64,
    },
    Message(Message),
    /// An answer still streaming, replayed with its text so far (a `message`
    /// on the wire, with its `revision` beside the message fields).
    StreamingMessage {
        message: Message,
        revision: u32,
    },
    /// Internal, never sent to a client: the live text of a running turn, as
    /// its node answers a subscriber elsewhere that asked for it (see
    /// `bus::Notice::SnapshotWanted`). Subscribers turn it into the delta or
    /// replace they are missing.
    Snapshot {
        turn_id: Uuid,
        seq: i64,
        revision: u32,
        text: String,
    },
    StreamStart {
        turn_id: Uuid,
        seq: i64,
        user_seq: i64,
    },
    StreamDelta {
        turn_id: Uuid,
        seq: i64,
        revision: u32,
        offset: u64,
        text: String,
    },
    StreamReplace {
        turn_id: Uuid,
        seq: i64,
        revision: u32,
        text: String,
    },
    StreamEnd(Box<StreamEnd>),
    Typing {
        who: Who,
        active: bool,
    },
    /// Typing relayed from one connection to the session's other ones (a
    /// `typing` on the wire; `connection` is the sender's, never sent).
    TypingFrom {
        who: Who,
        active: bool,
        connection: Uuid,
    },
    Error {
        turn_id: Option<Uuid>,
        error: ErrorBody,
    },
    /// An agent took the session over (`active`) or gave it back to the AI.
    Takeover {
        active: bool,
        agent: AgentRef,
    },
    /// A tool call's progress and what the visitor sees of it (SPEC §16).
    Tool(ToolEvent),
    /// The model asked for a person (`handoff_to_human`): the session waits
    /// for an agent.
    Handoff {
        turn_id: Uuid,
        reason: Option<String>,
    },
}

/// The `tool` event: never the call's arguments or result, which only
/// agents see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolEvent {
    pub turn_id: Uuid,
    pub call_id: String,
    pub name: String,
    pub status: crate::tools::ToolStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionPayload<'a> {
    pub session: &'a Session,
    pub latest_seq: i64,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamingPayload<'a> {
    #[serde(flatten)]
    pub message: &'a Message,
    pub revision: u32,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResumePayload {
    pub last_event_id: i64,
    pub latest_seq: i64,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartPayload {
    pub turn_id: Uuid,
    pub seq: i64,
    pub user_seq: i64,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeltaPayload<'a> {
    pub turn_id: Uuid,
    pub seq: i64,
    pub revision: u32,
    pub offset: u64,
    pub text: &'a str,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplacePayload<'a> {
    pub turn_id: Uuid,
    pub seq: i64,
    pub revision: u32,
    pub text: &'a str,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypingPayload<'a> {
    pub who: &'a Who,
    pub active: bool,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TakeoverPayload<'a> {
    pub active: bool,
    pub agent: &'a AgentRef,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorPayload<'a> {
    pub error: &'a ErrorBody,
}

/// The `handoff` event's payload.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffPayload<'a> {
    /// Always `waiting`: the session waits for an agent.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^waiting$"))]
    pub status: &'static str,
    pub reason: Option<&'a str>,
}

impl SessionEvent {
    /// The event's type name on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Session { .. } => "session",
            Self::ResumeCursor { .. } => "resume_cursor",
            Self::Message(_) | Self::StreamingMessage { .. } => "message",
            Self::Snapshot { .. } => "snapshot",
            Self::StreamStart { .. } => "stream_start",
            Self::StreamDelta { .. } => "stream_delta",
            Self::StreamReplace { .. } => "stream_replace",
            Self::StreamEnd(_) => "stream_end",
            Self::Typing { .. } | Self::TypingFrom { .. } => "typing",
            Self::Error { .. } => "error",
            Self::Takeover { .. } => "takeover",
            Self::Tool(_) => "tool",
            Self::Handoff { .. } => "handoff",
        }
    }

    /// The SSE `id:` of the event: the seq of what is final and complete.
    pub fn sse_id(&self) -> Option<i64> {
        match self {
            Self::Session { latest_seq, resumed_from, .. } => Some(resumed_from.unwrap_or(*latest_seq)),
            Self::Message(m) if m.status != crate::model::MessageStatus::Streaming => Some(m.seq),
            Self::StreamEnd(end) => Some(end.seq),
            _ => None,
        }
    }

    /// The payload as one line of JSON.
    pub fn payload_json(&self) -> String {
        let result = match self {
            Self::Session { session, latest_seq, .. } => {
                serde_json::to_string(&SessionPayload { session, latest_seq: *latest_seq })
            }
            Self::ResumeCursor { last_event_id, latest_seq } => serde_json::to_string(&ResumePayload {
                last_event_id: *last_event_id,
                latest_seq: *latest_seq,
            }),
            Self::Message(m) => serde_json::to_string(m),
            Self::StreamingMessage { message, revision } => {
                serde_json::to_string(&StreamingPayload { message, revision: *revision })
            }
            Self::Snapshot { turn_id, seq, revision, text } => serde_json::to_string(&ReplacePayload {
                turn_id: *turn_id,
                seq: *seq,
                revision: *revision,
                text,
            }),
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
            Self::Typing { who, active } | Self::TypingFrom { who, active, .. } => {
                serde_json::to_string(&TypingPayload { who, active: *active })
            }
            Self::Error { error, .. } => serde_json::to_string(&ErrorPayload { error }),
            Self::Takeover { active, agent } => {
                serde_json::to_string(&TakeoverPayload { active: *active, agent })
            }
            Self::Tool(tool) => serde_json::to_string(tool),
            Self::Handoff { reason, .. } => {
                serde_json::to_string(&HandoffPayload { status: "waiting", reason: reason.as_deref() })
            }
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
            | Self::StreamReplace { turn_id, .. }
            | Self::Snapshot { turn_id, .. } => Some(*turn_id),
            Self::StreamEnd(end) => Some(end.turn_id),
            Self::Tool(tool) => Some(tool.turn_id),
            Self::Handoff { turn_id, .. } => Some(*turn_id),
            Self::Error { turn_id, .. } => *turn_id,
            _ => None,
        }
    }

    /// The seq of the message the event is about, if any.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Self::Message(m) | Self::StreamingMessage { message: m, .. } => Some(m.seq),
            Self::StreamStart { seq, .. }
            | Self::StreamDelta { seq, .. }
            | Self::StreamReplace { seq, .. }
            | Self::Snapshot { seq, .. } => Some(*seq),
            Self::StreamEnd(end) => Some(end.seq),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MessageStatus, Role};

    fn message(status: MessageStatus) -> Message {
        Message {
            tool_calls: Vec::new(),
            session_id: Uuid::nil(),
            seq: 4,
            role: Role::Assistant,
            content: "so far".into(),
            author: None,
            status,
            created_at: crate::time::from_millis(1_000).unwrap(),
            token_count: 2,
            client_message_id: Some("c1".into()),
            tools: vec![],
            turn_id: None,
            meta: None,
        }
    }

    #[test]
    fn a_replayed_streaming_message_carries_its_revision_and_no_id() {
        let e = SessionEvent::StreamingMessage { message: message(MessageStatus::Streaming), revision: 2 };
        assert_eq!(e.kind(), "message");
        assert_eq!(e.sse_id(), None);
        let v: serde_json::Value = serde_json::from_str(&e.payload_json()).unwrap();
        assert_eq!((v["revision"].as_u64(), v["seq"].as_i64()), (Some(2), Some(4)));
        assert_eq!(v["content"], "so far");
    }

    #[test]
    fn a_takeover_names_its_agent_and_has_no_id() {
        let e = SessionEvent::Takeover { active: false, agent: AgentRef { name: "Ada".into() } };
        assert_eq!((e.kind(), e.sse_id(), e.seq()), ("takeover", None, None));
        assert_eq!(e.payload_json(), r#"{"active":false,"agent":{"name":"Ada"}}"#);
    }

    #[test]
    fn events_survive_the_bus_form() {
        let events = [
            SessionEvent::Message(message(MessageStatus::Complete)),
            SessionEvent::StreamDelta {
                turn_id: Uuid::nil(),
                seq: 4,
                revision: 0,
                offset: 3,
                text: "é".into(),
            },
            SessionEvent::Snapshot { turn_id: Uuid::nil(), seq: 4, revision: 1, text: "x".into() },
            SessionEvent::Typing { who: Who::Agent, active: true },
            SessionEvent::Takeover { active: true, agent: AgentRef { name: "Ada".into() } },
            SessionEvent::Error {
                turn_id: None,
                error: crate::turn::error_body(ErrorCode::LlmTimeout, "t1"),
            },
        ];
        for e in events {
            let back: SessionEvent = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
            assert_eq!(back, e);
        }
    }
}
