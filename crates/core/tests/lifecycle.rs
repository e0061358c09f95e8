//! A session's lifecycle (`switchboard_core::lifecycle`) in-process, on
//! tokio's paused clock: two engines ("nodes") on one memory store and one
//! in-process bus, so stopping an answer on the other node, and waiting for
//! its end, runs in virtual time with exact instants. The same over real
//! processes, PostgreSQL and Redis or NATS is in `crates/server/tests/cluster.rs`.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;
use switchboard_core::bus::Bus;
use switchboard_core::events::SessionEvent;
use switchboard_core::lifecycle::{Hold, LifecycleError, SessionLifecycle, STOP_WAIT};
use switchboard_core::model::{AgentRef, FinishReason, MessageStatus, Role, SessionStatus};
use switchboard_core::provider::Provider as _;
use switchboard_core::store::Store;
use switchboard_core::turn::{EngineConfig, SendOutcome, TurnEngine, TurnStream};
use switchboard_core::upstream::Route;
use switchboard_testkit::{settings, tenant, Harness, Reply, ScriptedProvider};
use tokio::time::Instant;
use uuid::Uuid;

const INTERVAL: Duration = Duration::from_millis(100);

/// A harness (node A) whose provider streams 100 pieces, one every 100 ms.
fn cluster() -> (Harness, Arc<ScriptedProvider>) {
    let pieces: Vec<String> = (0..100).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::paced(&refs, INTERVAL)));
    let route = Route::new(settings(p.model()), p.clone());
    (Harness::new(tenant("acme", route, vec![])), p)
}

/// Another node on the same store and bus; `listening`: it obeys notices.
fn node_b(h: &Harness, listening: bool) -> TurnEngine {
    let b = TurnEngine::new(h.store.clone(), h.bus.clone(), h.clock.clone(), EngineConfig::new("node-b"));
    if listening {
        b.spawn_background();
    }
    b
}

/// Starts a turn on `engine` and reads two deltas of it.
async fn streaming(h: &Harness, engine: &TurnEngine, sid: Uuid, v: &switchboard_core::Subject) -> TurnStream {
    let SendOutcome::Streaming(mut stream) = engine.send(h.message(sid, v, "hi")).await.unwrap() else {
        panic!("the turn did not start")
    };
    let mut deltas = 0;
    while deltas < 2 {
        let event = stream.next().await.expect("the turn ended early");
        deltas += usize::from(matches!(&*event, SessionEvent::StreamDelta { .. }));
    }
    stream
}

#[tokio::test(start_paused = true)]
async fn a_delete_stops_the_answer_on_the_other_node_and_waits_for_its_end() {
    let (h, p) = cluster();
    let b = node_b(&h, true);
    let (sid, v) = h.session().await.unwrap();
    let _stream = streaming(&h, &b, sid, &v).await;
    assert_eq!(b.running(), 1);

    let t0 = Instant::now();
    SessionLifecycle::new(h.engine.clone()).delete(&h.tenant.id, &v, sid).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::ZERO, "stopped at once, not at the next piece or a poll");
    assert_eq!(b.running(), 0, "the delete returned before the answer's end");
    assert_eq!((p.dropped(), p.ended()), (1, 0), "the upstream stream was let go");
    assert!(h.store.get_session(&h.tenant.id, sid).await.unwrap().is_none());
    assert!(h.store.list_messages(&h.tenant.id, sid, 10, None).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn only_the_owner_deletes() {
    let (h, _) = cluster();
    let (sid, _) = h.session().await.unwrap();
    let stranger = switchboard_core::Subject::Visitor(Uuid::new_v4());
    let refused = SessionLifecycle::new(h.engine.clone()).delete(&h.tenant.id, &stranger, sid).await;
    assert!(matches!(refused, Err(LifecycleError::NotFound)), "{refused:?}");
    assert!(h.store.get_session(&h.tenant.id, sid).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_close_keeps_the_stopped_answer_and_comes_after_it() {
    let (h, _) = cluster();
    let b = node_b(&h, true);
    let (sid, v) = h.session().await.unwrap();
    let _stream = streaming(&h, &b, sid, &v).await;

    let closed = SessionLifecycle::new(h.engine.clone())
        .close(&h.tenant, sid, serde_json::json!({"kind": "operator"}))
        .await
        .unwrap();
    assert_eq!((closed.status_before, closed.session.status), (SessionStatus::Active, SessionStatus::Closed));
    assert_eq!(b.running(), 0);
    let answer = h.stored(sid, 2).unwrap();
    assert_eq!((answer.status, answer.content.as_str()), (MessageStatus::Aborted, "w0 w1 "));
}

#[tokio::test(start_paused = true)]
async fn a_takeover_publishes_its_note_after_the_answer_s_end() {
    let (h, _) = cluster();
    let (sid, v) = h.session().await.unwrap();
    let _stream = streaming(&h, &h.engine, sid, &v).await;
    let mut events = h.bus.subscribe(sid);

    let agent = AgentRef { name: "Ada".into() };
    let lifecycle = SessionLifecycle::new(h.engine.clone());
    let Hold::Changed { session, .. } = lifecycle.take_over(&h.tenant, sid, agent.clone()).await.unwrap()
    else {
        panic!("nothing changed")
    };
    assert_eq!((session.status, session.latest_seq), (SessionStatus::Human, 3));
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        match &*event {
            SessionEvent::StreamEnd(end) => seen.push(format!("end {} {:?}", end.seq, end.finish_reason)),
            SessionEvent::Message(m) if m.role == Role::System => seen.push(format!("note {}", m.seq)),
            SessionEvent::Takeover { active, agent } => {
                seen.push(format!("takeover {active} {}", agent.name))
            }
            _ => {}
        }
    }
    let aborted = FinishReason::Aborted;
    assert_eq!(seen, [format!("end 2 {aborted:?}"), "note 3".into(), "takeover true Ada".into()]);
    // Taken again by the same agent: nothing changes.
    assert!(matches!(lifecycle.take_over(&h.tenant, sid, agent).await.unwrap(), Hold::Unchanged(_)));
}

#[tokio::test(start_paused = true)]
async fn a_takeover_gives_up_after_the_stop_wait_when_the_other_node_does_not_answer() {
    let (h, _) = cluster();
    // Node B runs the answer but does not hear notices (as if cut off).
    let b = node_b(&h, false);
    let (sid, v) = h.session().await.unwrap();
    let _stream = streaming(&h, &b, sid, &v).await;

    let t0 = Instant::now();
    let agent = AgentRef { name: "Ada".into() };
    let refused = SessionLifecycle::new(h.engine.clone()).take_over(&h.tenant, sid, agent).await;
    assert!(matches!(refused, Err(LifecycleError::InProgress)), "{refused:?}");
    assert_eq!(t0.elapsed(), STOP_WAIT);
    let session = h.store.get_session(&h.tenant.id, sid).await.unwrap().unwrap();
    assert_eq!((session.status, session.latest_seq), (SessionStatus::Active, 2), "nothing changed");
    assert_eq!(b.running(), 1);
}

#[tokio::test(start_paused = true)]
async fn agent_messages_and_releases_need_an_agent_holding_the_session() {
    let (h, _) = cluster();
    let (sid, _) = h.session().await.unwrap();
    let lifecycle = SessionLifecycle::new(h.engine.clone());
    let early = lifecycle.agent_message(&h.tenant, sid, "Ada", "hello".into()).await;
    assert!(matches!(early, Err(LifecycleError::NotHuman)), "{early:?}");
    let release = lifecycle.release(&h.tenant, sid, "Ada").await;
    assert!(matches!(release, Err(LifecycleError::NotHuman)), "{release:?}");

    lifecycle.take_over(&h.tenant, sid, AgentRef { name: "Ada".into() }).await.unwrap();
    let sent = lifecycle.agent_message(&h.tenant, sid, "Ada", "hello".into()).await.unwrap();
    assert_eq!((sent.seq, sent.role, sent.author.as_deref()), (2, Role::Agent, Some("Ada")));
    // Released by someone else: the note names the agent who held it.
    let Hold::Changed { session, agent } = lifecycle.release(&h.tenant, sid, "Bob").await.unwrap() else {
        panic!("nothing changed")
    };
    assert_eq!((session.status, agent.name.as_str()), (SessionStatus::Active, "Ada"));
    assert_eq!(h.stored(sid, 3).unwrap().content, "Ada left the conversation");
    lifecycle.close(&h.tenant, sid, serde_json::json!({"kind": "operator"})).await.unwrap();
    let late = lifecycle.agent_message(&h.tenant, sid, "Ada", "hello?".into()).await;
    assert!(matches!(late, Err(LifecycleError::Closed)), "{late:?}");
}

#[tokio::test(start_paused = true)]
async fn releasing_a_handoff_no_one_took_says_who_handed_it_back() {
    let (h, _) = cluster();
    let (sid, _) = h.session().await.unwrap();
    let waiting = switchboard_core::store::takeover::HoldChange {
        event: None,
        tenant_id: h.tenant.id.clone(),
        session_id: sid,
        takeover: None,
        waiting: true,
        note: "Handoff requested".into(),
        max_messages: h.tenant.max_messages_per_session,
        now: switchboard_core::time::Clock::now(&*h.clock),
    };
    h.store.set_takeover(&waiting).await.unwrap();
    let lifecycle = SessionLifecycle::new(h.engine.clone());
    let Hold::Changed { session, agent } = lifecycle.release(&h.tenant, sid, "Bob").await.unwrap() else {
        panic!("nothing changed")
    };
    assert_eq!((session.status, agent.name.as_str()), (SessionStatus::Active, "Bob"));
    assert_eq!(h.stored(sid, 2).unwrap().content, "Bob handed the conversation back to the assistant");
}
