//! The engine's timeouts around whatever a provider streams (SPEC §11):
//! first token, idle gap and total, each ending the turn with `llm.timeout`
//! at its instant, the partial text kept with status `error`. Timeouts are
//! not retried.

use super::*;
use switchboard_core::model::MessageStatus;
use switchboard_core::tenant::Timeouts;
use switchboard_testkit::{tenant, Reply, Step};

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(1),
    first_token: Duration::from_secs(2),
    idle: Duration::from_secs(1),
    total: Duration::from_secs(5),
};

fn harness(provider: &Arc<ScriptedProvider>) -> Harness {
    Harness::new(tenant("acme", route(provider, |s| s.timeouts = TIMEOUTS), vec![]))
}

/// The turn ended with `llm.timeout` after `after`, keeping `partial`.
#[track_caller]
fn timed_out(h: &Harness, sid: Uuid, done: &Done, after: Duration, partial: &str) {
    assert_eq!(done.error(), Some("llm.timeout"));
    assert_took(done.took, after);
    assert_eq!(done.text, partial);
    let stored = h.stored(sid, done.seq).unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Error, partial));
    assert_eq!(stored.meta.unwrap().error_code.as_deref(), Some("llm.timeout"));
}

#[tokio::test(start_paused = true)]
async fn first_token_timeout_when_the_provider_never_answers() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").then(Reply::never_opens()));
    let h = harness(&p);
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    timed_out(&h, sid, &done, secs(2), "");
    assert_eq!(p.call_count(), 1, "a timeout is not retried");
    // The session goes on.
    assert_eq!(turn(&h, sid, &v, "again").await.text, "ok");
}

#[tokio::test(start_paused = true)]
async fn first_token_timeout_when_the_stream_stays_silent() {
    let slow = Reply::steps([Step::Wait(secs(10)), Step::delta("late")]);
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").then(slow));
    let h = harness(&p);
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    timed_out(&h, sid, &done, secs(2), "");
    assert_eq!((p.call_count(), p.dropped()), (1, 1), "the silent stream was let go");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_keeps_the_partial() {
    let stall = Reply::steps([Step::delta("w0 "), Step::wait_ms(500), Step::delta("w1 "), Step::Stall]);
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").then(stall));
    let h = harness(&p);
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    // One idle second after the last text.
    timed_out(&h, sid, &done, ms(1500), "w0 w1 ");
    assert_eq!((p.call_count(), p.dropped()), (1, 1), "no retry after the first token");
}

#[tokio::test(start_paused = true)]
async fn total_timeout_bounds_a_steady_stream() {
    let all = pieces(100);
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").then(Reply::paced(&refs(&all), ms(400))));
    let h = harness(&p);
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    // A piece every 0.4 s never trips the idle second; five seconds end it
    // after twelve pieces.
    timed_out(&h, sid, &done, secs(5), &all[..12].concat());
}

#[tokio::test(start_paused = true)]
async fn the_primarys_total_bounds_the_fallbacks_too() {
    let all = pieces(100);
    let primary = Arc::new(ScriptedProvider::new("openai", "gpt-primary").then(Reply::never_opens()));
    let fallback =
        Arc::new(ScriptedProvider::new("openai", "gpt-fallback").then(Reply::paced(&refs(&all), ms(400))));
    let routes = (route(&primary, |s| s.timeouts = TIMEOUTS), route(&fallback, |_| {}));
    let h = Harness::new(tenant("acme", routes.0, vec![routes.1]));
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    // The primary's first token never came (2 s); the fallback streamed
    // from then until the primary's total of 5 s: seven pieces.
    timed_out(&h, sid, &done, secs(5), &all[..7].concat());
    assert_eq!(fallback.calls()[0].at - primary.calls()[0].at, secs(2));
    let meta = h.stored(sid, done.seq).unwrap().meta.unwrap();
    assert_eq!(meta.model.as_deref(), Some("gpt-fallback"));
}
