//! Provider resilience (SPEC §13) against fake upstreams: retries before the
//! first token honouring the vendor's hints, within their caps, never after
//! text reached the client; a circuit breaker per tenant and provider that
//! opens and fails fast; fallbacks tried in order with `stream_end` naming
//! who answered; a stopped turn calls no more. What takes time to show (the
//! breaker's half-open trial, no retry long after a stop) is the engine's,
//! tested on a paused clock in `crates/core/tests/engine`; here the binary
//! proves the wiring.

mod common;

use common::checks::{check_error_event, check_stream_turn};
use common::{chat_body, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Timeouts, Visitor};
use std::time::{Duration, Instant};

const TIMEOUTS: Timeouts = Timeouts { connect: 1.0, first_token: 5.0, idle: 2.0, total: 20.0 };

async fn app_with(tenant: TenantSpec) -> (TestApp, String, Visitor) {
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = app.create_session("acme").await;
    (app, sid, v)
}

/// A streamed turn that must fail with `llm.unavailable`; returns how long it took.
async fn failed_turn(app: &TestApp, v: &Visitor, sid: &str) -> Duration {
    let started = Instant::now();
    let reply = app.chat_stream(v, sid, "question").await;
    check_error_event(&reply, "llm.unavailable", 502);
    started.elapsed()
}

fn gaps(fake: &FakeOpenAi) -> Vec<Duration> {
    let at: Vec<Instant> = fake.requests().iter().map(|r| r.at).collect();
    at.windows(2).map(|w| w[1].duration_since(w[0])).collect()
}

#[tokio::test]
async fn retry_after_ms_is_honoured_and_the_client_sees_only_the_answer() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    fake.push_mode(Mode::RateLimitedMs(300));
    fake.push_mode(Mode::ServerError);
    let (app, sid, v) = app_with(TenantSpec::openai("acme", &fake).timeouts(TIMEOUTS)).await;

    let reply = app.chat_stream(&v, &sid, "hi").await;
    let turn = check_stream_turn(&reply, "hi", 1);
    assert_eq!(turn.text, "w0 w1 w2");
    assert!(reply.events.iter().all(|e| e.event != "error"), "a retried failure reached the client");
    assert_eq!(fake.calls(), 3, "a 429 and a 500 before the first token are both retried");
    let gaps = gaps(&fake);
    assert!(gaps[0] >= Duration::from_millis(290), "retry-after-ms: 300 not honoured: {gaps:?}");
    // Backoff after the 500: half the first step at least.
    assert!(gaps[1] >= Duration::from_millis(120), "no backoff after the 500: {gaps:?}");
}

#[tokio::test]
async fn attempts_and_total_wait_are_capped() {
    let fake = FakeOpenAi::start(Mode::ServerError).await;
    let tenant =
        TenantSpec::openai("acme", &fake).timeouts(TIMEOUTS).table("[tenants.provider.retry]\nattempts = 2");
    let (app, sid, v) = app_with(tenant).await;
    failed_turn(&app, &v, &sid).await;
    assert_eq!(fake.calls(), 2, "attempts = 2 means one retry");

    // A hint longer than the wait allowed is not waited for.
    fake.set_mode(Mode::RateLimitedMs(60_000));
    let took = failed_turn(&app, &v, &sid).await;
    assert_eq!(fake.calls(), 3, "a retry that would wait past max_wait_secs is not made");
    assert!(took < Duration::from_secs(3), "the turn waited for a hopeless retry: {took:?}");
}

#[tokio::test]
async fn no_retry_and_no_fallback_once_text_was_shown() {
    let primary = FakeOpenAi::start(Mode::MidStreamError(pieces(2))).await;
    let fallback = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let tenant = TenantSpec::openai("acme", &primary).timeouts(TIMEOUTS).fallback(&fallback, "gpt-fallback");
    let (app, sid, v) = app_with(tenant).await;

    let reply = app.chat_stream(&v, &sid, "question").await;
    check_error_event(&reply, "llm.unavailable", 502);
    assert_eq!(common::deltas_text(&reply.events), "w0 w1");
    assert_eq!((primary.calls(), fallback.calls()), (1, 0), "text was shown: the answer is the primary's");
    let answer = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!((answer["status"].as_str(), answer["content"].as_str()), (Some("error"), Some("w0 w1")));
}

#[tokio::test]
async fn fallbacks_are_tried_in_order_and_stream_end_names_who_answered() {
    let primary = FakeOpenAi::start(Mode::ServerError).await;
    let second = FakeOpenAi::start(Mode::RateLimited { retry_after_secs: 30 }).await;
    let third = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let tenant = TenantSpec::openai("acme", &primary)
        .timeouts(TIMEOUTS)
        .table("[tenants.provider.retry]\nattempts = 2\n[tenants.provider.breaker]\nfailures = 2")
        .fallback(&second, "gpt-second")
        .fallback(&third, "gpt-third");
    let (app, sid, v) = app_with(tenant).await;

    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "hi").await, "hi", 1);
    assert_eq!(turn.text, "w0 w1");
    assert_eq!(
        (turn.end["provider"].as_str(), turn.end["model"].as_str()),
        (Some("openai"), Some("gpt-third"))
    );
    assert_eq!((primary.calls(), second.calls(), third.calls()), (2, 1, 1));
    let last_primary = primary.requests().last().unwrap().at;
    assert!(second.requests()[0].at >= last_primary, "a fallback was called before the primary gave up");
    assert!(third.requests()[0].at >= second.requests()[0].at, "fallbacks out of order");
    assert_eq!(third.last_request().body["model"], "gpt-third");
    let stored = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!(stored["status"], "complete", "{stored}");

    // Two failures opened the primary's circuit: the next turn skips it.
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "again").await, "again", 3);
    assert_eq!(turn.end["model"], "gpt-third");
    assert_eq!(primary.calls(), 2, "an open circuit still called the provider");
}

#[tokio::test]
async fn a_circuit_that_opens_mid_turn_hands_over_without_waiting() {
    let primary = FakeOpenAi::start(Mode::RateLimited { retry_after_secs: 5 }).await;
    let fallback = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let tenant = TenantSpec::openai("acme", &primary)
        .timeouts(TIMEOUTS)
        .table("[tenants.provider.breaker]\nfailures = 1")
        .fallback(&fallback, "gpt-fallback");
    let (app, sid, v) = app_with(tenant).await;
    let started = Instant::now();
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "hi").await, "hi", 1);
    assert_eq!(turn.end["model"], "gpt-fallback");
    assert_eq!(primary.calls(), 1, "a retry was made through an open circuit");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the turn waited out a Retry-After it could not use: {took:?}");
}

#[tokio::test]
async fn a_refused_request_does_not_open_the_circuit() {
    let fake = FakeOpenAi::start(Mode::BadRequest).await;
    let tenant = TenantSpec::openai("acme", &fake)
        .timeouts(TIMEOUTS)
        .table("[tenants.provider.breaker]\nfailures = 1");
    let (app, sid, v) = app_with(tenant).await;
    for _ in 0..3 {
        failed_turn(&app, &v, &sid).await;
    }
    assert_eq!(
        fake.calls(),
        3,
        "a 400 is this request's fault: neither retried nor counted against the vendor"
    );
    fake.set_mode(Mode::Normal(pieces(2)));
    check_stream_turn(&app.chat_stream(&v, &sid, "fine now").await, "fine now", 7);
}

/// The tenant's `[tenants.provider.breaker]` reaches the engine, an open
/// circuit answers `llm.unavailable` without calling, and the metrics count
/// both. Its half-open trial after `open_secs`, reopening on a failed trial
/// and closing on a good one: `crates/core/tests/engine/breaker.rs`.
#[tokio::test]
async fn the_breaker_opens_and_fails_fast() {
    let fake = FakeOpenAi::start(Mode::ServerError).await;
    let tenant = TenantSpec::openai("acme", &fake).timeouts(TIMEOUTS).table(
        "[tenants.provider.retry]\nattempts = 1\n[tenants.provider.breaker]\nfailures = 5\nopen_secs = 60",
    );
    let (app, sid, v) = app_with(tenant).await;

    for _ in 0..5 {
        failed_turn(&app, &v, &sid).await;
    }
    assert_eq!(fake.calls(), 5);
    // Open: fails fast without calling.
    fake.set_mode(Mode::Normal(pieces(2)));
    let took = failed_turn(&app, &v, &sid).await;
    assert_eq!(fake.calls(), 5, "an open circuit called the provider");
    assert!(took < Duration::from_millis(900), "failing fast took {took:?}");

    let metrics = app.get("/metrics", None).await.text;
    for (then, n) in [("gave_up", 5), ("circuit_open", 1)] {
        let line = format!("switchboard_provider_failures_total{{provider=\"openai\",then=\"{then}\"}} {n}");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }
}

/// A client leaving (under `abort`) while a retry waits stops the turn at
/// once, not at the next attempt: the answer is `aborted` before the
/// Retry-After is up, after the one call. That no call follows later, long
/// past it: `crates/core/tests/engine/cancel.rs`.
#[tokio::test]
async fn a_turn_stopped_while_waiting_to_retry_calls_no_more() {
    let fake = FakeOpenAi::start(Mode::RateLimitedMs(1500)).await;
    let tenant = TenantSpec::openai("acme", &fake).timeouts(TIMEOUTS).on_disconnect("abort");
    let (app, sid, v) = app_with(tenant).await;

    let mut live = app.chat_live(&v, &chat_body(&sid, "hello")).await;
    live.until("stream_start", Duration::from_secs(5)).await;
    common::eventually("the first call", Duration::from_secs(5), || async {
        (fake.calls() == 1).then_some(())
    })
    .await;
    drop(live);
    let (a, vr, s) = (&app, &v, sid.as_str());
    let answer = common::eventually("the answer to be aborted", Duration::from_secs(5), || async move {
        let m = a.message(vr, s, 2).await?;
        (m["status"] != "streaming").then_some(m)
    })
    .await;
    assert_eq!(answer["status"], "aborted", "{answer}");
    let since_the_call = fake.requests()[0].at.elapsed();
    assert!(
        since_the_call < Duration::from_millis(1500),
        "stopped only when the retry was due: {since_the_call:?}"
    );
    assert_eq!(fake.calls(), 1, "the stopped turn retried anyway");
}
