//! Typed HTTP calls against a `TestApp`: sessions, chat turns (whole or
//! live SSE), history, and raw requests for the refusal tests.

use super::app::TestApp;
use super::sse::{SseEvent, SseParser};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

/// Bound on any single chat turn read to its end.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(30);

/// A visitor's credentials within one tenant.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub tenant: String,
    pub token: String,
    pub visitor_id: String,
}

/// A plain (non-SSE) response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON, `Null` when empty or not JSON.
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    pub fn trace_id(&self) -> String {
        self.header("x-trace-id").unwrap_or_else(|| panic!("no X-Trace-Id on {} {}", self.status, self.text))
    }

    /// Asserts an error envelope (SPEC §8) with this status and code, whose
    /// trace id is the response's `X-Trace-Id`. Returns `error`.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "status of {}: {}", code, self.text);
        let err = &self.body["error"];
        assert_eq!(err["code"], code, "body: {}", self.text);
        assert_eq!(err["http_status"], status, "body: {}", self.text);
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {}", self.text);
        assert_eq!(err["trace_id"].as_str(), Some(self.trace_id().as_str()), "trace id: {}", self.text);
        err.clone()
    }
}

/// A complete SSE response.
#[derive(Debug)]
pub struct SseReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub events: Vec<SseEvent>,
    pub first_line: Option<String>,
    pub comments: Vec<String>,
}

impl SseReply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    pub fn last(&self) -> &SseEvent {
        self.events.last().expect("the stream carried no event")
    }

    pub fn find(&self, kind: &str) -> Option<&SseEvent> {
        self.events.iter().find(|e| e.event == kind)
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An SSE response read event by event; dropping it closes the connection.
pub struct LiveStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: ByteStream,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    /// Every event handed out so far.
    pub received: Vec<SseEvent>,
    ended: bool,
    /// The body ended with a transport error rather than a clean end.
    broken: bool,
}

impl LiveStream {
    /// The next event, or `None` at the end of the response. Panics after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(ev) = self.queue.pop_front() {
                self.received.push(ev.clone());
                return Some(ev);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => panic!("no SSE event within {within:?}; got so far: {:?}", self.received),
                Ok(Some(Ok(bytes))) => self.queue.extend(self.parser.push(&bytes)),
                Ok(Some(Err(_))) => (self.ended, self.broken) = (true, true),
                Ok(None) => self.ended = true,
            }
        }
    }

    /// Reads until an event of `kind` arrives; panics on end of stream or timeout.
    pub async fn until(&mut self, kind: &str, within: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(ev) if ev.event == kind => return ev,
                Some(_) => {}
                None => panic!("stream ended before a {kind} event; got: {:?}", self.received),
            }
        }
    }

    /// Reads to the end of the response; returns every event received.
    pub async fn finish(mut self, within: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.next(left).await.is_none() {
                return self.received;
            }
        }
    }

    /// Reads until a comment line containing `needle` has arrived (events
    /// read meanwhile stay queued for `next`).
    pub async fn until_comment(&mut self, needle: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.parser.comments.iter().any(|c| c.contains(needle)) {
            assert!(!self.ended, "stream ended before a {needle:?} comment; got: {:?}", self.received);
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => panic!("no {needle:?} comment within {within:?}"),
                Ok(Some(Ok(bytes))) => self.queue.extend(self.parser.push(&bytes)),
                Ok(Some(Err(_))) => (self.ended, self.broken) = (true, true),
                Ok(None) => self.ended = true,
            }
        }
    }

    /// Reads until at least `n` comment lines have arrived (events read
    /// meanwhile stay queued for `next`).
    pub async fn until_comments(&mut self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.parser.comments.len() < n {
            assert!(
                !self.ended,
                "stream ended after {} comments; got: {:?}",
                self.parser.comments.len(),
                self.received
            );
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => panic!("fewer than {n} comments within {within:?}: {:?}", self.parser.comments),
                Ok(Some(Ok(bytes))) => self.queue.extend(self.parser.push(&bytes)),
                Ok(Some(Err(_))) => (self.ended, self.broken) = (true, true),
                Ok(None) => self.ended = true,
            }
        }
    }

    /// Like [`Self::next`], but `Err(())` instead of a panic when nothing
    /// arrives within `within`.
    pub async fn try_next(&mut self, within: Duration) -> Result<Option<SseEvent>, ()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(ev) = self.queue.pop_front() {
                self.received.push(ev.clone());
                return Ok(Some(ev));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(()),
                Ok(Some(Ok(bytes))) => self.queue.extend(self.parser.push(&bytes)),
                Ok(Some(Err(_))) => (self.ended, self.broken) = (true, true),
                Ok(None) => self.ended = true,
            }
        }
    }

    /// A 200 `text/event-stream` response, to be read event by event.
    pub fn from_response(resp: reqwest::Response) -> Self {
        Self {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: Box::pin(resp.bytes_stream()),
            parser: SseParser::new(),
            queue: VecDeque::new(),
            received: Vec::new(),
            ended: false,
            broken: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The first line of the stream, once read.
    pub fn first_line(&self) -> Option<&str> {
        self.parser.first_line.as_deref()
    }

    /// Every comment line read so far.
    pub fn comments(&self) -> &[String] {
        &self.parser.comments
    }

    /// Every `retry:` value read so far.
    pub fn retries(&self) -> &[String] {
        &self.parser.retries
    }

    /// Whether the body has ended (cleanly or not).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether the body ended with a transport error (the connection was cut
    /// without the chunked terminator) instead of a clean end.
    pub fn broken(&self) -> bool {
        self.broken
    }

    pub fn text_so_far(&self) -> String {
        super::sse::deltas_text(&self.received)
    }
}

/// A chat request body.
pub fn chat_body(session_id: &str, message: &str) -> Value {
    json!({"session_id": session_id, "message": message})
}

impl TestApp {
    /// A request with `X-Tenant-Id` and bearer token of `who`, when given.
    pub fn request(&self, method: Method, path: &str, who: Option<&Visitor>) -> RequestBuilder {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(v) = who {
            rb = rb.header("x-tenant-id", &v.tenant).bearer_auth(&v.token);
        }
        rb
    }

    /// Sends a request and reads the whole body.
    pub async fn send(&self, rb: RequestBuilder) -> Reply {
        let resp = rb.send().await.expect("request failed");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = tokio::time::timeout(TURN_TIMEOUT, resp.text())
            .await
            .expect("response body timed out")
            .unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, text, body }
    }

    pub async fn get(&self, path: &str, who: Option<&Visitor>) -> Reply {
        self.send(self.request(Method::GET, path, who)).await
    }

    /// `POST /v1/sessions` as a new visitor of `tenant`.
    pub async fn create_session(&self, tenant: &str) -> (String, Visitor) {
        let reply = self.send(self.client.post(self.url("/v1/sessions")).header("x-tenant-id", tenant)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "create session: {}", reply.text);
        let b = &reply.body;
        let id = b["session"]["id"].as_str().expect("session.id").to_owned();
        let visitor = Visitor {
            tenant: tenant.to_owned(),
            token: b["token"].as_str().expect("token").to_owned(),
            visitor_id: b["visitor_id"].as_str().expect("visitor_id").to_owned(),
        };
        (id, visitor)
    }

    /// Another session for an existing visitor.
    pub async fn create_session_for(&self, who: &Visitor) -> Reply {
        self.send(self.request(Method::POST, "/v1/sessions", Some(who))).await
    }

    /// `POST /v1/chat` with a JSON body; the answer read whole (SSE or not).
    pub async fn chat_raw(&self, who: &Visitor, body: &Value) -> Reply {
        self.send(self.request(Method::POST, "/v1/chat", Some(who)).json(body)).await
    }

    /// A streamed turn read to its end; panics unless it is a 200 SSE stream.
    pub async fn chat_stream(&self, who: &Visitor, session_id: &str, message: &str) -> SseReply {
        self.chat_stream_body(who, &chat_body(session_id, message)).await
    }

    pub async fn chat_stream_body(&self, who: &Visitor, body: &Value) -> SseReply {
        let live = self.chat_live(who, body).await;
        let (status, headers) = (live.status, live.headers.clone());
        let mut live = live;
        let mut events = Vec::new();
        while let Some(ev) = live.next(TURN_TIMEOUT).await {
            events.push(ev);
        }
        SseReply {
            status,
            headers,
            events,
            first_line: live.parser.first_line.clone(),
            comments: live.parser.comments.clone(),
        }
    }

    /// Starts a streamed turn and returns as soon as the headers are in.
    pub async fn chat_live(&self, who: &Visitor, body: &Value) -> LiveStream {
        let resp =
            self.request(Method::POST, "/v1/chat", Some(who)).json(body).send().await.expect("chat request");
        let status = resp.status();
        if status != StatusCode::OK {
            let text = resp.text().await.unwrap_or_default();
            panic!("chat answered {status}: {text}");
        }
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(ct.starts_with("text/event-stream"), "chat content type {ct}");
        LiveStream::from_response(resp)
    }

    /// A non-streamed turn.
    pub async fn chat_json(&self, who: &Visitor, session_id: &str, message: &str) -> Reply {
        let mut body = chat_body(session_id, message);
        body["stream"] = json!(false);
        self.chat_raw(who, &body).await
    }

    /// One page of history.
    pub async fn messages_page(&self, who: &Visitor, session_id: &str, query: &str) -> Reply {
        self.get(&format!("/v1/sessions/{session_id}/messages{query}"), Some(who)).await
    }

    /// The whole history (up to 200 messages), newest first.
    pub async fn messages(&self, who: &Visitor, session_id: &str) -> Vec<Value> {
        let reply = self.messages_page(who, session_id, "?limit=200").await;
        assert_eq!(reply.status, StatusCode::OK, "messages: {}", reply.text);
        reply.body["items"].as_array().expect("items").clone()
    }

    /// The stored message with this seq, if any.
    pub async fn message(&self, who: &Visitor, session_id: &str, seq: i64) -> Option<Value> {
        self.messages(who, session_id).await.into_iter().find(|m| m["seq"] == seq)
    }
}
