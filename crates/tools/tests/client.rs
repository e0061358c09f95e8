//! The webhook client against real local endpoints (axum on 127.0.0.1):
//! signed calls the endpoint verifies, and every way an answer can be
//! refused (timeout, non-2xx, oversize, redirect, bad JSON), plus the
//! private-address guard refusing loopback by address and by name. The
//! tests that must reach loopback allow it explicitly.

// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::stream;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_tools::signature::{DEFAULT_TOLERANCE, WEBHOOK_ID};
use switchboard_tools::{
    CallError, PrivateAllowList, SigningKeys, WebhookClient, WebhookRequest, MAX_RESPONSE_BYTES,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint saw: every request, and the ids of verified calls.
#[derive(Clone, Default)]
struct Seen {
    hits: Arc<AtomicUsize>,
    verified_ids: Arc<Mutex<Vec<String>>>,
}

async fn spawn_endpoint() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let counted = seen.clone();
    let app = Router::new()
        .route("/tool", post(tool))
        .route("/slow", post(std::future::pending::<()>))
        .route("/fail", post(|| async { (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "7")]) }))
        .route("/big", post(|| async { big_json() }))
        .route("/big-stream", post(big_stream))
        .route("/redirect", post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/tool")]) }))
        .route("/not-json", post(|| async { "hello" }))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                counted.hits.fetch_add(1, Ordering::SeqCst);
                next.run(request)
            },
        ))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// A tenant's tool: refuses calls whose signature does not verify, and
/// answers `{result}` with the arguments it got.
async fn tool(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> Response {
    let keys = SigningKeys::parse(SECRET).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    if let Err(error) = keys.verify(&headers, &body, now, DEFAULT_TOLERANCE) {
        return (StatusCode::UNAUTHORIZED, error.to_string()).into_response();
    }
    if headers.get(header::CONTENT_TYPE).is_none_or(|v| v != "application/json") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let id = headers[WEBHOOK_ID].to_str().unwrap().to_owned();
    seen.verified_ids.lock().unwrap().push(id);
    let call: Value = serde_json::from_slice(&body).unwrap();
    axum::Json(json!({"result": {"got": call["arguments"]}})).into_response()
}

fn big_json() -> String {
    format!("\"{}\"", "x".repeat(MAX_RESPONSE_BYTES))
}

/// Over the cap in chunks, with no length declared up front.
async fn big_stream() -> Response {
    let chunk = Bytes::from(vec![b' '; 16 * 1024]);
    let chunks =
        (0..(MAX_RESPONSE_BYTES / chunk.len() + 2)).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    Response::new(Body::from_stream(stream::iter(chunks)))
}

fn allowing(entries: &[&str]) -> WebhookClient {
    WebhookClient::new(PrivateAllowList::parse(entries).unwrap())
}

async fn call(client: &WebhookClient, url: &str) -> Result<Value, CallError> {
    let keys = SigningKeys::parse(SECRET).unwrap();
    let body = Bytes::from(json!({"type": "tool.call", "arguments": {"query": "shoes"}}).to_string());
    let request = WebhookRequest { url, keys: &keys, id: None, body, timeout: TIMEOUT, trace_id: "" };
    client.call("acme", request).await
}

#[tokio::test]
async fn a_signed_call_is_verified_by_the_endpoint_and_its_json_returned() {
    let (addr, seen) = spawn_endpoint().await;
    let client = allowing(&["127.0.0.1"]);
    for _ in 0..2 {
        let answer = call(&client, &format!("http://{addr}/tool")).await;
        assert_eq!(answer, Ok(json!({"result": {"got": {"query": "shoes"}}})));
    }
    let ids = seen.verified_ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| id.starts_with("msg_")) && ids[0] != ids[1], "{ids:?}");
}

#[tokio::test]
async fn an_event_keeps_its_id_and_is_delivered_on_2xx() {
    let (addr, seen) = spawn_endpoint().await;
    let keys = SigningKeys::parse(SECRET).unwrap();
    let url = format!("http://{addr}/tool");
    let body = Bytes::from(r#"{"type":"session.created","id":"evt_1","arguments":null}"#);
    for _ in 0..2 {
        let request = WebhookRequest {
            url: &url,
            keys: &keys,
            id: Some("evt_1"),
            body: body.clone(),
            timeout: TIMEOUT,
            trace_id: "",
        };
        assert_eq!(allowing(&["127.0.0.1"]).deliver("acme", request).await, Ok(200));
    }
    assert_eq!(*seen.verified_ids.lock().unwrap(), ["evt_1", "evt_1"]);
}

#[tokio::test]
async fn a_slow_endpoint_is_a_timeout() {
    let (addr, _) = spawn_endpoint().await;
    let keys = SigningKeys::parse(SECRET).unwrap();
    let url = format!("http://{addr}/slow");
    let request = WebhookRequest {
        url: &url,
        keys: &keys,
        id: None,
        body: Bytes::from("{}"),
        timeout: Duration::from_millis(200),
        trace_id: "",
    };
    let error = allowing(&["127.0.0.1"]).call("acme", request).await.unwrap_err();
    assert_eq!(error, CallError::Timeout);
    assert_eq!(error.to_string(), "timeout");
}

#[tokio::test]
async fn a_server_error_is_its_status_with_the_retry_hint() {
    let (addr, _) = spawn_endpoint().await;
    let error = call(&allowing(&["127.0.0.1"]), &format!("http://{addr}/fail")).await.unwrap_err();
    assert_eq!(error, CallError::Status { status: 503, retry_after: Some(Duration::from_secs(7)) });
    assert_eq!(error.to_string(), "HTTP 503");
}

#[tokio::test]
async fn an_answer_over_256_kib_is_refused_declared_or_streamed() {
    let (addr, _) = spawn_endpoint().await;
    let client = allowing(&["127.0.0.1"]);
    for path in ["big", "big-stream"] {
        let error = call(&client, &format!("http://{addr}/{path}")).await.unwrap_err();
        assert_eq!(error, CallError::TooLarge, "{path}");
        assert_eq!(error.to_string(), "response over 262144 bytes");
    }
}

#[tokio::test]
async fn a_redirect_is_refused_and_not_followed() {
    let (addr, seen) = spawn_endpoint().await;
    let error = call(&allowing(&["127.0.0.1"]), &format!("http://{addr}/redirect")).await.unwrap_err();
    assert_eq!(error, CallError::Redirect { status: 302 });
    assert_eq!(error.to_string(), "redirect refused");
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1, "the redirect's target was not called");
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_invalid_json() {
    let (addr, _) = spawn_endpoint().await;
    let error = call(&allowing(&["127.0.0.1"]), &format!("http://{addr}/not-json")).await.unwrap_err();
    assert_eq!(error, CallError::InvalidJson);
    assert_eq!(error.to_string(), "invalid JSON");
}

#[tokio::test]
async fn loopback_is_refused_by_address_and_by_name_unless_allowed() {
    let (addr, seen) = spawn_endpoint().await;
    let port = addr.port();
    let none = allowing(&[]);
    for url in [
        format!("http://127.0.0.1:{port}/tool"),
        format!("http://localhost:{port}/tool"),
        format!("http://[::ffff:127.0.0.1]:{port}/tool"),
    ] {
        let error = call(&none, &url).await.unwrap_err();
        assert_eq!(error, CallError::NotAllowed, "{url}");
        assert_eq!(error.to_string(), "address not allowed");
    }
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0, "no refused call reached the endpoint");

    // Allowed by host name (before resolution) or by range (after it).
    for client in [allowing(&["LOCALHOST"]), allowing(&["127.0.0.0/8", "::1"])] {
        assert!(call(&client, &format!("http://localhost:{port}/tool")).await.is_ok());
    }
    // A listed name does not open other names or addresses.
    let by_name = allowing(&["localhost"]);
    let error = call(&by_name, &format!("http://127.0.0.1:{port}/tool")).await.unwrap_err();
    assert_eq!(error, CallError::NotAllowed);
}

#[tokio::test]
async fn only_http_urls_are_called_and_a_closed_port_is_a_connection_failure() {
    let client = allowing(&["127.0.0.1"]);
    for url in ["ftp://127.0.0.1/x", "not a url", "file:///etc/passwd"] {
        assert_eq!(call(&client, url).await, Err(CallError::InvalidUrl), "{url}");
    }
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let error = call(&client, &format!("http://{closed}/tool")).await.unwrap_err();
    assert!(matches!(error, CallError::Connection { .. }), "{error:?}");
    assert_eq!(error.to_string(), "connection failed");
}
