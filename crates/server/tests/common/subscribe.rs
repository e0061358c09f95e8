//! The SSE subscription of SPEC §6 (`GET /v1/sessions/{id}/events`) as a
//! client opens it: with a bearer token, a `?ticket=`, a cursor in
//! `Last-Event-ID` or `?last_event_id=`, and tickets minted for it.

use super::app::TestApp;
use super::client::{LiveStream, Reply, Visitor};
use super::sse::SseEvent;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// Bound on waiting for one subscription event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// `/v1/sessions/{session}/events` plus `query` (with its `?`, or empty).
pub fn events_path(session: &str, query: &str) -> String {
    format!("/v1/sessions/{session}/events{query}")
}

impl TestApp {
    /// Sends a subscription request: `Ok` with the live stream on a 200
    /// `text/event-stream`, `Err` with the whole reply otherwise.
    pub async fn open_events(&self, rb: RequestBuilder) -> Result<LiveStream, Reply> {
        let resp = rb.send().await.expect("subscription request");
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = tokio::time::timeout(EVENT_TIMEOUT, resp.text())
                .await
                .expect("refusal body timed out")
                .unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(Reply { status, headers, text, body });
        }
        Ok(LiveStream::from_response(resp))
    }

    /// The subscription request of `who` (bearer and `X-Tenant-Id`), with
    /// `Last-Event-ID` when given.
    pub fn events_request(
        &self,
        who: &Visitor,
        session: &str,
        last_event_id: Option<&str>,
    ) -> RequestBuilder {
        let mut rb = self.request(Method::GET, &events_path(session, ""), Some(who));
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        rb
    }

    /// Subscribes as `who`; panics unless the server answers 200.
    pub async fn subscribe(&self, who: &Visitor, session: &str, last_event_id: Option<&str>) -> LiveStream {
        match self.open_events(self.events_request(who, session, last_event_id)).await {
            Ok(live) => live,
            Err(r) => panic!("subscription refused: {} {}", r.status, r.text),
        }
    }

    /// Subscribes as `who`, expecting a refusal; panics on a 200.
    pub async fn subscribe_refused(
        &self,
        who: &Visitor,
        session: &str,
        last_event_id: Option<&str>,
    ) -> Reply {
        match self.open_events(self.events_request(who, session, last_event_id)).await {
            Ok(live) => panic!("subscription accepted ({:?}), expected a refusal", live.headers),
            Err(r) => r,
        }
    }

    /// A subscription request that carries nothing but `path_and_query`
    /// (a `?ticket=` URL, as an `EventSource` sends it).
    pub async fn open_events_url(&self, path_and_query: &str) -> Result<LiveStream, Reply> {
        self.open_events(self.client.get(self.url(path_and_query))).await
    }

    /// `POST /v1/tickets` as `who`, bound to `session` when given.
    pub async fn mint_ticket(&self, who: &Visitor, session: Option<&str>) -> String {
        let mut rb = self.request(Method::POST, "/v1/tickets", Some(who));
        if let Some(s) = session {
            rb = rb.json(&json!({"session_id": s}));
        }
        let reply = self.send(rb).await;
        assert_eq!(reply.status, StatusCode::OK, "mint ticket: {}", reply.text);
        reply.body["ticket"].as_str().expect("ticket").to_owned()
    }
}

impl LiveStream {
    /// Reads the opening `session` event of a subscription without cursor;
    /// checks its id is its `latest_seq` and returns its payload.
    pub async fn session_event(&mut self) -> Value {
        let ev = self.next(EVENT_TIMEOUT).await.expect("the subscription ended before its session event");
        assert_eq!(ev.event, "session", "the first event must be session: {ev:?}");
        let payload = ev.json();
        let latest = payload["latest_seq"].as_i64().unwrap_or_else(|| panic!("latest_seq: {payload}"));
        assert_eq!(ev.id.as_deref(), Some(latest.to_string().as_str()), "session event id: {ev:?}");
        super::checks::assert_session_shape(&payload["session"]);
        payload
    }

    /// Reads the opening `session` event of a subscription resumed from
    /// `cursor`: its id must not run ahead of the cursor (the replay up to
    /// `latest_seq` is still to come, and a client that drops before it
    /// reconnects with this id), so it is the cursor, or absent (the
    /// client's last id stays the cursor). Returns its payload.
    pub async fn resumed_session_event(&mut self, cursor: i64) -> Value {
        let ev = self.next(EVENT_TIMEOUT).await.expect("the subscription ended before its session event");
        assert_eq!(ev.event, "session", "the first event must be session: {ev:?}");
        let payload = ev.json();
        super::checks::assert_session_shape(&payload["session"]);
        let latest = payload["latest_seq"].as_i64().unwrap_or_else(|| panic!("latest_seq: {payload}"));
        let expected = cursor.min(latest).to_string();
        assert!(
            ev.id.is_none() || ev.id.as_deref() == Some(expected.as_str()),
            "the session event of a stream resumed from {cursor} carries id {:?} (latest_seq {latest}): \
             a client that drops before the replay would reconnect past what it never got",
            ev.id
        );
        payload
    }

    /// The next event, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> SseEvent {
        let ev = self.next(EVENT_TIMEOUT).await.unwrap_or_else(|| panic!("stream ended before {kind}"));
        assert_eq!(ev.event, kind, "expected {kind}, got {ev:?}; so far: {:?}", self.received);
        ev
    }

    /// Reads until the stream ends; panics after `within`.
    pub async fn until_end(&mut self, within: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_next(left).await {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => return out,
                Err(()) => panic!("the stream did not end within {within:?}; got: {:?}", self.received),
            }
        }
    }

    /// Reads until the `stream_end` (or final `message`) of answer `seq`.
    pub async fn until_final(&mut self, seq: i64, within: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev =
                self.next(left).await.unwrap_or_else(|| panic!("stream ended before seq {seq} was final"));
            let is_final = match ev.event.as_str() {
                "stream_end" => ev.json()["seq"] == seq,
                "message" => ev.json()["seq"] == seq && ev.json()["status"] != "streaming",
                _ => false,
            };
            if is_final {
                return ev;
            }
        }
    }
}
