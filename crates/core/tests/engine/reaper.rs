//! The lease reaper (SPEC §11.2): an answer whose node stopped renewing its
//! lease is marked `interrupted` once the lease ends, subscribers are told,
//! and the session takes turns again; answers this node still runs keep
//! their leases. A node restarting reaps its own leases at once.

use super::*;
use switchboard_core::events::SessionEvent;
use switchboard_core::model::MessageStatus;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Store};
use switchboard_core::time::Clock;
use switchboard_testkit::{tenant, Reply, NODE};

/// An answer streaming in a new session, started by `node` (which then
/// goes silent) with a 10 s lease and `text` checkpointed.
async fn orphan(h: &Harness, node: &str, text: &str) -> (Uuid, Subject, i64) {
    let (sid, v) = h.session().await.unwrap();
    let now = h.clock.now();
    let begin = BeginTurn {
        context: None,
        tenant_id: h.tenant.id.clone(),
        session_id: sid,
        owner: v.to_string(),
        turn_id: Uuid::now_v7(),
        content: "question".into(),
        client_message_id: None,
        user_token_count: 2,
        node_id: node.into(),
        lease_until: now + chrono::Duration::seconds(10),
        now,
        history_limit: 20,
        max_messages: 1000,
        retained_since: now - chrono::Duration::days(30),
        budget: None,
    };
    let BeginTurnOutcome::Started { assistant, .. } = h.store.begin_turn(&begin).await.unwrap() else {
        panic!("the orphan did not start")
    };
    let checkpoint = Checkpoint {
        tools: Vec::new(),
        tenant_id: begin.tenant_id,
        session_id: sid,
        seq: assistant.seq,
        content: text.into(),
        node_id: node.into(),
        lease_until: begin.lease_until,
    };
    assert!(h.store.checkpoint(&checkpoint).await.unwrap());
    (sid, v, assistant.seq)
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_reaped_as_interrupted_and_a_live_one_is_not() {
    let p =
        Arc::new(ScriptedProvider::new("openai", "gpt-test").then(Reply::paced(&refs(&pieces(30)), secs(1))));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    h.engine.spawn_background();
    let t0 = Instant::now();
    let (gone, visitor, gone_seq) = orphan(&h, "node-gone", "half an ans").await;
    let mut told = h.bus.subscribe(gone);
    // Meanwhile a 30 s answer runs here, renewing its own lease.
    let (live, v) = h.session().await.unwrap();
    let running = start(&h, live, &v, "long one").await;
    let live_seq = running.seq();

    // The reaper looks every 2 s; the lease ends at 10 s.
    tokio::time::sleep_until(t0 + ms(10_500)).await;
    assert_eq!(h.stored(gone, gone_seq).unwrap().status, MessageStatus::Streaming, "reaped too early");
    tokio::time::sleep_until(t0 + ms(12_500)).await;
    let reaped = h.stored(gone, gone_seq).unwrap();
    assert_eq!((reaped.status, reaped.content.as_str()), (MessageStatus::Interrupted, "half an ans"));
    assert_eq!(h.store.lease(gone, gone_seq), None);
    let event = told.try_recv().unwrap();
    let SessionEvent::Message(m) = &*event else { panic!("{event:?}") };
    assert_eq!((m.seq, m.status), (gone_seq, MessageStatus::Interrupted), "subscribers replace by seq");
    assert_eq!(
        h.stored(live, live_seq).unwrap().status,
        MessageStatus::Streaming,
        "a live answer was reaped"
    );

    // The session takes turns again; the live answer ends as it should.
    p.set_otherwise(Reply::text(&["again"]));
    assert_eq!(turn(&h, gone, &visitor, "hello?").await.text, "again");
    let events = drain(running).await;
    assert_eq!(text_of(&events), pieces(30).concat());
    assert_eq!(h.stored(live, live_seq).unwrap().status, MessageStatus::Complete);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_reaps_its_own_leases_at_once() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test"));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    let (mine, _, mine_seq) = orphan(&h, NODE, "mine").await;
    let (theirs, _, theirs_seq) = orphan(&h, "node-other", "theirs").await;
    assert_eq!(h.engine.reap_own_leases().await.unwrap(), 1);
    assert_eq!(h.stored(mine, mine_seq).unwrap().status, MessageStatus::Interrupted);
    assert_eq!(h.stored(theirs, theirs_seq).unwrap().status, MessageStatus::Streaming);
}
