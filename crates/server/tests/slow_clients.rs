//! Slow and silent clients (`[connections] request_head_timeout_secs` and
//! `request_body_timeout_secs`): a client that opens a connection and sends
//! nothing, or sends part of a request head and goes quiet (slowloris), is
//! disconnected once the head timeout passes; one that announces a body and
//! never sends it, or trickles it, is answered 408 `request.timeout` and
//! disconnected once the body timeout passes, on every route that reads a
//! body. So such clients cannot hold connections for ever. The timeouts are
//! for requests only: a streamed answer that lasts longer is not cut.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::raw_http::{self, read_reply, read_to_close};
use common::{joined, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEAD_TIMEOUT: Duration = Duration::from_millis(500);
const BODY_TIMEOUT: Duration = Duration::from_millis(1000);
/// Far longer than the timeouts; the server must have closed by then.
const BOUND: Duration = Duration::from_secs(10);
const OPERATOR: &str = "slow-clients-operator-token-0123456789abcdef";

async fn app(fake: &FakeOpenAi) -> TestApp {
    let config = AppConfig::new()
        .tenant(TenantSpec::openai("acme", fake))
        .env("SWITCHBOARD_OPERATOR_TOKEN", OPERATOR)
        .raw(&format!(
            "[connections]\nrequest_head_timeout_secs = {}\nrequest_body_timeout_secs = {}",
            HEAD_TIMEOUT.as_secs_f64(),
            BODY_TIMEOUT.as_secs_f64()
        ));
    TestApp::start(config).await
}

/// Connects, sends `sent`, and returns how long the server took to close.
async fn closed_after(app: &TestApp, sent: &[u8]) -> Duration {
    let addr = app.url("").trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(sent).await.unwrap();
    let mut rest = Vec::new();
    // A close (EOF) or a reset both end the read; only time may not.
    let read = tokio::time::timeout(BOUND, tcp.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the connection was still open after {BOUND:?} (sent {:?})",
        String::from_utf8_lossy(sent)
    );
    started.elapsed()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = app(&fake).await;
    for sent in [&b""[..], b"POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: appl"] {
        let after = closed_after(&app, sent).await;
        assert!(after >= HEAD_TIMEOUT / 2, "closed after {after:?}, before the timeout");
    }
    // The server serves on.
    let (sid, v) = app.create_session("acme").await;
    assert_eq!(app.chat_stream(&v, &sid, "still there?").await.last().event, "stream_end");
}

#[tokio::test]
async fn an_answer_that_streams_longer_than_the_request_timeouts_is_not_cut() {
    let all = pieces(8);
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(150) }).await;
    let app = app(&fake).await;
    let (sid, v) = app.create_session("acme").await;
    let started = Instant::now();
    let reply = app.chat_stream(&v, &sid, "take your time").await;
    assert!(started.elapsed() > HEAD_TIMEOUT.max(BODY_TIMEOUT), "the answer was too quick to show anything");
    let end = reply.last();
    assert_eq!(end.event, "stream_end", "{:?}", reply.events);
    assert_eq!(end.json()["message"]["content"], joined(&all).as_str());
}

/// Heads of requests that announce a body of `len` bytes, on routes that
/// read their body: anonymous, with a visitor token, and on the admin API.
fn heads_announcing(len: usize, token: &str) -> Vec<(&'static str, String)> {
    let json = format!("Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n");
    vec![
        ("anonymous POST /v1/sessions", format!("POST /v1/sessions HTTP/1.1\r\nHost: x\r\nX-Tenant-Id: acme\r\n{json}")),
        (
            "POST /v1/chat",
            format!("POST /v1/chat HTTP/1.1\r\nHost: x\r\nX-Tenant-Id: acme\r\nAuthorization: Bearer {token}\r\n{json}"),
        ),
        (
            "PUT /v1/admin/kill-switch",
            format!("PUT /v1/admin/kill-switch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR}\r\n{json}"),
        ),
    ]
}

/// Sends `head`, then `trickle` one byte every 250 ms, and returns the answer
/// the server sent before it closed the connection, and when it closed.
async fn answer_to_a_stalled_body(
    app: &TestApp,
    what: &str,
    head: &str,
    trickle: &[u8],
) -> (raw_http::RawReply, Duration) {
    let (mut rx, mut tx) = raw_http::connect(app).await.into_split();
    let started = Instant::now();
    tx.write_all(head.as_bytes()).await.unwrap();
    let trickle = trickle.to_vec();
    let writer = tokio::spawn(async move {
        for byte in trickle {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if tx.write_all(&[byte]).await.is_err() {
                return;
            }
        }
        // Then silence, with the connection left open from this side.
        tokio::time::sleep(BOUND * 2).await;
        drop(tx);
    });
    let got = read_to_close(&mut rx, BOUND).await;
    let after = started.elapsed();
    writer.abort();
    let got = got.unwrap_or_else(|| panic!("{what}: the connection was still open after {BOUND:?}"));
    let (reply, _) = raw_http::parse(&got)
        .unwrap_or_else(|| panic!("{what}: no answer before the close: {:?}", String::from_utf8_lossy(&got)));
    (reply, after)
}

#[tokio::test]
async fn a_request_body_that_never_arrives_is_answered_408_and_the_connection_closed() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = app(&fake).await;
    let (_sid, v) = app.create_session("acme").await;
    for (what, head) in heads_announcing(100, &v.token) {
        let (reply, after) = answer_to_a_stalled_body(&app, what, &head, b"").await;
        assert!(after >= BODY_TIMEOUT / 2, "{what}: answered after {after:?}, before the timeout");
        reply.assert_envelope(408, "request.timeout");
        assert_eq!(reply.header("connection"), Some("close"), "{what}: {reply:?}");
    }
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn a_trickled_request_body_is_answered_408_and_the_connection_closed() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = app(&fake).await;
    let (sid, v) = app.create_session("acme").await;
    let body = format!(r#"{{"session_id":"{sid}","message":"one byte at a time, for ever and ever"}}"#);
    for (what, head) in heads_announcing(body.len(), &v.token) {
        let (reply, after) = answer_to_a_stalled_body(&app, what, &head, body.as_bytes()).await;
        assert!(after >= BODY_TIMEOUT / 2, "{what}: answered after {after:?}, before the timeout");
        reply.assert_envelope(408, "request.timeout");
    }
    assert_eq!(fake.calls(), 0);
    assert!(app.messages(&v, &sid).await.is_empty());
}

#[tokio::test]
async fn a_body_refused_as_too_large_is_drained_only_within_the_deadline() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = app(&fake).await;
    let (_sid, v) = app.create_session("acme").await;
    // Over max_body_bytes (128 KiB) but small enough to be drained before
    // the 413: the server waits for it only as long as the deadline allows.
    for (what, head) in heads_announcing(200_000, &v.token) {
        let (reply, _) = answer_to_a_stalled_body(&app, what, &head, b"{\"a\":").await;
        reply.assert_envelope(413, "request.too_large");
    }
}

#[tokio::test]
async fn a_body_sent_in_pieces_within_the_deadline_is_served_and_the_connection_kept() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = app(&fake).await;
    let mut tcp = raw_http::connect(&app).await;
    let body = br#"{"metadata":{"page":"/checkout"}}"#;
    for round in 0..2 {
        let head = format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nX-Tenant-Id: acme\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let (first, rest) = body.split_at(10);
        tcp.write_all(first).await.unwrap();
        tokio::time::sleep(BODY_TIMEOUT / 4).await;
        tcp.write_all(rest).await.unwrap();
        let reply = read_reply(&mut tcp, BOUND).await;
        assert_eq!(reply.status, 201, "round {round}: {reply:?}");
        assert!(reply.json()["session"]["id"].is_string(), "{reply:?}");
        assert_ne!(reply.header("connection"), Some("close"));
    }
    // Longer than the body timeout after the last body: the deadline was
    // the body's, not the connection's (only the head timeout closes it).
    let (sid, v) = app.create_session("acme").await;
    assert_eq!(app.chat_stream(&v, &sid, "still there?").await.last().event, "stream_end");
}
