//! Guest to user (SPEC §3, `POST /v1/identity/link`): a visitor's
//! conversations follow it into its account, on any device; the visitor
//! token is revoked (on this node at once, after a restart, and on another
//! node within seconds); a visitor links once; refusals change nothing.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::jwt::{self, as_caller, claims, hs256};
use common::postgres::TestDatabase;
use common::{eventually, pieces, AppConfig, FakeOpenAi, Mode, Reply, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "link-test-secret-0123456789abcdefghij";
const GLOBEX_SECRET: &str = "link-test-globex-secret-0123456789ab";

fn config(fake: &FakeOpenAi) -> AppConfig {
    AppConfig::new()
        .tenant(TenantSpec::openai("acme", fake).line(&jwt::hs256_line("ACME_JWT_SECRET")))
        .tenant(TenantSpec::demo("globex").line(&jwt::hs256_line("GLOBEX_JWT_SECRET")))
        .env("ACME_JWT_SECRET", SECRET)
        .env("GLOBEX_JWT_SECRET", GLOBEX_SECRET)
}

fn user(sub: &str) -> Visitor {
    as_caller("acme", &hs256(SECRET, &claims("acme", sub)))
}

async fn link(app: &TestApp, who: &Visitor, body: Value) -> Reply {
    app.send(app.request(Method::POST, "/v1/identity/link", Some(who)).json(&body)).await
}

async fn session_ids(app: &TestApp, who: &Visitor) -> Vec<String> {
    let r = app.get("/v1/sessions", Some(who)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut ids: Vec<String> =
        r.body["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

/// The one field problem of a `request.invalid` reply.
fn problem(r: &Reply) -> (String, String) {
    let err = r.assert_error(400, "request.invalid");
    let p = &err["details"][0];
    (p["field"].as_str().unwrap().to_owned(), p["problem"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_guest_continues_as_a_user_on_another_device() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(config(&fake)).await;
    // Device one, not logged in: two conversations.
    let (first, visitor) = app.create_session("acme").await;
    let streamed = app.chat_stream(&visitor, &first, "before login").await;
    assert_eq!(streamed.last().event, "stream_end");
    let second = app.create_session_for(&visitor).await.body["session"]["id"].as_str().unwrap().to_owned();
    // Someone else's conversation stays theirs.
    let (other, other_visitor) = app.create_session("acme").await;

    // The user logs in on device one; the widget links the visitor.
    let alice = user("alice");
    let r = link(&app, &alice, json!({"visitor_token": visitor.token})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"linked_sessions": 2, "user_id": "alice"}));

    // Device two: another client, another token of the same user.
    let device_two = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut later = claims("acme", "alice");
    later["iat"] = json!(jwt::now() - 5);
    let token = hs256(SECRET, &later);
    let get = |path: String| {
        device_two.get(app.url(&path)).header("x-tenant-id", "acme").bearer_auth(&token).send()
    };
    let list: Value = get("/v1/sessions".into()).await.unwrap().json().await.unwrap();
    let mut listed: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    listed.sort();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(listed, expected);
    let history: Value = get(format!("/v1/sessions/{first}/messages")).await.unwrap().json().await.unwrap();
    let contents: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, [common::joined(&pieces(3)).as_str(), "before login"]);
    // The conversation goes on as the user.
    let on = as_caller("acme", &token);
    assert_eq!(app.chat_json(&on, &first, "after login").await.status, 200);
    assert_eq!(app.messages(&on, &first).await.len(), 4);

    // The visitor token is revoked everywhere.
    app.get("/v1/sessions", Some(&visitor)).await.assert_error(401, "auth.invalid");
    app.get(&format!("/v1/sessions/{first}"), Some(&visitor)).await.assert_error(401, "auth.invalid");
    app.chat_raw(&visitor, &common::chat_body(&first, "still me?")).await.assert_error(401, "auth.invalid");
    app.create_session_for(&visitor).await.assert_error(401, "auth.invalid");
    let ticket = app.send(app.request(Method::POST, "/v1/tickets", Some(&visitor))).await;
    ticket.assert_error(401, "auth.invalid");
    assert_eq!(fake.calls(), 2);

    // A visitor links once, whoever asks.
    for who in [&alice, &user("mallory")] {
        let again = link(&app, who, json!({"visitor_token": visitor.token})).await;
        assert_eq!(problem(&again), ("visitor_token".into(), "was already linked to a user".into()));
    }
    assert!(session_ids(&app, &user("mallory")).await.is_empty());
    assert_eq!(session_ids(&app, &other_visitor).await, vec![other]);
}

#[tokio::test]
async fn refused_links_change_nothing() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let app = TestApp::start(config(&fake)).await;
    let (session, visitor) = app.create_session("acme").await;
    let (_, globex_visitor) = app.create_session("globex").await;
    let alice = user("alice");
    let body = json!({"visitor_token": visitor.token});

    // Only a user may link: not a visitor, not anonymous, not a bad token.
    link(&app, &visitor, body.clone()).await.assert_error(403, "auth.forbidden");
    let anonymous = app.client.post(app.url("/v1/identity/link")).header("x-tenant-id", "acme").json(&body);
    app.send(anonymous).await.assert_error(401, "auth.missing");
    link(&app, &as_caller("acme", "nope"), body.clone()).await.assert_error(401, "auth.invalid");
    let globex_user = as_caller("acme", &hs256(GLOBEX_SECRET, &claims("acme", "alice")));
    link(&app, &globex_user, body.clone()).await.assert_error(401, "auth.invalid");

    // The body: a visitor token of this tenant, and nothing else.
    let forged = {
        let mut parts: Vec<String> = visitor.token.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    let ticket = app.send(app.request(Method::POST, "/v1/tickets", Some(&visitor))).await;
    let ticket = ticket.body["ticket"].as_str().unwrap().to_owned();
    let not_a_visitor_token = "is not a valid visitor token of this tenant";
    for token in
        [forged.as_str(), "garbage", globex_visitor.token.as_str(), ticket.as_str(), alice.token.as_str()]
    {
        let r = link(&app, &alice, json!({"visitor_token": token})).await;
        assert_eq!(problem(&r), ("visitor_token".into(), not_a_visitor_token.into()), "{token}");
    }
    for bad in [json!({}), json!({"visitor_token": 5}), json!({"visitor_token": ""})] {
        assert_eq!(problem(&link(&app, &alice, bad).await).0, "visitor_token");
    }
    let extra = link(&app, &alice, json!({"visitor_token": visitor.token, "also": 1})).await;
    assert_eq!(problem(&extra).0, "also");
    let empty = app.request(Method::POST, "/v1/identity/link", Some(&alice));
    app.send(empty).await.assert_error(400, "request.invalid");

    // Still the visitor's, and the visitor still works.
    assert!(session_ids(&app, &alice).await.is_empty());
    assert_eq!(session_ids(&app, &visitor).await, vec![session]);
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn a_link_outlives_a_restart() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let mut app = TestApp::start(config(&fake)).await;
    let (session, visitor) = app.create_session("acme").await;
    let alice = user("alice");
    assert_eq!(link(&app, &alice, json!({"visitor_token": visitor.token})).await.status, 200);
    app.restart().await;
    app.get("/v1/sessions", Some(&visitor)).await.assert_error(401, "auth.invalid");
    assert_eq!(session_ids(&app, &alice).await, vec![session]);
    let again = link(&app, &alice, json!({"visitor_token": visitor.token})).await;
    assert_eq!(problem(&again).1, "was already linked to a user");
}

#[tokio::test]
async fn another_node_revokes_the_visitor_within_seconds() {
    let Some(db) = TestDatabase::create("another_node_revokes_the_visitor_within_seconds").await else {
        return;
    };
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    // Two nodes of one cluster: one database, the same keys.
    let keys =
        format!("k1:{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]));
    let signing =
        format!("k1:{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]));
    let node = |name: &str| {
        config(&fake)
            .database_url(&db.url)
            .raw(&format!("node_id = \"{name}\""))
            .env("SWITCHBOARD_ENCRYPTION_KEYS", &keys)
            .env("SWITCHBOARD_SIGNING_KEY", &signing)
    };
    let a = TestApp::start(node("node-a")).await;
    let b = TestApp::start(node("node-b")).await;
    let (session, visitor) = a.create_session("acme").await;
    assert_eq!(session_ids(&b, &visitor).await, vec![session.clone()]);

    let r = link(&a, &user("alice"), json!({"visitor_token": visitor.token})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    a.get("/v1/sessions", Some(&visitor)).await.assert_error(401, "auth.invalid");
    eventually("node b to refuse the linked visitor", Duration::from_secs(15), || async {
        (b.get("/v1/sessions", Some(&visitor)).await.status == 401).then_some(())
    })
    .await;
    assert_eq!(session_ids(&b, &user("alice")).await, vec![session]);
    drop((a, b));
    db.drop_database().await;
}
