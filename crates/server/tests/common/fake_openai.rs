//! A fake OpenAI Chat Completions upstream that replays the real streaming wire
//! format, with failure modes, a call counter, captured requests, and a record
//! of whether each response body was read to its end or dropped by the client.

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
use tokio::sync::watch;

/// The API key the test server is configured with (through an env variable).
pub const FAKE_API_KEY: &str = "sk-test-fake-key";
/// The prompt token count the fake reports in its usage chunk.
pub const PROMPT_TOKENS: u64 = 14;

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Streams every piece at once, then finish, usage and `[DONE]`.
    Normal(Vec<String>),
    /// Like `Normal`, but one piece every `interval`.
    Paced { pieces: Vec<String>, interval: Duration },
    /// Like `Normal`, but every byte of the stream is its own write.
    SplitBytes(Vec<String>),
    /// Like `Normal`, with keep-alive comments between events and CRLF line ends.
    KeepAlive(Vec<String>),
    /// Sends headers and the role chunk, waits `delay`, then streams normally.
    SlowFirstToken { delay: Duration, pieces: Vec<String> },
    /// Sends `before`, then never another byte.
    Stall(Vec<String>),
    /// Sends `before`, then an in-stream error event, then ends.
    MidStreamError(Vec<String>),
    /// Sends `before`, then breaks the connection (no terminating chunk).
    DropConnection(Vec<String>),
    /// Streams normally but sends no usage chunk.
    NoUsage(Vec<String>),
    /// Sends `before`, waits for [`FakeOpenAi::release`], then sends `after`.
    Gated { before: Vec<String>, after: Vec<String> },
    /// 429 `rate_limit_exceeded` with `Retry-After: <secs>`.
    RateLimited { retry_after_secs: u64 },
    /// 429 with `retry-after-ms: <ms>` (and a `retry-after` of whole seconds).
    RateLimitedMs(u64),
    /// 500 `server_error`.
    ServerError,
    /// 400 `context_length_exceeded`: this request, not the server, is at fault.
    BadRequest,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub body: Value,
    pub authorization: Option<String>,
    pub at: Instant,
}

#[derive(Debug)]
enum Step {
    Bytes(Bytes),
    Sleep(Duration),
    WaitGate,
    Hang,
    Fail,
}

struct Shared {
    calls: AtomicUsize,
    completed: AtomicUsize,
    dropped: AtomicUsize,
    requests: Mutex<Vec<Captured>>,
    queue: Mutex<VecDeque<Mode>>,
    default: Mutex<Mode>,
    gate: watch::Sender<bool>,
}

/// The running fake; it stops with the test's runtime.
#[derive(Clone)]
pub struct FakeOpenAi {
    shared: Arc<Shared>,
    port: u16,
}

/// `n` pieces `w0`, ` w1`, ` w2`…
pub fn pieces(n: usize) -> Vec<String> {
    (0..n).map(|i| if i == 0 { "w0".to_owned() } else { format!(" w{i}") }).collect()
}

/// Pieces with multi-byte characters of 2, 3 and 4 bytes.
pub fn unicode_pieces() -> Vec<String> {
    ["Grüße", " aus", " 東京", " 🎉🦀", " ok", "."].iter().map(|s| (*s).to_owned()).collect()
}

pub fn joined(pieces: &[String]) -> String {
    pieces.concat()
}

impl FakeOpenAi {
    /// Starts the fake on a free port with `default` as the mode of every call.
    pub async fn start(default: Mode) -> Self {
        let (gate, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            calls: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            gate,
        });
        let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake upstream");
        let port = listener.local_addr().expect("fake addr").port();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, port }
    }

    /// The `base_url` to configure (`{base_url}/chat/completions` is served).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Sets the mode of every later call (after any queued ones).
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.default.lock().expect("lock") = mode;
    }

    /// Queues a mode for the next call that has no earlier queued mode.
    pub fn push_mode(&self, mode: Mode) {
        self.shared.queue.lock().expect("lock").push_back(mode);
    }

    /// Lets every `Gated` stream, current and future, go on.
    pub fn release(&self) {
        let _ = self.shared.gate.send(true);
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
        self.requests().pop().expect("the fake upstream received no request")
    }
}

async fn completions(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.requests.lock().expect("lock").push(Captured { body, authorization, at: Instant::now() });
    let queued = shared.queue.lock().expect("lock").pop_front();
    let mode = queued.unwrap_or_else(|| shared.default.lock().expect("lock").clone());
    match mode {
        Mode::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_secs.to_string()), ("content-type", "application/json".to_owned())],
            error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded").to_string(),
        )
            .into_response(),
        Mode::RateLimitedMs(ms) => (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("retry-after-ms", ms.to_string()),
                ("retry-after", ms.div_ceil(1000).to_string()),
                ("content-type", "application/json".to_owned()),
            ],
            error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded").to_string(),
        )
            .into_response(),
        Mode::BadRequest => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            error_body(
                "This model's maximum context length is 128000 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
            )
            .to_string(),
        )
            .into_response(),
        Mode::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/json")],
            error_body(
                "The server had an error while processing your request.",
                "server_error",
                "server_error",
            )
            .to_string(),
        )
            .into_response(),
        mode => stream_response(shared.clone(), steps(&mode)),
    }
}

fn error_body(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1727346168,
        "model": "gpt-fake-2024-08-06", "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    })
    .to_string()
}

fn event(data: &str, crlf: bool) -> Step {
    let end = if crlf { "\r\n" } else { "\n" };
    Step::Bytes(Bytes::from(format!("data: {data}{end}{end}")))
}

fn role(crlf: bool) -> Step {
    event(&chunk(json!({"role": "assistant", "content": "", "refusal": null}), None), crlf)
}

fn content(piece: &str, crlf: bool) -> Step {
    event(&chunk(json!({"content": piece}), None), crlf)
}

fn ending(n: usize, usage: bool, crlf: bool) -> Vec<Step> {
    let mut out = vec![event(&chunk(json!({}), Some("stop")), crlf)];
    if usage {
        let u = json!({
            "id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1727346168,
            "model": "gpt-fake-2024-08-06", "system_fingerprint": "fp_1", "choices": [],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n,
                      "total_tokens": PROMPT_TOKENS + n as u64, "completion_tokens_details": {"reasoning_tokens": 0}}
        });
        out.push(event(&u.to_string(), crlf));
    }
    out.push(event("[DONE]", crlf));
    out
}

fn normal(pieces: &[String], interval: Option<Duration>, usage: bool, crlf: bool) -> Vec<Step> {
    let mut out = vec![role(crlf)];
    for p in pieces {
        if let Some(i) = interval {
            out.push(Step::Sleep(i));
        }
        out.push(content(p, crlf));
    }
    out.extend(ending(pieces.len(), usage, crlf));
    out
}

fn steps(mode: &Mode) -> Vec<Step> {
    match mode {
        Mode::Normal(p) => normal(p, None, true, false),
        Mode::Paced { pieces, interval } => normal(pieces, Some(*interval), true, false),
        Mode::NoUsage(p) => normal(p, None, false, false),
        Mode::SplitBytes(p) => {
            let mut out = Vec::new();
            for step in normal(p, None, true, false) {
                if let Step::Bytes(b) = step {
                    for (i, byte) in b.iter().enumerate() {
                        out.push(Step::Bytes(Bytes::copy_from_slice(&[*byte])));
                        if i % 64 == 63 {
                            out.push(Step::Sleep(Duration::from_millis(1)));
                        }
                    }
                }
            }
            out
        }
        Mode::KeepAlive(p) => {
            let mut out = vec![Step::Bytes(Bytes::from_static(b": OPENROUTER PROCESSING\r\n\r\n"))];
            for step in normal(p, None, true, true) {
                out.push(step);
                out.push(Step::Bytes(Bytes::from_static(b": OPENROUTER PROCESSING\r\n\r\n")));
            }
            out
        }
        Mode::SlowFirstToken { delay, pieces } => {
            let mut out = vec![role(false), Step::Sleep(*delay)];
            out.extend(normal(pieces, None, true, false).into_iter().skip(1));
            out
        }
        Mode::Stall(before) => {
            let mut out: Vec<Step> = vec![role(false)];
            out.extend(before.iter().map(|p| content(p, false)));
            out.push(Step::Hang);
            out
        }
        Mode::MidStreamError(before) => {
            let mut out: Vec<Step> = vec![role(false)];
            out.extend(before.iter().map(|p| content(p, false)));
            let err = error_body(
                "The server had an error while processing your request.",
                "server_error",
                "server_error",
            );
            out.push(event(&err.to_string(), false));
            out
        }
        Mode::DropConnection(before) => {
            let mut out: Vec<Step> = vec![role(false)];
            out.extend(before.iter().map(|p| content(p, false)));
            out.push(Step::Sleep(Duration::from_millis(20)));
            out.push(Step::Fail);
            out
        }
        Mode::Gated { before, after } => {
            let mut out: Vec<Step> = vec![role(false)];
            out.extend(before.iter().map(|p| content(p, false)));
            out.push(Step::WaitGate);
            out.extend(after.iter().map(|p| content(p, false)));
            out.extend(ending(before.len() + after.len(), true, false));
            out
        }
        Mode::RateLimited { .. } | Mode::RateLimitedMs(_) | Mode::ServerError | Mode::BadRequest => {
            Vec::new()
        }
    }
}

/// Counts a body as completed when its steps ran out, as dropped otherwise.
struct Tracker {
    shared: Arc<Shared>,
    steps: VecDeque<Step>,
    gate: watch::Receiver<bool>,
    finished: bool,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let counter = if self.finished { &self.shared.completed } else { &self.shared.dropped };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn stream_response(shared: Arc<Shared>, steps: Vec<Step>) -> Response {
    let tracker = Tracker { gate: shared.gate.subscribe(), shared, steps: steps.into(), finished: false };
    let stream = futures_util::stream::unfold(tracker, |mut t| async move {
        loop {
            let Some(step) = t.steps.pop_front() else {
                t.finished = true;
                drop(t);
                return None;
            };
            match step {
                Step::Bytes(b) => return Some((Ok::<Bytes, std::io::Error>(b), t)),
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::WaitGate => {
                    let _ = t.gate.wait_for(|open| *open).await;
                }
                Step::Hang => std::future::pending::<()>().await,
                Step::Fail => {
                    t.finished = true;
                    return Some((Err(std::io::Error::other("connection dropped on purpose")), t));
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("x-request-id", "req_fake_1")
        .body(Body::from_stream(stream))
        .expect("fake response")
}
