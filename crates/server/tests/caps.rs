//! The node's own connection caps (SPEC §7, `[connections]`), seen from
//! outside: `max_per_ip` counts SSE subscriptions and WebSockets of one
//! client address together, whatever their subjects; `max_pending_per_ip`
//! counts the WebSockets of an address that have not said hello yet (one
//! that said hello no longer counts); `max_total` caps the node whatever
//! the subject or the address. One more is refused with `connection.limit`
//! (SSE: HTTP 429; WebSocket: after the upgrade, the envelope, then close
//! 4008); closing a connection frees its place and disturbs no other.
//!
//! A second client address is `127.0.0.2` (any 127/8 address reaches a
//! server listening on 127.0.0.1).
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::subscribe::EVENT_TIMEOUT;
use common::ws::{hello, Incoming, WsClient};
use common::{
    eventually, joined, pieces, AppConfig, FakeOpenAi, LiveStream, Mode, TenantSpec, TestApp, Visitor,
};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Every test ends within this.
const BOUND: Duration = Duration::from_secs(15);
/// How long the server may take to notice a connection the client closed
/// (SSE: at the next heartbeat, every second here).
const FREED_WITHIN: Duration = Duration::from_secs(5);
/// The other client address.
const OTHER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Runs a test body, failing it when it takes longer than `BOUND`.
async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(BOUND, body).await.unwrap_or_else(|_| panic!("the test took longer than {BOUND:?}"));
}

/// One node on SQLite, one tenant answered by a fake upstream, with these
/// `[connections]` lines.
async fn app(connections: &str) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let config = AppConfig::new()
        .tenant(TenantSpec::openai("acme", &fake))
        .raw("heartbeat_secs = 1")
        .raw(&format!("[connections]\n{connections}"));
    (TestApp::start(config).await, fake)
}

/// `n` sessions, each of a visitor of its own.
async fn visitors(app: &TestApp, n: usize) -> Vec<(String, Visitor)> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(app.create_session("acme").await);
    }
    out
}

/// An HTTP client that connects from `OTHER_ADDRESS`.
fn client_from_other_address() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(OTHER_ADDRESS)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// A subscription of `who` from `OTHER_ADDRESS`: the stream, or the refusal.
async fn subscribe_from_other_address(
    app: &TestApp,
    who: &Visitor,
    sid: &str,
) -> Result<LiveStream, common::client::Reply> {
    let rb = client_from_other_address()
        .get(app.url(&format!("/v1/sessions/{sid}/events")))
        .header("x-tenant-id", &who.tenant)
        .bearer_auth(&who.token);
    app.open_events(rb).await
}

/// A subscription that opened: reads its `session` event.
async fn open_sse(app: &TestApp, who: &Visitor, sid: &str) -> LiveStream {
    let mut s = app.subscribe(who, sid, None).await;
    s.session_event().await;
    s
}

/// A subscription refused for a cap.
async fn assert_sse_refused(app: &TestApp, who: &Visitor, sid: &str, what: &str) {
    let r = app.subscribe_refused(who, sid, None).await;
    assert_eq!(r.status.as_u16(), 429, "{what}: {}", r.text);
    r.assert_error(429, "connection.limit");
}

/// A WebSocket upgrade (it must upgrade: caps are refused after it).
async fn upgrade(app: &TestApp) -> WsClient {
    match app.ws_try("?tenant=acme", &[]).await {
        Ok(ws) => ws,
        Err(r) => panic!(
            "the upgrade was refused with HTTP {} (caps must be refused after it): {}",
            r.status, r.text
        ),
    }
}

/// A WebSocket refused for a cap: right after the upgrade, before any
/// hello, the `connection.limit` envelope, then close 4008.
async fn assert_ws_refused(app: &TestApp, what: &str) {
    let mut ws = upgrade(app).await;
    match ws.try_next(EVENT_TIMEOUT).await {
        Some(Incoming::Frame(f)) => {
            common::ws::check_error_frame(&f, "connection.limit", 429);
        }
        other => panic!("{what}: expected the connection.limit envelope, got {other:?}"),
    }
    let rest = ws.expect_close(4008, EVENT_TIMEOUT).await;
    assert!(rest.is_empty(), "{what}: frames after connection.limit: {rest:?}");
}

/// Upgrades `n` sockets that send no hello, back to back, while `free`
/// pending places are left: `n - free` of them must be refused (the
/// envelope, then 4008), the others are kept waiting and returned. Which
/// ones the server counts first is its own business (a socket is counted
/// once its upgrade is done, so sockets upgraded back to back may be
/// counted in any order); that the kept ones were admitted shows when they
/// say hello and get their `welcome` (a refused socket gets its envelope
/// first).
async fn pending<const KEPT: usize>(app: &TestApp, n: usize, free: usize, what: &str) -> [WsClient; KEPT] {
    assert_eq!(KEPT, free, "{what}: {free} of {n} are kept");
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(upgrade(app).await);
    }
    let mut refused = Vec::new();
    {
        let mut first_frames: FuturesUnordered<_> = sockets
            .iter_mut()
            .enumerate()
            .map(|(i, ws)| async move { (i, ws.try_next(EVENT_TIMEOUT).await) })
            .collect();
        while refused.len() < n - free {
            let (i, got) = first_frames.next().await.expect("a socket");
            match got {
                Some(Incoming::Frame(f)) => {
                    common::ws::check_error_frame(&f, "connection.limit", 429);
                    refused.push(i);
                }
                other => panic!(
                    "{what}: socket #{i} without hello got {other:?} (wanted a refusal of {})",
                    n - free
                ),
            }
        }
    }
    let mut kept = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        if refused.contains(&i) {
            let rest = ws.expect_close(4008, EVENT_TIMEOUT).await;
            assert!(rest.is_empty(), "{what}: frames after connection.limit: {rest:?}");
        } else {
            kept.push(ws);
        }
    }
    kept.try_into().unwrap_or_else(|_| panic!("{what}: not {KEPT} kept"))
}

/// Sends `hello` on a socket that was admitted (still pending) and
/// expects its `welcome`.
async fn say_hello(ws: &mut WsClient, who: &Visitor, sid: &str, what: &str) {
    ws.send_json(&hello("acme", Some(&who.token), sid, None)).await;
    let f = ws.next_frame(EVENT_TIMEOUT).await;
    assert_eq!(f["type"], "welcome", "{what}: {f}");
}

/// A socket that upgrades and says hello: `Some` when welcomed, `None`
/// when refused with `connection.limit` (and 4008).
async fn try_socket(app: &TestApp, who: &Visitor, sid: &str) -> Option<WsClient> {
    let mut ws = upgrade(app).await;
    // A refused socket may be closed before the hello gets there.
    let hello = hello("acme", Some(&who.token), sid, None).to_string();
    ws.send_lossy(tokio_tungstenite::tungstenite::Message::text(hello)).await;
    let f = ws.next_frame(EVENT_TIMEOUT).await;
    if f["type"] == "welcome" {
        return Some(ws);
    }
    common::ws::check_error_frame(&f, "connection.limit", 429);
    ws.expect_close(4008, EVENT_TIMEOUT).await;
    None
}

/// A turn in `sid` reaches `subs` and `sockets` whole.
async fn turn_reaches(
    app: &TestApp,
    who: &Visitor,
    sid: &str,
    subs: &mut [&mut LiveStream],
    sockets: &mut [&mut WsClient],
) {
    let reply = app.chat_stream(who, sid, "are you still there?").await;
    let seq = reply.last().json()["seq"].as_i64().expect("seq");
    for s in subs.iter_mut() {
        let end = s.until_final(seq, EVENT_TIMEOUT).await;
        assert_eq!(end.json()["message"]["content"], joined(&pieces(3)).as_str(), "{end:?}");
    }
    for ws in sockets.iter_mut() {
        let end = ws.until("stream_end", EVENT_TIMEOUT).await;
        assert_eq!(end["message"]["content"], joined(&pieces(3)).as_str(), "{end}");
    }
}

#[tokio::test]
async fn max_per_ip_counts_sse_and_websockets_of_one_address_together() {
    bounded(async {
        let (app, _fake) = app("max_per_ip = 3").await;
        let s = visitors(&app, 4).await;
        let [(s1, v1), (s2, v2), (s3, v3), (s4, v4)] = &s[..] else { unreachable!() };

        // Three connections of three subjects from 127.0.0.1, SSE and WebSocket.
        let first = open_sse(&app, v1, s1).await;
        let mut second = open_sse(&app, v2, s2).await;
        let (ws, _) = app.ws_hello("acme", &v3.token, s3, None).await;

        // A fourth from that address is refused, whoever asks and however.
        assert_sse_refused(&app, v4, s4, "a fourth subscription, a new subject").await;
        assert_sse_refused(&app, v1, s1, "a fourth subscription, a subject already connected").await;
        assert_ws_refused(&app, "a fourth connection, a WebSocket").await;

        // Another address is not held by this one's cap.
        let mut elsewhere = subscribe_from_other_address(&app, v4, s4).await.unwrap_or_else(|r| {
            panic!("a subscription from another address was refused: {} {}", r.status, r.text)
        });
        elsewhere.session_event().await;

        // Closing a subscription lets one more in, and only one.
        drop(first);
        let (a, v, sid) = (&app, v4, s4.as_str());
        let mut replacement = eventually("the place of a closed subscription", FREED_WITHIN, || async move {
            a.open_events(a.events_request(v, sid, None)).await.ok()
        })
        .await;
        replacement.session_event().await;
        assert_sse_refused(&app, v1, s1, "after the replacement").await;
        assert_ws_refused(&app, "after the replacement, a WebSocket").await;

        // Closing the WebSocket lets a WebSocket in, and only one.
        ws.close().await;
        let (a, v, sid) = (&app, v1, s1.as_str());
        let mut new_ws =
            eventually("the place of a closed WebSocket", FREED_WITHIN, || try_socket(a, v, sid)).await;
        assert_ws_refused(&app, "after the new WebSocket").await;
        assert_sse_refused(&app, v3, s3, "after the new WebSocket, a subscription").await;

        // The connections left were not disturbed.
        turn_reaches(&app, v2, s2, &mut [&mut second], &mut []).await;
        turn_reaches(&app, v4, s4, &mut [&mut replacement, &mut elsewhere], &mut []).await;
        turn_reaches(&app, v1, s1, &mut [], &mut [&mut new_ws]).await;
    })
    .await;
}

#[tokio::test]
async fn max_pending_per_ip_counts_sockets_that_have_not_said_hello() {
    bounded(async {
        // A long hello timeout: the pending sockets stay for the whole test.
        let (app, _fake) = app("max_pending_per_ip = 2\nhello_timeout_secs = 60").await;
        let (sid, v) = app.create_session("acme").await;

        // A socket that said hello is not pending: two more may wait for
        // theirs, and a third is refused.
        let (mut greeted, _) = app.ws_hello("acme", &v.token, &sid, None).await;
        let [mut p1, mut p2] = pending(&app, 3, 2, "three sockets without hello").await;
        // A subscription is never pending.
        let mut sse = open_sse(&app, &v, &sid).await;
        assert_ws_refused(&app, "a third socket without hello, after the subscription").await;

        // Once a waiting socket says hello it is no longer pending: one more
        // socket may wait (and only one).
        say_hello(&mut p1, &v, &sid, "the first waiting socket").await;
        let [mut p3] = pending(&app, 2, 1, "after a hello, two sockets without hello").await;
        say_hello(&mut p3, &v, &sid, "the socket that took the freed pending place").await;

        // A waiting socket that goes away frees its place, and so does one
        // refused at its hello.
        let [p4] = pending(&app, 2, 1, "two sockets without hello, again").await;
        p4.close().await;
        let (a, vr, sr) = (&app, &v, sid.as_str());
        let mut p5 = eventually("the pending place of a socket that went away", FREED_WITHIN, || {
            try_socket(a, vr, sr)
        })
        .await;
        let [mut p6] = pending(&app, 2, 1, "two sockets without hello, once more").await;
        p6.send_json(&json!({"type": "hello", "context": {"tenant_id": "acme"}, "token": "not-a-token"}))
            .await;
        p6.expect_error("auth.invalid", 401).await;
        p6.expect_close(4003, EVENT_TIMEOUT).await;
        let mut p7 =
            eventually("the pending place of a refused socket", FREED_WITHIN, || try_socket(a, vr, sr)).await;
        say_hello(&mut p2, &v, &sid, "the second waiting socket").await;

        // Every socket that said hello follows the session.
        let mut all = [&mut greeted, &mut p1, &mut p2, &mut p3, &mut p5, &mut p7];
        turn_reaches(&app, &v, &sid, &mut [&mut sse], &mut all).await;
    })
    .await;
}

#[tokio::test]
async fn max_total_caps_the_node_whatever_the_subject_or_address() {
    bounded(async {
        let (app, _fake) = app("max_total = 2").await;
        let s = visitors(&app, 3).await;
        let [(s1, v1), (s2, v2), (s3, v3)] = &s[..] else { unreachable!() };

        let mut first = open_sse(&app, v1, s1).await;
        let (ws, _) = app.ws_hello("acme", &v2.token, s2, None).await;

        // A third is refused: another subject, either kind, another address.
        assert_sse_refused(&app, v3, s3, "a third subscription").await;
        assert_ws_refused(&app, "a third connection, a WebSocket").await;
        let r = subscribe_from_other_address(&app, v3, s3).await;
        let r = r.err().expect("a third connection from another address was admitted");
        r.assert_error(429, "connection.limit");

        // Closing one lets one in, from anywhere, and only one.
        ws.close().await;
        let (a, v, sid) = (&app, v3, s3.as_str());
        let mut third = eventually("the place of a closed WebSocket", FREED_WITHIN, || async move {
            subscribe_from_other_address(a, v, sid).await.ok()
        })
        .await;
        third.session_event().await;
        assert_sse_refused(&app, v2, s2, "after the replacement").await;
        assert_ws_refused(&app, "after the replacement, a WebSocket").await;

        turn_reaches(&app, v1, s1, &mut [&mut first], &mut []).await;
        turn_reaches(&app, v3, s3, &mut [&mut third], &mut []).await;
    })
    .await;
}
