//! Retries before the first token (SPEC §13): the vendor's `Retry-After` is
//! waited exactly, otherwise backoff; never a retry that the turn's waits or
//! time cannot afford, nor one after text was shown.

use super::*;
use switchboard_core::model::MessageStatus;
use switchboard_core::provider::ProviderError;
use switchboard_testkit::{tenant, Reply, Step};

fn harness(provider: &Arc<ScriptedProvider>, tune: impl FnOnce(&mut ProviderSettings)) -> Harness {
    Harness::new(tenant("acme", route(provider, tune), vec![]))
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_exactly_and_the_client_sees_only_the_answer() {
    let p = Arc::new(
        ScriptedProvider::new("openai", "gpt-test")
            .then(Reply::rate_limited(secs(3)))
            .then(Reply::server_error())
            .then(Reply::text(&["w0 ", "w1"])),
    );
    let h = harness(&p, |_| {});
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;

    assert_eq!(done.text, "w0 w1");
    assert_eq!(done.error(), None, "a retried failure reached the client");
    assert_eq!(done.end().unwrap().message.status, MessageStatus::Complete);
    let at: Vec<Instant> = p.calls().iter().map(|c| c.at).collect();
    assert_eq!(at.len(), 3, "a 429 and a 500 before the first token are both retried");
    assert_eq!(at[1] - at[0], secs(3), "Retry-After: 3 is waited, exactly");
    // No hint after the 500: the second step of the backoff, with jitter
    // (250 to 500 ms; timers round up to the millisecond).
    let backoff = at[2] - at[1];
    assert!(backoff >= ms(250) && backoff <= ms(500), "backoff {backoff:?}");
    assert_eq!(done.took, at[2] - at[0]);
    assert_eq!(h.stored(sid, done.seq).unwrap().content, "w0 w1");
}

#[tokio::test(start_paused = true)]
async fn a_hint_longer_than_the_wait_allowed_is_not_waited_for() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::rate_limited(secs(60))));
    let h = harness(&p, |_| {});
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!(done.error(), Some("llm.unavailable"));
    assert_eq!(p.call_count(), 1, "max_wait is 10 s: a 60 s retry is hopeless");
    assert_eq!(done.took, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_retry_the_turn_has_no_time_left_for_is_not_made() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::rate_limited(secs(6))));
    let h = harness(&p, |s| {
        s.timeouts.total = secs(5);
        s.retry.max_wait = secs(30);
    });
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!((done.error(), p.call_count()), (Some("llm.unavailable"), 1));
    assert_eq!(done.took, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn attempts_cap_the_retries() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::server_error()));
    let h = harness(&p, |s| s.retry.attempts = 2);
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!((done.error(), p.call_count()), (Some("llm.unavailable"), 2));
    // One backoff, the first step's: 125 to 250 ms.
    assert!(done.took >= ms(125) && done.took <= ms(250), "took {:?}", done.took);
    let stored = h.stored(sid, done.seq).unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Error, ""));
}

#[tokio::test(start_paused = true)]
async fn no_retry_once_text_was_shown() {
    let failing =
        Reply::steps([Step::delta("w0 "), Step::Fail(ProviderError::Transient("overloaded".into()))]);
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").then(failing));
    let h = harness(&p, |_| {});
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!((done.error(), done.text.as_str()), (Some("llm.unavailable"), "w0 "));
    assert_eq!(p.call_count(), 1, "the answer belongs to the provider that began it");
    let stored = h.stored(sid, done.seq).unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Error, "w0 "));
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_is_neither_retried_nor_counted_against_the_vendor() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::refused(400, None)));
    let h = harness(&p, |s| s.breaker.failures = 1);
    let (sid, v) = h.session().await.unwrap();
    for _ in 0..3 {
        assert_eq!(turn(&h, sid, &v, "hi").await.error(), Some("llm.unavailable"));
    }
    assert_eq!(p.call_count(), 3, "one call a turn, and the circuit never opened");
    p.set_otherwise(Reply::text(&["fine"]));
    assert_eq!(turn(&h, sid, &v, "now?").await.text, "fine");
}
