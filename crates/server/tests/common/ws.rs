//! A WebSocket client for `GET /v1/ws` (SPEC §7): connects (or reports the
//! HTTP refusal before the upgrade), sends frames, and reads the server's
//! frames, checking that each is one JSON object with a `type`.

use super::app::TestApp;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound on waiting for one frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer instead of an upgrade.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Refusal {
    /// Asserts the envelope of SPEC §8 with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "status of {code}: {}", self.text);
        let err = &self.body["error"];
        assert_eq!(err["code"], code, "{}", self.text);
        assert_eq!(err["http_status"], status, "{}", self.text);
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.text);
        assert!(err["trace_id"].as_str().is_some_and(|t| !t.is_empty()), "{}", self.text);
        err.clone()
    }
}

/// What the server sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text frame, parsed (always a JSON object with a string `type`).
    Frame(Value),
    /// A close frame, with its code (`None` when it had no code).
    Close(Option<u16>),
    /// The connection ended without a close frame.
    Gone,
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text frame received so far.
    pub received: Vec<Value>,
    closed: Option<Incoming>,
}

impl TestApp {
    /// The `ws://` URL of `/v1/ws` with `query` (with its `?`, or empty).
    pub fn ws_url(&self, query: &str) -> String {
        format!("{}/v1/ws{query}", self.base_url.replacen("http://", "ws://", 1))
    }

    /// Upgrades `/v1/ws{query}` with extra request headers, or returns the
    /// HTTP refusal.
    pub async fn ws_try(&self, query: &str, headers: &[(&str, &str)]) -> Result<WsClient, Refusal> {
        let mut request = self.ws_url(query).into_client_request().expect("ws request");
        for (k, v) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().expect("header name");
            request.headers_mut().insert(name, HeaderValue::from_str(v).expect("header value"));
        }
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(FRAME_TIMEOUT, connect).await.expect("ws connect timed out") {
            Ok((stream, _)) => Ok(WsClient { stream, received: Vec::new(), closed: None }),
            Err(WsError::Http(resp)) => {
                let status = resp.status().as_u16();
                let text =
                    resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                Err(Refusal { status, body, text })
            }
            Err(e) => panic!("ws connect failed: {e}"),
        }
    }

    /// Upgrades `/v1/ws{query}`; panics on a refusal.
    pub async fn ws(&self, query: &str) -> WsClient {
        match self.ws_try(query, &[]).await {
            Ok(ws) => ws,
            Err(r) => panic!("upgrade refused: {} {}", r.status, r.text),
        }
    }

    /// A socket on `?tenant=` that said a valid `hello` (with `token`) for
    /// `session`, cursor `last_event_id`; returns it and its `welcome`.
    pub async fn ws_hello(
        &self,
        tenant: &str,
        token: &str,
        session: &str,
        last_event_id: Option<Value>,
    ) -> (WsClient, Value) {
        let mut ws = self.ws(&format!("?tenant={tenant}")).await;
        ws.send_json(&hello(tenant, Some(token), session, last_event_id)).await;
        let welcome = ws.expect("welcome").await;
        (ws, welcome)
    }
}

/// A `hello` frame.
pub fn hello(tenant: &str, token: Option<&str>, session: &str, last_event_id: Option<Value>) -> Value {
    let mut h = json!({"type": "hello", "session_id": session, "context": {"tenant_id": tenant}});
    if let Some(t) = token {
        h["token"] = json!(t);
    }
    if let Some(c) = last_event_id {
        h["last_event_id"] = c;
    }
    h
}

impl WsClient {
    pub async fn send_json(&mut self, v: &Value) {
        self.send(Message::text(v.to_string())).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        self.send(Message::text(s.to_owned())).await;
    }

    pub async fn send(&mut self, m: Message) {
        tokio::time::timeout(FRAME_TIMEOUT, self.stream.send(m))
            .await
            .expect("ws send timed out")
            .expect("ws send failed");
    }

    /// Sends, and tolerates a socket the server already closed.
    pub async fn send_lossy(&mut self, m: Message) -> bool {
        matches!(tokio::time::timeout(FRAME_TIMEOUT, self.stream.send(m)).await, Ok(Ok(())))
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.send(Message::Binary(Bytes::copy_from_slice(bytes))).await;
    }

    /// The next text frame, close or end; `None` when nothing came within `within`.
    pub async fn try_next(&mut self, within: Duration) -> Option<Incoming> {
        if let Some(c) = &self.closed {
            return Some(c.clone());
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            let incoming = match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("a text frame is not one JSON value ({e}): {t:?}"));
                    assert!(v.is_object(), "a frame is not a JSON object: {v}");
                    assert!(v["type"].is_string(), "a frame without a type: {v}");
                    self.received.push(v.clone());
                    return Some(Incoming::Frame(v));
                }
                Some(Ok(Message::Binary(b))) => panic!("the server sent a binary frame: {b:?}"),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => Incoming::Close(frame.map(|f| u16::from(f.code))),
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => Incoming::Gone,
                Some(Err(WsError::Protocol(_) | WsError::Io(_))) => Incoming::Gone,
                Some(Err(e)) => panic!("ws read failed: {e}"),
            };
            self.closed = Some(incoming.clone());
            return Some(incoming);
        }
    }

    /// The next text frame; panics on a close, an end or a timeout.
    pub async fn next_frame(&mut self, within: Duration) -> Value {
        match self.try_next(within).await {
            Some(Incoming::Frame(v)) => v,
            Some(other) => panic!("expected a frame, got {other:?}; received: {:#?}", self.received),
            None => panic!("no frame within {within:?}; received: {:#?}", self.received),
        }
    }

    /// The next frame, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let v = self.next_frame(FRAME_TIMEOUT).await;
        assert_eq!(v["type"], kind, "expected a {kind} frame, got {v}; received: {:#?}", self.received);
        v
    }

    /// Reads frames until one of `kind`; panics on close or after `within`.
    pub async fn until(&mut self, kind: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.next_frame(left).await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// The next frame must be an `error` frame of SPEC §7 with this code and
    /// HTTP status; returns its `error` object.
    pub async fn expect_error(&mut self, code: &str, status: u16) -> Value {
        let v = self.expect("error").await;
        check_error_frame(&v, code, status)
    }

    /// Reads until the close; asserts its code. Frames before it are
    /// returned. Panics after `within`.
    pub async fn expect_close(&mut self, code: u16, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_next(left).await {
                Some(Incoming::Frame(v)) => frames.push(v),
                Some(Incoming::Close(got)) => {
                    assert_eq!(got, Some(code), "close code; frames before it: {frames:#?}");
                    return frames;
                }
                Some(Incoming::Gone) => {
                    panic!("the connection ended without a close frame (wanted {code}); frames: {frames:#?}")
                }
                None => panic!("no close {code} within {within:?}; frames: {frames:#?}"),
            }
        }
    }

    /// `ping {ts}` and its `pong {ts}` (frames before the pong are returned).
    pub async fn ping(&mut self, ts: i64) -> Vec<Value> {
        self.send_json(&json!({"type": "ping", "ts": ts})).await;
        let mut before = Vec::new();
        loop {
            let v = self.next_frame(FRAME_TIMEOUT).await;
            if v["type"] == "pong" {
                assert_eq!(v["ts"], ts, "pong of another ping: {v}");
                return before;
            }
            before.push(v);
        }
    }

    /// Closes from the client side (best effort).
    pub async fn close(mut self) {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close(Some(frame))).await;
    }
}

/// Checks an `error` frame: `{type: "error", session_id, error: {code,
/// message, http_status, trace_id}}`. Returns `error`.
pub fn check_error_frame(v: &Value, code: &str, status: u16) -> Value {
    assert_eq!(v["type"], "error", "{v}");
    assert!(v.get("session_id").is_some(), "an error frame without session_id: {v}");
    let err = &v["error"];
    assert_eq!(err["code"], code, "{v}");
    assert_eq!(err["http_status"], status, "{v}");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(err["trace_id"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    err.clone()
}
