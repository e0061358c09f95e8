//! Sessions and identity over REST (SPEC §2–§4, §8): create, list, get,
//! delete; ownership; missing, bad and misplaced credentials; tenant
//! selection; health endpoints; trace ids.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine;
use common::checks::{assert_session_shape, assert_timestamp};
use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::Value;

fn jwt_claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    let raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1].trim_end_matches('=')).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

async fn app_with_fake() -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let config = AppConfig::new().tenant(TenantSpec::openai("acme", &fake)).tenant(TenantSpec::demo("other"));
    (TestApp::start(config).await, fake)
}

#[tokio::test]
async fn session_lifecycle() {
    let (app, _fake) = app_with_fake().await;
    let created = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "acme")).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let b = &created.body;
    assert_session_shape(&b["session"]);
    assert_eq!(b["session"]["tenant_id"], "acme");
    assert_eq!(b["session"]["status"], "active");
    assert_eq!(b["session"]["message_count"], 0);
    assert_eq!(b["session"]["admin_assisted"], false);
    assert!(b["session"]["takeover"].is_null());
    assert_timestamp(&b["token_expires_at"], "token_expires_at");
    assert_timestamp(&b["ticket_expires_at"], "ticket_expires_at");
    assert!(b["ticket"].as_str().is_some_and(|t| !t.is_empty()));
    let visitor_id = b["visitor_id"].as_str().unwrap();
    let claims = jwt_claims(b["token"].as_str().unwrap());
    assert_eq!(claims["typ"], "visitor");
    assert_eq!(claims["tid"], "acme");
    assert_eq!(claims["sub"], format!("visitor:{visitor_id}"));
    let v = Visitor {
        tenant: "acme".into(),
        token: b["token"].as_str().unwrap().into(),
        visitor_id: visitor_id.into(),
    };
    let s1 = b["session"]["id"].as_str().unwrap().to_owned();

    // Also with `{}` as the body.
    let with_body = app.request(Method::POST, "/v1/sessions", Some(&v)).json(&serde_json::json!({}));
    let second = app.send(with_body).await;
    assert_eq!(second.status.as_u16(), 201, "{}", second.text);
    assert!(second.body["token"].is_null(), "a known visitor gets no new token: {}", second.text);
    let s2 = second.body["session"]["id"].as_str().unwrap().to_owned();
    assert_ne!(s1, s2);
    // Ids are time-ordered (v7), so indexes keyed by them take new rows at
    // their end.
    let version = |id: &str| uuid::Uuid::parse_str(id).unwrap().get_version_num();
    assert_eq!([version(&s1), version(&s2), version(visitor_id)], [7; 3]);
    assert!(s1 < s2, "a later session sorts after an earlier one: {s1} {s2}");

    let list = app.get("/v1/sessions", Some(&v)).await;
    assert_eq!(list.status.as_u16(), 200, "{}", list.text);
    assert_eq!(ids(&list.body), vec![s2.clone(), s1.clone()], "newest activity first");
    assert!(list.body["next_cursor"].is_null());
    let chat = app.chat_json(&v, &s1, "hello").await;
    assert_eq!(chat.status.as_u16(), 200, "{}", chat.text);
    let list = app.get("/v1/sessions", Some(&v)).await;
    assert_eq!(ids(&list.body), vec![s1.clone(), s2.clone()], "activity moves a session first");

    let got = app.get(&format!("/v1/sessions/{s1}"), Some(&v)).await;
    assert_eq!(got.status.as_u16(), 200, "{}", got.text);
    assert_session_shape(&got.body);
    assert_eq!(got.body["id"], s1.as_str());
    assert_eq!(got.body["message_count"], 2);
    assert_eq!(got.body["latest_seq"], 2);

    let del = app.send(app.request(Method::DELETE, &format!("/v1/sessions/{s1}"), Some(&v))).await;
    assert_eq!(del.status.as_u16(), 204, "{}", del.text);
    assert!(del.text.is_empty());
    app.get(&format!("/v1/sessions/{s1}"), Some(&v)).await.assert_error(404, "session.not_found");
    app.get(&format!("/v1/sessions/{s1}/messages"), Some(&v)).await.assert_error(404, "session.not_found");
    app.chat_json(&v, &s1, "hello?").await.assert_error(404, "session.not_found");
    let again = app.send(app.request(Method::DELETE, &format!("/v1/sessions/{s1}"), Some(&v))).await;
    again.assert_error(404, "session.not_found");
    assert_eq!(ids(&app.get("/v1/sessions", Some(&v)).await.body), vec![s2]);
}

#[tokio::test]
async fn sessions_are_private_to_their_owner() {
    let (app, fake) = app_with_fake().await;
    let (sid, owner) = app.create_session("acme").await;
    let (_, stranger) = app.create_session("acme").await;
    assert_ne!(owner.visitor_id, stranger.visitor_id);

    app.get(&format!("/v1/sessions/{sid}"), Some(&stranger)).await.assert_error(404, "session.not_found");
    app.get(&format!("/v1/sessions/{sid}/messages"), Some(&stranger))
        .await
        .assert_error(404, "session.not_found");
    app.chat_json(&stranger, &sid, "mine now").await.assert_error(404, "session.not_found");
    let del = app.send(app.request(Method::DELETE, &format!("/v1/sessions/{sid}"), Some(&stranger))).await;
    del.assert_error(404, "session.not_found");
    // An unknown id looks the same as a foreign one.
    let ghost = uuid::Uuid::new_v4();
    app.get(&format!("/v1/sessions/{ghost}"), Some(&owner)).await.assert_error(404, "session.not_found");

    assert!(!ids(&app.get("/v1/sessions", Some(&stranger)).await.body).contains(&sid));
    assert_eq!(app.get(&format!("/v1/sessions/{sid}"), Some(&owner)).await.status.as_u16(), 200);
    assert_eq!(fake.calls(), 0);

    // A visitor of another tenant, even naming this tenant, sees nothing.
    let (_, outsider) = app.create_session("other").await;
    let as_acme = app
        .request(Method::GET, &format!("/v1/sessions/{sid}"), None)
        .header("x-tenant-id", "acme")
        .bearer_auth(&outsider.token);
    let r = app.send(as_acme).await;
    r.assert_error(403, "auth.context_mismatch");
}

#[tokio::test]
async fn credentials_and_tenant_selection() {
    let (app, _fake) = app_with_fake().await;
    let (sid, v) = app.create_session("acme").await;
    let tenant_only = |m: Method, p: &str| app.request(m, p, None).header("x-tenant-id", "acme");

    app.send(tenant_only(Method::GET, "/v1/sessions")).await.assert_error(401, "auth.missing");
    app.send(tenant_only(Method::GET, &format!("/v1/sessions/{sid}")))
        .await
        .assert_error(401, "auth.missing");
    for bad in ["garbage", "abc.def.ghi", &format!("{}x", v.token)] {
        let r = app.send(tenant_only(Method::GET, "/v1/sessions").bearer_auth(bad)).await;
        let err = r.assert_error(401, "auth.invalid");
        assert!(!err["message"].as_str().unwrap().to_lowercase().contains("expired"));
    }
    // A ticket is never a bearer token.
    let created = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "acme")).await;
    let ticket = created.body["ticket"].as_str().unwrap();
    app.send(tenant_only(Method::GET, "/v1/sessions").bearer_auth(ticket))
        .await
        .assert_error(401, "auth.invalid");

    // Tenant from the token alone.
    let by_token = app.send(app.request(Method::GET, "/v1/sessions", None).bearer_auth(&v.token)).await;
    assert_eq!(by_token.status.as_u16(), 200, "{}", by_token.text);
    assert_eq!(ids(&by_token.body), vec![sid.clone()]);

    // A chat turn with the tenant taken from the token alone.
    let body = serde_json::json!({"session_id": sid, "message": "hi", "stream": false});
    let chat = app.send(app.request(Method::POST, "/v1/chat", None).bearer_auth(&v.token).json(&body)).await;
    assert_eq!(chat.status.as_u16(), 200, "{}", chat.text);

    // A body on POST /v1/sessions must be JSON.
    let plain = app
        .client
        .post(app.url("/v1/sessions"))
        .header("x-tenant-id", "acme")
        .header("content-type", "text/plain");
    app.send(plain.body("{}")).await.assert_error(415, "request.unsupported_media_type");

    let unknown =
        app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "no-such-tenant")).await;
    unknown.assert_error(404, "tenant.unknown");
    app.send(app.client.post(app.url("/v1/sessions"))).await.assert_error(400, "tenant.missing");
    app.send(app.client.get(app.url("/v1/sessions"))).await.assert_error(400, "tenant.missing");

    for path in ["/v1/sessions/not-a-uuid", "/v1/sessions/not-a-uuid/messages", "/v1/sessions/123"] {
        app.get(path, Some(&v)).await.assert_error(400, "request.invalid");
    }
    let del = app.send(app.request(Method::DELETE, "/v1/sessions/not-a-uuid", Some(&v))).await;
    del.assert_error(400, "request.invalid");
}

#[tokio::test]
async fn health_endpoints_and_trace_ids() {
    let (app, _fake) = app_with_fake().await;
    for path in ["/healthz", "/readyz"] {
        let r = app.get(path, None).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text);
        assert!(!r.trace_id().is_empty());
    }
    let a = app.get("/healthz", None).await.trace_id();
    let b = app.get("/healthz", None).await.trace_id();
    assert_ne!(a, b, "every request gets its own trace id");

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let r = app.send(app.client.get(app.url("/healthz")).header("traceparent", &traceparent)).await;
    assert_eq!(r.trace_id(), trace);
    let (sid, v) = app.create_session("acme").await;
    let r = app
        .send(app.request(Method::GET, "/v1/sessions", Some(&v)).header("traceparent", &traceparent))
        .await;
    assert_eq!(r.trace_id(), trace);
    let err = app
        .send(
            app.request(Method::GET, &format!("/v1/sessions/{}", uuid::Uuid::new_v4()), Some(&v))
                .header("traceparent", &traceparent),
        )
        .await;
    assert_eq!(err.assert_error(404, "session.not_found")["trace_id"], trace);
    // A traceparent on a streamed turn: the stream's header and its events.
    let body = serde_json::json!({"session_id": sid, "message": "hi"});
    let live =
        app.request(Method::POST, "/v1/chat", Some(&v)).header("traceparent", &traceparent).json(&body);
    let resp = live.send().await.unwrap();
    assert_eq!(resp.headers().get("x-trace-id").unwrap().to_str().unwrap(), trace);
    drop(resp);

    let missing = app.get("/no/such/route", None).await;
    assert_eq!(missing.status.as_u16(), 404, "{}", missing.text);
    assert_eq!(missing.body["error"]["trace_id"].as_str(), Some(missing.trace_id().as_str()));

    let bogus = app.send(app.client.get(app.url("/healthz")).header("traceparent", "garbage")).await;
    assert_ne!(bogus.trace_id(), "garbage");
}
