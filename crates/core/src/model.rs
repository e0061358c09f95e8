//! Sessions and messages as clients see them (SPEC §2 objects), plus the few
//! internal fields the runtime keeps beside them.

use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SessionStatus {
    Active,
    Human,
    /// The model asked for a person (`handoff_to_human`, SPEC §16): the AI is
    /// silent until an agent takes over or releases.
    Waiting,
    Closed,
}

impl SessionStatus {
    /// Whether the AI stays silent: a visitor's message is stored for the
    /// agents and answered by none (`handled_by: "agent"`).
    pub fn for_agents(self) -> bool {
        matches!(self, Self::Human | Self::Waiting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Human => "human",
            Self::Waiting => "waiting",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "human" => Some(Self::Human),
            "waiting" => Some(Self::Waiting),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// An agent's hold on a session (null on the wire when nobody holds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Takeover {
    pub agent: AgentRef,
    #[serde(with = "time::wire")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentRef {
    pub name: String,
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub id: Uuid,
    pub tenant_id: String,
    pub status: SessionStatus,
    #[serde(with = "time::wire")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(with = "time::wire")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_activity_at: Timestamp,
    pub message_count: i64,
    pub admin_assisted: bool,
    pub latest_seq: i64,
    pub takeover: Option<Takeover>,
    /// The owner subject (`visitor:<uuid>` or `user:<sub>`); never sent to clients.
    #[serde(skip, default)]
    pub owner: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    User,
    Assistant,
    Agent,
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Agent => "agent",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "agent" => Some(Self::Agent),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageStatus {
    Complete,
    Streaming,
    Aborted,
    Error,
    Interrupted,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Streaming => "streaming",
            Self::Aborted => "aborted",
            Self::Error => "error",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "complete" => Some(Self::Complete),
            "streaming" => Some(Self::Streaming),
            "aborted" => Some(Self::Aborted),
            "error" => Some(Self::Error),
            "interrupted" => Some(Self::Interrupted),
            _ => None,
        }
    }
}

/// Token counts of one turn; `estimated` when the provider gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub estimated: bool,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32, estimated: bool) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            estimated,
        }
    }
}

/// A rough token count for text a provider did not count (about four
/// characters a token, at least one for non-empty text).
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
    Aborted,
}

/// Time to first token and total time of a turn, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Latency {
    pub first_token: Option<u64>,
    pub total: u64,
}

/// What the runtime remembers about how an assistant message ended, so that a
/// retried request (same `client_message_id`) gets the same outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TurnMeta {
    pub usage: Option<Usage>,
    pub latency_ms: Option<Latency>,
    pub finish_reason: Option<FinishReason>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The error code of a failed turn (`llm.timeout`, `llm.unavailable`).
    pub error_code: Option<String>,
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub session_id: Uuid,
    pub seq: i64,
    pub role: Role,
    pub content: String,
    pub author: Option<String>,
    pub status: MessageStatus,
    #[serde(with = "time::wire")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    pub token_count: i64,
    pub client_message_id: Option<String>,
    /// The visible part of the answer's tool calls (`call_id`, `name`,
    /// `status`, `display`): what end users see.
    pub tools: Vec<serde_json::Value>,
    /// The answer's tool calls whole (arguments, results, errors, timing):
    /// only agents see them (the admin API adds them), never in this
    /// struct's wire form.
    #[serde(skip, default)]
    pub tool_calls: Vec<crate::tools::ToolCallRecord>,
    /// The turn this message belongs to (user message and its answer share it).
    #[serde(skip, default)]
    pub turn_id: Option<Uuid>,
    /// How an assistant message ended; internal.
    #[serde(skip, default)]
    pub meta: Option<TurnMeta>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_at_least_one_for_text() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcdefgh"), 2);
        assert_eq!(estimate_tokens("ééééé"), 2);
    }

    #[test]
    fn message_serialises_to_the_wire_shape() {
        let m = Message {
            tool_calls: Vec::new(),
            session_id: Uuid::nil(),
            seq: 3,
            role: Role::Assistant,
            content: "hi".into(),
            author: None,
            status: MessageStatus::Streaming,
            created_at: crate::time::from_millis(0).unwrap(),
            token_count: 1,
            client_message_id: None,
            tools: vec![],
            turn_id: Some(Uuid::nil()),
            meta: None,
        };
        let v = serde_json::to_value(&m).unwrap_or_default();
        let mut keys: Vec<_> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        assert_eq!(
            keys,
            [
                "author",
                "client_message_id",
                "content",
                "created_at",
                "role",
                "seq",
                "session_id",
                "status",
                "token_count",
                "tools"
            ]
        );
        assert_eq!(v["created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["status"], "streaming");
    }
}
