//! The WebSocket `GET /v1/ws` (SPEC §7): refusals before the upgrade (plain
//! HTTP) and after it (an envelope frame, then close 4003/4008), `hello` in
//! time, `welcome` and replay, client frames (message, typing, subscribe,
//! ping), the frame budget (4008), and the server closing sockets (kill
//! switch, a visitor linked to a user, shutdown with 1001). Malformed and
//! oversized frames are in `ws_frames.rs`.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::checks::{assert_message_shape, assert_session_shape};
use common::jwt::{self, as_caller, claims, hs256};
use common::subscribe::EVENT_TIMEOUT;
use common::transcript::Transcript;
use common::ws::{check_error_frame, hello, Incoming, WsClient};
use common::{joined, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SECRET: &str = "ws-test-secret-0123456789abcdefghijkl";
/// How long a close may take to arrive after what causes it.
const CLOSE_WITHIN: Duration = Duration::from_secs(6);

fn config(fake: &FakeOpenAi) -> AppConfig {
    AppConfig::new()
        .tenant(TenantSpec::openai("acme", fake).line(&jwt::hs256_line("ACME_JWT_SECRET")))
        .tenant(TenantSpec::demo("globex"))
        .tenant(TenantSpec::demo("shop").browser_only().line("allowed_origins = [\"https://shop.example\"]"))
        .env("ACME_JWT_SECRET", SECRET)
}

async fn app() -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    (TestApp::start(config(&fake)).await, fake)
}

/// The session id of a new session of `who`.
async fn another_session(app: &TestApp, who: &Visitor) -> String {
    let r = app.create_session_for(who).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["session"]["id"].as_str().unwrap().to_owned()
}

/// Sends `hello` and expects the refusal: one error frame, then close 4003.
async fn refused_hello(ws: &mut WsClient, h: &Value, code: &str, status: u16) {
    ws.send_json(h).await;
    let err = ws.expect_error(code, status).await;
    let rest = ws.expect_close(4003, CLOSE_WITHIN).await;
    assert!(rest.is_empty(), "frames after the {code} refusal: {rest:?}");
    assert!(!err.to_string().contains(SECRET));
}

/// A session-scoped frame carries `type` and the session's id beside the
/// payload's fields.
fn assert_session_frame(f: &Value, kind: &str, sid: &str) {
    assert_eq!(f["type"], kind, "{f}");
    assert_eq!(f["session_id"], sid, "{f}");
}

#[tokio::test]
async fn refusals_before_the_upgrade_are_plain_http() {
    let (app, _fake) = app().await;
    app.ws_try("", &[]).await.err().expect("upgraded without a tenant").assert_error(400, "tenant.missing");
    app.ws_try("?tenant=nope", &[])
        .await
        .err()
        .expect("upgraded for no tenant")
        .assert_error(404, "tenant.unknown");
    // A browser-only tenant checks the Origin at the upgrade.
    let r = app.ws_try("?tenant=shop", &[("origin", "https://evil.example")]).await;
    r.err().expect("upgraded from a foreign origin").assert_error(403, "origin.forbidden");
    app.ws_try("?tenant=shop", &[])
        .await
        .err()
        .expect("upgraded without Origin")
        .assert_error(403, "origin.missing");
    let ok = app.ws_try("?tenant=shop", &[("origin", "https://shop.example")]).await;
    assert!(ok.is_ok(), "an allowed origin was refused: {:?}", ok.err());
    // The ticket names the tenant when `?tenant=` does not.
    let (sid, v) = app.create_session("acme").await;
    let ticket = app.mint_ticket(&v, Some(&sid)).await;
    let mut ws = app.ws(&format!("?ticket={ticket}")).await;
    ws.send_json(&hello("acme", None, &sid, None)).await;
    ws.expect("welcome").await;
}

#[tokio::test]
async fn hello_must_be_the_first_frame_and_come_in_time() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(config(&fake).raw("connections = { hello_timeout_secs = 0.5 }")).await;
    let (sid, v) = app.create_session("acme").await;

    let started = Instant::now();
    let mut silent = app.ws("?tenant=acme").await;
    let frames = silent.expect_close(4003, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed before the hello timeout: {:?}",
        started.elapsed()
    );
    assert!(frames.iter().all(|f| f["type"] == "error"), "{frames:?}");

    for first in [
        json!({"type": "ping", "ts": 1}).to_string(),
        "not json".to_owned(),
        json!({"type": "message", "content": "hi"}).to_string(),
    ] {
        let mut ws = app.ws("?tenant=acme").await;
        ws.send_text(&first).await;
        let frames = ws.expect_close(4003, CLOSE_WITHIN).await;
        assert!(frames.iter().all(|f| f["type"] == "error"), "{first}: {frames:?}");
    }
    // A binary first frame is not a hello either.
    let mut ws = app.ws("?tenant=acme").await;
    ws.send_binary(b"{\"type\":\"hello\"}").await;
    ws.expect_close(4003, CLOSE_WITHIN).await;

    // A hello in time is welcome.
    let (mut ws, welcome) = app.ws_hello("acme", &v.token, &sid, None).await;
    assert_eq!(welcome["session"]["id"], sid.as_str());
    assert!(ws.ping(7).await.is_empty());
}

#[tokio::test]
async fn hello_refusals_are_an_envelope_then_close_4003() {
    let (app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let (theirs, _) = app.create_session("acme").await;
    let other = another_session(&app, &v).await;
    let bound = app.mint_ticket(&v, Some(&sid)).await;
    let (_, gv) = app.create_session("globex").await;
    let globex_ticket = app.mint_ticket(&gv, None).await;

    let ask = |query: String, h: Value, code: &'static str, status: u16| {
        let app = &app;
        async move {
            let mut ws = app.ws(&query).await;
            refused_hello(&mut ws, &h, code, status).await;
        }
    };
    let acme = || "?tenant=acme".to_owned();
    // Context: missing, or another tenant than the URL's.
    let mut no_context = hello("acme", Some(&v.token), &sid, None);
    no_context.as_object_mut().unwrap().remove("context");
    ask(acme(), no_context, "tenant.missing", 400).await;
    ask(acme(), hello("globex", Some(&v.token), &sid, None), "auth.context_mismatch", 403).await;
    ask(format!("?ticket={bound}"), hello("globex", None, &sid, None), "auth.context_mismatch", 403).await;
    // Credentials: none, bad, of the wrong kind, of another tenant.
    ask(acme(), hello("acme", None, &sid, None), "auth.missing", 401).await;
    ask(acme(), hello("acme", Some("garbage"), &sid, None), "auth.invalid", 401).await;
    ask(acme(), hello("acme", Some(&bound), &sid, None), "auth.invalid", 401).await;
    let foreign_key = hs256("another-tenants-secret-0123456789abcd", &claims("acme", "eve"));
    ask(acme(), hello("acme", Some(&foreign_key), &sid, None), "auth.invalid", 401).await;
    // Runtime-signed, so it verifies, but it names another tenant (SPEC §3).
    ask(acme(), hello("acme", Some(&gv.token), &sid, None), "auth.context_mismatch", 403).await;
    let forged = {
        let mut parts: Vec<String> = bound.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    ask(format!("?tenant=acme&ticket={forged}"), hello("acme", None, &sid, None), "auth.invalid", 401).await;
    ask(format!("?tenant=acme&ticket={}", v.token), hello("acme", None, &sid, None), "auth.invalid", 401)
        .await;
    ask(
        format!("?tenant=acme&ticket={globex_ticket}"),
        hello("acme", None, &sid, None),
        "auth.context_mismatch",
        403,
    )
    .await;
    // Sessions: someone else's, unknown, another than the ticket's.
    ask(acme(), hello("acme", Some(&v.token), &theirs, None), "session.not_found", 404).await;
    ask(
        acme(),
        hello("acme", Some(&v.token), &uuid::Uuid::new_v4().to_string(), None),
        "session.not_found",
        404,
    )
    .await;
    ask(format!("?ticket={bound}"), hello("acme", None, &other, None), "session.not_found", 404).await;
    // Cursors: SPEC §6's rules, as integers or digit strings.
    for bad in
        [json!("abc"), json!(-1), json!("-1"), json!(1.5), json!("1.5"), json!(1), json!("5"), json!([0])]
    {
        ask(acme(), hello("acme", Some(&v.token), &sid, Some(bad)), "chat.cursor_invalid", 410).await;
    }
    // After all that the visitor still connects.
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, Some(json!("0"))).await;
    ws.expect("resume_cursor").await;
}

#[tokio::test]
async fn welcome_then_replay_then_live_events() {
    let (app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    app.chat_stream(&v, &sid, "first question").await;
    let history = app.messages(&v, &sid).await;

    for (cursor, replayed) in
        [(Some(json!("0")), vec![1, 2]), (Some(json!(1)), vec![2]), (Some(json!(2)), vec![]), (None, vec![])]
    {
        let (mut ws, welcome) = app.ws_hello("acme", &v.token, &sid, cursor.clone()).await;
        assert!(welcome["connection_id"].as_str().is_some_and(|c| !c.is_empty()), "{welcome}");
        assert_session_shape(&welcome["session"]);
        assert_eq!(welcome["session"]["id"], sid.as_str());
        assert_eq!(welcome["latest_seq"], 2, "{welcome}");
        if let Some(c) = &cursor {
            let rc = ws.expect("resume_cursor").await;
            assert_session_frame(&rc, "resume_cursor", &sid);
            let n: i64 = c.as_i64().unwrap_or_else(|| c.as_str().unwrap().parse().unwrap());
            assert_eq!((rc["last_event_id"].as_i64(), rc["latest_seq"].as_i64()), (Some(n), Some(2)), "{rc}");
        }
        for seq in replayed {
            let m = ws.expect("message").await;
            assert_session_frame(&m, "message", &sid);
            assert_message_shape(&m);
            let stored = history.iter().find(|h| h["seq"] == seq).unwrap();
            assert_eq!(m["content"], stored["content"], "{m}");
            assert_eq!(m["status"], "complete");
        }
        // Then live: a turn started over REST.
        let ping = ws.ping(1).await;
        assert!(ping.is_empty(), "unexpected frames: {ping:?}");
        ws.close().await;
    }

    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, Some(json!(2))).await;
    ws.expect("resume_cursor").await;
    let turn = app.chat_stream(&v, &sid, "second question").await;
    let end = ws.until("stream_end", EVENT_TIMEOUT).await;
    assert_session_frame(&end, "stream_end", &sid);
    assert_eq!(end["seq"], 4);
    assert_eq!(end["message"]["content"], turn.last().json()["message"]["content"]);
    let mut t = Transcript::new();
    for f in &ws.received {
        if f["type"] != "welcome" {
            assert_eq!(f["session_id"], sid.as_str(), "a session frame without its session: {f}");
        }
        t.apply(f["type"].as_str().unwrap(), f);
    }
    assert_eq!(t.rows(), Transcript::rows_of_history(&app.messages(&v, &sid).await)[2..].to_vec());
}

#[tokio::test]
async fn a_message_frame_runs_a_turn_whose_events_arrive_as_frames() {
    let (app, fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    ws.send_json(&json!({"type": "message", "content": "  hello over ws ", "client_message_id": "ws-1"}))
        .await;
    let user = ws.expect("message").await;
    assert_session_frame(&user, "message", &sid);
    assert_message_shape(&user);
    assert_eq!((user["seq"].as_i64(), user["role"].as_str()), (Some(1), Some("user")));
    assert_eq!(user["content"], "hello over ws");
    assert_eq!(user["client_message_id"], "ws-1");
    let end = ws.until("stream_end", EVENT_TIMEOUT).await;
    let kinds: Vec<&str> = ws.received.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..4], &["welcome", "message", "typing", "stream_start"], "{kinds:?}");
    let mut t = Transcript::new();
    for f in &ws.received[1..] {
        t.apply(f["type"].as_str().unwrap(), f);
    }
    assert_eq!(t.messages[&2].content, joined(&pieces(3)));
    assert_eq!(end["finish_reason"], "stop");
    assert_eq!(end["message"]["content"], joined(&pieces(3)).as_str());
    assert_eq!(fake.calls(), 1);
    let stored = app.messages(&v, &sid).await;
    assert_eq!(Transcript::rows_of_history(&stored), t.rows());

    // The same refusals as POST /v1/chat, as error frames; the socket stays.
    ws.send_json(&json!({"type": "message", "content": "   "})).await;
    check_error_frame(&ws.expect("error").await, "request.invalid", 400);
    ws.send_json(&json!({"type": "message", "content": "x", "session_id": uuid::Uuid::new_v4().to_string()}))
        .await;
    check_error_frame(&ws.expect("error").await, "session.not_found", 404);
    assert!(ws.ping(2).await.is_empty());
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn typing_is_relayed_to_the_other_connections_of_the_session() {
    let (app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let (mut a, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    let (mut b, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    let mut sse = app.subscribe(&v, &sid, None).await;
    sse.session_event().await;

    a.send_json(&json!({"type": "typing", "active": true})).await;
    let t = b.expect("typing").await;
    assert_eq!(t, json!({"type": "typing", "session_id": sid, "who": "user", "active": true}));
    let ev = sse.expect("typing").await;
    assert_eq!(ev.json(), json!({"who": "user", "active": true}));
    a.send_json(&json!({"type": "typing", "active": false})).await;
    assert_eq!(b.expect("typing").await["active"], false);

    // The sender does not get its own typing back: its turn's user message
    // (published after the typing) comes first.
    a.send_json(&json!({"type": "message", "content": "typed it"})).await;
    a.until("stream_end", EVENT_TIMEOUT).await;
    let own: Vec<&Value> =
        a.received.iter().filter(|f| f["type"] == "typing" && f["who"] == "user").collect();
    assert!(own.is_empty(), "the sender got its own typing: {own:?}");
    // The other socket sees the turn too.
    b.until("stream_end", EVENT_TIMEOUT).await;
}

#[tokio::test]
async fn subscribe_adds_sessions_checked_like_the_first() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    // Twenty subscribes in a row are over the default frame budget.
    let app = TestApp::start(config(&fake).raw("connections = { ws_frames_per_sec = 1000 }")).await;
    let (sid, v) = app.create_session("acme").await;
    let second = another_session(&app, &v).await;
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;

    ws.send_json(&json!({"type": "subscribe", "session_id": second})).await;
    let w = ws.expect("welcome").await;
    assert_eq!(w["session"]["id"], second.as_str(), "{w}");
    app.chat_stream(&v, &second, "in the second session").await;
    let end = ws.until("stream_end", EVENT_TIMEOUT).await;
    assert_eq!(end["session_id"], second.as_str());
    // A message frame may name a subscribed session.
    ws.send_json(&json!({"type": "message", "content": "into the second", "session_id": second})).await;
    let m = ws.until("message", EVENT_TIMEOUT).await;
    assert_eq!((m["session_id"].as_str(), m["seq"].as_i64()), (Some(second.as_str()), Some(3)), "{m}");
    ws.until("stream_end", EVENT_TIMEOUT).await;
    // Already subscribed: request.invalid, socket open.
    ws.send_json(&json!({"type": "subscribe", "session_id": sid})).await;
    check_error_frame(&ws.expect("error").await, "request.invalid", 400);
    assert!(ws.ping(1).await.is_empty());

    // Up to 20 sessions per socket.
    for _ in 2..20 {
        let s = another_session(&app, &v).await;
        ws.send_json(&json!({"type": "subscribe", "session_id": s, "last_event_id": 0})).await;
        assert_eq!(ws.expect("welcome").await["session"]["id"], s.as_str());
        ws.expect("resume_cursor").await;
    }
    let s21 = another_session(&app, &v).await;
    ws.send_json(&json!({"type": "subscribe", "session_id": s21})).await;
    let e = ws.expect("error").await;
    assert_eq!(e["type"], "error", "{e}");
    assert!(e["error"]["code"].as_str().is_some(), "{e}");
    assert!(ws.ping(2).await.is_empty(), "the socket is still usable after the 21st");

    // Someone else's session is refused like a first one (envelope, 4003).
    let (theirs, _) = app.create_session("acme").await;
    let (mut ws2, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    ws2.send_json(&json!({"type": "subscribe", "session_id": theirs})).await;
    ws2.expect_error("session.not_found", 404).await;
    ws2.expect_close(4003, CLOSE_WITHIN).await;
}

#[tokio::test]
async fn the_frame_budget_answers_rate_limited_then_closes_4008() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(config(&fake).raw("connections = { ws_frames_per_sec = 5 }")).await;
    let (sid, v) = app.create_session("acme").await;
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    // A socket within its budget is fine.
    for i in 0..3 {
        assert!(ws.ping(i).await.is_empty());
    }
    // Far over it: some pongs, then rate_limited errors, then 4008.
    let mut sent = 0;
    for i in 0..60 {
        if !ws
            .send_lossy(tokio_tungstenite::tungstenite::Message::text(
                json!({"type": "ping", "ts": i}).to_string(),
            ))
            .await
        {
            break;
        }
        sent += 1;
    }
    // The server closes only after more refusals in a row than the budget
    // (5): it must have read at least that many frames. How many more the
    // client wrote before it noticed the close is a matter of timing.
    assert!(sent > 5, "the server closed after {sent} frames");
    let frames = ws.expect_close(4008, CLOSE_WITHIN).await;
    let limited: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
    assert!(limited.len() >= 5, "not 5 rate_limited errors before 4008: {frames:?}");
    for e in &limited {
        check_error_frame(e, "rate_limited", 429);
    }
    let pongs = frames.iter().filter(|f| f["type"] == "pong").count();
    assert!(pongs >= 1 && pongs < sent, "{pongs} pongs for {sent} pings");
    // Another socket of the same visitor is untouched.
    let (mut other, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    assert!(other.ping(9).await.is_empty());
}

#[tokio::test]
async fn the_kill_switch_and_a_link_close_sockets_with_an_envelope() {
    let (app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let (gsid, gv) = app.create_session("globex").await;
    let (mut visitor_ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    let (mut globex_ws, _) = app.ws_hello("globex", &gv.token, &gsid, None).await;

    // A link closes the visitor's sockets with auth.invalid.
    let alice = as_caller("acme", &hs256(SECRET, &claims("acme", "alice")));
    let r = app
        .send(
            app.request(Method::POST, "/v1/identity/link", Some(&alice))
                .json(&json!({"visitor_token": v.token})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = visitor_ws.until("error", CLOSE_WITHIN).await;
    check_error_frame(&e, "auth.invalid", 401);
    match visitor_ws.try_next(CLOSE_WITHIN).await {
        Some(Incoming::Close(_)) => {}
        other => panic!("no close after auth.invalid: {other:?}"),
    }
    // The user's socket on the same session works, and the kill switch closes it.
    let (mut user_ws, _) = app.ws_hello("acme", &alice.token, &sid, None).await;
    app.cli(&["tenant", "update", "acme", "--kill-switch", "on"]).await.expect_ok("flip on");
    let e = user_ws.until("error", CLOSE_WITHIN).await;
    check_error_frame(&e, "tenant.disabled", 403);
    match user_ws.try_next(CLOSE_WITHIN).await {
        Some(Incoming::Close(_)) => {}
        other => panic!("no close after tenant.disabled: {other:?}"),
    }
    // New sockets of that tenant are refused after their hello; another tenant's go on.
    // (SPEC §7 names no close code for this refusal: any close will do.)
    let mut ws = app.ws("?tenant=acme").await;
    ws.send_json(&hello("acme", Some(&alice.token), &sid, None)).await;
    ws.expect_error("tenant.disabled", 403).await;
    assert!(matches!(ws.try_next(CLOSE_WITHIN).await, Some(Incoming::Close(Some(_)))), "{:?}", ws.received);
    assert!(globex_ws.ping(3).await.is_empty());
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let (mut app, _fake) = app().await;
    let (sid, v) = app.create_session("acme").await;
    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    let (mut idle, _) = app.ws_hello("acme", &v.token, &sid, None).await;
    assert!(ws.ping(1).await.is_empty());
    let (status, _) = app.terminate(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    for (name, socket) in [("active", &mut ws), ("idle", &mut idle)] {
        let got = socket.try_next(Duration::from_secs(5)).await;
        assert_eq!(got, Some(Incoming::Close(Some(1001))), "{name}: {:?}", socket.received);
    }
}

#[tokio::test]
async fn joining_mid_answer_over_a_websocket_continues_from_the_text_so_far() {
    let before = common::unicode_pieces();
    let fake = FakeOpenAi::start(Mode::Gated { before: before.clone(), after: pieces(3) }).await;
    let app = TestApp::start(config(&fake)).await;
    let (sid, v) = app.create_session("acme").await;
    let mut turn = app.chat_live(&v, &common::chat_body(&sid, "go on")).await;
    while turn.text_so_far() != joined(&before) {
        turn.next(EVENT_TIMEOUT).await.expect("the turn ended early");
    }
    let so_far = joined(&before);
    let mut sockets = Vec::new();
    for cursor in [None, Some(json!(0)), Some(json!("1"))] {
        let (mut ws, welcome) = app.ws_hello("acme", &v.token, &sid, cursor.clone()).await;
        assert_eq!(welcome["latest_seq"], 1, "the last final seq: {welcome}");
        if cursor.is_some() {
            ws.expect("resume_cursor").await;
        }
        if cursor == Some(json!(0)) {
            assert_eq!(ws.expect("message").await["seq"], 1);
        }
        let m = ws.expect("message").await;
        assert_session_frame(&m, "message", &sid);
        assert_eq!((m["seq"].as_i64(), m["status"].as_str()), (Some(2), Some("streaming")), "{m}");
        assert_eq!(m["content"], so_far.as_str(), "{m}");
        assert_eq!(m["revision"], 0, "{m}");
        sockets.push((cursor, ws));
    }
    fake.release();
    let full = format!("{so_far}{}", joined(&pieces(3)));
    for (cursor, ws) in sockets.iter_mut() {
        let end = ws.until("stream_end", EVENT_TIMEOUT).await;
        assert_eq!(end["message"]["content"], full.as_str(), "cursor {cursor:?}");
        let first =
            ws.received.iter().find(|f| f["type"] == "stream_delta").expect("no delta after the replay");
        assert_eq!(first["offset"], so_far.chars().count(), "cursor {cursor:?}: {first}");
        let mut t = Transcript::new();
        for f in ws.received.iter().filter(|f| f["type"] != "welcome") {
            t.apply(f["type"].as_str().unwrap(), f);
        }
        assert_eq!(t.messages[&2].content, full, "cursor {cursor:?}");
    }
    drop(turn);
}
