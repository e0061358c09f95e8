//! Slow and silent clients (`[connections] request_head_timeout_secs`): a
//! client that opens a connection and sends nothing, or sends part of a
//! request head and goes quiet (slowloris), is disconnected once the timeout
//! passes, so such clients cannot hold connections for ever. The timeout is
//! for the head only: a streamed answer that lasts longer is not cut.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{joined, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEAD_TIMEOUT: Duration = Duration::from_millis(500);
/// Far longer than the timeout; the server must have closed by then.
const BOUND: Duration = Duration::from_secs(10);

async fn app(fake: &FakeOpenAi) -> TestApp {
    let config = AppConfig::new()
        .tenant(TenantSpec::openai("acme", fake))
        .raw(&format!("[connections]\nrequest_head_timeout_secs = {}", HEAD_TIMEOUT.as_secs_f64()));
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
async fn an_answer_that_streams_longer_than_the_head_timeout_is_not_cut() {
    let all = pieces(8);
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(150) }).await;
    let app = app(&fake).await;
    let (sid, v) = app.create_session("acme").await;
    let started = Instant::now();
    let reply = app.chat_stream(&v, &sid, "take your time").await;
    assert!(started.elapsed() > HEAD_TIMEOUT, "the answer was too quick to show anything");
    let end = reply.last();
    assert_eq!(end.event, "stream_end", "{:?}", reply.events);
    assert_eq!(end.json()["message"]["content"], joined(&all).as_str());
}
