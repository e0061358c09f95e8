//! Cases of the `Bus` contract. "Two nodes" means two bus instances on one
//! prefix with different node ids; the in-process bus is one node by
//! definition, so those cases are skipped for it. No case sleeps to wait:
//! a marker published after the events under test, once a witness has seen
//! them pass the server, proves nothing else is still on its way.

use crate::common::{delta, marker, next_event, next_notice, Harness};
use std::time::Duration;
use switchboard_core::bus::Notice;
use switchboard_core::error::ErrorCode;
use switchboard_core::events::{ErrorBody, SessionEvent, Who};
use switchboard_core::model::{Message, MessageStatus, Role};
use switchboard_core::time::from_millis;
use uuid::Uuid;

/// Events published before the subscribers read them: within a
/// subscriber's buffer (32 events).
const ROUND: u64 = 20;

pub async fn subscribers_get_their_sessions_events_in_order(h: &mut Harness) {
    let node = h.node("a").await;
    let (s, turn) = (Uuid::new_v4(), Uuid::new_v4());
    let (mut first, mut second) = (node.subscribe(s), node.subscribe(s));
    for n in 0..ROUND {
        node.publish(s, delta(turn, n));
    }
    for rx in [&mut first, &mut second] {
        for n in 0..ROUND {
            assert_eq!(next_event(rx).await, delta(turn, n));
        }
    }
}

pub async fn other_sessions_events_are_not_delivered(h: &mut Harness) {
    let a = h.node("a").await;
    let b = if h.is_local() { a.clone() } else { h.node("b").await };
    let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut rx = a.subscribe(mine);
    let mut witness = b.subscribe(other);
    b.publish(other, marker(1));
    assert_eq!(next_event(&mut witness).await, marker(1));
    b.publish(mine, marker(2));
    assert_eq!(next_event(&mut rx).await, marker(2));
    assert!(rx.try_recv().is_err());
}

/// 500 deltas each way between two nodes: each arrives once, in order.
pub async fn two_nodes_see_each_others_events_once_in_order(h: &mut Harness) {
    if h.skip_local("one process is one node") {
        return;
    }
    let (a, b) = (h.node("a").await, h.node("b").await);
    let (s, turn) = (Uuid::new_v4(), Uuid::new_v4());
    let (mut at_a, mut at_b) = (a.subscribe(s), b.subscribe(s));
    // Rounds smaller than a subscriber's buffer (a subscriber that falls
    // further behind is told it lagged, by design).
    for round in (0..500).step_by(ROUND as usize) {
        for n in round..round + ROUND {
            b.publish(s, delta(turn, n));
        }
        for n in round..round + ROUND {
            assert_eq!(next_event(&mut at_a).await, delta(turn, n));
            assert_eq!(next_event(&mut at_b).await, delta(turn, n), "the publisher's own subscriber");
        }
    }
    for round in (500..1000).step_by(ROUND as usize) {
        for n in round..round + ROUND {
            a.publish(s, delta(turn, n));
        }
        for n in round..round + ROUND {
            assert_eq!(next_event(&mut at_b).await, delta(turn, n));
            assert_eq!(next_event(&mut at_a).await, delta(turn, n));
        }
    }
    // Whatever either node sent has reached the other; a last marker from b
    // is the next thing each subscriber sees, so nothing came twice.
    b.publish(s, marker(1));
    assert_eq!(next_event(&mut at_a).await, marker(1));
    assert_eq!(next_event(&mut at_b).await, marker(1));
}

pub async fn a_node_does_not_receive_its_own_events_twice(h: &mut Harness) {
    let a = h.node("a").await;
    let b = if h.is_local() { a.clone() } else { h.node("b").await };
    let (s, turn) = (Uuid::new_v4(), Uuid::new_v4());
    let (mut at_a, mut at_b) = (a.subscribe(s), b.subscribe(s));
    for n in 0..20 {
        a.publish(s, delta(turn, n));
    }
    for n in 0..20 {
        assert_eq!(next_event(&mut at_b).await, delta(turn, n));
    }
    // b has seen a's frames, so their echoes (if any) reached a before this.
    b.publish(s, marker(1));
    for n in 0..20 {
        assert_eq!(next_event(&mut at_a).await, delta(turn, n));
    }
    assert_eq!(next_event(&mut at_a).await, marker(1));
}

pub async fn prefixes_isolate(h: &mut Harness) {
    if h.skip_local("the in-process bus has no prefix; two instances share nothing") {
        return;
    }
    let other_prefix = crate::common::fresh_prefix();
    let (a, witness) = (h.node("a").await, h.node("w").await);
    let (elsewhere, elsewhere_too) =
        (h.node_on(&other_prefix, "x", None).await, h.node_on(&other_prefix, "y", None).await);
    let s = Uuid::new_v4();
    let (mut seen_by_witness, mut isolated) = (witness.subscribe(s), elsewhere.subscribe(s));
    let mut isolated_notices = elsewhere.notices();
    a.publish(s, marker(1));
    a.notify(Notice::TenantsChanged);
    assert_eq!(next_event(&mut seen_by_witness).await, marker(1));
    elsewhere_too.publish(s, marker(2));
    elsewhere_too.notify(Notice::SnapshotWanted { session_id: s });
    assert_eq!(next_event(&mut isolated).await, marker(2));
    assert_eq!(next_notice(&mut isolated_notices).await, Notice::SnapshotWanted { session_id: s });
}

pub async fn notices_reach_every_node_including_the_sender_once(h: &mut Harness) {
    let a = h.node("a").await;
    let b = if h.is_local() { a.clone() } else { h.node("b").await };
    let (mut at_a, mut at_b) = (a.notices(), b.notices());
    let wanted = Notice::SnapshotWanted { session_id: Uuid::new_v4() };
    a.notify(wanted.clone());
    assert_eq!(next_notice(&mut at_a).await, wanted);
    assert_eq!(next_notice(&mut at_b).await, wanted);
    if h.is_local() {
        assert!(at_a.try_recv().is_err());
        return;
    }
    // b has seen a's notice, so an echo of it would reach a before b's reply;
    // and a has seen b's reply before it answers, likewise.
    b.notify(Notice::TenantsChanged);
    assert_eq!(next_notice(&mut at_b).await, Notice::TenantsChanged);
    assert_eq!(next_notice(&mut at_a).await, Notice::TenantsChanged, "a's own notice came back");
    let last = Notice::SnapshotWanted { session_id: Uuid::new_v4() };
    a.notify(last.clone());
    assert_eq!(next_notice(&mut at_b).await, last, "b's own notice came back");
    assert_eq!(next_notice(&mut at_a).await, last);
}

/// A one-off sender (the CLI) announces to every node and returns only once
/// its notice has left; without a cluster there is nobody to tell.
pub async fn an_announcement_reaches_every_node(h: &mut Harness) {
    if h.is_local() {
        assert!(switchboard_bus::announce("", Notice::TenantsChanged).await.is_ok());
        return;
    }
    let (a, b) = (h.node("a").await, h.node("b").await);
    let (mut at_a, mut at_b) = (a.notices(), b.notices());
    switchboard_bus::announce(&h.url_for(&h.prefix, None), Notice::TenantsChanged).await.unwrap();
    assert_eq!(next_notice(&mut at_a).await, Notice::TenantsChanged);
    assert_eq!(next_notice(&mut at_b).await, Notice::TenantsChanged);
}

/// A session nobody watches costs no channel, on the publishing node or on
/// a node that receives its frames.
pub async fn a_session_without_subscribers_leaves_no_local_channel(h: &mut Harness) {
    let a = h.node("a").await;
    let b = if h.is_local() { a.clone() } else { h.node("b").await };
    let (unwatched, watched) = (Uuid::new_v4(), Uuid::new_v4());
    drop(a.subscribe(unwatched));
    a.publish(unwatched, marker(1));
    b.publish(unwatched, marker(2));
    let mut rx = a.subscribe(watched);
    b.publish(watched, marker(3));
    assert_eq!(next_event(&mut rx).await, marker(3));
    assert_eq!(a.topic_count(), 1, "only the watched session has a channel");
    drop(rx);
    a.publish(watched, marker(4));
    assert_eq!(a.topic_count(), 0);
    if !h.is_local() {
        assert_eq!(b.topic_count(), 0);
    }
}

pub async fn events_round_trip_intact(h: &mut Harness) {
    let a = h.node("a").await;
    let b = if h.is_local() { a.clone() } else { h.node("b").await };
    let (s, turn) = (Uuid::new_v4(), Uuid::new_v4());
    let events = [
        SessionEvent::StreamDelta {
            turn_id: turn,
            seq: 12,
            revision: 3,
            offset: 40,
            text: "Grüße, 世界 🌍 \"quoted\"\n".to_owned(),
        },
        SessionEvent::Error {
            turn_id: Some(turn),
            error: ErrorBody {
                code: ErrorCode::Internal.as_str(),
                message: "upstream failed".to_owned(),
                http_status: 502,
                trace_id: "trace-1".to_owned(),
                details: Some(serde_json::json!({"provider": "demo", "attempts": [1, 2], "ok": false})),
            },
        },
        SessionEvent::Message(Message {
            tool_calls: Vec::new(),
            session_id: s,
            seq: 13,
            role: Role::Assistant,
            content: "Ça va — très bien.".to_owned(),
            author: Some("agent:zoë".to_owned()),
            status: MessageStatus::Complete,
            created_at: from_millis(1_700_000_000_123).unwrap(),
            token_count: 9,
            client_message_id: Some("c-1".to_owned()),
            tools: vec![serde_json::json!({"name": "cart", "items": 2})],
            turn_id: None,
            meta: None,
        }),
        SessionEvent::Typing { who: Who::Agent, active: true },
    ];
    let mut rx = a.subscribe(s);
    for event in &events {
        b.publish(s, event.clone());
    }
    for event in &events {
        assert_eq!(&next_event(&mut rx).await, event);
    }
}

/// Through an outage: local delivery goes on, and once the link is back the
/// nodes hear each other again without being rebuilt.
pub async fn a_node_rides_out_a_lost_connection(h: &mut Harness) {
    if h.skip_local("nothing to lose in one process") {
        return;
    }
    let proxy = crate::common::proxy::Proxy::start(h.address()).await;
    let a = h.node_on(&h.prefix, "a", Some(&proxy.address)).await;
    let b = h.node("b").await;
    let s = Uuid::new_v4();
    let (mut at_a, mut at_b) = (a.subscribe(s), b.subscribe(s));
    let mut notices_at_b = b.notices();

    proxy.take_down();
    a.publish(s, marker(1));
    assert_eq!(next_event(&mut at_a).await, marker(1), "local delivery during the outage");
    proxy.restore();

    // Both directions come back: retry until a frame gets through.
    until(
        |n| b.publish(s, marker(100 + n)),
        &mut at_a,
        |e| matches!(e, SessionEvent::ResumeCursor { last_event_id, .. } if *last_event_id >= 100),
    )
    .await;
    until(
        |n| a.publish(s, marker(200 + n)),
        &mut at_b,
        |e| matches!(e, SessionEvent::ResumeCursor { last_event_id, .. } if *last_event_id >= 200),
    )
    .await;
    a.notify(Notice::TenantsChanged);
    loop {
        if next_notice(&mut notices_at_b).await == Notice::TenantsChanged {
            break;
        }
    }
}

/// Calls `send(n)` every 100 ms until `rx` yields an event that `done`
/// accepts, for at most 30 s.
async fn until(
    send: impl Fn(i64),
    rx: &mut switchboard_core::bus::EventReceiver,
    done: impl Fn(&SessionEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        assert!(tokio::time::Instant::now() < deadline, "the link did not come back");
        send(n);
        match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            Ok(Ok(e)) if done(&e) => return,
            _ => {}
        }
    }
}
