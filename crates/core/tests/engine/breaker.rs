//! The circuit breaker of a tenant's provider (SPEC §13), driven by the
//! engine's clock: it opens after five consecutive failures, fails fast
//! while open, lets one trial through after the open period, and that
//! trial's outcome reopens or closes it.

use super::*;
use switchboard_core::turn::EngineConfig;
use switchboard_testkit::{tenant, Reply, NODE};

#[tokio::test(start_paused = true)]
async fn opens_after_five_failures_and_half_opens_after_its_period() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::server_error()));
    let failures = Arc::new(Failures::default());
    let mut config = EngineConfig::new(NODE);
    config.observer = Some(failures.clone());
    // One attempt a turn: each turn is one failure. The breaker is the
    // default one: 5 failures, open for 60 s.
    let h = Harness::with_config(tenant("acme", route(&p, |s| s.retry.attempts = 1), vec![]), config);
    let (sid, v) = h.session().await.unwrap();

    for _ in 0..5 {
        assert_eq!(turn(&h, sid, &v, "q").await.error(), Some("llm.unavailable"));
    }
    assert_eq!(p.call_count(), 5);
    // Open: the turn fails at once, without a call.
    p.set_otherwise(Reply::text(&["w0"]));
    let fast = turn(&h, sid, &v, "q").await;
    assert_eq!((fast.error(), fast.took, p.call_count()), (Some("llm.unavailable"), Duration::ZERO, 5));
    tokio::time::sleep(secs(59)).await;
    assert_eq!(turn(&h, sid, &v, "q").await.error(), Some("llm.unavailable"));
    assert_eq!(p.call_count(), 5, "still open 59 s after it opened");

    // Half-open after 60 s: one trial; it fails, and the circuit reopens.
    tokio::time::sleep(ms(1500)).await;
    p.set_otherwise(Reply::server_error());
    assert_eq!(turn(&h, sid, &v, "q").await.error(), Some("llm.unavailable"));
    assert_eq!(p.call_count(), 6, "the half-open circuit let no trial through");
    assert_eq!(turn(&h, sid, &v, "q").await.error(), Some("llm.unavailable"));
    assert_eq!(p.call_count(), 6, "a failed trial did not reopen the circuit");

    // The next trial, a full period later, answers and closes it.
    tokio::time::sleep(ms(60_500)).await;
    p.set_otherwise(Reply::text(&["w0 ", "w1"]));
    assert_eq!(turn(&h, sid, &v, "trial").await.text, "w0 w1");
    assert_eq!(turn(&h, sid, &v, "closed").await.text, "w0 w1");
    assert_eq!(p.call_count(), 8);
    assert_eq!((failures.count(AfterFailure::GaveUp), failures.count(AfterFailure::CircuitOpen)), (6, 3));
}

#[tokio::test(start_paused = true)]
async fn a_circuit_that_opens_mid_turn_hands_over_without_waiting() {
    let primary =
        Arc::new(ScriptedProvider::new("openai", "gpt-primary").always(Reply::rate_limited(secs(5))));
    let fallback = Arc::new(ScriptedProvider::new("openai", "gpt-fallback").always(Reply::text(&["w0"])));
    let routes = (route(&primary, |s| s.breaker.failures = 1), route(&fallback, |_| {}));
    let h = Harness::new(tenant("acme", routes.0, vec![routes.1]));
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!(done.end().unwrap().model, "gpt-fallback");
    assert_eq!(primary.call_count(), 1, "a retry was made through an open circuit");
    assert_eq!(done.took, Duration::ZERO, "the turn waited out a Retry-After it could not use");
}

#[tokio::test(start_paused = true)]
async fn a_trial_whose_turn_is_stopped_frees_the_slot_for_the_next() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::server_error()));
    let h = Harness::new(tenant("acme", route(&p, |s| s.retry.attempts = 1), vec![]));
    let (sid, v) = h.session().await.unwrap();
    for _ in 0..5 {
        turn(&h, sid, &v, "q").await;
    }
    tokio::time::sleep(secs(61)).await;
    // The trial hangs; its turn is stopped before the provider says anything.
    p.set_otherwise(Reply::never_opens());
    let trial = start(&h, sid, &v, "trial").await;
    tokio::time::sleep(secs(1)).await;
    h.engine.stop_session_turn(sid, switchboard_core::turn::StopReason::SessionDeleted);
    drain(trial).await;
    assert_eq!(p.call_count(), 6);
    // Not a failure, not a success: the next call is the trial at once.
    p.set_otherwise(Reply::text(&["back"]));
    assert_eq!(turn(&h, sid, &v, "again").await.text, "back");
    assert_eq!(p.call_count(), 7);
}
