//! A zero-delay fake OpenAI Chat Completions server for benchmarks. It replays
//! the recorded wire shape (role chunk, content chunks, finish chunk, usage chunk
//! with `choices: []`, `[DONE]`) from bytes rendered once at start, so its own
//! cost per request stays far below what is being measured. Not a test double:
//! it has no failure modes and does not look at the request.
//!
//! Paced (a gap between content chunks, as a real model has between tokens),
//! it also notes when it handed each content chunk to the socket, on the same
//! clock the load generator reads, so a delta's path through Switchboard can
//! be timed end to end.

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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Prompt tokens the usage chunk reports; any fixed number will do.
const PROMPT_TOKENS: u32 = 14;

/// The rendered events of one completion, each its own body frame so the
/// response is chunked like a real stream rather than one sized body.
struct Rendered {
    events: Vec<Bytes>,
    calls: AtomicU64,
    /// Zero: every event at once. Otherwise the wait before each content chunk
    /// after the first, and the times below are kept.
    gap: Duration,
    /// Per completion (in the order they started), when each content chunk was
    /// handed to the response body.
    sent: Mutex<Vec<Vec<Instant>>>,
}

/// The first content chunk's index in `Rendered::events` (after the role chunk).
const FIRST_CONTENT: usize = 1;

/// A running fake upstream; the server task stops when this is dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Rendered>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Binds `listen` and serves in the background.
    pub async fn start(listen: SocketAddr, chunks: u32) -> Result<Self> {
        Self::start_paced(listen, chunks, Duration::ZERO).await
    }

    /// Like `start`, with `gap` between content chunks and their send times kept
    /// (see `take_sent`).
    pub async fn start_paced(listen: SocketAddr, chunks: u32, gap: Duration) -> Result<Self> {
        let shared = Arc::new(Rendered {
            events: render(chunks),
            calls: AtomicU64::new(0),
            gap,
            sent: Mutex::new(Vec::new()),
        });
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

    /// The send times of the content chunks of every paced completion since the
    /// last call, oldest completion first; one `Instant` per content chunk, in
    /// order (fewer if the server hung up early).
    pub fn take_sent(&self) -> Vec<Vec<Instant>> {
        match self.shared.sent.lock() {
            Ok(mut sent) => std::mem::take(&mut *sent),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
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
    let body = if shared.gap.is_zero() {
        let frames = shared.events.clone().into_iter().map(Ok::<_, Infallible>);
        Body::from_stream(futures_util::stream::iter(frames))
    } else {
        paced(shared)
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-request-id", HeaderValue::from_static("req_bench"));
    response
}

/// The events one by one, waiting `gap` before each content chunk but the
/// first, noting when each content chunk is handed over.
fn paced(shared: Arc<Rendered>) -> Body {
    let call = match shared.sent.lock() {
        Ok(mut sent) => {
            sent.push(Vec::with_capacity(shared.events.len()));
            sent.len() - 1
        }
        Err(_) => usize::MAX,
    };
    let frames = futures_util::stream::unfold((shared, 0usize), move |(shared, i)| async move {
        let event = shared.events.get(i)?.clone();
        let content = i >= FIRST_CONTENT && i < shared.events.len().saturating_sub(3);
        if content {
            if i > FIRST_CONTENT {
                tokio::time::sleep(shared.gap).await;
            }
            let now = Instant::now();
            if let Ok(mut sent) = shared.sent.lock() {
                if let Some(times) = sent.get_mut(call) {
                    times.push(now);
                }
            }
        }
        Some((Ok::<_, Infallible>(event), (shared, i + 1)))
    });
    Body::from_stream(frames)
}

/// Which content chunks (0-based) a delta's text carries: the fake's chunk 0
/// is `Bench`, chunk i is ` word{i}`; a server may join several into one delta.
pub fn chunks_in(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    if text.starts_with("Bench") {
        out.push(0);
    }
    for part in text.split(" word").skip(1) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(i) = digits.parse() {
            out.push(i);
        }
    }
    out
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

    #[test]
    fn a_delta_names_the_chunks_it_carries() {
        assert_eq!(chunks_in("Bench"), vec![0]);
        assert_eq!(chunks_in(" word7"), vec![7]);
        assert_eq!(chunks_in("Bench word1 word2"), vec![0, 1, 2]);
        assert_eq!(chunks_in("other"), Vec::<usize>::new());
    }

    #[tokio::test]
    async fn a_paced_completion_notes_one_time_per_content_chunk() {
        let up = FakeUpstream::start_paced("127.0.0.1:0".parse().unwrap(), 3, Duration::from_millis(2))
            .await
            .unwrap();
        let url = format!("http://{}/v1/chat/completions", up.addr());
        let body = reqwest::Client::new().post(url).body("{}").send().await.unwrap().text().await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"));
        let sent = up.take_sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].len(), 3);
        assert!(sent[0][2] - sent[0][0] >= Duration::from_millis(4));
        assert!(up.take_sent().is_empty());
    }
}
