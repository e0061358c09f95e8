//! The SSE subscription `GET /v1/sessions/{id}/events` (SPEC §3, §5, §6):
//! what a subscriber sees of a turn started elsewhere, bearer and ticket
//! credentials and the refusals of the gate, the stream's framing and
//! heartbeats, and how the server ends open subscriptions (kill switch, a
//! visitor linked to a user, SIGTERM).

mod common;

use common::checks::{assert_message_shape, check_deltas};
use common::jwt::{self, as_caller, claims, hs256};
use common::subscribe::{events_path, EVENT_TIMEOUT};
use common::{chat_body, joined, pieces, unicode_pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

const SECRET: &str = "subscribe-test-secret-0123456789abcdef";

/// Kill switch and link changes reach open subscriptions within this (the
/// brief: tenants reload every 2 s; a loaded machine gets some slack).
const CLOSE_WITHIN: Duration = Duration::from_secs(6);

fn two_tenants(fake: &FakeOpenAi) -> AppConfig {
    AppConfig::new()
        .tenant(TenantSpec::openai("acme", fake).line(&jwt::hs256_line("ACME_JWT_SECRET")))
        .tenant(TenantSpec::demo("globex"))
        .env("ACME_JWT_SECRET", SECRET)
}

#[tokio::test]
async fn a_subscriber_sees_a_turn_started_elsewhere() {
    let fake = FakeOpenAi::start(Mode::Normal(unicode_pieces())).await;
    let app = TestApp::start(two_tenants(&fake)).await;
    let (sid, v) = app.create_session("acme").await;

    let mut sub = app.subscribe(&v, &sid, None).await;
    assert_eq!(sub.status.as_u16(), 200);
    let ct = sub.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/event-stream"), "content type {ct}");
    assert_eq!(sub.header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(sub.header("x-accel-buffering").as_deref(), Some("no"));
    assert!(sub.header("x-trace-id").is_some_and(|t| !t.is_empty()), "no X-Trace-Id");

    let session = sub.session_event().await;
    assert_eq!(sub.first_line(), Some("retry: 2000"), "the stream must open with retry: 2000");
    assert_eq!(session["latest_seq"], 0);
    assert_eq!(session["session"]["id"], sid.as_str());
    assert_eq!(session["session"]["tenant_id"], "acme");

    let reply = app.chat_stream(&v, &sid, "Hello from device one").await;
    let turn = common::checks::check_stream_turn(&reply, "Hello from device one", 1);
    assert_eq!(turn.text, joined(&unicode_pieces()));

    sub.until_final(2, EVENT_TIMEOUT).await;
    let seen: Vec<_> = sub.received[1..].to_vec();
    let names = common::kinds(&seen);
    assert_eq!(&names[..3], &["message", "typing", "stream_start"], "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("stream_end"), "{names:?}");
    let user = seen[0].json();
    assert_message_shape(&user);
    assert_eq!((user["seq"].as_i64(), user["content"].as_str()), (Some(1), Some("Hello from device one")));
    assert_eq!(seen[0].id.as_deref(), Some("1"), "the user message's id");
    let start = seen[2].json();
    assert_eq!(start["turn_id"], turn.turn_id.as_str());
    assert_eq!((start["seq"].as_i64(), start["user_seq"].as_i64()), (Some(2), Some(1)));
    assert!(seen[2].id.is_none(), "stream_start carries no id: {:?}", seen[2]);
    assert_eq!(check_deltas(&seen, &turn.turn_id, 2), turn.text, "the subscriber's deltas");
    let end = seen.last().unwrap();
    assert_eq!(end.id.as_deref(), Some("2"));
    assert_eq!(end.json()["message"]["content"], turn.text.as_str());
    assert_eq!(end.json()["message"]["status"], "complete");

    // What the subscriber saw of the turn is what the turn's own response carried.
    let durable = |evs: &[common::SseEvent]| -> Vec<(String, String, Option<String>)> {
        evs.iter()
            .filter(|e| ["message", "stream_start", "stream_delta", "stream_end"].contains(&e.event.as_str()))
            .map(|e| (e.event.clone(), e.data.clone(), e.id.clone()))
            .collect()
    };
    assert_eq!(durable(&seen), durable(&reply.events), "subscriber vs POST /v1/chat stream");
}

#[tokio::test]
async fn tickets_open_subscriptions_without_headers() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(two_tenants(&fake)).await;
    let (sid, v) = app.create_session("acme").await;
    let other = app.create_session_for(&v).await.body["session"]["id"].as_str().unwrap().to_owned();

    // Unbound: any session of its subject; bound: its own session only.
    let unbound = app.mint_ticket(&v, None).await;
    let bound = app.mint_ticket(&v, Some(&sid)).await;
    for (ticket, session) in [(&unbound, &sid), (&unbound, &other), (&bound, &sid)] {
        let mut sub = app
            .open_events_url(&events_path(session, &format!("?ticket={ticket}")))
            .await
            .unwrap_or_else(|r| panic!("ticket subscription refused: {} {}", r.status, r.text));
        let s = sub.session_event().await;
        assert_eq!(s["session"]["id"], session.as_str());
    }
    // A ticket subscription receives the session's events.
    let mut sub = app.open_events_url(&events_path(&sid, &format!("?ticket={bound}"))).await.unwrap();
    sub.session_event().await;
    app.chat_stream(&v, &sid, "hi").await;
    let end = sub.until_final(2, EVENT_TIMEOUT).await;
    assert_eq!(end.json()["message"]["content"], joined(&pieces(3)).as_str());

    // Bound to another session of the same visitor: not found.
    let r = app.open_events_url(&events_path(&other, &format!("?ticket={bound}"))).await.err().unwrap();
    r.assert_error(404, "session.not_found");

    // With `?tenant=` naming its own tenant it is accepted; another tenant's
    // ticket disagrees with the tenant named (header or query).
    let r = app.open_events_url(&events_path(&sid, &format!("?tenant=acme&ticket={bound}"))).await;
    r.unwrap_or_else(|r| panic!("?tenant= + ticket of that tenant refused: {} {}", r.status, r.text));
    let (_, gv) = app.create_session("globex").await;
    let globex_ticket = app.mint_ticket(&gv, None).await;
    let r = app.open_events_url(&events_path(&sid, &format!("?tenant=acme&ticket={globex_ticket}"))).await;
    r.err().unwrap().assert_error(403, "auth.context_mismatch");
    let rb = app
        .client
        .get(app.url(&events_path(&sid, &format!("?ticket={globex_ticket}"))))
        .header("x-tenant-id", "acme");
    app.open_events(rb).await.err().unwrap().assert_error(403, "auth.context_mismatch");
}

#[tokio::test]
async fn the_gate_refuses_with_the_envelope() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(two_tenants(&fake)).await;
    let (sid, v) = app.create_session("acme").await;
    let (theirs, _) = app.create_session("acme").await;
    let (foreign, _) = app.create_session("globex").await;
    let ticket = app.mint_ticket(&v, Some(&sid)).await;

    // No credentials, and no tenant at all.
    let anonymous = app.client.get(app.url(&events_path(&sid, ""))).header("x-tenant-id", "acme");
    app.open_events(anonymous).await.err().unwrap().assert_error(401, "auth.missing");
    app.open_events_url(&events_path(&sid, "")).await.err().unwrap().assert_error(400, "tenant.missing");
    app.open_events_url(&events_path(&sid, "?tenant=nope"))
        .await
        .err()
        .unwrap()
        .assert_error(404, "tenant.unknown");

    // Bad credentials of every kind are one auth.invalid.
    let forged = {
        let mut parts: Vec<String> = ticket.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    for bad in ["garbage", forged.as_str(), v.token.as_str()] {
        let r = app.open_events_url(&events_path(&sid, &format!("?tenant=acme&ticket={bad}"))).await;
        r.err().unwrap_or_else(|| panic!("ticket {bad:?} accepted")).assert_error(401, "auth.invalid");
    }
    let ticket_as_bearer = as_caller("acme", &ticket);
    app.subscribe_refused(&ticket_as_bearer, &sid, None).await.assert_error(401, "auth.invalid");
    app.subscribe_refused(&as_caller("acme", "nope"), &sid, None).await.assert_error(401, "auth.invalid");
    // A user JWT signed with another tenant's secret.
    let foreign_key =
        as_caller("acme", &hs256("some-other-secret-0123456789abcdefgh", &claims("acme", "eve")));
    app.subscribe_refused(&foreign_key, &sid, None).await.assert_error(401, "auth.invalid");

    // Someone else's session, another tenant's, and none at all: not found alike.
    let unknown = uuid::Uuid::new_v4().to_string();
    for session in [&theirs, &foreign, &unknown] {
        app.subscribe_refused(&v, session, None).await.assert_error(404, "session.not_found");
    }
    // A user is a subject of its own: the visitor's session is not its.
    let alice = as_caller("acme", &hs256(SECRET, &claims("acme", "alice")));
    app.subscribe_refused(&alice, &sid, None).await.assert_error(404, "session.not_found");
    // Refusals come in the gate's order: identity before ownership and cursor.
    let r = app.open_events(
        app.client
            .get(app.url(&events_path(&unknown, "?last_event_id=abc")))
            .header("x-tenant-id", "acme")
            .bearer_auth("nope"),
    );
    r.await.err().unwrap().assert_error(401, "auth.invalid");
    app.subscribe_refused(&v, &unknown, Some("abc")).await.assert_error(404, "session.not_found");

    // The user of a session reaches it with its JWT.
    let (asid, _) = {
        let r = app.create_session_for(&alice).await;
        assert_eq!(r.status, 201, "{}", r.text);
        (r.body["session"]["id"].as_str().unwrap().to_owned(), ())
    };
    let mut sub = app.subscribe(&alice, &asid, None).await;
    assert_eq!(sub.session_event().await["session"]["id"], asid.as_str());
}

#[tokio::test]
async fn quiet_subscriptions_carry_heartbeats() {
    let app =
        TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme")).raw("heartbeat_secs = 1")).await;
    let (sid, v) = app.create_session("acme").await;
    let mut sub = app.subscribe(&v, &sid, None).await;
    sub.session_event().await;
    // One every `heartbeat_secs`: three within a little over three periods.
    sub.until_comments(3, Duration::from_secs(5)).await;
    assert!(sub.comments().iter().all(|c| c == "heartbeat"), "comments: {:?}", sub.comments());
    assert!(
        sub.try_next(Duration::from_millis(1)).await.is_err(),
        "an event among heartbeats: {:?}",
        sub.received
    );
    assert_eq!(sub.received.len(), 1, "heartbeats are comments, not events: {:?}", sub.received);
}

#[tokio::test]
async fn a_failed_turn_reaches_subscribers_as_error_then_its_final_message() {
    let fake = FakeOpenAi::start(Mode::MidStreamError(pieces(2))).await;
    let app = TestApp::start(two_tenants(&fake)).await;
    let (sid, v) = app.create_session("acme").await;
    let mut sub = app.subscribe(&v, &sid, None).await;
    sub.session_event().await;

    let reply = app.chat_stream(&v, &sid, "this will fail").await;
    assert_eq!(reply.last().event, "error", "{:?}", reply.events);
    let final_msg = sub.until_final(2, EVENT_TIMEOUT).await;
    let names = common::kinds(&sub.received);
    let at = names.iter().position(|n| n == "error").unwrap_or_else(|| panic!("no error event: {names:?}"));
    assert_eq!(at, names.len() - 2, "error comes right before the final message: {names:?}");
    let err = sub.received[at].json();
    assert!(err["error"]["code"].as_str().is_some_and(|c| c.starts_with("llm.")), "{err}");
    assert!(sub.received[at].id.is_none(), "an error event has no id");
    assert_eq!(final_msg.event, "message");
    assert_eq!(final_msg.id.as_deref(), Some("2"), "the failed answer's final message carries its seq");
    let m = final_msg.json();
    assert_eq!(m["status"], "error", "{m}");
    assert_eq!(m["content"], joined(&pieces(2)).as_str(), "the partial text is kept: {m}");
    // The subscription goes on: the next turn arrives too.
    fake.set_mode(Mode::Normal(pieces(2)));
    app.chat_stream(&v, &sid, "again").await;
    let end = sub.until_final(4, EVENT_TIMEOUT).await;
    assert_eq!(end.event, "stream_end");
}

#[tokio::test]
async fn the_kill_switch_ends_open_subscriptions_and_refuses_new_ones() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let app = TestApp::start(two_tenants(&fake)).await;
    let (idle_sid, idle_v) = app.create_session("acme").await;
    let (busy_sid, busy_v) = app.create_session("acme").await;
    let (g_sid, g_v) = app.create_session("globex").await;

    let mut idle = app.subscribe(&idle_v, &idle_sid, None).await;
    idle.session_event().await;
    let ticket = app.mint_ticket(&busy_v, Some(&busy_sid)).await;
    let mut busy = app.open_events_url(&events_path(&busy_sid, &format!("?ticket={ticket}"))).await.unwrap();
    busy.session_event().await;
    let mut other_tenant = app.subscribe(&g_v, &g_sid, None).await;
    other_tenant.session_event().await;
    let _turn = app.chat_live(&busy_v, &chat_body(&busy_sid, "tell me")).await;
    busy.until("stream_delta", EVENT_TIMEOUT).await;

    app.cli(&["tenant", "update", "acme", "--kill-switch", "on"]).await.expect_ok("flip on");
    let flipped = Instant::now();
    for (name, sub) in [("idle", &mut idle), ("busy", &mut busy)] {
        let left = CLOSE_WITHIN.saturating_sub(flipped.elapsed());
        let error = sub.until("error", left).await;
        let e = error.json();
        assert_eq!(e["error"]["code"], "tenant.disabled", "{name}: {e}");
        assert_eq!(e["error"]["http_status"], 403, "{name}: {e}");
        assert!(e["error"]["trace_id"].as_str().is_some_and(|t| !t.is_empty()), "{name}: {e}");
        let rest = sub.until_end(Duration::from_secs(5)).await;
        for ev in rest.iter().filter(|ev| ev.event == "error") {
            assert_eq!(ev.json()["error"]["code"], "tenant.disabled", "{name}: {rest:?}");
        }
    }
    fake.release();
    // New subscriptions are refused; another tenant's goes on.
    app.subscribe_refused(&idle_v, &idle_sid, None).await.assert_error(403, "tenant.disabled");
    let r = app.open_events_url(&events_path(&busy_sid, &format!("?ticket={ticket}"))).await;
    r.err().unwrap().assert_error(403, "tenant.disabled");
    app.chat_stream(&g_v, &g_sid, "still here?").await;
    other_tenant.until_final(2, EVENT_TIMEOUT).await;
}

#[tokio::test]
async fn linking_the_visitor_ends_its_subscriptions() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(two_tenants(&fake)).await;
    let (sid, v) = app.create_session("acme").await;
    let (other_sid, other_v) = app.create_session("acme").await;
    let ticket = app.mint_ticket(&v, Some(&sid)).await;

    let mut by_token = app.subscribe(&v, &sid, None).await;
    by_token.session_event().await;
    let mut by_ticket = app.open_events_url(&events_path(&sid, &format!("?ticket={ticket}"))).await.unwrap();
    by_ticket.session_event().await;
    let mut bystander = app.subscribe(&other_v, &other_sid, None).await;
    bystander.session_event().await;

    let alice = as_caller("acme", &hs256(SECRET, &claims("acme", "alice")));
    let r = app
        .send(
            app.request(Method::POST, "/v1/identity/link", Some(&alice))
                .json(&json!({"visitor_token": v.token})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let linked = Instant::now();
    for (name, sub) in [("bearer", &mut by_token), ("ticket", &mut by_ticket)] {
        let left = CLOSE_WITHIN.saturating_sub(linked.elapsed());
        let error = sub.until("error", left).await.json();
        assert_eq!(error["error"]["code"], "auth.invalid", "{name}: {error}");
        assert_eq!(error["error"]["http_status"], 401, "{name}: {error}");
        let rest = sub.until_end(Duration::from_secs(5)).await;
        assert!(rest.is_empty(), "{name}: events after the error: {rest:?}");
    }
    // The visitor's token no longer subscribes; the user now owns the
    // session and follows it; other subjects are untouched.
    app.subscribe_refused(&v, &sid, None).await.assert_error(401, "auth.invalid");
    let mut as_user = app.subscribe(&alice, &sid, None).await;
    as_user.session_event().await;
    app.chat_stream(&alice, &sid, "logged in now").await;
    assert_eq!(as_user.until_final(2, EVENT_TIMEOUT).await.event, "stream_end");
    app.chat_stream(&other_v, &other_sid, "me too").await;
    assert_eq!(bystander.until_final(2, EVENT_TIMEOUT).await.event, "stream_end");
}

#[tokio::test]
async fn sigterm_ends_subscriptions_cleanly_after_running_turns() {
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: pieces(20), interval: Duration::from_millis(50) }).await;
    let config = two_tenants(&fake).shutdown_grace_secs(8.0);
    let mut app = TestApp::start(config).await;
    let (sid, v) = app.create_session("acme").await;
    let (idle_sid, idle_v) = app.create_session("acme").await;
    let mut watching = app.subscribe(&v, &sid, None).await;
    watching.session_event().await;
    let mut idle = app.subscribe(&idle_v, &idle_sid, None).await;
    idle.session_event().await;
    let turn = app.chat_live(&v, &chat_body(&sid, "a slow one")).await;
    watching.until("stream_delta", EVENT_TIMEOUT).await;

    let (status, _) = app.terminate(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    drop(turn);
    let events = watching.until_end(Duration::from_secs(5)).await;
    assert!(!watching.broken(), "the subscription was cut, not ended: {:?}", watching.received);
    let names = common::kinds(&events);
    assert!(names.iter().all(|n| n != "error"), "an error event on shutdown: {names:?}");
    let end = events.iter().find(|e| e.event == "stream_end");
    let end =
        end.unwrap_or_else(|| panic!("the running turn did not finish before the stream ended: {names:?}"));
    assert_eq!(end.json()["message"]["content"], joined(&pieces(20)).as_str());
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("stream_end"), "{names:?}");

    let rest = idle.until_end(Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "the idle subscription got {rest:?}");
    assert!(!idle.broken(), "the idle subscription was cut, not ended");
}
