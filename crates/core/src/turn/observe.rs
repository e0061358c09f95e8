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
}

/// How one turn ended.
#[derive(Debug, Clone)]
pub struct TurnReport<'a> {
    pub tenant_id: &'a str,
    /// The provider kind that answered (`demo`, `openai`, …).
    pub provider: &'a str,
    /// `complete`, `aborted`, `error` or `interrupted`.
    pub status: MessageStatus,
    /// Why it failed or was stopped, when it carries a code.
    pub error: Option<ErrorCode>,
    pub first_token: Option<Duration>,
    pub total: Duration,
}
