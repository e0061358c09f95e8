//! Rate limits (SPEC §10) from outside: the ip and user scopes, the tightest
//! scope in `X-RateLimit-*`, 429 with `Retry-After`, refusals that count
//! nothing and change nothing, `X-Forwarded-For` only from trusted proxies,
//! and a window that rolls. The exact window arithmetic is unit-tested in
//! core with a manual clock; here only a 1 s window is waited out.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{eventually, pieces, AppConfig, FakeOpenAi, Mode, Reply, TenantSpec, TestApp, Visitor};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `(limit, remaining, reset)` from the `X-RateLimit-*` headers.
fn quota(reply: &Reply) -> (u32, u32, i64) {
    let get = |name: &str| {
        reply.header(name).unwrap_or_else(|| panic!("no {name} on {}: {}", reply.status, reply.text))
    };
    (
        get("x-ratelimit-limit").parse().unwrap(),
        get("x-ratelimit-remaining").parse().unwrap(),
        get("x-ratelimit-reset").parse().unwrap(),
    )
}

/// `(limit, remaining)`.
fn limit_left(reply: &Reply) -> (u32, u32) {
    let (limit, remaining, _) = quota(reply);
    (limit, remaining)
}

fn no_quota(reply: &Reply) {
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(reply.header(name).is_none(), "{name} on {} {}", reply.status, reply.text);
    }
}

/// `POST /v1/sessions` as a new visitor, optionally with `X-Forwarded-For`.
async fn new_session(app: &TestApp, tenant: &str, forwarded_for: Option<&str>) -> Reply {
    let mut rb = app.client.post(app.url("/v1/sessions")).header("x-tenant-id", tenant);
    if let Some(xff) = forwarded_for {
        rb = rb.header("x-forwarded-for", xff);
    }
    app.send(rb).await
}

fn visitor(tenant: &str, reply: &Reply) -> (String, Visitor) {
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let b = &reply.body;
    let v = Visitor {
        tenant: tenant.to_owned(),
        token: b["token"].as_str().unwrap().to_owned(),
        visitor_id: b["visitor_id"].as_str().unwrap().to_owned(),
    };
    (b["session"]["id"].as_str().unwrap().to_owned(), v)
}

/// Asserts a 429 `rate_limited` envelope with `Retry-After` and the quota
/// headers of a full scope of `limit`; returns `Retry-After`.
fn assert_limited(reply: &Reply, limit: u32) -> u64 {
    reply.assert_error(429, "rate_limited");
    let retry_after: u64 = reply.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(reply.body["error"]["details"]["retry_after"], retry_after, "{}", reply.text);
    let (l, remaining, reset) = quota(reply);
    assert_eq!((l, remaining), (limit, 0), "{:?}", reply.headers);
    let now = now_secs();
    assert!(
        reset >= now - 1 && reset <= now + retry_after as i64 + 2,
        "reset {reset}, now {now}, retry {retry_after}"
    );
    retry_after
}

#[tokio::test]
async fn the_ip_scope_admits_up_to_its_limit_then_refuses() {
    let tenant = TenantSpec::demo("acme").rate_limit("ip", 3, 60);
    let app = TestApp::start(
        AppConfig::new().tenant(tenant).tenant(TenantSpec::demo("other").rate_limit("ip", 3, 60)),
    )
    .await;
    for left in [2, 1, 0] {
        let reply = new_session(&app, "acme", None).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let (limit, remaining, reset) = quota(&reply);
        assert_eq!((limit, remaining), (3, left));
        assert!(reset >= now_secs(), "reset {reset}");
    }
    let retry_after = assert_limited(&new_session(&app, "acme", None).await, 3);
    assert!(retry_after <= 120, "Retry-After {retry_after}");
    assert_limited(&new_session(&app, "acme", None).await, 3);
    // Same address, another tenant: counters of its own.
    let reply = new_session(&app, "other", None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(quota(&reply).1, 2);
}

#[tokio::test]
async fn the_user_scope_holds_a_subject_and_the_tightest_scope_is_reported() {
    let tenant = TenantSpec::demo("acme")
        .rate_limit("ip", 10, 60)
        .rate_limit("user", 2, 60)
        .rate_limit("tenant", 1000, 60);
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    // No subject yet: the address is the tightest scope (9 of 10 left).
    let (sid, v) = visitor("acme", &new_session(&app, "acme", None).await);
    let first = new_session(&app, "acme", None).await;
    assert_eq!(quota(&first).0, 10);
    assert_eq!(quota(&first).1, 8);
    // With a subject: its 2 are tighter than the address's 7.
    let reply = app.create_session_for(&v).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(limit_left(&reply), (2, 1));
    let stream = app.chat_stream(&v, &sid, "hello").await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.header("x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(stream.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_limited(&app.chat_raw(&v, &json!({"session_id": sid, "message": "again"})).await, 2);
    assert_limited(&app.create_session_for(&v).await, 2);
    // Another visitor from the same address is not held by that subject.
    let reply = new_session(&app, "acme", None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(quota(&reply).0, 10);
}

#[tokio::test]
async fn refused_requests_count_in_no_scope() {
    let tenant = TenantSpec::demo("acme").rate_limit("ip", 4, 60).rate_limit("user", 1, 60);
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = visitor("acme", &new_session(&app, "acme", None).await); // ip 1
    assert_eq!(app.create_session_for(&v).await.status, StatusCode::CREATED); // ip 2, user 1
    for _ in 0..6 {
        let reply = app.chat_raw(&v, &json!({"session_id": sid, "message": "hi"})).await;
        assert_limited(&reply, 1);
    }
    // Had the six refusals counted, the address would be long full.
    let reply = new_session(&app, "acme", None).await; // ip 3
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(limit_left(&reply), (4, 1));
}

#[tokio::test]
async fn a_rate_limited_chat_stores_nothing_and_calls_no_provider() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let tenant = TenantSpec::openai("acme", &fake).rate_limit("ip", 2, 60);
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = visitor("acme", &new_session(&app, "acme", None).await);
    assert_eq!(app.create_session_for(&v).await.status, StatusCode::CREATED);
    let reply = app.chat_raw(&v, &json!({"session_id": sid, "message": "hello", "stream": false})).await;
    assert_limited(&reply, 2);
    assert_eq!(fake.calls(), 0);
    assert!(app.messages(&v, &sid).await.is_empty());
    let session = app.get(&format!("/v1/sessions/{sid}"), Some(&v)).await;
    assert_eq!(session.body["message_count"], 0, "{}", session.text);
}

#[tokio::test]
async fn headers_follow_every_answer_from_the_limit_step_on_and_only_there() {
    let app =
        TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme").rate_limit("ip", 50, 60))).await;
    let (sid, v) = visitor("acme", &new_session(&app, "acme", None).await);
    // A refusal after the limit step (validation) carries them…
    let reply = app.chat_raw(&v, &json!({"session_id": sid, "message": "   "})).await;
    reply.assert_error(400, "request.invalid");
    assert_eq!(limit_left(&reply), (50, 48));
    let reply = app.chat_raw(&v, &json!({"session_id": uuid::Uuid::new_v4(), "message": "hi"})).await;
    reply.assert_error(404, "session.not_found");
    assert_eq!(quota(&reply).1, 47);
    // …one before it does not, and neither do endpoints without limits.
    let anonymous =
        app.send(app.client.post(app.url("/v1/chat")).header("x-tenant-id", "acme").json(&json!({}))).await;
    anonymous.assert_error(401, "auth.missing");
    no_quota(&anonymous);
    let list = app.get("/v1/sessions", Some(&v)).await;
    assert_eq!(list.status, StatusCode::OK);
    no_quota(&list);
    no_quota(&app.send(app.request(Method::GET, &format!("/v1/sessions/{sid}/messages"), Some(&v))).await);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let spec = || TenantSpec::demo("acme").rate_limit("ip", 2, 60);
    let trusted =
        TestApp::start(AppConfig::new().tenant(spec()).raw("trusted_proxies = [\"127.0.0.1/32\"]")).await;
    let remaining = |reply: Reply| {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        quota(&reply).1
    };
    assert_eq!(remaining(new_session(&trusted, "acme", Some("203.0.113.1")).await), 1);
    assert_eq!(remaining(new_session(&trusted, "acme", Some("203.0.113.1")).await), 0);
    assert_limited(&new_session(&trusted, "acme", Some("203.0.113.1")).await, 2);
    assert_eq!(remaining(new_session(&trusted, "acme", Some("203.0.113.2")).await), 1);
    // The right-most hop that is not a trusted proxy is the client.
    assert_eq!(remaining(new_session(&trusted, "acme", Some("198.51.100.7, 127.0.0.1")).await), 1);
    assert_eq!(remaining(new_session(&trusted, "acme", Some("10.9.9.9, 198.51.100.7")).await), 0);
    // IPv6 counts per /64.
    assert_eq!(remaining(new_session(&trusted, "acme", Some("2001:db8::1")).await), 1);
    assert_eq!(remaining(new_session(&trusted, "acme", Some("2001:db8::2")).await), 0);
    assert_limited(&new_session(&trusted, "acme", Some("2001:db8::ffff")).await, 2);
    assert_eq!(remaining(new_session(&trusted, "acme", Some("2001:db8:0:1::1")).await), 1);
    // A header that cannot be read counts against the peer itself.
    assert_eq!(remaining(new_session(&trusted, "acme", Some("bogus")).await), 1);
    assert_eq!(remaining(new_session(&trusted, "acme", None).await), 0);
    assert_limited(&new_session(&trusted, "acme", Some("203.0.113.77, nonsense")).await, 2);

    // From an untrusted peer the header is the client's word: one bucket.
    let direct = TestApp::start(AppConfig::new().tenant(spec())).await;
    assert_eq!(remaining(new_session(&direct, "acme", Some("203.0.113.1")).await), 1);
    assert_eq!(remaining(new_session(&direct, "acme", Some("203.0.113.2")).await), 0);
    assert_limited(&new_session(&direct, "acme", Some("203.0.113.3")).await, 2);
}

#[tokio::test]
async fn a_full_window_admits_again_once_it_rolls() {
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme").rate_limit("ip", 1, 1))).await;
    assert_eq!(new_session(&app, "acme", None).await.status, StatusCode::CREATED);
    let retry_after = assert_limited(&new_session(&app, "acme", None).await, 1);
    assert!(retry_after <= 3, "Retry-After {retry_after} for a 1 s window");
    // Two 1 s buckets at most; bounded well above that for a loaded machine.
    let reply = eventually("the window to roll", Duration::from_secs(15), || async {
        let reply = new_session(&app, "acme", None).await;
        (reply.status == StatusCode::CREATED).then_some(reply)
    })
    .await;
    assert_eq!(limit_left(&reply), (1, 0));
}

#[tokio::test]
async fn ticket_minting_is_limited_too() {
    let app =
        TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme").rate_limit("user", 2, 60))).await;
    let (_, v) = visitor("acme", &new_session(&app, "acme", None).await);
    let mint = || app.send(app.request(Method::POST, "/v1/tickets", Some(&v)));
    for left in [1, 0] {
        let reply = mint().await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(limit_left(&reply), (2, left));
    }
    assert_limited(&mint().await, 2);
}

#[tokio::test]
async fn a_limited_websocket_message_says_how_long_to_wait() {
    // Frames carry no headers: the wait travels as details.retry_after.
    // Creating the session and opening the socket take the two requests the
    // address may make.
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme").rate_limit("ip", 2, 60))).await;
    let (sid, visitor) = app.create_session("acme").await;
    let (mut ws, _) = app.ws_hello("acme", &visitor.token, &sid, None).await;
    ws.send_json(&json!({"type": "message", "content": "hello", "client_message_id": "m-1"})).await;
    let refused = ws.expect_error("rate_limited", 429).await;
    let wait = refused["details"]["retry_after"].as_u64().unwrap_or_else(|| panic!("{refused}"));
    // A sliding window may ask for more than its length (up to two).
    assert!((1..=120).contains(&wait), "retry_after {wait}");
}
