//! The `POST /v1/chat` body rules of SPEC §4 (400 `request.invalid` with field
//! details, 413, 415), character counting in Unicode scalars, the order in
//! which refusals win, and that no refusal stores anything or calls the model.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pieces, AppConfig, FakeOpenAi, Mode, Reply, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};

async fn app_with_fake(max_body: Option<u64>) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let mut cfg = AppConfig::new().tenant(TenantSpec::openai("acme", &fake));
    if let Some(n) = max_body {
        cfg = cfg.max_body_bytes(n);
    }
    (TestApp::start(cfg).await, fake)
}

/// Asserts a 400 `request.invalid` whose details name `field` (when given).
fn assert_invalid(reply: &Reply, case: &str, field: Option<&str>) {
    let err = reply.assert_error(400, "request.invalid");
    let details =
        err["details"].as_array().unwrap_or_else(|| panic!("{case}: no details list: {}", reply.text));
    assert!(!details.is_empty(), "{case}: empty details");
    for d in details {
        assert!(d["field"].is_string(), "{case}: detail without field: {d}");
        assert!(d["problem"].as_str().is_some_and(|p| !p.is_empty()), "{case}: detail without problem: {d}");
    }
    if let Some(field) = field {
        assert!(details.iter().any(|d| d["field"] == field), "{case}: no detail for {field}: {}", reply.text);
    }
}

async fn post_raw(app: &TestApp, v: &Visitor, content_type: Option<&str>, body: String) -> Reply {
    let mut rb = app.request(Method::POST, "/v1/chat", Some(v)).body(body);
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    app.send(rb).await
}

#[tokio::test]
async fn invalid_chat_bodies_are_refused_without_side_effects() {
    let (app, fake) = app_with_fake(None).await;
    let (sid, v) = app.create_session("acme").await;
    let long: String = "é".repeat(10_001);
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("missing session_id", json!({"message": "hi"}), Some("session_id")),
        ("missing message", json!({"session_id": sid}), Some("message")),
        ("extra field", json!({"session_id": sid, "message": "hi", "colour": "red"}), Some("colour")),
        ("bad uuid", json!({"session_id": "not-a-uuid", "message": "hi"}), Some("session_id")),
        ("null session_id", json!({"session_id": null, "message": "hi"}), Some("session_id")),
        ("numeric session_id", json!({"session_id": 7, "message": "hi"}), Some("session_id")),
        ("empty message", json!({"session_id": sid, "message": ""}), Some("message")),
        ("whitespace message", json!({"session_id": sid, "message": " \n\t  \r\n"}), Some("message")),
        ("10001 characters", json!({"session_id": sid, "message": long}), Some("message")),
        ("numeric message", json!({"session_id": sid, "message": 42}), Some("message")),
        ("null message", json!({"session_id": sid, "message": null}), Some("message")),
        ("string stream", json!({"session_id": sid, "message": "hi", "stream": "yes"}), Some("stream")),
        ("numeric stream", json!({"session_id": sid, "message": "hi", "stream": 1}), Some("stream")),
        (
            "65-char id",
            json!({"session_id": sid, "message": "hi", "client_message_id": "a".repeat(65)}),
            Some("client_message_id"),
        ),
        (
            "id with space",
            json!({"session_id": sid, "message": "hi", "client_message_id": "bad id"}),
            Some("client_message_id"),
        ),
        (
            "id with dot",
            json!({"session_id": sid, "message": "hi", "client_message_id": "a.b"}),
            Some("client_message_id"),
        ),
        (
            "non-ascii id",
            json!({"session_id": sid, "message": "hi", "client_message_id": "ñ"}),
            Some("client_message_id"),
        ),
        (
            "empty id",
            json!({"session_id": sid, "message": "hi", "client_message_id": ""}),
            Some("client_message_id"),
        ),
        (
            "numeric id",
            json!({"session_id": sid, "message": "hi", "client_message_id": 5}),
            Some("client_message_id"),
        ),
        ("array body", json!([sid, "hi"]), None),
        ("null body", Value::Null, None),
        ("string body", json!("hi"), None),
    ];
    for (case, body, field) in &cases {
        let reply = post_raw(&app, &v, Some("application/json"), body.to_string()).await;
        assert_invalid(&reply, case, *field);
    }
    for (case, raw) in [
        ("truncated JSON", "{\"session_id\": "),
        ("not JSON", "hello"),
        ("empty body", ""),
        ("trailing garbage", "{} x"),
    ] {
        let reply = post_raw(&app, &v, Some("application/json"), raw.to_owned()).await;
        assert_invalid(&reply, case, None);
    }
    // Duplicated critical headers are refused before anything else.
    let dup = app
        .request(Method::POST, "/v1/chat", Some(&v))
        .header("x-tenant-id", "acme")
        .json(&json!({"session_id": sid, "message": "hi"}));
    app.send(dup).await.assert_error(400, "request.invalid");

    assert!(app.messages(&v, &sid).await.is_empty(), "a refused request stored a message");
    assert_eq!(fake.calls(), 0, "a refused request reached the provider");
}

#[tokio::test]
async fn message_length_counts_unicode_scalars_after_trimming() {
    let (app, fake) = app_with_fake(None).await;
    let (sid, v) = app.create_session("acme").await;

    // 10000 crabs: 40000 bytes and 20000 UTF-16 units, but 10000 characters.
    let crabs = "🦀".repeat(10_000);
    let ok = app.chat_json(&v, &sid, &crabs).await;
    assert_eq!(ok.status.as_u16(), 200, "{}", &ok.text[..ok.text.len().min(300)]);
    assert_eq!(ok.body["user_message"]["content"].as_str().map(|s| s.chars().count()), Some(10_000));

    let padded = format!("  {}\n ", "a".repeat(10_000));
    let ok = app.chat_json(&v, &sid, &padded).await;
    assert_eq!(
        ok.status.as_u16(),
        200,
        "surrounding whitespace does not count: {}",
        &ok.text[..ok.text.len().min(300)]
    );

    let too_long = format!("{}!", "🦀".repeat(10_000));
    assert_invalid(&app.chat_json(&v, &sid, &too_long).await, "10001 crabs", Some("message"));
    assert_eq!(app.messages(&v, &sid).await.len(), 4);
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn media_type_and_size_refusals_and_their_precedence() {
    let (app, fake) = app_with_fake(Some(4096)).await;
    let (sid, v) = app.create_session("acme").await;
    let valid = json!({"session_id": sid, "message": "hi"}).to_string();

    post_raw(&app, &v, Some("text/plain"), valid.clone())
        .await
        .assert_error(415, "request.unsupported_media_type");
    post_raw(&app, &v, None, valid.clone()).await.assert_error(415, "request.unsupported_media_type");
    post_raw(&app, &v, Some("application/x-www-form-urlencoded"), "a=b".into())
        .await
        .assert_error(415, "request.unsupported_media_type");

    let big = json!({"session_id": sid, "message": "a".repeat(5000)}).to_string();
    post_raw(&app, &v, Some("application/json"), big.clone()).await.assert_error(413, "request.too_large");
    // 413 wins over a schema error, and 413/415 win over missing credentials.
    post_raw(&app, &v, Some("application/json"), format!("[{}", "1,".repeat(3000)))
        .await
        .assert_error(413, "request.too_large");
    let anon = |ct: &'static str, body: String| {
        app.client
            .post(app.url("/v1/chat"))
            .header("x-tenant-id", "acme")
            .header("content-type", ct)
            .body(body)
    };
    app.send(anon("text/plain", valid.clone())).await.assert_error(415, "request.unsupported_media_type");
    app.send(anon("application/json", big)).await.assert_error(413, "request.too_large");
    app.send(anon("application/json", valid.clone())).await.assert_error(401, "auth.missing");
    // No tenant at all wins over the media type.
    let no_tenant =
        app.client.post(app.url("/v1/chat")).header("content-type", "text/plain").body(valid.clone());
    app.send(no_tenant).await.assert_error(400, "tenant.missing");
    // Validation wins over an unknown session; a valid body for one is 404.
    let ghost = uuid::Uuid::new_v4().to_string();
    let invalid_ghost = json!({"session_id": ghost, "message": "  "}).to_string();
    assert_invalid(
        &post_raw(&app, &v, Some("application/json"), invalid_ghost).await,
        "blank to unknown session",
        Some("message"),
    );
    let valid_ghost = json!({"session_id": ghost, "message": "hi"}).to_string();
    post_raw(&app, &v, Some("application/json"), valid_ghost).await.assert_error(404, "session.not_found");

    assert!(app.messages(&v, &sid).await.is_empty(), "a refused request stored a message");
    assert_eq!(fake.calls(), 0, "a refused request reached the provider");

    // A JSON media type with parameters is JSON.
    let ok = post_raw(
        &app,
        &v,
        Some("application/json; charset=utf-8"),
        json!({"session_id": sid, "message": "hi", "stream": false}).to_string(),
    )
    .await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn a_64_character_client_message_id_is_accepted() {
    let (app, _fake) = app_with_fake(None).await;
    let (sid, v) = app.create_session("acme").await;
    let id = format!("{}-_", "Az09".repeat(15)) + "xy";
    assert_eq!(id.len(), 64);
    let body = json!({"session_id": sid, "message": "hi", "stream": false, "client_message_id": id});
    let ok = app.chat_raw(&v, &body).await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text);
    assert_eq!(ok.body["user_message"]["client_message_id"], id.as_str());
}

/// Asserts a 400 `request.invalid` whose one problem is `field` given twice.
fn assert_given_twice(reply: &Reply, case: &str, field: &str) {
    let err = reply.assert_error(400, "request.invalid");
    assert_eq!(
        err["details"],
        json!([{"field": field, "problem": "is given more than once"}]),
        "{case}: {}",
        reply.text
    );
}

#[tokio::test]
async fn a_key_given_twice_in_a_json_body_is_refused_at_any_depth() {
    let (app, fake) = app_with_fake(None).await;
    let (sid, v) = app.create_session("acme").await;
    // Both the visitor's own: either copy would be a valid request.
    let other = app.create_session_for(&v).await;
    let other_sid = other.body["session"]["id"].as_str().unwrap().to_owned();
    // Whichever copy a parser kept, these must not be read one way here and
    // another way by a proxy or firewall in front.
    let cases = [
        (
            "session_id twice",
            format!(r#"{{"session_id":"{other_sid}","message":"hi","session_id":"{sid}"}}"#),
            "session_id",
        ),
        ("same value twice", format!(r#"{{"session_id":"{sid}","message":"hi","message":"hi"}}"#), "message"),
        ("escaped twin", format!(r#"{{"session_id":"{sid}","message":"a","\u006dessage":"b"}}"#), "message"),
        (
            "inside context",
            format!(
                r#"{{"session_id":"{sid}","message":"hi","context":{{"page":"/a","cart":[{{"sku":1,"sku":2}}],"page":"/b"}}}}"#
            ),
            "context.cart[0].sku",
        ),
    ];
    for (case, body, field) in &cases {
        let reply = post_raw(&app, &v, Some("application/json"), body.clone()).await;
        assert_given_twice(&reply, case, field);
    }
    assert!(app.messages(&v, &sid).await.is_empty(), "a refused request stored a message");
    assert!(app.messages(&v, &other_sid).await.is_empty(), "a refused request stored a message");
    assert_eq!(fake.calls(), 0);

    // The other bodies go through the same reader: session creation
    // (anonymous), tickets.
    let rb = app
        .client
        .post(app.url("/v1/sessions"))
        .header("x-tenant-id", "acme")
        .header("content-type", "application/json")
        .body(r#"{"metadata":{"plan":"free","plan":"pro"}}"#);
    assert_given_twice(&app.send(rb).await, "session metadata", "metadata.plan");
    let rb = app
        .request(Method::POST, "/v1/tickets", Some(&v))
        .header("content-type", "application/json")
        .body(format!(r#"{{"session_id":"{other_sid}","session_id":"{sid}"}}"#));
    assert_given_twice(&app.send(rb).await, "ticket", "session_id");

    // The same keys in different objects are fine.
    let ok = post_raw(
        &app,
        &v,
        Some("application/json"),
        format!(r#"{{"session_id":"{sid}","message":"hi","stream":false,"context":{{"a":{{"id":1}},"b":{{"id":2}}}}}}"#),
    )
    .await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text);
}

#[tokio::test]
async fn a_key_given_twice_in_an_admin_body_is_refused() {
    const OPERATOR: &str = "validation-operator-token-0123456789abcdef";
    let config =
        AppConfig::new().tenant(TenantSpec::demo("acme")).env("SWITCHBOARD_OPERATOR_TOKEN", OPERATOR);
    let app = TestApp::start(config).await;
    let put = |body: &'static str| {
        app.client
            .put(app.url("/v1/admin/kill-switch"))
            .bearer_auth(OPERATOR)
            .header("content-type", "application/json")
            .body(body)
    };
    let reply = app.send(put(r#"{"enabled":false,"enabled":true}"#)).await;
    assert_given_twice(&reply, "kill switch", "enabled");
    // Nothing was switched: the tenant still serves.
    let (_sid, _v) = app.create_session("acme").await;
    let reply = app.send(put(r#"{"enabled":false}"#)).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
}
