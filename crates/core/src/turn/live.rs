//! Turns in flight on this node: the text streamed so far (the state a late or
//! lagging subscriber catches up from) and the handle that stops a turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a running turn was stopped before the provider finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    /// The client went away and the tenant says `on_disconnect = "abort"`.
    ClientGone = 1,
    /// The session was deleted or closed.
    SessionDeleted = 2,
    /// The node is shutting down and the grace period ran out.
    Shutdown = 3,
    /// A kill switch (the tenant's or the global one) was turned on.
    TenantDisabled = 4,
    /// An agent took the session over.
    Takeover = 5,
}

/// The answer text of one revision, and how many characters it holds.
#[derive(Debug, Default, Clone)]
pub struct LiveText {
    pub revision: u32,
    pub text: String,
    pub chars: u64,
}

/// One turn running on this node.
#[derive(Debug)]
pub struct LiveTurn {
    pub turn_id: Uuid,
    pub session_id: Uuid,
    pub seq: i64,
    pub user_seq: i64,
    /// The tenant it runs for (empty unless set with [`LiveTurn::for_tenant`]).
    tenant_id: String,
    text: Mutex<LiveText>,
    cancel: CancellationToken,
    reason: AtomicU8,
    /// The event the turn ended with, once it has (for a follower that lagged
    /// past it).
    end: std::sync::OnceLock<Arc<crate::events::SessionEvent>>,
}

impl LiveTurn {
    pub fn new(turn_id: Uuid, session_id: Uuid, seq: i64, user_seq: i64) -> Self {
        Self {
            turn_id,
            session_id,
            seq,
            user_seq,
            tenant_id: String::new(),
            text: Mutex::new(LiveText::default()),
            cancel: CancellationToken::new(),
            reason: AtomicU8::new(0),
            end: std::sync::OnceLock::new(),
        }
    }

    /// Records the turn's final event (before it is published).
    pub fn ended_with(&self, event: Arc<crate::events::SessionEvent>) {
        let _ = self.end.set(event);
    }

    /// The turn's final event, once it has ended.
    pub fn end(&self) -> Option<Arc<crate::events::SessionEvent>> {
        self.end.get().cloned()
    }

    /// Names the tenant the turn runs for, so a kill switch can find it.
    pub fn for_tenant(mut self, tenant_id: &str) -> Self {
        tenant_id.clone_into(&mut self.tenant_id);
        self
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Appends text; returns the revision and the offset it starts at.
    pub fn append(&self, delta: &str) -> (u32, u64) {
        let mut t = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        let offset = t.chars;
        t.text.push_str(delta);
        t.chars += delta.chars().count() as u64;
        (t.revision, offset)
    }

    /// Replaces all text with a new revision; returns that revision.
    pub fn replace(&self, text: &str) -> u32 {
        let mut t = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        t.revision += 1;
        t.text = text.to_owned();
        t.chars = text.chars().count() as u64;
        t.revision
    }

    /// A copy of the current text.
    pub fn snapshot(&self) -> LiveText {
        self.text.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The text of `revision` from character `from` on, if that revision is
    /// still the current one.
    pub fn text_from(&self, revision: u32, from: u64) -> Option<String> {
        let t = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        (t.revision == revision).then(|| t.text.chars().skip(from as usize).collect())
    }

    /// Asks the turn to stop; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.cancel.cancel();
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::ClientGone),
            2 => Some(StopReason::SessionDeleted),
            3 => Some(StopReason::Shutdown),
            4 => Some(StopReason::TenantDisabled),
            5 => Some(StopReason::Takeover),
            _ => None,
        }
    }

    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// The turns running on this node, by session (a session runs one at a time).
#[derive(Debug, Default)]
pub struct LiveTurns {
    by_session: Mutex<HashMap<Uuid, Arc<LiveTurn>>>,
}

impl LiveTurns {
    pub fn insert(&self, turn: Arc<LiveTurn>) {
        self.lock().insert(turn.session_id, turn);
    }

    pub fn get(&self, session_id: Uuid) -> Option<Arc<LiveTurn>> {
        self.lock().get(&session_id).cloned()
    }

    /// Removes the entry only if it is still this turn's.
    pub fn remove(&self, turn: &LiveTurn) {
        let mut map = self.lock();
        if map.get(&turn.session_id).is_some_and(|t| t.turn_id == turn.turn_id) {
            map.remove(&turn.session_id);
        }
    }

    pub fn stop_all(&self, reason: StopReason) {
        for turn in self.lock().values() {
            turn.stop(reason);
        }
    }

    /// Stops every turn of the tenant; returns how many were asked to stop.
    pub fn stop_tenant(&self, tenant_id: &str, reason: StopReason) -> usize {
        let mut stopped = 0;
        for turn in self.lock().values().filter(|t| t.tenant_id == tenant_id && !t.is_stopped()) {
            turn.stop(reason);
            stopped += 1;
        }
        stopped
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<LiveTurn>>> {
        self.by_session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_not_bytes() {
        let t = LiveTurn::new(Uuid::nil(), Uuid::nil(), 2, 1);
        assert_eq!(t.append("héllo "), (0, 0));
        assert_eq!(t.append("wörld"), (0, 6));
        assert_eq!(t.text_from(0, 6).as_deref(), Some("wörld"));
        assert_eq!(t.replace("new"), 1);
        assert_eq!(t.text_from(0, 0), None);
        assert_eq!(t.append("!"), (1, 3));
    }

    #[test]
    fn first_stop_reason_wins() {
        let t = LiveTurn::new(Uuid::nil(), Uuid::nil(), 2, 1);
        assert_eq!(t.stop_reason(), None);
        t.stop(StopReason::ClientGone);
        t.stop(StopReason::Shutdown);
        assert_eq!(t.stop_reason(), Some(StopReason::ClientGone));
        assert!(t.is_stopped());
    }

    #[test]
    fn stopping_a_tenant_stops_only_its_turns() {
        let turns = LiveTurns::default();
        let a = Arc::new(LiveTurn::new(Uuid::new_v4(), Uuid::new_v4(), 2, 1).for_tenant("a"));
        let b = Arc::new(LiveTurn::new(Uuid::new_v4(), Uuid::new_v4(), 2, 1).for_tenant("b"));
        turns.insert(a.clone());
        turns.insert(b.clone());
        assert_eq!(turns.stop_tenant("a", StopReason::TenantDisabled), 1);
        assert_eq!(a.stop_reason(), Some(StopReason::TenantDisabled));
        assert!(!b.is_stopped());
        // Already stopped: not counted again.
        assert_eq!(turns.stop_tenant("a", StopReason::TenantDisabled), 0);
    }
}
