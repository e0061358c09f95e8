//! Requests the HTTP parser refuses before any route sees them (a bad or
//! doubled `Content-Length`, a bare CR, an obs-fold line, too many or too
//! large headers, a 100 KB URL) are answered like every other refusal: the
//! SPEC §8 envelope, `X-Trace-Id` (the envelope's trace id, also in the
//! log with the parser's reason) and the security headers, then the
//! connection is closed. Sent over bare TCP: no client library sends them.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::raw_http::{self, read_reply, read_to_close, RawReply};
use common::{eventually, AppConfig, TenantSpec, TestApp};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Far longer than the server needs to answer and close.
const BOUND: Duration = Duration::from_secs(10);

async fn app() -> TestApp {
    TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme"))).await
}

/// A POST of `/v1/sessions` with `extra` header lines (each ending in CRLF).
fn post_with(extra: &str) -> Vec<u8> {
    format!("POST /v1/sessions HTTP/1.1\r\nHost: x\r\nX-Tenant-Id: acme\r\n{extra}\r\n{{}}").into_bytes()
}

/// Sends `request` on a new connection; returns the one answer the server
/// sent before it closed the connection.
async fn refused(app: &TestApp, what: &str, request: &[u8]) -> RawReply {
    let (mut rx, mut tx) = raw_http::connect(app).await.into_split();
    // The server may refuse before it has read everything: a failed write
    // is expected then, and the answer is still there to read.
    let request = request.to_vec();
    let writer = tokio::spawn(async move {
        let _ = tx.write_all(&request).await;
        tx
    });
    let got = read_to_close(&mut rx, BOUND)
        .await
        .unwrap_or_else(|| panic!("{what}: the connection was still open after {BOUND:?}"));
    drop(writer.await);
    let (reply, used) = raw_http::parse(&got)
        .unwrap_or_else(|| panic!("{what}: no whole answer: {:?}", String::from_utf8_lossy(&got)));
    assert_eq!(used, got.len(), "{what}: more than one answer: {:?}", String::from_utf8_lossy(&got));
    assert_eq!(reply.header("connection"), Some("close"), "{what}: {reply:?}");
    reply
}

#[tokio::test]
async fn malformed_heads_get_the_envelope_a_trace_id_and_the_security_headers() {
    let app = app().await;
    let header_lines = |n: usize| (0..n).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();
    let bad_requests: Vec<(&str, Vec<u8>)> = vec![
        ("a Content-Length that is not a number", post_with("Content-Length: 2x\r\n")),
        ("a negative Content-Length", post_with("Content-Length: -2\r\n")),
        ("two different Content-Lengths", post_with("Content-Length: 2\r\nContent-Length: 3\r\n")),
        ("a list as Content-Length", post_with("Content-Length: 2, 3\r\n")),
        ("a bare CR in a header", post_with("Content-Length: 2\r\nX-Note: a\rb\r\n")),
        ("an obs-fold line", post_with("Content-Length: 2\r\nX-Note: a\r\n b\r\n")),
        ("a space before the colon", post_with("Content-Length : 2\r\n")),
        ("a bad request line", b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n".to_vec()),
    ];
    let mut trace_ids = Vec::new();
    for (what, request) in &bad_requests {
        let reply = refused(&app, what, request).await;
        let err = reply.assert_envelope(400, "request.invalid");
        assert_eq!(
            err["details"],
            json!([{"field": "request", "problem": "is not valid HTTP/1.1"}]),
            "{what}"
        );
        trace_ids.push(err["trace_id"].as_str().unwrap().to_owned());
    }

    let too_many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", header_lines(150));
    let reply = refused(&app, "150 headers", too_many.as_bytes()).await;
    reply.assert_envelope(431, "request.headers_too_large");
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(512 * 1024));
    let reply = refused(&app, "a 512 KiB header", huge.as_bytes()).await;
    reply.assert_envelope(431, "request.headers_too_large");
    let long_url = format!("GET /healthz?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100 * 1024));
    let reply = refused(&app, "a 100 KB URL", long_url.as_bytes()).await;
    reply.assert_envelope(414, "request.uri_too_long");

    // The parser's reason is in the log, under the trace id the client got.
    let last = trace_ids.last().unwrap().clone();
    eventually("the refusal in the log", Duration::from_secs(5), || {
        let found = app.log().lines().any(|l| l.contains(&last) && l.contains("refused by the HTTP parser"));
        async move { found.then_some(()) }
    })
    .await;
    // The server serves on.
    app.create_session("acme").await;
}

#[tokio::test]
async fn a_malformed_request_after_good_ones_on_the_same_connection_gets_the_envelope() {
    let app = app().await;
    let mut tcp = raw_http::connect(&app).await;
    for _ in 0..2 {
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let ok = read_reply(&mut tcp, BOUND).await;
        assert_eq!(ok.status, 200, "{ok:?}");
    }
    // A created session answers with a body, and a longer one.
    tcp.write_all(&post_with("Content-Type: application/json\r\nContent-Length: 2\r\n")).await.unwrap();
    assert_eq!(read_reply(&mut tcp, BOUND).await.status, 201);
    tcp.write_all(&post_with("Content-Length: 2\r\nContent-Length: 3\r\n")).await.unwrap();
    let got = read_to_close(&mut tcp, BOUND).await.expect("the connection was not closed");
    let (reply, _) = raw_http::parse(&got).expect("an answer");
    reply.assert_envelope(400, "request.invalid");
}
