//! The `Provider` port: a model vendor that streams an answer. Clients for
//! real vendors live in `switchboard-providers`; the turn engine applies the
//! first-token, idle and total timeouts around whatever a provider streams.

use crate::model::{FinishReason, Role, Usage};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use std::time::Duration;

/// One earlier message as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    pub role: Role,
    pub content: String,
}

/// What a turn asks of a provider.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub system_prompt: Option<String>,
    /// Oldest first; the last one is the user message of this turn. Shared,
    /// so retries and fallbacks resend it without copying.
    pub history: std::sync::Arc<[HistoryMessage]>,
    /// The session, for providers that keep their own conversation state.
    pub session_id: uuid::Uuid,
    /// The caller (`visitor:<uuid>` or `user:<sub>`).
    pub subject: String,
    /// The vendor's own id of this session's conversation, learned from an
    /// earlier turn ([`ProviderEvent::Conversation`]); only for providers
    /// with a [`Provider::conversation_key`].
    pub conversation_id: Option<String>,
    /// The tools offered and this turn's rounds of calls so far (empty for
    /// providers that run no tools of ours).
    pub tools: crate::tools::ToolContext,
    /// The trace id of the request that started the turn, sent upstream as
    /// `traceparent` ([`crate::trace`]); empty for none.
    pub trace_id: String,
}

/// One piece of a provider's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// More answer text.
    Delta(String),
    /// The provider replaced all text so far (e.g. moderation).
    Replace(String),
    /// The provider's own token counts.
    Usage(Usage),
    /// Why the answer ended; the stream may still carry usage after it.
    Finish(FinishReason),
    /// The vendor's id of the conversation (Dify keeps history by it); the
    /// engine stores it for the session's next turn.
    Conversation(String),
    /// A whole tool call the model made; the stream then ends with
    /// [`FinishReason::ToolCalls`].
    ToolCall(crate::tools::ToolCall),
    /// A tool the vendor runs itself (Dify's agent tools), reported as it
    /// goes: shown to the visitor and kept with the answer, never run here.
    RemoteTool(crate::tools::RemoteTool),
}

/// Why a provider failed. Messages are for the log only (they may hold
/// upstream details); clients see `llm.unavailable` or `llm.timeout`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The vendor could not be reached: nothing was sent or answered.
    #[error("provider unreachable: {message}")]
    Connect { message: String, timed_out: bool },
    /// The vendor refused the request with this HTTP status. `should_retry`
    /// is the vendor's own verdict when it gave one (OpenAI's
    /// `x-should-retry`, or an error it knows will repeat).
    #[error("provider refused with HTTP {status}: {message}")]
    Refused { status: u16, retry_after: Option<Duration>, should_retry: Option<bool>, message: String },
    /// The vendor reported a passing failure inside its stream (overloaded,
    /// server error): worth another attempt if no text was shown yet.
    #[error("provider failed transiently: {0}")]
    Transient(String),
    /// The vendor failed otherwise (an error it will repeat, a broken or
    /// unreadable stream).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The vendor took too long (first token, idle gap or total).
    #[error("provider timed out: {0}")]
    Timeout(String),
}

impl ProviderError {
    /// Whether another attempt may succeed (SPEC §13: connect errors, 429,
    /// 5xx; the vendor's own "overloaded" inside a stream).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Transient(_) => true,
            Self::Refused { should_retry: Some(verdict), .. } => *verdict,
            Self::Refused { status, .. } => *status == 429 || *status >= 500,
            Self::Unavailable(_) | Self::Timeout(_) => false,
        }
    }

    /// How long the vendor asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the failure speaks of the vendor's health (what a circuit
    /// breaker counts) rather than of this one request: a refusal of the
    /// request itself (400, 404, 413, 422…) does not.
    pub fn is_health_failure(&self) -> bool {
        match self {
            Self::Refused { status, .. } => matches!(status, 401 | 403 | 408 | 429) || *status >= 500,
            Self::Connect { .. } | Self::Transient(_) | Self::Unavailable(_) | Self::Timeout(_) => true,
        }
    }

    /// Whether the failure was slowness rather than refusal (`llm.timeout`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Connect { timed_out: true, .. })
    }
}

pub type ProviderStream = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider kind, e.g. `openai` (reported in `stream_end`).
    fn kind(&self) -> &str;
    /// The model name (reported in `stream_end`).
    fn model(&self) -> &str;
    /// The key under which the session keeps this vendor's conversation id
    /// (see [`ProviderEvent::Conversation`]); `None` (the default) for
    /// vendors that take the history with every request.
    fn conversation_key(&self) -> Option<&str> {
        None
    }
    /// Starts an answer. Errors before the first byte of the answer are
    /// returned here; later ones come through the stream.
    async fn stream(&self, request: ChatRequest) -> Result<ProviderStream, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, should_retry: Option<bool>) -> ProviderError {
        ProviderError::Refused { status, retry_after: None, should_retry, message: String::new() }
    }

    #[test]
    fn what_is_worth_another_attempt() {
        assert!(ProviderError::Connect { message: String::new(), timed_out: true }.retryable());
        assert!(ProviderError::Transient(String::new()).retryable());
        assert!(
            refused(429, None).retryable()
                && refused(500, None).retryable()
                && refused(529, None).retryable()
        );
        assert!(!refused(400, None).retryable() && !refused(401, None).retryable());
        // The vendor's own verdict wins either way.
        assert!(!refused(503, Some(false)).retryable());
        assert!(refused(409, Some(true)).retryable());
        assert!(!ProviderError::Unavailable(String::new()).retryable());
        assert!(!ProviderError::Timeout(String::new()).retryable());
    }

    #[test]
    fn a_refused_request_says_nothing_of_the_vendors_health() {
        for status in [400, 404, 413, 422] {
            assert!(!refused(status, None).is_health_failure(), "{status}");
        }
        for status in [401, 403, 408, 429, 500, 529] {
            assert!(refused(status, None).is_health_failure(), "{status}");
        }
        assert!(ProviderError::Transient(String::new()).is_health_failure());
    }

    #[test]
    fn slowness_is_a_timeout() {
        assert!(ProviderError::Timeout(String::new()).is_timeout());
        assert!(ProviderError::Connect { message: String::new(), timed_out: true }.is_timeout());
        assert!(!ProviderError::Connect { message: String::new(), timed_out: false }.is_timeout());
        assert!(!refused(504, None).is_timeout());
    }
}
