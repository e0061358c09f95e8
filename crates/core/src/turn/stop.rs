//! The one primitive under a session's lifecycle (`crate::lifecycle`): stop
//! the session's answer wherever it runs and wait for its end. On this node
//! the turn is stopped directly; on another, through a notice over the bus
//! (`Notice::TakenOver`, `Notice::Closing`) that the node running it obeys
//! (`snapshots::answer`). The wait is for the answer's end event, which a
//! turn publishes only after its final state is stored: once it is seen, the
//! answer writes nothing more. No timer polls; only the deadline bounds it.
//! What happens after the answer's end is the caller's business, not this.

use super::live::{LiveTurn, StopReason};
use super::TurnEngine;
use crate::bus::{EventReceiver, Notice};
use crate::events::SessionEvent;
use crate::model::{Message, MessageStatus, Role};
use crate::store::StoreError;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use uuid::Uuid;

/// What stopping a session's answer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// No answer was streaming.
    Nothing,
    /// The answer was stopped; its final state is stored and published.
    Ended,
    /// The answer had not ended by the deadline: its node did not answer
    /// (it may be gone; then its lease runs out and any node's reaper marks
    /// it `interrupted`).
    StillRunning,
}

/// The answer being stopped: its turn, its seq, and the turn itself when it
/// runs on this node.
struct Answer {
    turn_id: Option<Uuid>,
    seq: i64,
    here: Option<Arc<LiveTurn>>,
}

impl TurnEngine {
    /// Stops the session's streaming answer, if any, wherever it runs (kept
    /// as `aborted`; `reason` is `Takeover`, or `SessionDeleted` for a close
    /// or a delete), and waits until `deadline` for its end.
    pub async fn stop_answer(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        reason: StopReason,
        deadline: Instant,
    ) -> Result<Stopped, StoreError> {
        // Subscribed before looking, so the end cannot slip past: a turn
        // found here publishes its end after leaving the registry, and one
        // the store shows streaming publishes it after storing its end.
        let mut events = self.inner.bus.subscribe(session_id);
        let Some(answer) = self.streaming_answer(tenant_id, session_id).await? else {
            return Ok(Stopped::Nothing);
        };
        match &answer.here {
            Some(turn) => turn.stop(reason),
            None => self.inner.bus.notify(notice(reason, session_id)),
        }
        let end = self.until_end(&mut events, tenant_id, session_id, &answer);
        match tokio::time::timeout_at(deadline, end).await {
            Ok(ended) => ended.map(|()| Stopped::Ended),
            Err(_) => Ok(Stopped::StillRunning),
        }
    }

    /// The session's streaming answer: the turn running here, else the
    /// streaming message the store holds (the newest one: while an answer
    /// streams nothing else takes a seq).
    async fn streaming_answer(
        &self,
        tenant_id: &str,
        session_id: Uuid,
    ) -> Result<Option<Answer>, StoreError> {
        if let Some(turn) = self.live_turn(session_id) {
            return Ok(Some(Answer { turn_id: Some(turn.turn_id), seq: turn.seq, here: Some(turn) }));
        }
        let newest = self.inner.store.list_messages(tenant_id, session_id, 1, None).await?;
        let Some(streaming) = newest.into_iter().find(|m| m.status == MessageStatus::Streaming) else {
            return Ok(None);
        };
        // A turn this node is still registering is live a moment later.
        if let Some(turn_id) = streaming.turn_id {
            self.wait_started(turn_id).await;
        }
        let here = self.live_turn(session_id).filter(|t| t.seq == streaming.seq);
        Ok(Some(Answer { turn_id: streaming.turn_id, seq: streaming.seq, here }))
    }

    /// Waits for the answer's end event. After a lag (events were missed,
    /// the end perhaps among them) the turn itself, or the store, says
    /// whether it has ended.
    async fn until_end(
        &self,
        events: &mut EventReceiver,
        tenant_id: &str,
        session_id: Uuid,
        answer: &Answer,
    ) -> Result<(), StoreError> {
        loop {
            match events.recv().await {
                Ok(event) if answer.ended_by(&event) => return Ok(()),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    if self.has_ended(tenant_id, session_id, answer).await? {
                        return Ok(());
                    }
                }
                // No bus any more (shutting down): only the deadline ends the wait.
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    async fn has_ended(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        answer: &Answer,
    ) -> Result<bool, StoreError> {
        if let Some(turn) = &answer.here {
            return Ok(turn.end().is_some());
        }
        let stored = self.inner.store.list_messages(tenant_id, session_id, 1, Some(answer.seq + 1)).await?;
        Ok(!stored.first().is_some_and(|m| m.seq == answer.seq && m.status == MessageStatus::Streaming))
    }
}

impl Answer {
    /// Whether `event` ends this answer: its `stream_end`, its `error`, or
    /// its message in a final state (stopped by a shutdown, or reaped).
    fn ended_by(&self, event: &SessionEvent) -> bool {
        match event {
            SessionEvent::StreamEnd(end) => end.seq == self.seq,
            SessionEvent::Error { turn_id: Some(id), .. } => self.turn_id == Some(*id),
            SessionEvent::Message(m) => self.is_final(m),
            _ => false,
        }
    }

    fn is_final(&self, m: &Message) -> bool {
        m.seq == self.seq && m.role == Role::Assistant && m.status != MessageStatus::Streaming
    }
}

/// What tells the node running the answer to stop it. The notices predate
/// this primitive and stay as they are on the wire (nodes of two versions
/// may share a bus): a takeover's, and the close's, which a delete shares
/// (both stop the answer as `aborted`).
fn notice(reason: StopReason, session_id: Uuid) -> Notice {
    match reason {
        StopReason::Takeover => Notice::TakenOver { session_id },
        _ => Notice::Closing { session_id },
    }
}
