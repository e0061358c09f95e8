//! `POST /v1/tickets` (SPEC §3): tickets for the caller, optionally bound to
//! one of its sessions, with the configured lifetime; refusals in the gate's
//! order. (Their verification is unit-tested in `identity::tickets`; the
//! endpoints that take `?ticket=` come with the realtime transports.)
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Utc};
use common::jwt::{self, as_caller, claims, hs256};
use common::{AppConfig, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "tickets-test-secret-0123456789abcdef";

async fn app(extra: Option<&str>) -> TestApp {
    let mut config = AppConfig::new()
        .tenant(TenantSpec::demo("acme").line(&jwt::hs256_line("ACME_JWT_SECRET")))
        .tenant(TenantSpec::demo("globex"))
        .env("ACME_JWT_SECRET", SECRET);
    if let Some(line) = extra {
        config = config.raw(line);
    }
    TestApp::start(config).await
}

async fn mint(app: &TestApp, who: &Visitor, body: Option<Value>) -> common::Reply {
    let mut rb = app.request(Method::POST, "/v1/tickets", Some(who));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    app.send(rb).await
}

/// Seconds from now until `expires_at`.
fn seconds_left(reply: &common::Reply) -> i64 {
    let at = reply.body["expires_at"].as_str().unwrap();
    common::checks::assert_timestamp(&reply.body["expires_at"], "expires_at");
    (DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc) - Utc::now()).num_seconds()
}

#[tokio::test]
async fn tickets_are_minted_for_the_caller_and_its_sessions() {
    let app = app(None).await;
    let (session, visitor) = app.create_session("acme").await;

    let unbound = mint(&app, &visitor, None).await;
    assert_eq!(unbound.status, 200, "{}", unbound.text);
    assert!((290..=300).contains(&seconds_left(&unbound)), "{}", unbound.text);
    let claims_of = |r: &common::Reply| jwt::payload(r.body["ticket"].as_str().unwrap());
    let c = claims_of(&unbound);
    assert_eq!(c["typ"], "ticket");
    assert_eq!(c["tid"], "acme");
    assert_eq!(c["sub"], format!("visitor:{}", visitor.visitor_id));
    assert!(c.get("sid").is_none());
    // `{}` and `{"session_id": null}` are unbound as well.
    assert!(claims_of(&mint(&app, &visitor, Some(json!({}))).await).get("sid").is_none());
    assert!(claims_of(&mint(&app, &visitor, Some(json!({"session_id": null}))).await).get("sid").is_none());

    let bound = mint(&app, &visitor, Some(json!({"session_id": session}))).await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    assert_eq!(claims_of(&bound)["sid"], session);

    // A user mints for itself.
    let alice = as_caller("acme", &hs256(SECRET, &claims("acme", "alice")));
    let r = mint(&app, &alice, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims_of(&r)["sub"], "user:alice");

    // A ticket is never a bearer token, not even to mint another.
    let as_bearer = as_caller("acme", bound.body["ticket"].as_str().unwrap());
    mint(&app, &as_bearer, None).await.assert_error(401, "auth.invalid");
    app.get("/v1/sessions", Some(&as_bearer)).await.assert_error(401, "auth.invalid");
}

#[tokio::test]
async fn only_the_callers_own_sessions_can_be_bound() {
    let app = app(None).await;
    let (mine, visitor) = app.create_session("acme").await;
    let (theirs, _) = app.create_session("acme").await;
    let (foreign, _) = app.create_session("globex").await;
    let alice = as_caller("acme", &hs256(SECRET, &claims("acme", "alice")));
    for (who, session) in [(&visitor, &theirs), (&visitor, &foreign), (&alice, &mine)] {
        let r = mint(&app, who, Some(json!({"session_id": session}))).await;
        r.assert_error(404, "session.not_found");
        assert!(r.body.get("ticket").is_none());
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    mint(&app, &visitor, Some(json!({"session_id": unknown}))).await.assert_error(404, "session.not_found");
}

#[tokio::test]
async fn refusals_come_in_the_gates_order() {
    let app = app(None).await;
    let (_, visitor) = app.create_session("acme").await;
    let anonymous = app.client.post(app.url("/v1/tickets")).header("x-tenant-id", "acme");
    app.send(anonymous).await.assert_error(401, "auth.missing");
    let bad = as_caller("acme", "not-a-token");
    // Validation comes after identity.
    mint(&app, &bad, Some(json!({"session_id": 5}))).await.assert_error(401, "auth.invalid");

    for (body, fields) in [
        (json!({"session_id": "not-a-uuid"}), vec!["session_id"]),
        (json!({"session_id": 7}), vec!["session_id"]),
        (json!({"session": "x", "ttl": 5}), vec!["session", "ttl"]),
    ] {
        let r = mint(&app, &visitor, Some(body)).await;
        let err = r.assert_error(400, "request.invalid");
        let got: Vec<&str> =
            err["details"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
        assert_eq!(got, fields);
    }
    let r = app
        .request(Method::POST, "/v1/tickets", Some(&visitor))
        .body("[]")
        .header("content-type", "application/json");
    app.send(r).await.assert_error(400, "request.invalid");
    let r = app
        .request(Method::POST, "/v1/tickets", Some(&visitor))
        .body("x")
        .header("content-type", "text/plain");
    app.send(r).await.assert_error(415, "request.unsupported_media_type");
    app.get("/v1/tickets", Some(&visitor)).await.assert_error(405, "request.method_not_allowed");
}

#[tokio::test]
async fn the_lifetime_is_configurable() {
    let app = app(Some("ticket_ttl_secs = 60")).await;
    let (_, visitor) = app.create_session("acme").await;
    let r = mint(&app, &visitor, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!((50..=60).contains(&seconds_left(&r)), "{}", r.text);
}
