//! A fake OpenAI Chat Completions upstream that replays the real streaming wire
//! format, with failure modes, a call counter, captured requests, and a record
//! of whether each response body was read to its end or dropped by the client.

use super::fake_upstream::{serve, Step, Upstream};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::ops::Deref;
use std::sync::Arc;
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
    /// `text` first, then these tool calls (`(id, name, arguments)`, the
    /// arguments streamed a few characters a chunk), ending in
    /// `finish_reason: "tool_calls"`, as OpenAI streams them.
    ToolCalls { text: Vec<String>, calls: Vec<(String, String, String)> },
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub body: Value,
    pub authorization: Option<String>,
    pub at: Instant,
}

struct Shared {
    upstream: Upstream<Mode, Captured>,
    gate: watch::Sender<bool>,
}

/// The running fake; it stops with the test's runtime. Its calls, requests
/// and bodies are those of its [`Upstream`].
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
        let shared = Arc::new(Shared { upstream: Upstream::new(default), gate });
        let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(shared.clone());
        Self { shared, port: serve(app).await }
    }

    /// The `base_url` to configure (`{base_url}/chat/completions` is served).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Lets every `Gated` stream, current and future, go on.
    pub fn release(&self) {
        let _ = self.shared.gate.send(true);
    }
}

impl Deref for FakeOpenAi {
    type Target = Upstream<Mode, Captured>;

    fn deref(&self) -> &Self::Target {
        &self.shared.upstream
    }
}

async fn completions(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let upstream = &shared.upstream;
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    upstream.record(Captured { body, authorization, at: Instant::now() });
    let mode = upstream.next_mode();
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
        mode => upstream.stream(
            &[("content-type", "text/event-stream"), ("x-request-id", "req_fake_1")],
            steps(&mode, &shared.gate),
        ),
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

fn steps(mode: &Mode, gate: &watch::Sender<bool>) -> Vec<Step> {
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
            out.push(Step::Wait(gate.subscribe()));
            out.extend(after.iter().map(|p| content(p, false)));
            out.extend(ending(before.len() + after.len(), true, false));
            out
        }
        Mode::ToolCalls { text, calls } => {
            let mut out: Vec<Step> = vec![role(false)];
            out.extend(text.iter().map(|p| content(p, false)));
            for (index, (id, name, arguments)) in calls.iter().enumerate() {
                let start = json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]});
                out.push(event(&chunk(start, None), false));
                let chars: Vec<char> = arguments.chars().collect();
                for piece in chars.chunks(5) {
                    let piece: String = piece.iter().collect();
                    let more = json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
                    out.push(event(&chunk(more, None), false));
                }
            }
            let mut end = ending(text.len() + calls.len(), true, false);
            end[0] = event(&chunk(json!({}), Some("tool_calls")), false);
            out.extend(end);
            out
        }
        Mode::RateLimited { .. } | Mode::RateLimitedMs(_) | Mode::ServerError | Mode::BadRequest => {
            Vec::new()
        }
    }
}

/// One call for [`Mode::ToolCalls`].
pub fn tool_call(id: &str, name: &str, arguments: &str) -> (String, String, String) {
    (id.to_owned(), name.to_owned(), arguments.to_owned())
}
