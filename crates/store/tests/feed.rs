//! A session subscription (`switchboard_core::feed`) over a real store, in
//! the states a running server only reaches by racing: here they are set up
//! one step at a time, so the outcome never depends on timing.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use std::sync::Arc;
use std::time::Duration;
use switchboard_bus::LocalBus;
use switchboard_core::events::{SessionEvent, StreamEnd};
use switchboard_core::feed::Feed;
use switchboard_core::model::{FinishReason, Message, MessageStatus, Session, TurnMeta, Usage};
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Finish, NewSession};
use switchboard_core::tenant::{ProviderKind, ProviderSettings, Tenant};
use switchboard_core::time::SystemClock;
use switchboard_core::turn::{EngineConfig, TurnEngine};
use switchboard_core::upstream::Route;
use switchboard_providers::DemoProvider;
use uuid::Uuid;

const NODE: &str = "node-a";
const OWNER: &str = "visitor:00000000-0000-4000-8000-000000000001";

fn tenant() -> Tenant {
    let settings = ProviderSettings::new(ProviderKind::Demo, "demo");
    let provider = Arc::new(DemoProvider::new("demo", Duration::ZERO));
    Tenant {
        events: None,
        tools: None,
        id: "acme".into(),
        name: "Acme".into(),
        allowed_origins: vec![],
        allow_no_origin: true,
        on_disconnect: Default::default(),
        retention_days: 30,
        max_messages_per_session: 1000,
        max_connections_per_subject: 10,
        require_user: false,
        kill_switch: false,
        jwt: None,
        rate_limits: Default::default(),
        budget: None,
        source: "config".into(),
        primary: Arc::new(Route::new(settings, provider)),
        fallbacks: Arc::from(vec![]),
    }
}

/// A session whose answer (seq 2) the store holds as streaming, checkpointed
/// at `checkpoint`, with no turn running for it on this node.
async fn streaming_answer(h: &Harness, engine: &TurnEngine, checkpoint: &str) -> (Session, Message) {
    let now = engine.clock().now();
    let new = NewSession {
        event: None,
        id: Uuid::new_v4(),
        tenant_id: "acme".into(),
        owner: OWNER.into(),
        metadata: None,
        now,
    };
    let session = h.store.create_session(&new).await.unwrap();
    let begin = BeginTurn {
        context: None,
        tenant_id: "acme".into(),
        session_id: session.id,
        owner: OWNER.into(),
        turn_id: Uuid::new_v4(),
        content: "hello".into(),
        client_message_id: None,
        user_token_count: 2,
        node_id: NODE.into(),
        lease_until: now + chrono::Duration::seconds(10),
        now,
        history_limit: 20,
        max_messages: 1000,
        retained_since: now - chrono::Duration::days(30),
        budget: None,
    };
    let BeginTurnOutcome::Started { assistant, .. } = h.store.begin_turn(&begin).await.unwrap() else {
        panic!("the turn did not start");
    };
    let checkpoint = Checkpoint {
        tools: Vec::new(),
        tenant_id: "acme".into(),
        session_id: session.id,
        seq: assistant.seq,
        content: checkpoint.into(),
        node_id: NODE.into(),
        lease_until: now + chrono::Duration::seconds(10),
    };
    assert!(h.store.checkpoint(&checkpoint).await.unwrap());
    (session, assistant)
}

/// Stores the answer's final state and publishes its `stream_end`, as the
/// turn's task does when it ends.
async fn end_answer(h: &Harness, engine: &TurnEngine, assistant: &Message, text: &str) {
    let meta = TurnMeta { finish_reason: Some(FinishReason::Stop), ..TurnMeta::default() };
    let finish = Finish {
        event: None,
        tools: Vec::new(),
        tenant_id: "acme".into(),
        session_id: assistant.session_id,
        seq: assistant.seq,
        content: text.into(),
        status: MessageStatus::Complete,
        token_count: 3,
        meta: meta.clone(),
        now: engine.clock().now(),
        usage: None,
    };
    assert!(h.store.finish_message(&finish).await.unwrap());
    let message = Message {
        content: text.into(),
        status: MessageStatus::Complete,
        meta: Some(meta),
        ..assistant.clone()
    };
    let end = StreamEnd {
        turn_id: assistant.turn_id.unwrap(),
        seq: assistant.seq,
        message,
        usage: Usage::default(),
        latency_ms: Default::default(),
        finish_reason: FinishReason::Stop,
        provider: "demo".into(),
        model: "demo".into(),
    };
    engine.bus().publish(assistant.session_id, Arc::new(SessionEvent::StreamEnd(Box::new(end))));
}

async fn next(feed: &mut Feed) -> Arc<SessionEvent> {
    tokio::time::timeout(Duration::from_secs(5), feed.next()).await.expect("an event in time").unwrap()
}

/// The race: a subscriber reads the answer as streaming from the store, but
/// its turn has ended before the subscriber looks for its live text. What it
/// hands out must be the answer's final state as a replay gives it (its
/// final `message`), never the older checkpoint, nor a `stream_end` for text
/// this connection never carried.
#[tokio::test]
async fn an_answer_that_ended_before_its_live_text_was_found_is_handed_out_final() {
    let h = Harness::sqlite().await;
    let bus = Arc::new(LocalBus::new());
    let engine = TurnEngine::new(h.store.clone(), bus, Arc::new(SystemClock), EngineConfig::new(NODE));
    let tenant = tenant();
    // Without a cursor (the streaming answer comes with the opening) and
    // with one (it comes in the replay).
    for cursor in [None, Some(0)] {
        let (session, assistant) = streaming_answer(&h, &engine, "Hel").await;
        let mut feed = Feed::open(&engine, &tenant, session.id, cursor).await.unwrap();
        assert!(matches!(&*next(&mut feed).await, SessionEvent::Session { .. }));
        if cursor.is_some() {
            assert!(matches!(&*next(&mut feed).await, SessionEvent::ResumeCursor { .. }));
            assert!(matches!(&*next(&mut feed).await, SessionEvent::Message(m) if m.seq == 1));
        }
        // A delta the subscriber hears while it looks for the live text.
        let delta = SessionEvent::StreamDelta {
            turn_id: assistant.turn_id.unwrap(),
            seq: assistant.seq,
            revision: 0,
            offset: 3,
            text: "lo".into(),
        };
        engine.bus().publish(session.id, Arc::new(delta));
        end_answer(&h, &engine, &assistant, "Hello, world").await;
        match &*next(&mut feed).await {
            SessionEvent::Message(m) => {
                assert_eq!(
                    (m.seq, m.status, m.content.as_str()),
                    (2, MessageStatus::Complete, "Hello, world")
                )
            }
            other => panic!("cursor {cursor:?}: expected the answer's final message, got {other:?}"),
        }
    }
}
