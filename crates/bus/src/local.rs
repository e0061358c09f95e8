//! `LocalBus`: fan-out of session events within one process. It is the whole
//! bus of a single node and the local half of every cluster backend, which
//! feeds it the frames other nodes publish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use switchboard_core::bus::{Bus, EventReceiver, Notice, NoticeReceiver};
use switchboard_core::events::SessionEvent;
use tokio::sync::broadcast;
use uuid::Uuid;

/// How many events a subscriber may fall behind before it is told it lagged
/// (it then catches up from state; see `EventReceiver`). Every watched
/// session holds this many slots (32 bytes each) for as long as it has a
/// subscriber, idle or not, so it is kept small: 32 holds a whole fast
/// answer's burst (its message, typing, start, a score of deltas and its
/// end); a subscriber further behind loses nothing, it only catches up from
/// the store and the live text instead of the channel.
const CHANNEL_CAPACITY: usize = 32;

/// How many notices a node may fall behind (they are rare).
const NOTICE_CAPACITY: usize = 256;

/// In-process fan-out: one broadcast channel per session that has subscribers.
pub struct LocalBus {
    topics: Mutex<Topics>,
    notices: broadcast::Sender<Notice>,
}

#[derive(Default)]
struct Topics {
    by_session: HashMap<Uuid, broadcast::Sender<Arc<SessionEvent>>>,
    /// Channels whose subscribers all left are dropped when the map reaches
    /// this size (then it doubles): amortised, so a session nobody watches
    /// any more costs nothing for long even if it never publishes again.
    sweep_at: usize,
}

impl Topics {
    fn sweep_if_due(&mut self) {
        if self.by_session.len() >= self.sweep_at {
            self.by_session.retain(|_, tx| tx.receiver_count() > 0);
            self.sweep_at = (self.by_session.len() * 2).max(MIN_SWEEP_AT);
        }
    }
}

/// The smallest map size that triggers a sweep.
const MIN_SWEEP_AT: usize = 64;

impl Default for LocalBus {
    fn default() -> Self {
        let topics = Topics { by_session: HashMap::new(), sweep_at: MIN_SWEEP_AT };
        Self { topics: Mutex::new(topics), notices: broadcast::channel(NOTICE_CAPACITY).0 }
    }
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of sessions with a channel (for tests and metrics).
    pub fn topic_count(&self) -> usize {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner).by_session.len()
    }

    /// Whether the session has a channel here: a cluster backend skips
    /// decoding frames of sessions nobody on this node watches.
    pub(crate) fn has_channel(&self, session_id: Uuid) -> bool {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner).by_session.contains_key(&session_id)
    }
}

impl Bus for LocalBus {
    fn publish(&self, session_id: Uuid, event: Arc<SessionEvent>) {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = topics.by_session.get(&session_id) {
            // A send error means every receiver is gone: drop the channel so
            // sessions nobody watches cost nothing.
            if tx.send(event).is_err() {
                topics.by_session.remove(&session_id);
            }
        }
    }

    fn subscribe(&self, session_id: Uuid) -> EventReceiver {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        match topics.by_session.get(&session_id) {
            Some(tx) => tx.subscribe(),
            None => {
                topics.sweep_if_due();
                let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
                topics.by_session.insert(session_id, tx);
                rx
            }
        }
    }

    fn notify(&self, notice: Notice) {
        // No receiver is not an error: nobody needed to hear it.
        let _ = self.notices.send(notice);
    }

    fn notices(&self) -> NoticeReceiver {
        self.notices.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::events::Who;

    fn typing() -> Arc<SessionEvent> {
        Arc::new(SessionEvent::Typing { who: Who::Assistant, active: true })
    }

    #[tokio::test]
    async fn subscribers_of_a_session_get_its_events_in_order() {
        let bus = LocalBus::new();
        let s = Uuid::new_v4();
        let mut a = bus.subscribe(s);
        let mut b = bus.subscribe(s);
        let mut other = bus.subscribe(Uuid::new_v4());
        bus.publish(s, typing());
        bus.publish(s, Arc::new(SessionEvent::ResumeCursor { last_event_id: 1, latest_seq: 2 }));
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.recv().await.unwrap().kind(), "typing");
            assert_eq!(rx.recv().await.unwrap().kind(), "resume_cursor");
        }
        assert!(other.try_recv().is_err());
    }

    #[test]
    fn a_session_without_subscribers_leaves_no_channel() {
        let bus = LocalBus::new();
        let s = Uuid::new_v4();
        drop(bus.subscribe(s));
        bus.publish(s, typing());
        assert_eq!(bus.topic_count(), 0);
        bus.publish(Uuid::new_v4(), typing());
        assert_eq!(bus.topic_count(), 0);
    }

    #[test]
    fn channels_left_by_their_subscribers_are_swept_without_a_publish() {
        let bus = LocalBus::new();
        let kept: Vec<_> = (0..10).map(|_| bus.subscribe(Uuid::new_v4())).collect();
        for _ in 0..1000 {
            drop(bus.subscribe(Uuid::new_v4()));
        }
        assert!(bus.topic_count() < 10 + MIN_SWEEP_AT, "{} channels", bus.topic_count());
        assert!(kept.iter().all(|rx| rx.is_empty()));
    }
}
