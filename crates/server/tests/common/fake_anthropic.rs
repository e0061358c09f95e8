//! A fake Anthropic Messages API (`POST /v1/messages`) that replays the
//! recorded streaming wire format (message_start with usage,
//! content_block_start, ping, text deltas, content_block_stop, message_delta
//! with the stop reason and cumulative output count, message_stop), with
//! failure modes queued per call, captured requests, and a record of whether
//! each response body was read to its end or dropped by the client.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Uncached prompt tokens the fake reports in `message_start`.
pub const INPUT_TOKENS: u64 = 21;
/// Prompt tokens written to the cache, reported in `message_start`.
pub const CACHE_CREATION_TOKENS: u64 = 100;
/// Prompt tokens read from the cache, reported in `message_start`.
pub const CACHE_READ_TOKENS: u64 = 256;
/// The cumulative output count of the final `message_delta`.
pub const OUTPUT_TOKENS: u64 = 65;
/// The prompt tokens a client should report: cached ones are prompt tokens too.
pub const PROMPT_TOKENS: u64 = INPUT_TOKENS + CACHE_CREATION_TOKENS + CACHE_READ_TOKENS;

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum AnthropicMode {
    /// Streams the whole recorded transcript with these text pieces at once.
    Normal(Vec<String>),
    /// Like `Normal`, but one piece every `interval`.
    Paced { pieces: Vec<String>, interval: Duration },
    /// An HTTP error with the API's JSON error body, e.g. 529
    /// `overloaded_error`; `retry_after` seconds when given.
    HttpError { status: u16, kind: &'static str, retry_after: Option<u64> },
    /// A 200 stream that reports `overloaded_error` in an `event: error`
    /// right after `message_start`, before any text, and ends.
    StreamOverloaded,
}

impl AnthropicMode {
    /// 529 `overloaded_error`.
    pub fn overloaded() -> Self {
        Self::HttpError { status: 529, kind: "overloaded_error", retry_after: None }
    }

    /// 429 `rate_limit_error` with `retry-after: <secs>`.
    pub fn rate_limited(secs: u64) -> Self {
        Self::HttpError { status: 429, kind: "rate_limit_error", retry_after: Some(secs) }
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub body: Value,
    pub headers: HeaderMap,
    pub at: Instant,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug)]
enum Step {
    Bytes(Bytes),
    Sleep(Duration),
}

struct Shared {
    calls: AtomicUsize,
    completed: AtomicUsize,
    dropped: AtomicUsize,
    requests: Mutex<Vec<Captured>>,
    queue: Mutex<VecDeque<AnthropicMode>>,
    default: Mutex<AnthropicMode>,
}

/// The running fake; it stops with the test's runtime.
#[derive(Clone)]
pub struct FakeAnthropic {
    shared: Arc<Shared>,
    port: u16,
}

impl FakeAnthropic {
    /// Starts the fake on a free port with `default` as the mode of every call.
    pub async fn start(default: AnthropicMode) -> Self {
        let shared = Arc::new(Shared {
            calls: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
        });
        let app = Router::new().route("/v1/messages", post(messages)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake anthropic");
        let port = listener.local_addr().expect("fake addr").port();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, port }
    }

    /// The `base_url` to configure: the vendor's convention has no `/v1`
    /// (`{base_url}/v1/messages` is served).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the mode of every later call (after any queued ones).
    pub fn set_mode(&self, mode: AnthropicMode) {
        *self.shared.default.lock().expect("lock") = mode;
    }

    /// Queues a mode for the next call that has no earlier queued mode.
    pub fn push_mode(&self, mode: AnthropicMode) {
        self.shared.queue.lock().expect("lock").push_back(mode);
    }

    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Response bodies streamed to their end.
    pub fn completed(&self) -> usize {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// Response bodies the client dropped before their end.
    pub fn dropped(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.shared.requests.lock().expect("lock").clone()
    }

    pub fn last_request(&self) -> Captured {
        self.requests().pop().expect("the fake anthropic received no request")
    }
}

async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    shared.requests.lock().expect("lock").push(Captured { body, headers, at: Instant::now() });
    let queued = shared.queue.lock().expect("lock").pop_front();
    let mode = queued.unwrap_or_else(|| shared.default.lock().expect("lock").clone());
    match mode {
        AnthropicMode::HttpError { status, kind, retry_after } => {
            let status = StatusCode::from_u16(status).expect("status");
            let message = match kind {
                "overloaded_error" => "Overloaded",
                "rate_limit_error" => "Number of request tokens has exceeded your per-minute rate limit",
                "authentication_error" => "invalid x-api-key",
                _ => "Internal server error",
            };
            let body = json!({"type": "error", "error": {"type": kind, "message": message},
                              "request_id": "req_fake_error"});
            let mut response = (
                status,
                [("content-type", "application/json"), ("request-id", "req_fake_error")],
                body.to_string(),
            )
                .into_response();
            if let Some(secs) = retry_after {
                response.headers_mut().insert("retry-after", secs.to_string().parse().expect("header"));
            }
            response
        }
        AnthropicMode::Normal(pieces) => stream_response(shared.clone(), transcript(&pieces, None)),
        AnthropicMode::Paced { pieces, interval } => {
            stream_response(shared.clone(), transcript(&pieces, Some(interval)))
        }
        AnthropicMode::StreamOverloaded => {
            let error =
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
            let steps =
                vec![message_start(), event("ping", &json!({"type": "ping"})), event("error", &error)];
            stream_response(shared.clone(), steps)
        }
    }
}

/// One SSE event; the `event:` name equals `data.type`, as the API sends.
fn event(name: &str, data: &Value) -> Step {
    Step::Bytes(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
}

fn message_start() -> Step {
    event(
        "message_start",
        &json!({"type": "message_start", "message": {"id": "msg_fake1", "type": "message",
            "role": "assistant", "model": "sonnet-fake-20250514", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": INPUT_TOKENS,
            "cache_creation_input_tokens": CACHE_CREATION_TOKENS,
            "cache_read_input_tokens": CACHE_READ_TOKENS, "output_tokens": 1}}}),
    )
}

/// The recorded transcript of a text answer made of `pieces`.
fn transcript(pieces: &[String], interval: Option<Duration>) -> Vec<Step> {
    let mut out = vec![
        message_start(),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        // The recorded ping has a space inside its JSON.
        Step::Bytes(Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")),
    ];
    for piece in pieces {
        if let Some(i) = interval {
            out.push(Step::Sleep(i));
        }
        out.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    out.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
    out.push(event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": OUTPUT_TOKENS}}),
    ));
    out.push(event("message_stop", &json!({"type": "message_stop"})));
    out
}

/// Counts a body as completed when its steps ran out, as dropped otherwise.
struct Tracker {
    shared: Arc<Shared>,
    steps: VecDeque<Step>,
    finished: bool,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let counter = if self.finished { &self.shared.completed } else { &self.shared.dropped };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn stream_response(shared: Arc<Shared>, steps: Vec<Step>) -> Response {
    let tracker = Tracker { shared, steps: steps.into(), finished: false };
    let stream = futures_util::stream::unfold(tracker, |mut t| async move {
        loop {
            match t.steps.pop_front() {
                None => {
                    t.finished = true;
                    drop(t);
                    return None;
                }
                Some(Step::Bytes(b)) => return Some((Ok::<Bytes, std::io::Error>(b), t)),
                Some(Step::Sleep(d)) => tokio::time::sleep(d).await,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("request-id", "req_fake_1")
        .body(Body::from_stream(stream))
        .expect("fake anthropic response")
}
