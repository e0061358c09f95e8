//! The `Bus` port: fan-out of a session's events to every subscriber, on this
//! node and (with a cluster backend) on every other node, plus a few
//! cluster-wide notices. The in-process implementation and the Redis and NATS
//! ones live in `switchboard-bus`.
//!
//! Delivery is at most once and, per publishing node, in order: a subscriber
//! that misses events (it lagged, or a cluster link dropped) recovers from
//! state, never from the bus — durable events from the store, the live text
//! of a running turn from a `SessionEvent::Snapshot`.

use crate::events::SessionEvent;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

/// A subscriber's end: events of one session, in publication order. A
/// subscriber that falls too far behind gets `Lagged` and must catch up from
/// state (the live turn's text, or the store).
pub type EventReceiver = broadcast::Receiver<Arc<SessionEvent>>;

/// A receiver of cluster-wide notices.
pub type NoticeReceiver = broadcast::Receiver<Notice>;

/// Something every node must hear about that is not one session's event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// A subscriber wants the live text of the session's running turn: the
    /// node running it publishes a `SessionEvent::Snapshot` to the session.
    SnapshotWanted { session_id: Uuid },
    /// Tenants changed (a kill switch flipped, a tenant was edited): reload
    /// them now instead of at the next poll.
    TenantsChanged,
    /// An agent is taking the session over: the node running its answer
    /// stops it (kept as `aborted`), so the takeover can be written after it.
    TakenOver { session_id: Uuid },
    /// The session is being closed or deleted: the node running its answer
    /// stops it (kept as `aborted`), so the close or the wipe comes after
    /// the answer's end (see `TurnEngine::stop_answer`).
    Closing { session_id: Uuid },
}

pub trait Bus: Send + Sync + 'static {
    /// Delivers the event to every current subscriber of the session, on
    /// every node. Never blocks: a cluster backend sends in the background,
    /// in publication order.
    fn publish(&self, session_id: Uuid, event: Arc<SessionEvent>);
    /// Starts receiving the session's events published from now on.
    fn subscribe(&self, session_id: Uuid) -> EventReceiver;
    /// Tells every node, this one included.
    fn notify(&self, notice: Notice);
    /// Starts receiving notices sent from now on.
    fn notices(&self) -> NoticeReceiver;
}
