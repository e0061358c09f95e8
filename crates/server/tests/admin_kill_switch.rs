//! Kill switches through the admin API (SPEC §12, §13): a tenant's and the
//! global one stop an answer in flight within a second, refuse the next
//! turn, leave the admin API working (so they can be turned off again),
//! survive a restart, keep the configuration's global `true` as a floor,
//! and reach the other node of a cluster.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
#[path = "common/cluster.rs"]
#[allow(dead_code)] // Only the cluster's start and shutdown are used here.
mod cluster;
mod common;

use admin::{call, get_ok, jwt_tenant, operator_config, with_jwt, As};
use cluster::{Backend, Cluster};
use common::{chat_body, pieces, FakeOpenAi, LiveStream, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// How soon a stopped answer's stream must end after the switch answered.
const WITHIN: Duration = Duration::from_secs(1);

/// A streamed turn held mid-answer by the gated fake, two words in.
async fn answer_in_flight(app: &TestApp, who: &Visitor, session: &str) -> LiveStream {
    let mut live = app.chat_live(who, &chat_body(session, "tell me")).await;
    live.until("stream_start", Duration::from_secs(10)).await;
    while live.text_so_far() != "w0 w1" {
        live.next(Duration::from_secs(10)).await.expect("the stream ended early");
    }
    live
}

/// The stream ends with `tenant.disabled` within `WITHIN` of `since`.
async fn ends_disabled(live: &mut LiveStream, since: Instant) {
    let error = live.until("error", Duration::from_secs(5)).await.json();
    assert!(since.elapsed() < WITHIN, "the answer was stopped after {:?}", since.elapsed());
    assert_eq!(error["error"]["code"], "tenant.disabled", "{error}");
}

/// A turn is admitted again: its answer starts (the gated fake may hold it).
async fn admitted(app: &TestApp, who: &Visitor, session: &str) {
    let mut live = app.chat_live(who, &chat_body(session, "back?")).await;
    assert_eq!(live.status.as_u16(), 200);
    live.until("stream_start", Duration::from_secs(10)).await;
}

async fn switch(app: &TestApp, who: &As, path: &str, enabled: bool) -> serde_json::Value {
    let body = json!({"enabled": enabled, "reason": if enabled { "incident 42" } else { "resolved" }});
    let reply = call(app, who, Method::PUT, path, Some(body)).await;
    assert_eq!(reply.status.as_u16(), 200, "PUT {path}: {}", reply.text);
    reply.body
}

#[tokio::test]
async fn a_tenants_switch_stops_its_turns_at_once_and_the_admin_api_still_works() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let config =
        with_jwt(operator_config(), TenantSpec::openai("acme", &fake)).tenant(TenantSpec::demo("other"));
    let app = TestApp::start(config).await;
    let (session, visitor) = app.create_session("acme").await;
    let mut live = answer_in_flight(&app, &visitor, &session).await;

    let op = As::operator(None);
    let on = switch(&app, &op, "/v1/admin/tenants/acme/kill-switch", true).await;
    let flipped = Instant::now();
    assert_eq!((on["enabled"].as_bool(), on["reason"].as_str()), (Some(true), Some("incident 42")));
    ends_disabled(&mut live, flipped).await;
    fake.release();
    app.chat_raw(&visitor, &chat_body(&session, "again?")).await.assert_error(403, "tenant.disabled");
    assert_eq!(fake.calls(), 1);
    // Other tenants go on; the admin API serves the disabled tenant's agents.
    let (other, stranger) = app.create_session("other").await;
    assert_eq!(app.chat_stream(&stranger, &other, "hi").await.last().event, "stream_end");
    let listed = get_ok(&app, &As::agent("acme"), "/v1/admin/sessions").await;
    assert_eq!(listed["items"][0]["id"], session.as_str());
    let shown = get_ok(&app, &op, "/v1/admin/tenants/acme").await;
    assert_eq!(
        (shown["kill_switch"].as_bool(), shown["kill_switch_reason"].as_str()),
        (Some(true), Some("incident 42"))
    );

    // The tenant's own agent turns it off (the console's switch).
    let off = switch(&app, &As::agent("acme"), "/v1/admin/tenants/acme/kill-switch", false).await;
    assert_eq!(off["enabled"], false);
    admitted(&app, &visitor, &session).await;
    let unknown =
        call(&app, &op, Method::PUT, "/v1/admin/tenants/ghost/kill-switch", Some(json!({"enabled": true})));
    unknown.await.assert_error(404, "tenant.unknown");
}

#[tokio::test]
async fn the_global_switch_stops_everything_persists_and_keeps_the_configs_floor() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let config =
        operator_config().tenant(TenantSpec::openai("acme", &fake)).tenant(TenantSpec::demo("other"));
    let mut app = TestApp::start(config).await;
    let (session, visitor) = app.create_session("acme").await;
    let (other, stranger) = app.create_session("other").await;
    let mut live = answer_in_flight(&app, &visitor, &session).await;

    let op = As::operator(None);
    let on = switch(&app, &op, "/v1/admin/kill-switch", true).await;
    let flipped = Instant::now();
    assert_eq!((on["enabled"].as_bool(), on["config_floor"].as_bool()), (Some(true), Some(false)));
    ends_disabled(&mut live, flipped).await;
    fake.release();
    for (who, sid) in [(&visitor, &session), (&stranger, &other)] {
        app.chat_raw(who, &chat_body(sid, "anyone?")).await.assert_error(403, "tenant.disabled");
    }
    // Kept in the database: a restart still refuses.
    app.restart().await;
    app.chat_raw(&stranger, &chat_body(&other, "anyone?")).await.assert_error(403, "tenant.disabled");
    let shown = get_ok(&app, &op, "/v1/admin/kill-switch").await;
    assert_eq!((shown["enabled"].as_bool(), shown["reason"].as_str()), (Some(true), Some("incident 42")));
    switch(&app, &op, "/v1/admin/kill-switch", false).await;
    assert_eq!(app.chat_stream(&stranger, &other, "hi").await.last().event, "stream_end");
    admitted(&app, &visitor, &session).await;

    // The configuration's `kill_switch = true` is a floor the API cannot lower.
    app.config.extra_top_level.push("kill_switch = true".into());
    app.restart().await;
    let off = switch(&app, &op, "/v1/admin/kill-switch", false).await;
    assert_eq!((off["enabled"].as_bool(), off["config_floor"].as_bool()), (Some(true), Some(true)));
    app.chat_raw(&stranger, &chat_body(&other, "anyone?")).await.assert_error(403, "tenant.disabled");
}

async fn cluster_tenant_switch(backend: Backend, test: &str) {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let acme = jwt_tenant(TenantSpec::openai("acme", &fake));
    let Some(c) = Cluster::start(test, backend, &[acme]).await else { return };
    let (session, visitor) = c.b.create_session("acme").await;
    let mut live = answer_in_flight(&c.b, &visitor, &session).await;

    // The tenant's agent flips the switch on node a; node b's answer stops.
    switch(&c.a, &As::agent("acme"), "/v1/admin/tenants/acme/kill-switch", true).await;
    ends_disabled(&mut live, Instant::now()).await;
    fake.release();
    c.b.chat_raw(&visitor, &chat_body(&session, "again?")).await.assert_error(403, "tenant.disabled");
    switch(&c.a, &As::agent("acme"), "/v1/admin/tenants/acme/kill-switch", false).await;
    common::eventually("node b to serve the tenant again", Duration::from_secs(5), || async {
        let reply = c.b.get("/v1/sessions", Some(&visitor)).await;
        (reply.status.as_u16() == 200).then_some(())
    })
    .await;
    drop(live);
    c.shutdown().await;
}

#[tokio::test]
async fn redis_a_tenants_switch_reaches_the_other_node_at_once() {
    cluster_tenant_switch(Backend::Redis, "redis_admin_tenant_switch").await;
}

#[tokio::test]
async fn nats_a_tenants_switch_reaches_the_other_node_at_once() {
    cluster_tenant_switch(Backend::Nats, "nats_admin_tenant_switch").await;
}
