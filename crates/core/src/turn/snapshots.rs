//! Answers `Notice::SnapshotWanted`: when a subscriber (usually on another
//! node) needs the live text of a turn running here, this node publishes it
//! to the session as a `SessionEvent::Snapshot`, in order with the turn's
//! deltas, so the subscriber can continue from it with no gap. Also stops
//! the answer running here when another node takes its session over
//! (`Notice::TakenOver`), closes or deletes it (`Notice::Closing`): the
//! remote half of `TurnEngine::stop_answer`.

use super::Inner;
use crate::bus::Notice;
use crate::events::SessionEvent;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

pub(super) async fn answer(inner: Arc<Inner>) {
    let mut notices = inner.bus.notices();
    loop {
        let notice = tokio::select! {
            _ = inner.stop.cancelled() => return,
            n = notices.recv() => n,
        };
        match notice {
            Ok(Notice::SnapshotWanted { session_id }) => {
                if let Some(turn) = inner.live.get(session_id) {
                    let snap = turn.snapshot();
                    let event = SessionEvent::Snapshot {
                        turn_id: turn.turn_id,
                        seq: turn.seq,
                        revision: snap.revision,
                        text: snap.text,
                    };
                    inner.bus.publish(session_id, Arc::new(event));
                }
            }
            Ok(Notice::TakenOver { session_id }) => {
                if let Some(turn) = inner.live.get(session_id) {
                    turn.stop(super::StopReason::Takeover);
                }
            }
            Ok(Notice::Closing { session_id }) => {
                if let Some(turn) = inner.live.get(session_id) {
                    turn.stop(super::StopReason::SessionDeleted);
                }
            }
            Ok(_) => {}
            // A missed request is retried by its subscriber.
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
