//! The `Bus` port: fan-out of a session's events to every subscriber. The
//! in-process implementation lives in `switchboard-bus`; cluster ones (Redis,
//! NATS) bridge nodes behind the same trait.

use crate::events::SessionEvent;
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

/// A subscriber's end: events of one session, in publication order. A
/// subscriber that falls too far behind gets `Lagged` and must catch up from
/// state (the live turn's text, or the store).
pub type EventReceiver = broadcast::Receiver<Arc<SessionEvent>>;

pub trait Bus: Send + Sync + 'static {
    /// Delivers the event to every current subscriber of the session.
    fn publish(&self, session_id: Uuid, event: Arc<SessionEvent>);
    /// Starts receiving the session's events published from now on.
    fn subscribe(&self, session_id: Uuid) -> EventReceiver;
}
