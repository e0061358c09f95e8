//! The floor under any server between a widget and its model: a relay that
//! does only what every such server must do for a streamed turn — take the
//! HTTP request, call the upstream over a pooled connection, and re-frame the
//! upstream's chunks as the chat stream's SSE events — with no store, no
//! encryption, no auth and no limits. `run` measures it beside `switchboard`
//! in the same run, so what a turn through Switchboard adds can be split into
//! what this machine charges for one more process and two more loopback
//! hops, and what Switchboard's own work costs on top.
//!
//! It speaks just enough of Switchboard's API for the load generator:
//! `POST /v1/sessions` (a session id and a token, neither checked later) and
//! `POST /v1/chat` answering `stream_start`, one `stream_delta` per content
//! chunk and `stream_end`. It is a benchmark instrument, not a server.

use crate::error::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use bytes::BytesMut;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The line `run` waits for, as it does for `switchboard`'s.
pub const LISTENING: &str = "relay listening on ";

struct Relay {
    client: reqwest::Client,
    /// `{base_url}/chat/completions`.
    completions: String,
    sessions: AtomicU64,
}

/// Serves until the process is stopped.
pub async fn serve(listen: SocketAddr, upstream: &str) -> Result<()> {
    let relay = Arc::new(Relay {
        client: crate::api::client(64)?,
        completions: format!("{}/chat/completions", upstream.trim_end_matches('/')),
        sessions: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(listen).await.context("binding the relay")?;
    let addr = listener.local_addr().context("reading the relay's address")?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app =
        Router::new().route("/v1/sessions", post(session)).route("/v1/chat", post(chat)).with_state(relay);
    println!("{LISTENING}http://{addr}");
    axum::serve(listener, app).with_graceful_shutdown(terminated()).await.context("serving the relay")
}

/// SIGTERM (how `run` stops it) or Ctrl-C.
async fn terminated() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn session(State(relay): State<Arc<Relay>>) -> Response {
    let n = relay.sessions.fetch_add(1, Ordering::Relaxed);
    let id = format!("00000000-0000-4000-8000-{n:012x}");
    (StatusCode::CREATED, Json(json!({"session": {"id": id}, "token": "relay"}))).into_response()
}

async fn chat(State(relay): State<Arc<Relay>>, body: Bytes) -> Response {
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let request = json!({
        "model": "bench",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": message}],
    });
    let upstream = match relay.client.post(&relay.completions).json(&request).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return failed(&format!("upstream answered {}", r.status())),
        Err(e) => return failed(&e.to_string()),
    };
    let start = Bytes::from_static(b"retry: 2000\n\nevent: stream_start\ndata: {\"seq\":2}\n\n");
    let events = stream::unfold(Some((upstream, BytesMut::new(), 0usize)), |state| async move {
        let (mut upstream, mut buf, mut offset) = state?;
        loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let event = buf.split_to(end + 2);
                match reframe(&event, &mut offset) {
                    Reframed::Delta(out) => return Some((Ok(out), Some((upstream, buf, offset)))),
                    Reframed::Done(out) => return Some((Ok(out), None)),
                    Reframed::Nothing => continue,
                }
            }
            match upstream.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                _ => return Some((Ok(error_frame("the upstream stream broke off")), None)),
            }
        }
    });
    let body = stream::once(async move { Ok::<_, Infallible>(start) }).chain(events);
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

enum Reframed {
    Delta(Bytes),
    Done(Bytes),
    Nothing,
}

/// One upstream SSE event (`data: {chunk}` or `data: [DONE]`) as the chat
/// stream's event, if it carries text or ends the answer.
fn reframe(event: &[u8], offset: &mut usize) -> Reframed {
    let Some(data) = event.strip_prefix(b"data: ") else { return Reframed::Nothing };
    let data = data.trim_ascii_end();
    if data == b"[DONE]" {
        let end = format!("event: stream_end\ndata: {}\n\n", json!({"seq": 2, "length": *offset}));
        return Reframed::Done(Bytes::from(end));
    }
    let chunk: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
    match chunk["choices"][0]["delta"]["content"].as_str() {
        Some(text) if !text.is_empty() => {
            let payload = json!({"seq": 2, "revision": 0, "offset": *offset, "text": text});
            *offset += text.chars().count();
            Reframed::Delta(Bytes::from(format!("event: stream_delta\ndata: {payload}\n\n")))
        }
        _ => Reframed::Nothing,
    }
}

fn error_frame(why: &str) -> Bytes {
    Bytes::from(format!("event: error\ndata: {}\n\n", json!({"error": {"message": why}})))
}

fn failed(why: &str) -> Response {
    (StatusCode::BAD_GATEWAY, Json(json!({"error": {"message": why}}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Reframed) -> String {
        match r {
            Reframed::Delta(b) | Reframed::Done(b) => String::from_utf8(b.to_vec()).unwrap(),
            Reframed::Nothing => String::new(),
        }
    }

    #[test]
    fn content_chunks_become_deltas_at_their_offsets_and_done_ends_the_stream() {
        let mut offset = 0;
        let role = br#"data: {"choices":[{"delta":{"role":"assistant"}}]}"#;
        assert!(matches!(reframe(role, &mut offset), Reframed::Nothing));
        let hi =
            text(reframe(b"data: {\"choices\":[{\"delta\":{\"content\":\"h\xc3\xa9\"}}]}\n\n", &mut offset));
        assert!(hi.starts_with("event: stream_delta\ndata: {") && hi.ends_with("}\n\n"), "{hi}");
        assert!(hi.contains("\"offset\":0") && hi.contains("\"text\":\"hé\""), "{hi}");
        let more = text(reframe(br#"data: {"choices":[{"delta":{"content":"!"}}]}"#, &mut offset));
        assert!(more.contains("\"offset\":2"), "{more}");
        assert!(matches!(reframe(b": keep-alive\n\n", &mut offset), Reframed::Nothing));
        let end = text(reframe(b"data: [DONE]\n\n", &mut offset));
        assert!(end.starts_with("event: stream_end\n"), "{end}");
    }
}
