//! `switchboard_store_operation_seconds{op}`: how long the store's operations
//! on the turn, subscription and outbox paths take, as their callers wait
//! for them (a SQLite write includes its wait for the one writer). The
//! operations measured are a fixed list, so the series are few; each
//! measurement is two clock reads and a histogram record on a handle
//! registered once, never a lookup by name.
//!
//! The handles are registered at the first operation: the server installs
//! its metrics recorder before it opens the store (without one, as in the
//! CLI, they record nothing).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

/// The series' name.
pub const OPERATION_SECONDS: &str = "switchboard_store_operation_seconds";

/// An operation measured: its `op` label is the `Store` method's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    CreateSession,
    GetSession,
    SessionContext,
    ListMessages,
    MessagesAfter,
    BeginTurn,
    Checkpoint,
    FinishMessage,
    AddAgentMessage,
    EnqueueEvents,
    LeaseDeliveries,
    SettleDeliveries,
    ReapExpiredLeases,
    Ping,
}

impl Op {
    pub(crate) const ALL: [Op; 14] = [
        Op::CreateSession,
        Op::GetSession,
        Op::SessionContext,
        Op::ListMessages,
        Op::MessagesAfter,
        Op::BeginTurn,
        Op::Checkpoint,
        Op::FinishMessage,
        Op::AddAgentMessage,
        Op::EnqueueEvents,
        Op::LeaseDeliveries,
        Op::SettleDeliveries,
        Op::ReapExpiredLeases,
        Op::Ping,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::CreateSession => "create_session",
            Op::GetSession => "get_session",
            Op::SessionContext => "session_context",
            Op::ListMessages => "list_messages",
            Op::MessagesAfter => "messages_after",
            Op::BeginTurn => "begin_turn",
            Op::Checkpoint => "checkpoint",
            Op::FinishMessage => "finish_message",
            Op::AddAgentMessage => "add_agent_message",
            Op::EnqueueEvents => "enqueue_events",
            Op::LeaseDeliveries => "lease_deliveries",
            Op::SettleDeliveries => "settle_deliveries",
            Op::ReapExpiredLeases => "reap_expired_leases",
            Op::Ping => "ping",
        }
    }
}

/// Registers the series of every operation (at zero), so they are there
/// before the first operation; call it once the recorder is installed.
pub fn register_metrics() {
    histograms();
}

/// The `op` labels of the series, for whoever documents or checks them.
pub fn operations() -> impl Iterator<Item = &'static str> {
    Op::ALL.into_iter().map(Op::as_str)
}

fn histograms() -> &'static [metrics::Histogram; 14] {
    static HANDLES: OnceLock<[metrics::Histogram; 14]> = OnceLock::new();
    HANDLES.get_or_init(|| Op::ALL.map(|op| metrics::histogram!(OPERATION_SECONDS, "op" => op.as_str())))
}

/// Runs `work`, recording how long it took under `op` (whatever its outcome).
pub(crate) async fn timed<T>(op: Op, work: impl Future<Output = T>) -> T {
    let handles = histograms();
    let started = Instant::now();
    let out = work.await;
    handles[op as usize].record(started.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_own_slot_and_label() {
        for (i, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, i, "{op:?}");
        }
        let labels: std::collections::HashSet<_> = operations().collect();
        assert_eq!(labels.len(), Op::ALL.len());
    }
}
