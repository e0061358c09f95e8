//! A hook for whoever counts turns (the server's metrics), so the engine
//! reports what happened without knowing how it is counted or exported.

use crate::error::ErrorCode;
use crate::model::MessageStatus;
use std::time::Duration;

/// Told when turns start and end. Calls come from the turn's own task, so an
/// implementation must be quick and must not block.
pub trait TurnObserver: Send + Sync + std::fmt::Debug + 'static {
    /// A turn started: its user message and answer placeholder are committed.
    fn started(&self, tenant_id: &str) {
        let _ = tenant_id;
    }

    /// A turn's final state was written.
    fn finished(&self, report: &TurnReport<'_>) {
        let _ = report;
    }

    /// A call to `provider` failed before its first token, or was not made
    /// because its circuit is open; `then` is what the turn did about it.
    fn provider_failed(&self, provider: &str, then: AfterFailure) {
        let _ = (provider, then);
    }

    /// A tool call ended (`done` or `error`) after `took`; a call refused
    /// before it ran reports `refused` and no time.
    fn tool_finished(&self, tool: &str, outcome: &'static str, took: Option<std::time::Duration>) {
        let _ = (tool, outcome, took);
    }

    /// Provider `from` failed before its first token and the turn asks its
    /// next fallback, `to`, instead.
    fn fell_back(&self, from: &str, to: &str) {
        let _ = (from, to);
    }

    /// A streaming answer's checkpoint was written (once a period per
    /// running turn, not per delta).
    fn checkpointed(&self, outcome: Checkpointed) {
        let _ = outcome;
    }
}

/// How a checkpoint of a streaming answer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointed {
    /// Stored, and the answer's lease renewed.
    Written,
    /// The answer was no longer streaming (another node or the reaper ended it).
    Stale,
    /// The store failed; the next period tries again.
    Failed,
}

impl Checkpointed {
    pub const ALL: [Self; 3] = [Self::Written, Self::Stale, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Stale => "stale",
            Self::Failed => "failed",
        }
    }
}

/// What a turn did after a provider failed before its first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Tried the same provider again.
    Retried,
    /// Gave the provider up for this turn (next fallback, or the turn failed).
    GaveUp,
    /// Did not call it: its circuit is open.
    CircuitOpen,
}

impl AfterFailure {
    pub const ALL: [Self; 3] = [Self::Retried, Self::GaveUp, Self::CircuitOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retried => "retried",
            Self::GaveUp => "gave_up",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// How one turn ended.
#[derive(Debug, Clone)]
pub struct TurnReport<'a> {
    pub tenant_id: &'a str,
    /// The provider kind that answered (`demo`, `openai`, …).
    pub provider: &'a str,
    /// The model that answered (from the configuration: a bounded set).
    pub model: &'a str,
    /// Tokens of every round of the turn.
    pub usage: crate::model::Usage,
    /// `complete`, `aborted`, `error` or `interrupted`.
    pub status: MessageStatus,
    /// Why it failed or was stopped, when it carries a code.
    pub error: Option<ErrorCode>,
    pub first_token: Option<Duration>,
    pub total: Duration,
}
