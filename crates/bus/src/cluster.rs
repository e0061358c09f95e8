//! What the Redis and NATS buses share: local delivery, the one background
//! sender per node, the frame format and the routing of frames that arrive
//! from other nodes. The backends add only their connections.
//!
//! **Why one pattern subscription per node.** `Bus::subscribe` is
//! synchronous and must not miss an event published right after it returns.
//! A per-session remote subscription would be set up asynchronously, after
//! `subscribe` returned, and events published in between would be lost. So
//! every node subscribes once, inside `connect`, to the traffic of all
//! sessions and drops frames of sessions it has no subscriber for; the price
//! is that every node receives every session's traffic.
//!
//! Delivery is at most once and in order per publishing node: one sender
//! task per node publishes in publication order over one connection, and a
//! node ignores its own frames (its subscribers got them locally at once).
//!
//! Event frames carry the publisher's wall-clock time (`sent_us`, optional:
//! nodes that do not send it and nodes that ignore it still understand each
//! other), so a receiving node can measure publish-to-deliver lag. Clocks of
//! two machines differ: the lag is as good as their clock synchronisation,
//! and a negative one counts as zero.
//!
//! The backends' tasks are plain spawns, not tracked for shutdown: they hold
//! nothing that must finish (delivery is at most once), and they end when
//! the bus is dropped.

use crate::local::LocalBus;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use switchboard_core::bus::{Bus, EventReceiver, Notice, NoticeReceiver};
use switchboard_core::events::SessionEvent;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

/// Frames waiting for the sender task. Deep enough for bursts of deltas
/// while a round trip is in flight; a full queue means the link is down or
/// far too slow, and dropping is then the at-most-once promise.
pub(crate) const OUTBOX_CAPACITY: usize = 8192;

/// At most one "dropped frames" warning per this interval.
const DROP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Something this node publishes to the others.
pub(crate) enum Outbound {
    Event {
        session_id: Uuid,
        event: Arc<SessionEvent>,
        /// When it was published, in microseconds since the Unix epoch.
        sent_us: u64,
    },
    Notice(Notice),
    /// Answered once everything queued before it has been handed to the
    /// server (for a short-lived sender that must not exit before that).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where a frame goes: one session's channel, or the notice channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    Session(Uuid),
    Notice,
}

/// The channel (Redis) or subject (NATS) names of one prefix: `{p}:s:{id}`
/// and `{p}:notice`, with the backend's separator.
#[derive(Clone)]
pub(crate) struct Names {
    prefix: Arc<str>,
    sep: char,
}

impl Names {
    pub(crate) fn new(prefix: &str, sep: char) -> Self {
        Self { prefix: prefix.into(), sep }
    }

    pub(crate) fn of(&self, topic: Topic) -> String {
        let (p, s) = (&self.prefix, self.sep);
        match topic {
            Topic::Session(id) => format!("{p}{s}s{s}{id}"),
            Topic::Notice => format!("{p}{s}notice"),
        }
    }

    /// Another name under the prefix.
    pub(crate) fn named(&self, name: &str) -> String {
        format!("{}{}{name}", self.prefix, self.sep)
    }

    /// The pattern (Redis) or wildcard (NATS) of every session's name.
    pub(crate) fn all_sessions(&self) -> String {
        let (p, s) = (&self.prefix, self.sep);
        format!("{p}{s}s{s}*")
    }
}

#[derive(Serialize)]
struct EventFrameOut<'a> {
    node: &'a str,
    session_id: Uuid,
    event: &'a SessionEvent,
    sent_us: u64,
}

/// An event frame read in two steps: the head first, so frames from this
/// node or for sessions nobody here watches cost no event decoding.
#[derive(Deserialize)]
struct EventFrameIn<'a> {
    #[serde(borrow)]
    node: Cow<'a, str>,
    session_id: Uuid,
    #[serde(borrow)]
    event: &'a RawValue,
    /// Absent in frames of nodes that predate it.
    #[serde(default)]
    sent_us: Option<u64>,
}

#[derive(Serialize)]
struct NoticeFrameOut<'a> {
    node: &'a str,
    notice: &'a Notice,
}

#[derive(Deserialize)]
struct NoticeFrameIn<'a> {
    #[serde(borrow)]
    node: Cow<'a, str>,
    notice: Notice,
}

impl Outbound {
    /// The frame's topic and its JSON bytes (`None` for a flush, which is
    /// not a frame).
    pub(crate) fn encode(&self, node: &str) -> Result<Option<(Topic, Vec<u8>)>, serde_json::Error> {
        Ok(Some(match self {
            Self::Event { session_id, event, sent_us } => {
                let frame = EventFrameOut { node, session_id: *session_id, event, sent_us: *sent_us };
                (Topic::Session(*session_id), serde_json::to_vec(&frame)?)
            }
            Self::Notice(notice) => (Topic::Notice, serde_json::to_vec(&NoticeFrameOut { node, notice })?),
            Self::Flush(_) => return Ok(None),
        }))
    }
}

/// Routes frames from the wire to this node's local subscribers.
#[derive(Clone)]
pub(crate) struct Inbox {
    local: Arc<LocalBus>,
    node: Arc<str>,
    /// `switchboard_bus_lag_seconds{bus}`, registered once.
    lag: metrics::Histogram,
}

impl Inbox {
    /// Delivers an event frame to the session's local subscribers, if any.
    pub(crate) fn event_frame(&self, payload: &[u8]) {
        let frame: EventFrameIn<'_> = match serde_json::from_slice(payload) {
            Ok(f) => f,
            Err(e) => return tracing::debug!(error = %e, "bus: dropped a malformed event frame"),
        };
        if *frame.node == *self.node || !self.local.has_channel(frame.session_id) {
            return;
        }
        match serde_json::from_str::<SessionEvent>(frame.event.get()) {
            Ok(event) => {
                if let Some(sent) = frame.sent_us.filter(|&t| t > 0) {
                    self.lag.record(now_us().saturating_sub(sent) as f64 / 1e6);
                }
                self.local.publish(frame.session_id, Arc::new(event))
            }
            Err(e) => tracing::debug!(error = %e, "bus: dropped an event frame with an unknown event"),
        }
    }

    /// Delivers a notice frame from another node.
    pub(crate) fn notice_frame(&self, payload: &[u8]) {
        match serde_json::from_slice::<NoticeFrameIn<'_>>(payload) {
            Ok(frame) if *frame.node == *self.node => {}
            Ok(frame) => self.local.notify(frame.notice),
            Err(e) => tracing::debug!(error = %e, "bus: dropped a malformed notice frame"),
        }
    }
}

/// The `Bus` half every cluster backend shares: local delivery now, the
/// cluster through the sender task. Dropping it stops the backend's tasks.
pub(crate) struct ClusterBus {
    local: Arc<LocalBus>,
    outbox: mpsc::Sender<Outbound>,
    dropped: DropWarning,
    _stop: DropGuard,
}

/// The pieces a backend needs to start its tasks.
pub(crate) struct Wiring {
    pub inbox: Inbox,
    pub outbox: mpsc::Receiver<Outbound>,
    /// Cancelled when the bus is dropped.
    pub stop: CancellationToken,
}

impl ClusterBus {
    /// Checks what every backend needs before it connects.
    pub(crate) fn check_node_id(node: &str) -> Result<(), crate::BusError> {
        match node.is_empty() {
            true => Err(crate::BusError::MissingNodeId),
            false => Ok(()),
        }
    }

    /// A cluster bus of `node` over the backend named `bus` (`redis`,
    /// `nats`: the label of its series).
    pub(crate) fn new(node: &str, bus: &'static str) -> (Self, Wiring) {
        let local = Arc::new(LocalBus::new());
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let stop = CancellationToken::new();
        let lag = metrics::histogram!(LAG_SECONDS, "bus" => bus);
        let inbox = Inbox { local: local.clone(), node: node.into(), lag };
        let bus =
            Self { local, outbox: tx, dropped: DropWarning::default(), _stop: stop.clone().drop_guard() };
        (bus, Wiring { inbox, outbox: rx, stop })
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.local.topic_count()
    }

    /// Waits, at most `within`, until everything published or notified so
    /// far has been handed to the server; false if that did not happen.
    pub(crate) async fn flush(&self, within: std::time::Duration) -> bool {
        let (done, flushed) = tokio::sync::oneshot::channel();
        let queued = tokio::time::timeout(within, self.outbox.send(Outbound::Flush(done))).await;
        matches!(queued, Ok(Ok(()))) && matches!(tokio::time::timeout(within, flushed).await, Ok(Ok(())))
    }

    fn send(&self, out: Outbound) {
        if let Err(e) = self.outbox.try_send(out) {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the cluster send queue is full",
                mpsc::error::TrySendError::Closed(_) => "the cluster sender has stopped",
            };
            self.dropped.note(why);
        }
    }
}

impl Bus for ClusterBus {
    fn publish(&self, session_id: Uuid, event: Arc<SessionEvent>) {
        self.local.publish(session_id, event.clone());
        self.send(Outbound::Event { session_id, event, sent_us: now_us() });
    }

    fn subscribe(&self, session_id: Uuid) -> EventReceiver {
        self.local.subscribe(session_id)
    }

    fn notify(&self, notice: Notice) {
        self.local.notify(notice.clone());
        self.send(Outbound::Notice(notice));
    }

    fn notices(&self) -> NoticeReceiver {
        self.local.notices()
    }
}

/// Counts frames dropped on the way out and warns at most every
/// `DROP_WARNING_EVERY`, so an outage does not flood the log.
#[derive(Default)]
struct DropWarning {
    dropped: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl DropWarning {
    fn note(&self, why: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= DROP_WARNING_EVERY) {
            *last = Some(Instant::now());
            drop(last);
            self.dropped.fetch_sub(dropped, Ordering::Relaxed);
            tracing::warn!(dropped, "bus: {why}; frames to other nodes were dropped");
        }
    }
}

/// Publish-to-deliver lag of event frames from other nodes, by backend.
pub(crate) const LAG_SECONDS: &str = "switchboard_bus_lag_seconds";
/// Links to the cluster's server restored after an outage, by backend.
pub(crate) const RECONNECTS_TOTAL: &str = "switchboard_bus_reconnects_total";

/// Wall-clock microseconds since the Unix epoch (0 for a clock before it).
fn now_us() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The state of one link to the cluster, so an outage is logged once when it
/// starts and once when it ends, not once per failed attempt; each end is
/// counted as a reconnect.
pub(crate) struct Link {
    what: &'static str,
    down: bool,
    reconnects: metrics::Counter,
}

impl Link {
    /// `bus` names the backend (`redis`, `nats`) in the reconnect series,
    /// which exists (at zero) from the link's start.
    pub(crate) fn new(what: &'static str, bus: &'static str) -> Self {
        let reconnects = metrics::counter!(RECONNECTS_TOTAL, "bus" => bus);
        reconnects.increment(0);
        Self { what, down: false, reconnects }
    }

    pub(crate) fn failed(&mut self, error: &dyn Display) {
        if !self.down {
            self.down = true;
            tracing::warn!(error = %error, "bus: {} lost; reconnecting", self.what);
        } else {
            tracing::debug!(error = %error, "bus: {} still down", self.what);
        }
    }

    pub(crate) fn working(&mut self) {
        if self.down {
            self.down = false;
            self.reconnects.increment(1);
            tracing::info!("bus: {} restored", self.what);
        }
    }
}

/// Exponential backoff between reconnection attempts, with jitter so nodes
/// that lost the same server do not return in lockstep.
pub(crate) struct Backoff {
    next: Duration,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { next: BACKOFF_MIN }
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    pub(crate) fn step(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        base + base.mul_f64(rand::random::<f64>() / 2.0)
    }
}

/// The `Bus` of a backend that wraps a `ClusterBus` in `inner`: every call
/// goes to it (the backends differ only in how they connect and move frames).
macro_rules! backed_by_cluster {
    ($backend:ty) => {
        impl $backend {
            /// Number of sessions with a local channel (for tests and metrics).
            pub fn topic_count(&self) -> usize {
                self.inner.topic_count()
            }

            /// Waits, at most `within`, until everything sent so far has
            /// left for the server; false if it did not.
            pub async fn flush(&self, within: std::time::Duration) -> bool {
                self.inner.flush(within).await
            }
        }

        impl switchboard_core::bus::Bus for $backend {
            fn publish(
                &self,
                session_id: uuid::Uuid,
                event: std::sync::Arc<switchboard_core::events::SessionEvent>,
            ) {
                self.inner.publish(session_id, event);
            }

            fn subscribe(&self, session_id: uuid::Uuid) -> switchboard_core::bus::EventReceiver {
                self.inner.subscribe(session_id)
            }

            fn notify(&self, notice: switchboard_core::bus::Notice) {
                self.inner.notify(notice);
            }

            fn notices(&self) -> switchboard_core::bus::NoticeReceiver {
                self.inner.notices()
            }
        }
    };
}
pub(crate) use backed_by_cluster;

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::events::Who;

    fn pair() -> (ClusterBus, Wiring) {
        ClusterBus::new("node-a", "test")
    }

    #[tokio::test]
    async fn frames_from_other_nodes_reach_local_subscribers_and_own_frames_do_not() {
        let (bus, wiring) = pair();
        let s = Uuid::new_v4();
        let mut rx = bus.subscribe(s);
        let event = Arc::new(SessionEvent::Typing { who: Who::Agent, active: true });
        let (_, own) = Outbound::Event { session_id: s, event: event.clone(), sent_us: now_us() }
            .encode("node-a")
            .unwrap()
            .unwrap();
        let (topic, other) = Outbound::Event { session_id: s, event: event.clone(), sent_us: now_us() }
            .encode("node-b")
            .unwrap()
            .unwrap();
        assert_eq!(topic, Topic::Session(s));
        wiring.inbox.event_frame(&own);
        wiring.inbox.event_frame(b"{not json");
        wiring.inbox.event_frame(br#"{"node":"x","session_id":"00000000-0000-0000-0000-000000000000"}"#);
        wiring.inbox.event_frame(&other);
        assert_eq!(rx.try_recv().unwrap(), event);
        assert!(rx.try_recv().is_err());
        // A frame of a node that does not stamp its frames is delivered all the same.
        let payload = serde_json::to_string(&*event).unwrap();
        let old = format!(r#"{{"node":"node-c","session_id":"{s}","event":{payload}}}"#);
        wiring.inbox.event_frame(old.as_bytes());
        assert_eq!(rx.try_recv().unwrap(), event);
    }

    #[tokio::test]
    async fn frames_for_unwatched_sessions_open_no_channel() {
        let (bus, wiring) = pair();
        let event = Arc::new(SessionEvent::Typing { who: Who::User, active: false });
        let (_, frame) = Outbound::Event { session_id: Uuid::new_v4(), event, sent_us: 0 }
            .encode("node-b")
            .unwrap()
            .unwrap();
        wiring.inbox.event_frame(&frame);
        assert_eq!(bus.topic_count(), 0);
    }

    #[tokio::test]
    async fn publish_queues_one_frame_in_order_and_never_blocks() {
        let (bus, mut wiring) = pair();
        let s = Uuid::new_v4();
        for active in [true, false] {
            bus.publish(s, Arc::new(SessionEvent::Typing { who: Who::User, active }));
        }
        bus.notify(Notice::TenantsChanged);
        let mut kinds = Vec::new();
        while let Ok(out) = wiring.outbox.try_recv() {
            kinds.push(out.encode("n").unwrap().unwrap().0);
        }
        assert_eq!(kinds, [Topic::Session(s), Topic::Session(s), Topic::Notice]);
        // Past the queue's capacity frames are dropped, not waited for.
        for _ in 0..OUTBOX_CAPACITY + 10 {
            bus.notify(Notice::TenantsChanged);
        }
    }

    #[test]
    fn backoff_grows_to_a_ceiling() {
        let mut b = Backoff::new();
        let first = b.step();
        assert!(first >= BACKOFF_MIN && first <= BACKOFF_MIN * 2);
        for _ in 0..20 {
            assert!(b.step() <= BACKOFF_MAX + BACKOFF_MAX / 2);
        }
        b.reset();
        assert!(b.step() <= BACKOFF_MIN * 2);
    }
}
