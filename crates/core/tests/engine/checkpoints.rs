//! Checkpoints (SPEC §11.2): while an answer streams, its text so far is
//! saved every `checkpoint_every` and its lease renewed to `lease` from
//! then — also while a provider is being opened or a retry waits, so a long
//! wait never lets the lease lapse.

use super::*;
use switchboard_core::events::SessionEvent;
use switchboard_core::model::MessageStatus;
use switchboard_core::time::Timestamp;
use switchboard_testkit::{at, tenant, Lease, Reply, Step, NODE};

fn lease_until(ms_after_epoch: i64) -> Option<Lease> {
    Some(Lease { node_id: NODE.into(), until: at(ms_after_epoch) })
}

#[tokio::test(start_paused = true)]
async fn the_answer_is_checkpointed_every_second_with_its_lease_renewed() {
    let script = [
        Step::delta("a"),
        Step::wait_ms(1400),
        Step::delta("b"),
        Step::wait_ms(1400),
        Step::delta("c"),
        Step::wait_ms(1400),
    ];
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").then(Reply::steps(script)));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    let (sid, v) = h.session().await.unwrap();
    let t0 = Instant::now();
    let stream = start(&h, sid, &v, "hi").await;
    let seq = stream.seq();

    // Before the first checkpoint: the lease the turn started with (10 s).
    tokio::time::sleep_until(t0 + ms(500)).await;
    assert!(h.store.checkpoints().is_empty());
    assert_eq!(h.store.lease(sid, seq), lease_until(10_000));
    tokio::time::sleep_until(t0 + ms(1200)).await;
    let stored = h.stored(sid, seq).unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Streaming, "a"));
    assert_eq!(h.store.lease(sid, seq), lease_until(11_000), "renewed to 10 s after the checkpoint");
    tokio::time::sleep_until(t0 + ms(2200)).await;
    assert_eq!(h.stored(sid, seq).unwrap().content, "ab");
    assert_eq!(h.store.lease(sid, seq), lease_until(12_000));

    let done = drain(stream).await;
    assert_eq!(text_of(&done), "abc");
    assert_eq!(t0.elapsed(), ms(4200));
    let checkpoints = h.store.checkpoints();
    let saved: Vec<&str> = checkpoints.iter().map(|c| c.content.as_str()).collect();
    assert_eq!(saved, ["a", "ab", "abc", "abc"], "one a second, each with the text so far");
    let leases: Vec<Timestamp> = checkpoints.iter().map(|c| c.lease_until).collect();
    assert_eq!(leases, [at(11_000), at(12_000), at(13_000), at(14_000)]);
    assert!(checkpoints.iter().all(|c| c.node_id == NODE && c.seq == seq));
    let stored = h.stored(sid, seq).unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Complete, "abc"));
    assert_eq!(h.store.lease(sid, seq), None, "a finished answer holds no lease");
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_wait_keeps_the_lease() {
    let p = Arc::new(
        ScriptedProvider::new("openai", "gpt-test")
            .then(Reply::rate_limited(secs(25)))
            .then(Reply::text(&["done"])),
    );
    let h = Harness::new(tenant("acme", route(&p, |s| s.retry.max_wait = secs(30)), vec![]));
    // The reaper runs meanwhile: a lease 10 s long would lapse in a 25 s wait.
    h.engine.spawn_background();
    let (sid, v) = h.session().await.unwrap();
    let mut session_events = h.bus.subscribe(sid);
    let done = turn(&h, sid, &v, "hi").await;

    assert_eq!((done.text.as_str(), done.took), ("done", secs(25)));
    assert_eq!(h.stored(sid, done.seq).unwrap().status, MessageStatus::Complete);
    assert!(h.store.checkpoints().len() >= 24, "checkpointed while the retry waited");
    while let Ok(event) = session_events.try_recv() {
        if let SessionEvent::Message(m) = &*event {
            assert_ne!(m.status, MessageStatus::Interrupted, "the answer was reaped while it waited");
        }
    }
}
