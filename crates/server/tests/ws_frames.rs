//! What the WebSocket `GET /v1/ws` (SPEC §7) accepts in a client frame:
//! invalid JSON, unknown types, binary frames, unknown or repeated fields
//! (refused as `POST /v1/chat` refuses them) get a `request.invalid` frame and
//! the socket stays open; a `hello` with a field it does not know is refused,
//! then closed 4003; a frame over 128 KiB closes the socket with 1009.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::subscribe::EVENT_TIMEOUT;
use common::ws::{check_error_frame, hello};
use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use serde_json::json;
use std::time::Duration;

/// How long a close may take to arrive after what causes it.
const CLOSE_WITHIN: Duration = Duration::from_secs(6);

async fn app() -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    (TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await, fake)
}

#[tokio::test]
async fn bad_frames_get_request_invalid_and_the_socket_stays_open() {
    let (app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    let bad = [
        "not json",
        "[1,2]",
        "{\"no\":\"type\"}",
        "{\"type\":\"dance\"}",
        "{\"type\":7}",
        "{\"type\":\"typing\"}",
        "\"hello\"",
    ];
    for (i, text) in bad.iter().enumerate() {
        ws.send_text(text).await;
        let e = ws.expect("error").await;
        check_error_frame(&e, "request.invalid", 400);
        assert!(ws.ping(i as i64).await.is_empty(), "after {text}");
    }
    ws.send_binary(&[0, 1, 2, 3]).await;
    check_error_frame(&ws.expect("error").await, "request.invalid", 400);
    // Pings echo any `ts`.
    for ts in [json!(0), json!(1_700_000_000_123i64), json!("abc"), json!({"k": [1]})] {
        ws.send_json(&json!({"type": "ping", "ts": ts})).await;
        let pong = ws.expect("pong").await;
        assert_eq!(pong["ts"], ts, "{pong}");
    }
}

#[tokio::test]
async fn frames_over_128_kib_close_the_socket_with_1009() {
    let (app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    // Just under the limit is a frame like any other.
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    let big = "x".repeat(120 * 1024);
    ws.send_json(&json!({"type": "ping", "ts": big})).await;
    assert_eq!(ws.expect("pong").await["ts"].as_str().map(str::len), Some(big.len()));
    // Over it: close 1009.
    ws.send_text(&"y".repeat(129 * 1024)).await;
    ws.expect_close(1009, CLOSE_WITHIN).await;
}

#[tokio::test]
async fn frames_with_unknown_or_repeated_fields_get_request_invalid_and_the_socket_stays_open() {
    let (app, fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    let other = uuid::Uuid::new_v4();
    // Each frame, and the fields its refusal must name (as POST /v1/chat would).
    let cases: Vec<(String, Vec<&str>)> = vec![
        (json!({"type": "message", "content": "hi", "colour": "red"}).to_string(), vec!["colour"]),
        (
            json!({"type": "message", "content": "hi", "stream": false, "role": "system"}).to_string(),
            vec!["role", "stream"],
        ),
        (json!({"type": "typing", "active": true, "who": "agent"}).to_string(), vec!["who"]),
        (json!({"type": "subscribe", "session_id": sid, "token": "x"}).to_string(), vec!["token"]),
        (json!({"type": "ping", "ts": 1, "extra": 2}).to_string(), vec!["extra"]),
        // A key given twice, at the top or inside the context.
        (
            format!(r#"{{"type":"message","content":"hi","session_id":"{other}","session_id":"{sid}"}}"#),
            vec!["session_id"],
        ),
        (r#"{"type":"message","content":"a","content":"b"}"#.to_owned(), vec!["content"]),
        (
            r#"{"type":"message","content":"hi","context":{"page":"/a","page":"/b"}}"#.to_owned(),
            vec!["context.page"],
        ),
        (r#"{"type":"typing","type":"message","content":"hi"}"#.to_owned(), vec!["type"]),
    ];
    for (i, (text, fields)) in cases.iter().enumerate() {
        ws.send_text(text).await;
        let err = ws.expect_error("request.invalid", 400).await;
        let named: Vec<&str> =
            err["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert_eq!(&named, fields, "{text}: {err}");
        assert!(ws.ping(i as i64).await.is_empty(), "after {text}");
    }
    assert_eq!(fake.calls(), 0, "a refused frame started a turn");
    assert!(app.messages(&v, &sid).await.is_empty(), "a refused frame stored a message");
    // What each type knows still works, a message's context included.
    ws.send_json(&json!({"type": "typing", "active": true, "session_id": sid})).await;
    ws.send_json(&json!({"type": "message", "content": "hi", "session_id": sid, "client_message_id": "k-1", "context": {"page": "/a"}}))
        .await;
    ws.until("stream_end", EVENT_TIMEOUT).await;
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn a_hello_with_a_field_it_does_not_know_is_refused_then_closed() {
    let (app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let mut h = hello("acme", Some(&v.token), &sid, None);
    h["ticket"] = json!("smuggled");
    let mut ws = app.ws("?tenant=acme").await;
    ws.send_json(&h).await;
    let err = ws.expect_error("request.invalid", 400).await;
    assert_eq!(err["details"], json!([{"field": "ticket", "problem": "unknown field"}]), "{err}");
    ws.expect_close(4003, CLOSE_WITHIN).await;
    // Its context is the page's: more than tenant_id is fine there.
    let mut h = hello("acme", Some(&v.token), &sid, None);
    h["context"]["page"] = json!("/pricing");
    let mut ws = app.ws("?tenant=acme").await;
    ws.send_json(&h).await;
    ws.expect("welcome").await;
}
