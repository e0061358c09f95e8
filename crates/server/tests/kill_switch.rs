//! Kill switches (SPEC §8, §12, §13): a tenant's (from the file, flipped at run
//! time with the CLI) and the global one refuse every end-user endpoint with
//! `tenant.disabled` before anything is stored or a provider is called, and a
//! switch turned on stops the tenant's turns in flight.

mod common;

use common::{chat_body, eventually, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use std::time::Duration;

/// How long a running server may take to follow a flip made with the CLI.
const RELOAD: Duration = Duration::from_secs(10);

/// Every end-user endpoint, called as `who` on `session`: each must refuse
/// with `tenant.disabled`.
async fn assert_all_disabled(app: &TestApp, who: &Visitor, session: &str) {
    let anonymous = app.client.post(app.url("/v1/sessions")).header("x-tenant-id", &who.tenant);
    app.send(anonymous).await.assert_error(403, "tenant.disabled");
    let calls = [
        (Method::POST, "/v1/sessions".to_owned()),
        (Method::GET, "/v1/sessions".to_owned()),
        (Method::GET, format!("/v1/sessions/{session}")),
        (Method::GET, format!("/v1/sessions/{session}/messages")),
        (Method::DELETE, format!("/v1/sessions/{session}")),
    ];
    for (method, path) in calls {
        let reply = app.send(app.request(method.clone(), &path, Some(who))).await;
        assert_eq!(reply.status.as_u16(), 403, "{method} {path}: {}", reply.text);
        reply.assert_error(403, "tenant.disabled");
    }
    for stream in [true, false] {
        let mut body = chat_body(session, "are you there?");
        body["stream"] = serde_json::json!(stream);
        app.chat_raw(who, &body).await.assert_error(403, "tenant.disabled");
    }
}

/// How the server answers `who` listing its sessions: 200, or 403 while a
/// kill switch is on. A probe with no side effects.
async fn probe(app: &TestApp, who: &Visitor) -> u16 {
    app.send(app.request(Method::GET, "/v1/sessions", Some(who))).await.status.as_u16()
}

/// Waits until the probe answers `status`.
async fn until_probe(app: &TestApp, who: &Visitor, status: u16, what: &str) {
    eventually(what, RELOAD, || async { (probe(app, who).await == status).then_some(()) }).await;
}

#[tokio::test]
async fn a_cli_flip_reaches_the_running_server_and_nothing_is_stored_or_called() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (session, visitor) = app.create_session("acme").await;
    let reply = app.chat_stream(&visitor, &session, "first").await;
    assert_eq!(reply.last().event, "stream_end");
    assert_eq!(fake.calls(), 1);

    app.cli(&["tenant", "update", "acme", "--kill-switch", "on"]).await.expect_ok("flip on");
    until_probe(&app, &visitor, 403, "the kill switch to be seen").await;
    assert_all_disabled(&app, &visitor, &session).await;
    assert_eq!(fake.calls(), 1, "a provider was called while the tenant was disabled");

    app.cli(&["tenant", "update", "acme", "--kill-switch", "off"]).await.expect_ok("flip off");
    until_probe(&app, &visitor, 200, "the kill switch to be off").await;
    // Nothing the refused requests carried was stored, and the session survived the refused delete.
    let stored = app.messages(&visitor, &session).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
}

#[tokio::test]
async fn turning_the_switch_on_stops_turns_in_flight() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (session, visitor) = app.create_session("acme").await;
    let mut live = app.chat_live(&visitor, &chat_body(&session, "tell me")).await;
    let start = live.until("stream_start", Duration::from_secs(10)).await.json();
    while live.text_so_far() != "w0 w1" {
        live.next(Duration::from_secs(10)).await.expect("the stream ended early");
    }

    app.cli(&["tenant", "update", "acme", "--kill-switch", "on"]).await.expect_ok("flip on");
    let error = live.until("error", RELOAD + Duration::from_secs(5)).await.json();
    assert_eq!(error["error"]["code"], "tenant.disabled", "{error}");
    assert_eq!(error["error"]["http_status"], 403, "{error}");
    assert!(live.next(Duration::from_secs(5)).await.is_none(), "the stream goes on after the error");
    // The upstream request was dropped with the turn, not left to run on.
    assert_eq!((fake.dropped(), fake.completed()), (1, 0), "the provider stream outlived the stopped turn");
    fake.release();

    app.cli(&["tenant", "update", "acme", "--kill-switch", "off"]).await.expect_ok("flip off");
    until_probe(&app, &visitor, 200, "the kill switch to be off").await;
    let answer = app.message(&visitor, &session, start["seq"].as_i64().unwrap()).await.unwrap();
    assert_eq!(answer["status"], "aborted", "{answer}");
    assert_eq!(answer["content"], "w0 w1", "the partial answer is kept: {answer}");
}

#[tokio::test]
async fn the_global_kill_switch_refuses_every_end_user_endpoint() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let config = AppConfig::new()
        .tenant(TenantSpec::openai("acme", &fake))
        .tenant(TenantSpec::demo("off").line("kill_switch = true"));
    let mut app = TestApp::start(config).await;
    let (session, visitor) = app.create_session("acme").await;
    app.chat_stream(&visitor, &session, "first").await;
    assert_eq!(fake.calls(), 1);
    // A tenant switched off in the file.
    let off = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "off")).await;
    off.assert_error(403, "tenant.disabled");

    app.config.extra_top_level.push("kill_switch = true".into());
    app.restart().await;
    assert_all_disabled(&app, &visitor, &session).await;
    assert_eq!(fake.calls(), 1, "a provider was called under the global kill switch");

    app.config.extra_top_level.retain(|l| l != "kill_switch = true");
    app.restart().await;
    assert_eq!(app.messages(&visitor, &session).await.len(), 2);
    let off = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "off")).await;
    off.assert_error(403, "tenant.disabled");
}
