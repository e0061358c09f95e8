//! Scenarios run on SQLite by their topic's test file and again on PostgreSQL
//! by `tests/postgres.rs`: `database_url` is `None` for the default SQLite.

use super::checks::{assert_message_shape, check_stream_turn};
use super::{chat_body, eventually, joined, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn config(tenant: TenantSpec, database_url: Option<&str>) -> AppConfig {
    let cfg = AppConfig::new().tenant(tenant);
    match database_url {
        Some(url) => cfg.database_url(url),
        None => cfg,
    }
}

/// A streamed turn through the fake upstream, then a restart: the turn and
/// the visitor's token survive.
pub async fn streamed_turn_survives_restart(database_url: Option<&str>) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(6))).await;
    let tenant = TenantSpec::openai("acme", &fake).system_prompt("You are Acme's assistant.");
    let mut app = TestApp::start(config(tenant, database_url)).await;
    let (sid, v) = app.create_session("acme").await;
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "Hi there").await, "Hi there", 1);
    assert_eq!(turn.text, joined(&pieces(6)));
    let before = app.messages(&v, &sid).await;
    assert_eq!(before.len(), 2);

    let (status, _) = app.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    app.restart().await;
    let after = app.messages(&v, &sid).await;
    assert_eq!(before, after, "history changed across a restart");
    assert_eq!(after[0]["status"], "complete");
    assert_eq!(after[0]["content"], turn.text.as_str());
    let turn2 = check_stream_turn(&app.chat_stream(&v, &sid, "And again").await, "And again", 3);
    assert_eq!(turn2.seq, 4);
}

fn keyed(sid: &str, message: &str, key: &str, stream: bool) -> Value {
    json!({"session_id": sid, "message": message, "client_message_id": key, "stream": stream})
}

/// The same `client_message_id` sent again, one after the other: one turn,
/// the same outcome; the same id with another message is refused.
pub async fn sequential_retries_are_idempotent(database_url: Option<&str>) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(4))).await;
    let app = TestApp::start(config(TenantSpec::openai("acme", &fake), database_url)).await;
    let (sid, v) = app.create_session("acme").await;

    let first = app.chat_raw(&v, &keyed(&sid, "hello", "cm-1", false)).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text);
    assert_eq!(first.body["user_message"]["client_message_id"], "cm-1");
    let again = app.chat_raw(&v, &keyed(&sid, "hello", "cm-1", false)).await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.text);
    for key in ["message", "user_message"] {
        assert_eq!(again.body[key]["seq"], first.body[key]["seq"], "{key}: {}", again.text);
        assert_eq!(again.body[key]["content"], first.body[key]["content"], "{key}: {}", again.text);
    }
    assert_eq!(again.body["message"]["status"], "complete");
    assert_eq!(fake.calls(), 1, "a retry called the provider again");

    // A streamed retry of the finished turn: its result, on the stream.
    let streamed = app.chat_stream_body(&v, &keyed(&sid, "hello", "cm-1", true)).await;
    assert_eq!(streamed.first_line.as_deref(), Some("retry: 2000"));
    let end = streamed.last();
    assert_eq!(end.event, "stream_end", "events: {:?}", streamed.events);
    assert_eq!(end.id.as_deref(), Some("2"));
    assert_eq!(end.json()["message"]["seq"], 2);
    assert_eq!(end.json()["message"]["content"], first.body["message"]["content"]);
    assert_eq!(fake.calls(), 1, "a streamed retry called the provider again");

    let changed = app.chat_raw(&v, &keyed(&sid, "something else", "cm-1", false)).await;
    changed.assert_error(400, "request.invalid");
    assert_eq!(app.messages(&v, &sid).await.len(), 2, "a retry stored something");

    // Keys are per session: the same key elsewhere is a new turn.
    let other = app.create_session_for(&v).await.body["session"]["id"].as_str().unwrap().to_owned();
    let elsewhere = app.chat_raw(&v, &keyed(&other, "hello", "cm-1", false)).await;
    assert_eq!(elsewhere.status.as_u16(), 200, "{}", elsewhere.text);
    assert_eq!(elsewhere.body["user_message"]["seq"], 1);
    assert_eq!(elsewhere.body["user_message"]["session_id"], other.as_str());
    assert_eq!(fake.calls(), 2);

    let next = app.chat_raw(&v, &keyed(&sid, "next", "cm-2", false)).await;
    assert_eq!(next.status.as_u16(), 200, "{}", next.text);
    assert_eq!(next.body["user_message"]["seq"], 3);
    assert_eq!(next.body["message"]["seq"], 4);
    assert_eq!(fake.calls(), 3);
}

/// The same `client_message_id` sent twice at once: both get the one turn.
pub async fn concurrent_retries_share_one_turn(database_url: Option<&str>) {
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: pieces(10), interval: Duration::from_millis(40) }).await;
    let app = TestApp::start(config(TenantSpec::openai("acme", &fake), database_url)).await;
    let (sid, v) = app.create_session("acme").await;

    let body = keyed(&sid, "hello", "same-key", true);
    let (a, b) = tokio::join!(app.chat_stream_body(&v, &body), app.chat_stream_body(&v, &body));
    for reply in [&a, &b] {
        let end = reply.last();
        assert_eq!(end.event, "stream_end", "events: {:?}", reply.events);
        assert_eq!(end.json()["seq"], 2);
        assert_eq!(end.json()["message"]["content"], joined(&pieces(10)).as_str());
    }

    let body = keyed(&sid, "second", "other-key", false);
    let (c, d) = tokio::join!(app.chat_raw(&v, &body), app.chat_raw(&v, &body));
    for reply in [&c, &d] {
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        assert_eq!(reply.body["message"]["seq"], 4, "{}", reply.text);
        assert_eq!(reply.body["user_message"]["seq"], 3, "{}", reply.text);
    }
    let stored = app.messages(&v, &sid).await;
    assert_eq!(stored.len(), 4, "duplicates stored: {stored:?}");
    assert_eq!(fake.calls(), 2, "the provider was called once per distinct key");
}

/// SIGKILL during a slow answer (after a checkpoint had time to happen), then
/// a restart on the same data: the answer is `interrupted` with a prefix of the
/// streamed text, the user message is there, and the session takes turns again.
pub async fn crash_mid_stream_leaves_interrupted_partial(database_url: Option<&str>) {
    let all = pieces(100);
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(100) }).await;
    let mut app = TestApp::start(config(TenantSpec::openai("acme", &fake), database_url)).await;
    let (sid, v) = app.create_session("acme").await;

    let mut live = app.chat_live(&v, &chat_body(&sid, "tell me a long story")).await;
    live.until("stream_start", Duration::from_secs(10)).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1700) {
        let ev = live.next(Duration::from_secs(5)).await;
        assert!(ev.is_some_and(|e| e.event == "stream_delta" || e.event == "typing"), "{:?}", live.received);
    }
    let seen = live.text_so_far();
    assert!(!seen.is_empty());
    app.kill().await;
    drop(live);

    app.restart().await;
    let full = joined(&all);
    let (appr, vr, sidr) = (&app, &v, sid.as_str());
    let answer = eventually("the answer to be marked interrupted", Duration::from_secs(5), || async move {
        let m = appr.message(vr, sidr, 2).await?;
        (m["status"] == "interrupted").then_some(m)
    })
    .await;
    assert_message_shape(&answer);
    assert_eq!(answer["role"], "assistant");
    let content = answer["content"].as_str().expect("content");
    assert!(!content.is_empty(), "no checkpointed text survived the crash");
    assert!(full.starts_with(content), "checkpoint {content:?} is not a prefix of the stream");
    let user = app.message(&v, &sid, 1).await.expect("the user message is gone");
    assert_eq!(user["content"], "tell me a long story");
    assert_eq!(user["status"], "complete");

    fake.set_mode(Mode::Normal(pieces(3)));
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "are you back?").await, "are you back?", 3);
    assert_eq!(turn.text, joined(&pieces(3)));
}
