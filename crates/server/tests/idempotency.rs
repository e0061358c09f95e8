//! Retries with a `client_message_id` (SPEC §4): sequential and concurrent
//! duplicates make one turn, failed outcomes are replayed too, a changed
//! message is refused; and 409 `turn.in_progress` while a turn streams.

mod common;

use common::checks::{check_error_event, check_stream_turn};
use common::scenarios;
use common::{chat_body, joined, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Timeouts};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn sequential_retries_are_idempotent() {
    scenarios::sequential_retries_are_idempotent(None).await;
}

#[tokio::test]
async fn concurrent_retries_share_one_turn() {
    scenarios::concurrent_retries_share_one_turn(None).await;
}

#[tokio::test]
async fn a_failed_turn_is_replayed_without_calling_the_provider_again() {
    let fake = FakeOpenAi::start(Mode::ServerError).await;
    let timeouts = Timeouts { connect: 1.0, first_token: 1.0, idle: 1.0, total: 3.0 };
    let app =
        TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake).timeouts(timeouts))).await;
    let (sid, v) = app.create_session("acme").await;
    let body = json!({"session_id": sid, "message": "hi", "client_message_id": "k1", "stream": false});

    let first = app.chat_raw(&v, &body).await;
    first.assert_error(502, "llm.unavailable");
    let calls = fake.calls();
    fake.set_mode(Mode::Normal(pieces(2)));
    let again = app.chat_raw(&v, &body).await;
    again.assert_error(502, "llm.unavailable");
    assert_eq!(fake.calls(), calls, "the retry of a failed turn called the provider");
    // Asked for a stream, the retry replays the same failure as an event.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let replay = app.chat_stream_body(&v, &streamed).await;
    check_error_event(&replay, "llm.unavailable", 502);
    assert_eq!(fake.calls(), calls, "the streamed retry of a failed turn called the provider");
    let msgs = app.messages(&v, &sid).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0]["status"], "error");
}

#[tokio::test]
async fn a_second_turn_while_one_streams_is_409() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: vec![" done".to_owned()] }).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;

    let mut live = app.chat_live(&v, &chat_body(&sid, "first")).await;
    live.until("stream_delta", Duration::from_secs(10)).await;

    let refused = app.chat_raw(&v, &chat_body(&sid, "second")).await;
    refused.assert_error(409, "turn.in_progress");
    let keyed = json!({"session_id": sid, "message": "third", "stream": false, "client_message_id": "late"});
    app.chat_raw(&v, &keyed).await.assert_error(409, "turn.in_progress");
    let during = app.messages(&v, &sid).await;
    assert_eq!(during.len(), 2, "a refused turn stored something: {during:?}");
    assert_eq!(during[0]["status"], "streaming");
    assert_eq!(fake.calls(), 1);

    fake.release();
    let events = live.finish(Duration::from_secs(10)).await;
    let end = events.last().unwrap();
    assert_eq!(end.event, "stream_end", "{events:?}");
    assert_eq!(end.json()["message"]["content"], "w0 w1 done");

    // The refused request did not use its client_message_id: sent again now,
    // it is a new turn.
    let ok = app.chat_raw(&v, &keyed).await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text);
    assert_eq!(ok.body["user_message"]["seq"], 3);
    assert_eq!(ok.body["user_message"]["content"], "third");
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "fourth").await, "fourth", 5);
    assert_eq!(turn.text, joined(&pieces(2)) + " done");
}
