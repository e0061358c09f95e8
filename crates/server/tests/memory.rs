//! A user's memory over HTTP (SPEC §18), through the real binary: a user
//! keeps, reads, overwrites and forgets preferences from any device; the
//! limits (50 keys, 200-character values, key characters) and malformed
//! bodies are `request.invalid` naming the field, and change nothing; a
//! visitor is refused; a user of one tenant never sees another tenant's
//! memory of the same `sub`; values are not in clear in the data files;
//! browsers get the same origin rules and CORS as on other endpoints.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::checks::assert_timestamp;
use common::jwt::{self, as_caller, claims, hs256};
use common::{AppConfig, Reply, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};

const ACME_SECRET: &str = "memory-test-acme-secret-0123456789abc";
const GLOBEX_SECRET: &str = "memory-test-globex-secret-0123456789a";
const SHOP: &str = "https://shop.acme.example";

fn config() -> AppConfig {
    let acme = TenantSpec::demo("acme")
        .line(&jwt::hs256_line("ACME_JWT_SECRET"))
        .line(&format!("allowed_origins = [\"{SHOP}\"]"));
    // Only users may chat there; memory works all the same.
    let globex =
        TenantSpec::demo("globex").line(&jwt::hs256_line("GLOBEX_JWT_SECRET")).line("require_user = true");
    AppConfig::new()
        .max_body_bytes(4096)
        .tenant(acme)
        .tenant(globex)
        .env("ACME_JWT_SECRET", ACME_SECRET)
        .env("GLOBEX_JWT_SECRET", GLOBEX_SECRET)
}

fn user(tenant: &str, sub: &str) -> Visitor {
    let secret = if tenant == "acme" { ACME_SECRET } else { GLOBEX_SECRET };
    as_caller(tenant, &hs256(secret, &claims(tenant, sub)))
}

async fn put(app: &TestApp, who: &Visitor, key: &str, body: Value) -> Reply {
    app.send(app.request(Method::PUT, &format!("/v1/memory/{key}"), Some(who)).json(&body)).await
}

async fn remember(app: &TestApp, who: &Visitor, key: &str, value: &str) -> Reply {
    let r = put(app, who, key, json!({ "value": value })).await;
    assert_eq!(r.status, 200, "PUT {key}: {}", r.text);
    r
}

async fn delete(app: &TestApp, who: &Visitor, path: &str) -> Reply {
    app.send(app.request(Method::DELETE, path, Some(who))).await
}

/// `[(key, value)]` of `GET /v1/memory`, in the order given.
async fn listed(app: &TestApp, who: &Visitor) -> Vec<(String, String)> {
    let r = app.get("/v1/memory", Some(who)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["items"].as_array().unwrap_or_else(|| panic!("no items: {}", r.text));
    for item in items {
        assert_timestamp(&item["updated_at"], "updated_at");
        assert_eq!(item.as_object().unwrap().len(), 3, "{item}");
    }
    items.iter().map(|i| (i["key"].as_str().unwrap().into(), i["value"].as_str().unwrap().into())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The field problems of a `request.invalid` reply, as (field, problem).
fn problems(r: &Reply) -> Vec<(String, String)> {
    let err = r.assert_error(400, "request.invalid");
    let details = err["details"].as_array().unwrap_or_else(|| panic!("no details: {}", r.text));
    details
        .iter()
        .map(|p| (p["field"].as_str().unwrap().into(), p["problem"].as_str().unwrap().into()))
        .collect()
}

fn fields(r: &Reply) -> Vec<String> {
    problems(r).into_iter().map(|(f, _)| f).collect()
}

#[tokio::test]
async fn a_user_remembers_reads_overwrites_and_forgets_on_any_device() {
    let mut app = TestApp::start(config()).await;
    let alice = user("acme", "alice");
    assert!(listed(&app, &alice).await.is_empty());
    app.get("/v1/memory/size", Some(&alice)).await.assert_error(404, "memory.not_found");

    let marker = format!("PLAIN{}", uuid::Uuid::new_v4().simple());
    let r = remember(&app, &alice, "size", " M ").await;
    assert_eq!((&r.body["key"], &r.body["value"]), (&json!("size"), &json!("M")), "trimmed: {}", r.text);
    assert_eq!(r.body.as_object().unwrap().len(), 3, "{}", r.text);
    assert_timestamp(&r.body["updated_at"], "updated_at");
    remember(&app, &alice, "likes", &format!("denim, Größe 42 {marker}")).await;
    remember(&app, &alice, "a.b_c-9", &"é".repeat(200)).await;
    let got = app.get("/v1/memory/size", Some(&alice)).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body, r.body);

    // Another device of the same user (another token) sees it all, sorted by key.
    let mut later = claims("acme", "alice");
    later["iat"] = json!(jwt::now() - 5);
    let device_two = as_caller("acme", &hs256(ACME_SECRET, &later));
    let likes = format!("denim, Größe 42 {marker}");
    let all = pairs(&[("a.b_c-9", &"é".repeat(200)), ("likes", &likes), ("size", "M")]);
    assert_eq!(listed(&app, &device_two).await, all);

    // Overwriting keeps one entry with the new value and a later time.
    let first_at = r.body["updated_at"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = remember(&app, &device_two, "size", "L").await;
    assert!(r.body["updated_at"].as_str().unwrap() > first_at.as_str(), "{}", r.text);
    assert_eq!(app.get("/v1/memory/size", Some(&alice)).await.body["value"], "L");
    assert_eq!(listed(&app, &alice).await.len(), 3);

    // Values are not in clear on disk, and survive a restart.
    app.kill().await;
    for file in app.data_files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "{} holds it", file.display());
    }
    app.restart().await;
    assert_eq!(
        listed(&app, &alice).await,
        pairs(&[("a.b_c-9", &"é".repeat(200)), ("likes", &likes), ("size", "L")])
    );

    // Forgetting one key, then everything.
    let r = delete(&app, &alice, "/v1/memory/likes").await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (204, ""));
    app.get("/v1/memory/likes", Some(&alice)).await.assert_error(404, "memory.not_found");
    delete(&app, &alice, "/v1/memory/likes").await.assert_error(404, "memory.not_found");
    assert_eq!(listed(&app, &alice).await.len(), 2);
    for _ in 0..2 {
        let r = delete(&app, &alice, "/v1/memory").await;
        assert_eq!((r.status.as_u16(), r.text.as_str()), (204, ""));
        assert!(listed(&app, &device_two).await.is_empty());
    }
}

#[tokio::test]
async fn limits_and_malformed_requests_are_refused_naming_the_field_and_change_nothing() {
    let app = TestApp::start(config()).await;
    let bob = user("acme", "bob");
    for n in 0..45 {
        remember(&app, &bob, &format!("k{n:02}"), "v").await;
    }
    // Ten devices add a new key each at once: five fit, five are refused.
    let keys: Vec<String> = (0..10).map(|n| format!("new{n}")).collect();
    let replies =
        futures_util::future::join_all(keys.iter().map(|key| put(&app, &bob, key, json!({"value": "v"}))))
            .await;
    let written = replies.iter().filter(|r| r.status == 200).count();
    for r in replies.iter().filter(|r| r.status != 200) {
        let (field, problem) = problems(r).remove(0);
        assert_eq!(field, "key");
        assert!(problem.contains("50 keys"), "{problem}");
    }
    assert_eq!(written, 5);
    assert_eq!(listed(&app, &bob).await.len(), 50);

    // The 51st key is refused; overwriting one of the 50 is not.
    assert_eq!(fields(&put(&app, &bob, "one-more", json!({"value": "v"})).await), ["key"]);
    app.get("/v1/memory/one-more", Some(&bob)).await.assert_error(404, "memory.not_found");
    assert_eq!(remember(&app, &bob, "k07", "changed").await.body["value"], "changed");

    // Values: 1-200 characters, counted as characters.
    let r = put(&app, &bob, "k01", json!({"value": "x".repeat(201)})).await;
    assert_eq!(problems(&r), [("value".to_owned(), "must be at most 200 characters".to_owned())]);
    assert_eq!(fields(&put(&app, &bob, "k01", json!({"value": "é".repeat(201)})).await), ["value"]);
    assert_eq!(fields(&put(&app, &bob, "k01", json!({"value": "  "})).await), ["value"]);
    assert_eq!(fields(&put(&app, &bob, "k01", json!({"value": 42})).await), ["value"]);
    assert_eq!(fields(&put(&app, &bob, "k01", json!({"value": null})).await), ["value"]);
    assert_eq!(fields(&put(&app, &bob, "k01", json!({})).await), ["value"]);
    assert_eq!(fields(&put(&app, &bob, "k01", json!({"value": "v", "extra": 1})).await), ["extra"]);
    assert_eq!(fields(&put(&app, &bob, "k01", json!(["v"])).await), ["body"]);

    // Keys: 1-64 of a-z 0-9 _ . -, on every route that names one.
    let long = "k".repeat(65);
    for key in ["Size", "a%20b", "a:b", "caf%C3%A9", long.as_str()] {
        let r = put(&app, &bob, key, json!({"value": "v"})).await;
        assert_eq!(problems(&r), [("key".to_owned(), "must be 1-64 characters of a-z 0-9 _ . -".to_owned())]);
        assert_eq!(fields(&app.get(&format!("/v1/memory/{key}"), Some(&bob)).await), ["key"], "{key}");
        assert_eq!(fields(&delete(&app, &bob, &format!("/v1/memory/{key}")).await), ["key"], "{key}");
    }
    // Both wrong: both named at once.
    assert_eq!(fields(&put(&app, &bob, "Bad", json!({"value": ""})).await), ["key", "value"]);

    // Bodies: not JSON, no JSON content type, none at all.
    let raw = |ct: Option<&str>, body: &str| {
        let mut rb = app.request(Method::PUT, "/v1/memory/k01", Some(&bob)).body(body.to_owned());
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        app.send(rb)
    };
    let r = raw(Some("application/json"), "{\"value\": ").await;
    assert_eq!(fields(&r), ["body"]);
    let r = raw(Some("application/json"), "{\"value\": \"a\", \"value\": \"b\"}").await;
    assert_eq!(fields(&r), ["value"]);
    raw(Some("text/plain"), "{\"value\": \"v\"}").await.assert_error(415, "request.unsupported_media_type");
    raw(None, "{\"value\": \"v\"}").await.assert_error(415, "request.unsupported_media_type");
    assert_eq!(fields(&raw(None, "").await), ["body"]);
    let huge = json!({"value": "x".repeat(5000)}).to_string();
    raw(Some("application/json"), &huge).await.assert_error(413, "request.too_large");

    // None of it changed anything.
    assert_eq!(listed(&app, &bob).await.len(), 50);
    let k01 = app.get("/v1/memory/k01", Some(&bob)).await;
    assert_eq!(k01.body["value"], "v", "{}", k01.text);
}

#[tokio::test]
async fn visitors_and_other_tenants_never_reach_a_users_memory() {
    let app = TestApp::start(config()).await;
    let acme_alice = user("acme", "alice");
    let globex_alice = user("globex", "alice");
    remember(&app, &acme_alice, "size", "M").await;
    // The same `sub` in another tenant is another user, on a `require_user` tenant too.
    assert!(listed(&app, &globex_alice).await.is_empty());
    app.get("/v1/memory/size", Some(&globex_alice)).await.assert_error(404, "memory.not_found");
    delete(&app, &globex_alice, "/v1/memory/size").await.assert_error(404, "memory.not_found");
    remember(&app, &globex_alice, "size", "XL").await;
    assert_eq!(delete(&app, &globex_alice, "/v1/memory").await.status, 204);
    assert_eq!(listed(&app, &acme_alice).await, pairs(&[("size", "M")]));
    // Acme's token sent to globex is verified with globex's key, and refused.
    let mismatched = Visitor { tenant: "globex".into(), ..acme_alice.clone() };
    app.get("/v1/memory", Some(&mismatched)).await.assert_error(401, "auth.invalid");

    // A visitor has no memory: refused on every route, with a clear message.
    let (_, visitor) = app.create_session("acme").await;
    let requests = [
        (Method::GET, "/v1/memory"),
        (Method::DELETE, "/v1/memory"),
        (Method::GET, "/v1/memory/size"),
        (Method::PUT, "/v1/memory/size"),
        (Method::DELETE, "/v1/memory/size"),
    ];
    for (method, path) in &requests {
        let r =
            app.send(app.request(method.clone(), path, Some(&visitor)).json(&json!({"value": "S"}))).await;
        let err = r.assert_error(403, "auth.forbidden");
        assert!(err["message"].as_str().unwrap().contains("signed-in users"), "{method} {path}: {}", r.text);
        // Without credentials: auth.missing.
        let anon =
            app.send(app.client.request(method.clone(), app.url(path)).header("x-tenant-id", "acme")).await;
        anon.assert_error(401, "auth.missing");
    }
    assert_eq!(listed(&app, &acme_alice).await, pairs(&[("size", "M")]));

    // Browsers: the tenant's origins only, with CORS headers; PUT passes a preflight.
    let with_origin = |origin: &str| {
        app.request(Method::GET, "/v1/memory", Some(&acme_alice)).header("origin", origin.to_owned())
    };
    let r = app.send(with_origin(SHOP)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some(SHOP));
    let r = app.send(with_origin("https://evil.example")).await;
    r.assert_error(403, "origin.forbidden");
    assert_eq!(r.header("access-control-allow-origin"), None);
    let preflight = app
        .send(
            app.client
                .request(Method::OPTIONS, app.url("/v1/memory/size?tenant=acme"))
                .header("origin", SHOP)
                .header("access-control-request-method", "PUT"),
        )
        .await;
    assert_eq!(preflight.status, 204, "{}", preflight.text);
    let methods = preflight.header("access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("PUT") && methods.contains("DELETE"), "{methods}");
}
