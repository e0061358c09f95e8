//! The `Provider` port: a model vendor that streams an answer. Clients for
//! real vendors live in `switchboard-providers`; the turn engine applies the
//! first-token, idle and total timeouts around whatever a provider streams.

use crate::model::{FinishReason, Role, Usage};
use async_trait::async_trait;
use futures_util::stream::BoxStream;

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
    /// Oldest first; the last one is the user message of this turn.
    pub history: Vec<HistoryMessage>,
    /// The session, for providers that keep their own conversation state.
    pub session_id: uuid::Uuid,
    /// The caller (`visitor:<uuid>` or `user:<sub>`).
    pub subject: String,
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
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The vendor could not be reached, refused, failed, or broke off the
    /// stream. The message is for the log only (it may hold upstream details).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The vendor took too long (connect, first token, idle gap or total).
    #[error("provider timed out: {0}")]
    Timeout(String),
}

pub type ProviderStream = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider kind, e.g. `openai` (reported in `stream_end`).
    fn kind(&self) -> &str;
    /// The model name (reported in `stream_end`).
    fn model(&self) -> &str;
    /// Starts an answer. Errors before the first byte of the answer are
    /// returned here; later ones come through the stream.
    async fn stream(&self, request: ChatRequest) -> Result<ProviderStream, ProviderError>;
}
