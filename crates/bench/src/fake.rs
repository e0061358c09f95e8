//! A zero-delay fake OpenAI Chat Completions server for benchmarks. It replays
//! the recorded wire shape (role chunk, content chunks, finish chunk, usage chunk
//! with `choices: []`, `[DONE]`) from bytes rendered once at start, so its own
//! cost per request stays far below what is being measured. Not a test double:
//! it has no failure modes and does not look at the request.

use crate::error::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Prompt tokens the usage chunk reports; any fixed number will do.
const PROMPT_TOKENS: u32 = 14;

/// The rendered events of one completion, each its own body frame so the
/// response is chunked like a real stream rather than one sized body.
struct Rendered {
    events: Vec<Bytes>,
    calls: AtomicU64,
}

/// A running fake upstream; the server task stops when this is dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Rendered>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Binds `listen` and serves in the background.
    pub async fn start(listen: SocketAddr, chunks: u32) -> Result<Self> {
        let shared = Arc::new(Rendered { events: render(chunks), calls: AtomicU64::new(0) });
        let listener = tokio::net::TcpListener::bind(listen).await.context("binding the fake upstream")?;
        let addr = listener.local_addr().context("reading the fake upstream's address")?;
        // Small SSE writes otherwise wait on Nagle plus delayed ACK (tens of ms).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new().route("/v1/chat/completions", post(completion)).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake upstream stopped: {e}");
            }
        });
        Ok(Self { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Completions served so far (to check the server really called upstream).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body is taken (and dropped) so the connection can be kept alive.
async fn completion(State(shared): State<Arc<Rendered>>, _body: Bytes) -> Response {
    shared.calls.fetch_add(1, Ordering::Relaxed);
    let frames = shared.events.clone().into_iter().map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(frames)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-request-id", HeaderValue::from_static("req_bench"));
    response
}

/// Renders one completion of `chunks` content chunks as SSE events.
fn render(chunks: u32) -> Vec<Bytes> {
    let head = r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,"model":"bench","system_fingerprint":"fp_bench","#;
    let event = |rest: &str| Bytes::from(format!("data: {head}{rest}}}\n\n"));
    let mut events = Vec::with_capacity(chunks as usize + 4);
    events.push(event(
        r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
    ));
    for i in 0..chunks {
        let text = if i == 0 { "Bench".to_owned() } else { format!(" word{i}") };
        events.push(event(&format!(
            r#""choices":[{{"index":0,"delta":{{"content":"{text}"}},"logprobs":null,"finish_reason":null}}]"#
        )));
    }
    events.push(event(r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#));
    events.push(event(&format!(
        r#""choices":[],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{chunks},"total_tokens":{},"completion_tokens_details":{{"reasoning_tokens":0}}}}"#,
        PROMPT_TOKENS + chunks
    )));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn every_event_is_one_json_data_line_and_the_stream_ends_with_done() {
        let events = render(3);
        assert_eq!(events.len(), 3 + 4);
        for e in &events[..events.len() - 1] {
            let text = std::str::from_utf8(e).unwrap();
            let json = text.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap();
            let _: serde_json::Value = serde_json::from_str(json).unwrap();
        }
        assert_eq!(&events[events.len() - 1][..], b"data: [DONE]\n\n");
        let usage: serde_json::Value =
            serde_json::from_slice(&events[events.len() - 2][6..events[events.len() - 2].len() - 2]).unwrap();
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 3);
    }
}
