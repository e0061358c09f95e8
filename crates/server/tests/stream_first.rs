//! A connection that opens with an SSE subscription is served without hyper
//! (`http::stream_first`): the same answers as on any other connection,
//! framed by hand and the connection closed after them; a head that is not
//! plainly a subscription (in pieces, with a body) goes to hyper as before;
//! a client that leaves frees its subscription at once.

// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::raw_http::{self, read_reply, read_to_close};
use common::subscribe::events_path;
use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(10);

async fn app() -> (FakeOpenAi, TestApp) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    (fake, app)
}

fn head(sid: &str, v: &Visitor, extra: &str) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nX-Tenant-Id: {}\r\n\
         Authorization: Bearer {}\r\n{extra}\r\n",
        events_path(sid, ""),
        v.tenant,
        v.token
    )
}

/// The answer's head (status line and headers, names lower-cased) and the
/// body bytes that came with it.
async fn read_head(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            return (head, got[end + 4..].to_vec());
        }
        let n =
            tokio::time::timeout(WITHIN, tcp.read(&mut buf)).await.expect("a head in time").expect("read");
        assert!(n > 0, "closed before a head: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// A chunked body's data (undone from `raw`), and whether its last chunk came.
fn dechunk(mut raw: &[u8]) -> (String, bool) {
    let mut out = Vec::new();
    while let Some(at) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..at]).ok().and_then(|s| usize::from_str_radix(s, 16).ok());
        let size = size.unwrap_or_else(|| panic!("a chunk size line: {:?}", String::from_utf8_lossy(raw)));
        let rest = &raw[at + 2..];
        if size == 0 {
            return (String::from_utf8_lossy(&out).into_owned(), rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "a chunk ends with CRLF");
        raw = &rest[size + 2..];
    }
    (String::from_utf8_lossy(&out).into_owned(), false)
}

/// Reads the chunked body until `needle` is in its data.
async fn body_until(tcp: &mut TcpStream, raw: &mut Vec<u8>, needle: &str) -> String {
    let deadline = Instant::now() + WITHIN;
    let mut buf = [0u8; 4096];
    loop {
        let (text, _) = dechunk(raw);
        if text.contains(needle) {
            return text;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"));
        let n = n.expect("read");
        assert!(n > 0, "closed before {needle:?}: {text:?}");
        raw.extend_from_slice(&buf[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test]
async fn a_subscription_on_its_own_connection_streams_framed_by_hand_and_ends_with_the_connection() {
    let (_fake, app) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let mut tcp = raw_http::connect(&app).await;
    // A pipelined request after the subscription is never answered here.
    let sent = format!("{}GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n", head(&sid, &v, ""));
    tcp.write_all(sent.as_bytes()).await.unwrap();

    let (head, mut raw) = read_head(&mut tcp).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert_eq!(header(&head, "cache-control"), Some("no-cache"), "{head}");
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"), "{head}");
    assert!(header(&head, "x-trace-id").is_some_and(|t| !t.is_empty()), "{head}");
    assert!(header(&head, "date").is_some_and(|d| d.ends_with(" gmt")), "{head}");
    let opening = body_until(&mut tcp, &mut raw, "event: session\n").await;
    assert!(opening.starts_with("retry: 2000\n\n"), "{opening}");

    let reply = app.chat_stream(&v, &sid, "hello").await;
    assert_eq!(reply.last().event, "stream_end");
    let text = body_until(&mut tcp, &mut raw, "event: stream_end\n").await;
    for kind in ["message", "stream_start", "stream_delta"] {
        assert!(text.contains(&format!("event: {kind}\n")), "{kind}: {text}");
    }

    // The kill switch ends the stream: an error event, the last chunk, the close.
    app.cli(&["tenant", "update", "acme", "--kill-switch", "on"]).await.expect_ok("flip on");
    let rest = read_to_close(&mut tcp, WITHIN).await.expect("the connection closed");
    raw.extend_from_slice(&rest);
    let (text, ended) = dechunk(&raw);
    assert!(text.contains("event: error\n") && text.contains("tenant.disabled"), "{text}");
    assert!(ended, "the body ends with its last chunk: {:?}", String::from_utf8_lossy(&rest));
    assert!(!String::from_utf8_lossy(&raw).contains("HTTP/1.1"), "the pipelined request was answered");
}

#[tokio::test]
async fn a_refused_subscription_gets_the_envelope_and_the_connection_closes() {
    let (_fake, app) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let forged = Visitor { token: format!("{}x", v.token), ..v.clone() };
    let mut tcp = raw_http::connect(&app).await;
    tcp.write_all(head(&sid, &forged, "").as_bytes()).await.unwrap();
    let reply = read_reply(&mut tcp, WITHIN).await;
    reply.assert_envelope(401, "auth.invalid");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    assert_eq!(
        reply.header("content-length").map(str::parse::<usize>),
        Some(Ok(reply.body.len())),
        "{reply:?}"
    );
    assert!(read_to_close(&mut tcp, WITHIN).await.is_some(), "the connection stayed open");
}

#[tokio::test]
async fn a_head_in_pieces_or_with_a_body_goes_to_hyper_as_before() {
    let (_fake, app) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let whole = head(&sid, &v, "");
    let (first, second) = whole.split_at(20);
    let with_length = head(&sid, &v, "Content-Length: 0\r\n");
    for sent in [vec![first, second], vec![with_length.as_str()]] {
        let mut tcp = raw_http::connect(&app).await;
        for (i, piece) in sent.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tcp.write_all(piece.as_bytes()).await.unwrap();
        }
        let (head, mut raw) = read_head(&mut tcp).await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert_eq!(header(&head, "connection"), None, "hyper keeps the connection: {head}");
        body_until(&mut tcp, &mut raw, "event: session\n").await;
    }
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_subscription_at_once() {
    let (_fake, app) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let open = || async {
        let text = app.get("/metrics", None).await.text;
        let line = text.lines().find(|l| l.starts_with("switchboard_connections_open{transport=\"sse\"}"));
        line.and_then(|l| l.rsplit_once(' ')).map(|(_, n)| n.to_owned())
    };
    let mut tcp = raw_http::connect(&app).await;
    tcp.write_all(head(&sid, &v, "").as_bytes()).await.unwrap();
    let (_, mut raw) = read_head(&mut tcp).await;
    body_until(&mut tcp, &mut raw, "event: session\n").await;
    assert_eq!(open().await.as_deref(), Some("1"));
    drop(tcp);
    // Long before the next heartbeat (the default is 15 s) would find it gone.
    let deadline = Instant::now() + Duration::from_secs(3);
    while open().await.as_deref() != Some("0") {
        assert!(Instant::now() < deadline, "still counted open: {:?}", open().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_connection_that_never_sends_its_head_does_not_hold_up_shutdown() {
    let (_fake, mut app) = app().await;
    // Its first bytes are waited for (up to the 30 s head timeout) until the
    // node stops; then it is let go at once.
    let mut silent = raw_http::connect(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, took) = app.terminate(Duration::from_secs(8)).await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "shutdown with a silent connection took {took:?}");
    assert!(read_to_close(&mut silent, WITHIN).await.is_some(), "the silent connection stayed open");
}
