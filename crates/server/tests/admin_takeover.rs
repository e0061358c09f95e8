//! Takeover through the binary (SPEC §12): an agent takes a session over,
//! writes to the visitor, and gives it back; every connection of the session
//! (the visitor's SSE subscription and WebSocket, the agent's live view)
//! sees the `takeover` events, the notes and the messages; the provider is
//! never called while an agent holds the session; a running answer is
//! stopped first with its partial text kept; tenants and ticket kinds stay
//! apart.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
#[path = "common/cluster.rs"]
#[allow(dead_code)] // Only the cluster's start and shutdown are used here.
mod cluster;
mod common;

use admin::{call, jwt_tenant, operator_config, with_jwt, As};
use cluster::{Backend, Cluster};
use common::client::LiveStream;
use common::{chat_body, pieces, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(10);

async fn app_with(fake: &FakeOpenAi) -> TestApp {
    let config = with_jwt(operator_config(), TenantSpec::openai("acme", fake));
    TestApp::start(with_jwt(config, TenantSpec::demo("beta"))).await
}

async fn post(app: &TestApp, who: &As, path: &str, body: Option<Value>) -> common::client::Reply {
    call(app, who, Method::POST, path, body).await
}

/// The next event on `live` of `kind` whose payload matches `check`.
async fn until_matching(live: &mut LiveStream, kind: &str, check: impl Fn(&Value) -> bool) -> Value {
    loop {
        let ev = live.until(kind, WITHIN).await;
        let v = ev.json();
        if check(&v) {
            return v;
        }
    }
}

/// A ticket of the agent's live view for `session`.
async fn admin_ticket(app: &TestApp, who: &As, session: &str) -> String {
    let reply = post(app, who, "/v1/admin/tickets", Some(json!({"session_id": session}))).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert!(reply.body["expires_at"].as_str().is_some(), "{}", reply.text);
    reply.body["ticket"].as_str().expect("ticket").to_owned()
}

fn is_role(role: &str, content: &str) -> impl Fn(&Value) -> bool {
    let (role, content) = (role.to_owned(), content.to_owned());
    move |m: &Value| m["role"] == role.as_str() && m["content"] == content.as_str()
}

#[tokio::test]
async fn takeover_silences_the_ai_and_every_connection_follows_it() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = app_with(&fake).await;
    let (session, visitor) = app.create_session("acme").await;
    assert_eq!(app.chat_json(&visitor, &session, "hello").await.status.as_u16(), 200);
    assert_eq!(fake.calls(), 1);

    let mut sse = app.subscribe(&visitor, &session, None).await;
    sse.session_event().await;
    let (mut ws, _) = app.ws_hello("acme", &visitor.token, &session, None).await;
    let agent = As::agent("acme");
    let path = format!("/v1/admin/sessions/{session}");

    let taken = post(&app, &agent, &format!("{path}/takeover"), None).await;
    assert_eq!(taken.status.as_u16(), 200, "{}", taken.text);
    assert_eq!(
        (taken.body["status"].as_str(), taken.body["admin_assisted"].as_bool()),
        (Some("human"), Some(true))
    );
    assert_eq!(taken.body["takeover"]["agent"], json!({"name": "Ada"}));
    assert!(taken.body["takeover"]["since"].as_str().is_some(), "{}", taken.text);
    let joined = "Ada joined the conversation";
    let note = until_matching(&mut sse, "message", is_role("system", joined)).await;
    assert_eq!(note["seq"], 3);
    let event = sse.until("takeover", WITHIN).await;
    assert_eq!((event.json(), event.id), (json!({"active": true, "agent": {"name": "Ada"}}), None));
    let frame = ws.until("takeover", WITHIN).await;
    assert_eq!((frame["active"].as_bool(), frame["agent"]["name"].as_str()), (Some(true), Some("Ada")));
    assert_eq!(frame["session_id"], session.as_str());
    assert!(
        ws.received.iter().any(|f| f["type"] == "message" && f["content"] == joined),
        "{:?}",
        ws.received
    );
    // The same agent again changes nothing.
    let again = post(&app, &agent, &format!("{path}/takeover"), None).await;
    assert_eq!((again.status.as_u16(), &again.body["latest_seq"]), (200, &json!(3)), "{}", again.text);

    // The agent's live view, opened with a ticket as an EventSource would.
    let ticket = admin_ticket(&app, &agent, &session).await;
    let mut view = app.open_events_url(&format!("{path}/events?ticket={ticket}")).await.expect("live view");
    let opened = view.session_event().await;
    assert_eq!(opened["session"]["takeover"]["agent"]["name"], "Ada");

    // The visitor writes: stored, delivered, and no provider call.
    let sent = app.chat_raw(&visitor, &chat_body(&session, "is anyone there?")).await;
    assert_eq!(sent.status.as_u16(), 202, "{}", sent.text);
    assert_eq!(sent.body["handled_by"], "agent");
    assert_eq!(
        (sent.body["user_message"]["seq"].as_i64(), sent.body["user_message"]["role"].as_str()),
        (Some(4), Some("user"))
    );
    until_matching(&mut view, "message", is_role("user", "is anyone there?")).await;
    until_matching(&mut sse, "message", is_role("user", "is anyone there?")).await;
    let retried = app
        .chat_raw(&visitor, &json!({"session_id": session, "message": "again", "client_message_id": "c-1"}))
        .await;
    assert_eq!(retried.status.as_u16(), 202, "{}", retried.text);
    let retried = app
        .chat_raw(&visitor, &json!({"session_id": session, "message": "again", "client_message_id": "c-1"}))
        .await;
    assert_eq!(
        (retried.status.as_u16(), &retried.body["user_message"]["seq"]),
        (202, &json!(5)),
        "a retry is the same"
    );
    ws.send_json(&json!({"type": "message", "content": "over the socket"})).await;
    until_matching(&mut view, "message", is_role("user", "over the socket")).await;

    // The agent answers, as itself.
    let reply =
        post(&app, &agent, &format!("{path}/messages"), Some(json!({"content": "  Hi, Ada here. "}))).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let message = &reply.body["message"];
    assert_eq!((message["role"].as_str(), message["author"].as_str()), (Some("agent"), Some("Ada")));
    assert_eq!(message["content"], "Hi, Ada here.");
    let seen = until_matching(&mut sse, "message", is_role("agent", "Hi, Ada here.")).await;
    assert_eq!(seen["author"], "Ada");
    until_matching(&mut view, "message", is_role("agent", "Hi, Ada here.")).await;
    loop {
        let frame = ws.until("message", WITHIN).await;
        if frame["role"] == "agent" {
            assert_eq!(
                (frame["author"].as_str(), frame["content"].as_str()),
                (Some("Ada"), Some("Hi, Ada here."))
            );
            break;
        }
    }
    assert_eq!(fake.calls(), 1, "the provider was called while an agent held the session");
    let history = app.messages(&visitor, &session).await;
    let agent_msg = history.iter().find(|m| m["role"] == "agent").expect("the agent's message is kept");
    assert_eq!(agent_msg["author"], "Ada");
    assert!(history.iter().any(|m| m["role"] == "system" && m["content"] == joined));

    // Back to the AI.
    let released = post(&app, &agent, &format!("{path}/release"), Some(json!({}))).await;
    assert_eq!(released.status.as_u16(), 200, "{}", released.text);
    assert_eq!(
        (released.body["status"].as_str(), &released.body["takeover"]),
        (Some("active"), &Value::Null)
    );
    assert_eq!(released.body["admin_assisted"], true);
    until_matching(&mut sse, "message", is_role("system", "Ada left the conversation")).await;
    assert_eq!(
        sse.until("takeover", WITHIN).await.json(),
        json!({"active": false, "agent": {"name": "Ada"}})
    );
    let frame = ws.until("takeover", WITHIN).await;
    assert_eq!(frame["active"], false);
    let answered = app.chat_json(&visitor, &session, "and now?").await;
    assert_eq!(answered.status.as_u16(), 200, "{}", answered.text);
    assert_eq!(answered.body["message"]["role"], "assistant");
    assert_eq!(fake.calls(), 2, "the AI answers again after the release");

    post(&app, &agent, &format!("{path}/messages"), Some(json!({"content": "late"})))
        .await
        .assert_error(409, "session.not_human");
    post(&app, &agent, &format!("{path}/release"), None).await.assert_error(409, "session.not_human");
}

#[tokio::test]
async fn takeover_stops_a_running_answer_and_keeps_its_partial() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let app = app_with(&fake).await;
    let (session, visitor) = app.create_session("acme").await;
    let mut sse = app.subscribe(&visitor, &session, None).await;
    sse.session_event().await;
    let mut live = app.chat_live(&visitor, &chat_body(&session, "tell me")).await;
    let start = live.until("stream_start", WITHIN).await.json();
    while live.text_so_far() != "w0 w1" {
        live.next(WITHIN).await.expect("the stream ended early");
    }

    let taken = post(&app, &As::agent("acme"), &format!("/v1/admin/sessions/{session}/takeover"), None).await;
    assert_eq!(taken.status.as_u16(), 200, "{}", taken.text);
    let end = live.until("stream_end", WITHIN).await.json();
    assert_eq!(end["finish_reason"], "aborted", "{end}");
    // The subscriber sees the answer end before the note that follows it.
    let ended = sse.until("stream_end", WITHIN).await;
    assert_eq!(ended.id.as_deref(), Some("2"));
    let note = until_matching(&mut sse, "message", is_role("system", "Ada joined the conversation")).await;
    assert_eq!(note["seq"], 3);
    fake.release();
    let answer = app.message(&visitor, &session, start["seq"].as_i64().unwrap()).await.unwrap();
    assert_eq!((answer["status"].as_str(), answer["content"].as_str()), (Some("aborted"), Some("w0 w1")));
    assert_eq!(app.chat_raw(&visitor, &chat_body(&session, "hi?")).await.status.as_u16(), 202);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn tenants_ticket_kinds_and_states_stay_apart() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let app = app_with(&fake).await;
    let (session, visitor) = app.create_session("acme").await;
    let (other, _) = app.create_session("acme").await;
    let path = format!("/v1/admin/sessions/{session}");
    let acme = As::agent("acme");
    let beta = As::agent("beta");

    // Another tenant's agent: not found, whatever it tries.
    for action in ["takeover", "release"] {
        post(&app, &beta, &format!("{path}/{action}"), None).await.assert_error(404, "session.not_found");
    }
    post(&app, &beta, &format!("{path}/messages"), Some(json!({"content": "x"})))
        .await
        .assert_error(404, "session.not_found");
    post(&app, &beta, "/v1/admin/tickets", Some(json!({"session_id": session})))
        .await
        .assert_error(404, "session.not_found");
    let refused =
        app.open_events(app.client.get(app.url(&format!("{path}/events"))).bearer_auth(&beta.token)).await;
    refused.err().expect("refused").assert_error(404, "session.not_found");
    let unknown = format!("/v1/admin/sessions/{}/takeover", uuid::Uuid::new_v4());
    post(&app, &acme, &unknown, None).await.assert_error(404, "session.not_found");

    // Admin tickets open only the admin view of their session; end-user
    // tickets never open it.
    let ticket = admin_ticket(&app, &acme, &session).await;
    let on_end_user = app.open_events_url(&format!("/v1/sessions/{session}/events?ticket={ticket}")).await;
    on_end_user.err().expect("refused").assert_error(401, "auth.invalid");
    let as_bearer =
        app.open_events(app.client.get(app.url(&format!("{path}/events"))).bearer_auth(&ticket)).await;
    as_bearer.err().expect("refused").assert_error(401, "auth.invalid");
    let elsewhere = app.open_events_url(&format!("/v1/admin/sessions/{other}/events?ticket={ticket}")).await;
    elsewhere.err().expect("refused").assert_error(404, "session.not_found");
    let visitor_ticket = app.mint_ticket(&visitor, Some(&session)).await;
    let end_user = app.open_events_url(&format!("{path}/events?ticket={visitor_ticket}")).await;
    end_user.err().expect("refused").assert_error(401, "auth.invalid");
    app.open_events_url(&format!("{path}/events"))
        .await
        .err()
        .expect("refused")
        .assert_error(401, "auth.missing");
    let mut by_bearer = app
        .open_events(
            app.client.get(app.url(&format!("{path}/events?last_event_id=0"))).bearer_auth(&acme.token),
        )
        .await
        .expect("the agent's bearer token opens the view");
    by_bearer.resumed_session_event(0).await;
    post(&app, &acme, "/v1/admin/tickets", Some(json!({}))).await.assert_error(400, "request.invalid");

    // Agent messages need a takeover and a valid content; the operator writes as "Operator".
    post(&app, &acme, &format!("{path}/messages"), Some(json!({"content": "hi"})))
        .await
        .assert_error(409, "session.not_human");
    let operator = As::operator(Some("acme"));
    assert_eq!(post(&app, &operator, &format!("{path}/takeover"), None).await.status.as_u16(), 200);
    post(&app, &acme, &format!("{path}/messages"), Some(json!({"content": "   "})))
        .await
        .assert_error(400, "request.invalid");
    let by_operator =
        post(&app, &operator, &format!("{path}/messages"), Some(json!({"content": "hello"}))).await;
    assert_eq!(by_operator.body["message"]["author"], "Operator", "{}", by_operator.text);
    // Another agent takes it over from the operator: a handover.
    let handed = post(&app, &acme, &format!("{path}/takeover"), None).await;
    assert_eq!(handed.body["takeover"]["agent"]["name"], "Ada", "{}", handed.text);

    // Closed sessions refuse all of it.
    assert_eq!(post(&app, &acme, &format!("{path}/close"), None).await.status.as_u16(), 200);
    for action in ["takeover", "release"] {
        post(&app, &acme, &format!("{path}/{action}"), None).await.assert_error(409, "session.closed");
    }
    post(&app, &acme, &format!("{path}/messages"), Some(json!({"content": "x"})))
        .await
        .assert_error(409, "session.closed");
    assert_eq!(fake.calls(), 0);
}

/// A cluster whose upstream holds every answer after two pieces until
/// released (so only a stop ends it), and a session of `acme` on node b.
async fn held_answers(backend: Backend, test: &str) -> Option<(Cluster, FakeOpenAi, String, Visitor)> {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let acme = jwt_tenant(TenantSpec::openai("acme", &fake));
    let c = Cluster::start(test, backend, &[acme]).await?;
    let (session, visitor) = c.b.create_session("acme").await;
    Some((c, fake, session, visitor))
}

/// Starts a turn on node b and reads it up to where the upstream holds it.
async fn held_turn(c: &Cluster, session: &str, visitor: &Visitor) -> LiveStream {
    let mut live = c.b.chat_live(visitor, &chat_body(session, "tell me")).await;
    while live.text_so_far() != "w0 w1" {
        live.next(WITHIN).await.expect("the stream ended early");
    }
    live
}

/// An answer streaming on node b is stopped by a takeover taken on node a,
/// and everything after it crosses the bus.
async fn cluster_takeover(backend: Backend, test: &str) {
    let Some((c, fake, session, visitor)) = held_answers(backend, test).await else { return };
    let mut sse = c.b.subscribe(&visitor, &session, None).await;
    sse.session_event().await;
    let mut live = held_turn(&c, &session, &visitor).await;

    let path = format!("/v1/admin/sessions/{session}");
    let agent = As::agent("acme");
    let taken = post(&c.a, &agent, &format!("{path}/takeover"), None).await;
    assert_eq!(taken.status.as_u16(), 200, "{}", taken.text);
    assert_eq!(live.until("stream_end", WITHIN).await.json()["finish_reason"], "aborted");
    until_matching(&mut sse, "message", is_role("system", "Ada joined the conversation")).await;
    assert_eq!(sse.until("takeover", WITHIN).await.json()["active"], true);
    let sent = post(&c.a, &agent, &format!("{path}/messages"), Some(json!({"content": "Ada here"}))).await;
    assert_eq!(sent.status.as_u16(), 201, "{}", sent.text);
    until_matching(&mut sse, "message", is_role("agent", "Ada here")).await;
    fake.release();
    assert_eq!(c.b.chat_raw(&visitor, &chat_body(&session, "thanks")).await.status.as_u16(), 202);
    assert_eq!(fake.calls(), 1);
    drop((live, sse));
    c.shutdown().await;
}

#[tokio::test]
async fn redis_a_takeover_stops_the_answer_on_the_other_node() {
    cluster_takeover(Backend::Redis, "redis_admin_takeover").await;
}

#[tokio::test]
async fn nats_a_takeover_stops_the_answer_on_the_other_node() {
    cluster_takeover(Backend::Nats, "nats_admin_takeover").await;
}

/// An answer streaming on node b is stopped by a close taken on node a
/// (`Notice::Closing`): kept as `aborted`, then the session is closed.
async fn cluster_close(backend: Backend, test: &str) {
    let Some((c, fake, session, visitor)) = held_answers(backend, test).await else { return };
    let mut live = held_turn(&c, &session, &visitor).await;

    let closed = post(&c.a, &As::agent("acme"), &format!("/v1/admin/sessions/{session}/close"), None).await;
    assert_eq!(closed.status.as_u16(), 200, "{}", closed.text);
    assert_eq!(closed.body["status"], "closed", "{}", closed.text);
    assert_eq!(live.until("stream_end", WITHIN).await.json()["finish_reason"], "aborted");
    let answer = c.b.message(&visitor, &session, 2).await.expect("the answer");
    assert_eq!((answer["status"].as_str(), answer["content"].as_str()), (Some("aborted"), Some("w0 w1")));
    c.b.chat_raw(&visitor, &chat_body(&session, "hello?")).await.assert_error(409, "session.closed");
    fake.release();
    drop(live);
    c.shutdown().await;
}

#[tokio::test]
async fn redis_a_close_stops_the_answer_on_the_other_node() {
    cluster_close(Backend::Redis, "redis_admin_close").await;
}

#[tokio::test]
async fn nats_a_close_stops_the_answer_on_the_other_node() {
    cluster_close(Backend::Nats, "nats_admin_close").await;
}
