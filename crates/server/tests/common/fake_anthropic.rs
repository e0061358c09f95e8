//! A fake Anthropic Messages API (`POST /v1/messages`) that replays the
//! recorded streaming wire format (message_start with usage,
//! content_block_start, ping, text deltas, content_block_stop, message_delta
//! with the stop reason and cumulative output count, message_stop), with
//! failure modes queued per call, captured requests, and a record of whether
//! each response body was read to its end or dropped by the client.

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
    /// Text pieces in a text block, then one `tool_use` block per call
    /// `(id, name, arguments JSON)`, its input streamed as `input_json_delta`
    /// in two parts, and `stop_reason: "tool_use"`.
    ToolUse { text: Vec<String>, calls: Vec<(String, String, String)> },
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

/// The running fake; it stops with the test's runtime. Its calls, requests
/// and bodies are those of its [`Upstream`].
#[derive(Clone)]
pub struct FakeAnthropic {
    upstream: Arc<Upstream<AnthropicMode, Captured>>,
    port: u16,
}

impl FakeAnthropic {
    /// Starts the fake on a free port with `default` as the mode of every call.
    pub async fn start(default: AnthropicMode) -> Self {
        let upstream = Arc::new(Upstream::new(default));
        let app = Router::new().route("/v1/messages", post(messages)).with_state(upstream.clone());
        Self { upstream, port: serve(app).await }
    }

    /// The `base_url` to configure: the vendor's convention has no `/v1`
    /// (`{base_url}/v1/messages` is served).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Deref for FakeAnthropic {
    type Target = Upstream<AnthropicMode, Captured>;

    fn deref(&self) -> &Self::Target {
        &self.upstream
    }
}

async fn messages(
    State(upstream): State<Arc<Upstream<AnthropicMode, Captured>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    upstream.record(Captured { body, headers, at: Instant::now() });
    let stream = |steps| {
        let headers = [("content-type", "text/event-stream; charset=utf-8"), ("request-id", "req_fake_1")];
        upstream.stream(&headers, steps)
    };
    match upstream.next_mode() {
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
        AnthropicMode::Normal(pieces) => stream(transcript(&pieces, None)),
        AnthropicMode::ToolUse { text, calls } => stream(tool_use(&text, &calls)),
        AnthropicMode::Paced { pieces, interval } => stream(transcript(&pieces, Some(interval))),
        AnthropicMode::StreamOverloaded => {
            let error =
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
            let steps =
                vec![message_start(), event("ping", &json!({"type": "ping"})), event("error", &error)];
            stream(steps)
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

/// The recorded shape of an answer that ends in tool calls: an optional
/// text block at index 0, then each `tool_use` block with its input in
/// `input_json_delta` parts (the first one empty, as the API sends it).
fn tool_use(text: &[String], calls: &[(String, String, String)]) -> Vec<Step> {
    let mut out = vec![message_start()];
    let mut index = 0;
    if !text.is_empty() {
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        for piece in text {
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        out.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
        index = 1;
    }
    for (id, name, arguments) in calls {
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ));
        let half = arguments.char_indices().nth(arguments.chars().count() / 2).map_or(0, |(i, _)| i);
        for part in ["", &arguments[..half], &arguments[half..]] {
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        out.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    out.push(event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": OUTPUT_TOKENS}}),
    ));
    out.push(event("message_stop", &json!({"type": "message_stop"})));
    out
}
