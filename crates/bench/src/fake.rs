//! A zero-delay fake OpenAI Chat Completions server for benchmarks. It replays
//! the recorded wire shape (role chunk, content chunks, finish chunk, usage chunk
//! with `choices: []`, `[DONE]`) from bytes rendered once at start, so its own
//! cost per request stays far below what is being measured. Not a test double:
//! it has no failure modes and does not look at the request, except with a
//! tool round (`start_with_tool_call`): then a request whose messages hold no
//! `role: "tool"` result yet is answered with a streamed call of
//! [`TOOL_NAME`], and one that holds it with the text as usual.
//!
//! Paced (a gap between content chunks, as a real model has between tokens),
//! it also notes when it handed each content chunk to the socket, on the same
//! clock the load generator reads, so a delta's path through Switchboard can
//! be timed end to end.

use crate::error::Result;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Prompt tokens the usage chunk reports; any fixed number will do.
const PROMPT_TOKENS: u32 = 14;

/// The rendered events of one completion, each its own body frame so the
/// response is chunked like a real stream rather than one sized body.
struct Rendered {
    events: Vec<Bytes>,
    calls: AtomicU64,
    /// TCP connections accepted: far fewer than `calls` when the server
    /// keeps its upstream connections alive.
    connections: AtomicU64,
    /// Zero: every event at once. Otherwise the wait before each content chunk
    /// after the first, and the times below are kept.
    gap: Duration,
    /// Per completion (in the order they started), when each content chunk was
    /// handed to the response body.
    sent: Mutex<Vec<Vec<Instant>>>,
    /// With a tool round: the events of the tool-call answer after its first
    /// chunk (which carries a call id of its own, rendered per request).
    tool_call: Option<Vec<Bytes>>,
    /// With a tool round: tool-call answers served, and how long each
    /// completion took from the handler to the end of its body.
    tool_calls: AtomicU64,
    served: Mutex<Vec<Duration>>,
}

/// The tool the fake calls with a tool round, and its arguments (JSON text).
pub const TOOL_NAME: &str = "search_products";
pub const TOOL_ARGUMENTS: &str = r#"{"query":"running shoes"}"#;

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
        Self::serve(listen, Self::rendered(chunks, gap, None)).await
    }

    /// Like `start`, answering with a tool call until the request carries its
    /// result (see the module's header); the own time of every completion is
    /// kept (see `take_served`).
    pub async fn start_with_tool_call(listen: SocketAddr, chunks: u32) -> Result<Self> {
        Self::serve(listen, Self::rendered(chunks, Duration::ZERO, Some(render_tool_call()))).await
    }

    fn rendered(chunks: u32, gap: Duration, tool_call: Option<Vec<Bytes>>) -> Rendered {
        Rendered {
            events: render(chunks),
            calls: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            gap,
            sent: Mutex::new(Vec::new()),
            tool_call,
            tool_calls: AtomicU64::new(0),
            served: Mutex::new(Vec::new()),
        }
    }

    async fn serve(listen: SocketAddr, rendered: Rendered) -> Result<Self> {
        let shared = Arc::new(rendered);
        let app = Router::new().route("/v1/chat/completions", post(completion)).with_state(shared.clone());
        let counted = shared.clone();
        let accepted = move || {
            counted.connections.fetch_add(1, Ordering::Relaxed);
        };
        let (addr, task) = crate::harness::serve("fake upstream", listen, app, accepted).await?;
        Ok(Self { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Completions served so far (to check the server really called upstream).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Tool-call answers served so far (with a tool round).
    pub fn tool_calls(&self) -> u64 {
        self.shared.tool_calls.load(Ordering::Relaxed)
    }

    /// With a tool round: each completion's time from its handler to the end
    /// of its body, since the last call.
    pub fn take_served(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.shared.served.lock().unwrap_or_else(PoisonError::into_inner))
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

/// The body is taken (and dropped, unless there is a tool round) so the
/// connection can be kept alive.
async fn completion(State(shared): State<Arc<Rendered>>, request: Bytes) -> Response {
    let call = shared.calls.fetch_add(1, Ordering::Relaxed);
    let body = if shared.tool_call.is_some() {
        with_tool_call(shared, &request, call)
    } else if shared.gap.is_zero() {
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

/// A tool call (with an id of its own) while the request holds no tool
/// result, else the text; the time to the end of the body is noted.
fn with_tool_call(shared: Arc<Rendered>, request: &[u8], call: u64) -> Body {
    let start = Instant::now();
    let frames = match &shared.tool_call {
        Some(rest) if !crate::sse::contains(request, br#""role":"tool""#) => {
            shared.tool_calls.fetch_add(1, Ordering::Relaxed);
            let mut frames = Vec::with_capacity(rest.len() + 1);
            frames.push(first_tool_chunk(call));
            frames.extend(rest.iter().cloned());
            frames
        }
        _ => shared.events.clone(),
    };
    // Polled once the last frame has been taken: the completion's own end.
    let end = futures_util::stream::once(async move {
        shared.served.lock().unwrap_or_else(PoisonError::into_inner).push(start.elapsed());
    })
    .filter_map(|()| std::future::ready(None));
    Body::from_stream(futures_util::stream::iter(frames.into_iter().map(Ok::<_, Infallible>)).chain(end))
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

/// One `chat.completion.chunk` event; `rest` is its fields after the common ones.
fn event(rest: &str) -> Bytes {
    let head = r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,"model":"bench","system_fingerprint":"fp_bench","#;
    Bytes::from(format!("data: {head}{rest}}}\n\n"))
}

/// The first chunk of a tool-call answer: role, call id, name, empty arguments.
fn first_tool_chunk(call: u64) -> Bytes {
    event(&format!(
        r#""choices":[{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"call_bench{call}","type":"function","function":{{"name":"{TOOL_NAME}","arguments":""}}}}]}},"logprobs":null,"finish_reason":null}}]"#
    ))
}

/// The rest of a tool-call answer, as recorded from a real model: the
/// arguments in two fragments, the `tool_calls` finish, usage, `[DONE]`.
fn render_tool_call() -> Vec<Bytes> {
    let half = TOOL_ARGUMENTS.len() / 2;
    let fragment = |text: &str| {
        let text = serde_json::Value::from(text).to_string();
        event(&format!(
            r#""choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{text}}}}}]}},"logprobs":null,"finish_reason":null}}]"#
        ))
    };
    vec![
        fragment(&TOOL_ARGUMENTS[..half]),
        fragment(&TOOL_ARGUMENTS[half..]),
        event(r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]"#),
        event(&format!(
            r#""choices":[],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":9,"total_tokens":{},"completion_tokens_details":{{"reasoning_tokens":0}}}}"#,
            PROMPT_TOKENS + 9
        )),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ]
}

/// Renders one completion of `chunks` content chunks as SSE events.
fn render(chunks: u32) -> Vec<Bytes> {
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

    #[test]
    fn a_tool_call_answer_carries_the_arguments_in_fragments_and_ends_in_tool_calls() {
        let mut events = vec![first_tool_chunk(7)];
        events.extend(render_tool_call());
        let json: Vec<serde_json::Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_slice(&e[6..e.len() - 2]).unwrap())
            .collect();
        let call = &json[0]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (call["id"].as_str(), call["function"]["name"].as_str()),
            (Some("call_bench7"), Some(TOOL_NAME))
        );
        let arguments: String = json
            .iter()
            .filter_map(|j| j["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(arguments, TOOL_ARGUMENTS);
        assert_eq!(json[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(&events[events.len() - 1][..], b"data: [DONE]\n\n");
    }

    #[tokio::test]
    async fn with_a_tool_round_the_text_comes_once_the_request_holds_the_result() {
        let up = FakeUpstream::start_with_tool_call("127.0.0.1:0".parse().unwrap(), 2).await.unwrap();
        let url = format!("http://{}/v1/chat/completions", up.addr());
        let post = |body: &'static str| {
            let url = url.clone();
            async move { reqwest::Client::new().post(url).body(body).send().await.unwrap().text().await.unwrap() }
        };
        let first = post(r#"{"messages":[{"role":"user","content":"hi"}]}"#).await;
        assert!(first.contains(r#""finish_reason":"tool_calls""#) && !first.contains("Bench"));
        let second =
            post(r#"{"messages":[{"role":"tool","tool_call_id":"call_bench0","content":"{}"}]}"#).await;
        assert!(second.contains("Bench") && second.ends_with("data: [DONE]\n\n"));
        assert_eq!((up.calls(), up.tool_calls(), up.take_served().len()), (2, 1, 2));
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
