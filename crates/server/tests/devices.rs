//! Several devices of one subject (SPEC §6, §7): every SSE subscription and
//! WebSocket of a session sees every turn, whichever device started it; the
//! per-subject connection cap counts SSE and WebSocket together (SSE: 429
//! `connection.limit`; WebSocket: the envelope, then close 4008), and
//! closing one connection lets a new one in without disturbing the others.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::jwt::{self, as_caller, claims, hs256};
use common::subscribe::{events_path, EVENT_TIMEOUT};
use common::transcript::Transcript;
use common::ws::{hello, Incoming, WsClient};
use common::{
    eventually, joined, pieces, AppConfig, FakeOpenAi, LiveStream, Mode, TenantSpec, TestApp, Visitor,
};
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "devices-test-secret-0123456789abcdefgh";
/// How long the server may take to notice a connection the client closed.
const FREED_WITHIN: Duration = Duration::from_secs(10);

async fn app(cap: Option<u32>) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(4))).await;
    let mut tenant = TenantSpec::openai("acme", &fake).line(&jwt::hs256_line("ACME_JWT_SECRET"));
    if let Some(n) = cap {
        tenant = tenant.line(&format!("max_connections_per_subject = {n}"));
    }
    // Heartbeats make the server notice closed subscriptions soon.
    let config = AppConfig::new().tenant(tenant).env("ACME_JWT_SECRET", SECRET).raw("heartbeat_secs = 1");
    (TestApp::start(config).await, fake)
}

/// The transcript an SSE subscription rebuilt (opened without cursor).
fn sse_transcript(sub: &LiveStream) -> Transcript {
    let mut t = Transcript::new();
    sub.received.iter().for_each(|e| t.apply_sse(e));
    t
}

/// The transcript a WebSocket rebuilt.
fn ws_transcript(ws: &WsClient) -> Transcript {
    let mut t = Transcript::new();
    for f in &ws.received {
        t.apply(f["type"].as_str().unwrap(), f);
    }
    t
}

/// A WebSocket said hello and was refused with `connection.limit`, then 4008.
async fn assert_ws_refused_for_the_cap(app: &TestApp, who: &Visitor, sid: &str) {
    let mut ws = app.ws("?tenant=acme").await;
    ws.send_json(&hello("acme", Some(&who.token), sid, None)).await;
    let err = ws.expect_error("connection.limit", 429).await;
    assert!(err["message"].as_str().is_some());
    let rest = ws.expect_close(4008, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "frames after connection.limit: {rest:?}");
}

#[tokio::test]
async fn every_device_sees_every_turn_whichever_device_started_it() {
    let (app, _fake) = app(None).await;
    let (sid, v) = app.create_session("acme").await;
    let mut phone = app.subscribe(&v, &sid, None).await;
    phone.session_event().await;
    let ticket = app.mint_ticket(&v, Some(&sid)).await;
    let mut laptop = app.open_events_url(&events_path(&sid, &format!("?ticket={ticket}"))).await.unwrap();
    laptop.session_event().await;
    let (mut tablet, _) = app.ws_hello("acme", &v.token, &sid, None).await;

    // A turn over REST, then one from the WebSocket.
    app.chat_stream(&v, &sid, "from the REST client").await;
    for sub in [&mut phone, &mut laptop] {
        sub.until_final(2, EVENT_TIMEOUT).await;
    }
    tablet.until("stream_end", EVENT_TIMEOUT).await;
    tablet.send_json(&json!({"type": "message", "content": "from the tablet"})).await;
    for sub in [&mut phone, &mut laptop] {
        let end = sub.until_final(4, EVENT_TIMEOUT).await;
        assert_eq!(end.json()["message"]["content"], joined(&pieces(4)).as_str());
    }
    let end = tablet.until("stream_end", EVENT_TIMEOUT).await;
    assert_eq!(end["seq"], 4);

    let history = Transcript::rows_of_history(&app.messages(&v, &sid).await);
    assert_eq!(history.len(), 4);
    assert_eq!(history[2].2, "from the tablet");
    assert_eq!(sse_transcript(&phone).rows(), history, "phone");
    assert_eq!(sse_transcript(&laptop).rows(), history, "laptop");
    let mut tablet_t = Transcript::new();
    for f in tablet.received.iter().filter(|f| f["type"] != "welcome") {
        tablet_t.apply(f["type"].as_str().unwrap(), f);
    }
    assert_eq!(tablet_t.rows(), history, "tablet");
    // Each device saw the same deltas, each once: they tile both answers
    // with no gap and no repeat (how an answer is cut into deltas is the
    // server's to choose).
    let piece = |d: &Value| {
        (d["seq"].as_i64().unwrap(), d["offset"].as_u64().unwrap(), d["text"].as_str().unwrap().to_owned())
    };
    let deltas = |sub: &LiveStream| -> Vec<_> {
        sub.received.iter().filter(|e| e.event == "stream_delta").map(|e| piece(&e.json())).collect()
    };
    let on_phone = deltas(&phone);
    assert_eq!(deltas(&laptop), on_phone);
    let on_tablet: Vec<_> =
        tablet.received.iter().filter(|f| f["type"] == "stream_delta").map(piece).collect();
    assert_eq!(on_tablet, on_phone);
    for seq in [2, 4] {
        let mut offset = 0;
        for (_, at, text) in on_phone.iter().filter(|d| d.0 == seq) {
            assert_eq!(*at, offset, "answer {seq}: {on_phone:?}");
            offset += text.chars().count() as u64;
        }
        assert_eq!(offset, joined(&pieces(4)).chars().count() as u64, "answer {seq}: {on_phone:?}");
    }
}

#[tokio::test]
async fn a_user_on_two_devices_with_two_tokens_follows_one_conversation() {
    let (app, _fake) = app(None).await;
    let token = |iat_offset: i64| {
        let mut c = claims("acme", "alice");
        c["iat"] = json!(jwt::now() - iat_offset);
        as_caller("acme", &hs256(SECRET, &c))
    };
    let (desktop, phone) = (token(0), token(30));
    let created = app.create_session_for(&desktop).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let sid = created.body["session"]["id"].as_str().unwrap().to_owned();
    let mut on_desktop = app.subscribe(&desktop, &sid, None).await;
    on_desktop.session_event().await;
    let (mut on_phone, _) = app.ws_hello("acme", &phone.token, &sid, None).await;
    on_phone.send_json(&json!({"type": "message", "content": "typed on the phone"})).await;
    let end = on_desktop.until_final(2, EVENT_TIMEOUT).await;
    assert_eq!(end.event, "stream_end");
    on_phone.until("stream_end", EVENT_TIMEOUT).await;
    let user_msg = on_desktop.received.iter().find(|e| e.event == "message").unwrap().json();
    assert_eq!(user_msg["content"], "typed on the phone");
}

#[tokio::test]
async fn the_subject_cap_counts_sse_and_websockets_together() {
    let (app, _fake) = app(Some(3)).await;
    let (sid, v) = app.create_session("acme").await;
    let second = app.create_session_for(&v).await.body["session"]["id"].as_str().unwrap().to_owned();
    let (other_sid, other) = app.create_session("acme").await;

    let mut first = app.subscribe(&v, &sid, None).await;
    first.session_event().await;
    let ticket = app.mint_ticket(&v, None).await;
    let mut by_ticket = app.open_events_url(&events_path(&sid, &format!("?ticket={ticket}"))).await.unwrap();
    by_ticket.session_event().await;
    let (ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;

    // The fourth, over SSE (any session of the subject) or WebSocket, is refused.
    let r = app.subscribe_refused(&v, &sid, None).await;
    r.assert_error(429, "connection.limit");
    app.subscribe_refused(&v, &second, None).await.assert_error(429, "connection.limit");
    let r = app.open_events_url(&events_path(&second, &format!("?ticket={ticket}"))).await;
    r.err().expect("a fourth connection by ticket").assert_error(429, "connection.limit");
    assert_ws_refused_for_the_cap(&app, &v, &sid).await;
    // Another subject is not affected.
    let mut theirs = app.subscribe(&other, &other_sid, None).await;
    theirs.session_event().await;
    let (mut their_ws, _) = app.ws_hello("acme", &other.token, &other_sid, None).await;

    // Closing one SSE subscription lets one more in.
    drop(first);
    let (appr, vr, sidr) = (&app, &v, sid.as_str());
    let mut replacement = eventually("a slot freed by a closed subscription", FREED_WITHIN, || async move {
        appr.open_events(appr.events_request(vr, sidr, None)).await.ok()
    })
    .await;
    replacement.session_event().await;
    app.subscribe_refused(&v, &sid, None).await.assert_error(429, "connection.limit");

    // Closing the WebSocket lets a WebSocket in.
    ws.close().await;
    let mut new_ws = eventually("a slot freed by a closed WebSocket", FREED_WITHIN, || async move {
        let mut ws = appr.ws("?tenant=acme").await;
        ws.send_json(&hello("acme", Some(&vr.token), sidr, None)).await;
        match ws.next_frame(EVENT_TIMEOUT).await {
            f if f["type"] == "welcome" => Some(ws),
            f => {
                assert_eq!(f["error"]["code"], "connection.limit", "{f}");
                None
            }
        }
    })
    .await;
    assert_ws_refused_for_the_cap(&app, &v, &sid).await;

    // The connections left keep receiving.
    app.chat_stream(&v, &sid, "still there?").await;
    for sub in [&mut by_ticket, &mut replacement] {
        let end = sub.until_final(2, EVENT_TIMEOUT).await;
        assert_eq!(end.json()["message"]["content"], joined(&pieces(4)).as_str());
    }
    new_ws.until("stream_end", EVENT_TIMEOUT).await;
    assert_eq!(ws_transcript(&new_ws).rows(), sse_transcript(&by_ticket).rows());
    // The other subject's connections were never disturbed.
    assert!(their_ws.ping(5).await.is_empty());
    app.chat_stream(&other, &other_sid, "and me?").await;
    theirs.until_final(2, EVENT_TIMEOUT).await;
    their_ws.until("stream_end", EVENT_TIMEOUT).await;
}

#[tokio::test]
async fn the_default_cap_is_ten_connections_per_subject() {
    let (app, _fake) = app(None).await;
    let (sid, v) = app.create_session("acme").await;
    let mut open: Vec<LiveStream> = Vec::new();
    for _ in 0..6 {
        let mut s = app.subscribe(&v, &sid, None).await;
        s.session_event().await;
        open.push(s);
    }
    let mut sockets: Vec<WsClient> = Vec::new();
    for _ in 0..4 {
        sockets.push(app.ws_hello("acme", &v.token, &sid, None).await.0);
    }
    app.subscribe_refused(&v, &sid, None).await.assert_error(429, "connection.limit");
    assert_ws_refused_for_the_cap(&app, &v, &sid).await;
    // All ten still work.
    app.chat_stream(&v, &sid, "ten listeners").await;
    for s in open.iter_mut() {
        s.until_final(2, EVENT_TIMEOUT).await;
    }
    for ws in sockets.iter_mut() {
        ws.until("stream_end", EVENT_TIMEOUT).await;
        assert!(!matches!(
            ws.try_next(Duration::from_millis(1)).await,
            Some(Incoming::Close(_) | Incoming::Gone)
        ));
    }
}
