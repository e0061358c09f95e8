//! The `openai` provider against a fake Chat Completions server that replays
//! the recorded wire format, in the modes real upstreams misbehave in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures_util::stream::{self, StreamExt};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use switchboard_core::model::{FinishReason, Role, Usage};
use switchboard_core::provider::{ChatRequest, HistoryMessage, Provider, ProviderError, ProviderEvent};
use switchboard_core::tenant::{ProviderKind, ProviderSettings};
use switchboard_providers::OpenAiProvider;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    ByteSplit,
    CrLf,
    KeepAlive,
    MidStreamError,
    RateLimited,
    ServerError,
    Unauthorized,
    QuotaExceeded,
    ShouldNotRetry,
    NoUsage,
    Dropped,
    EndsEarly,
    DroppedBeforeText,
    EndsBeforeText,
    EndsAfterFinish,
    LlamaCpp,
    Azure,
}

const HEAD: &str = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1""#;
const WORDS: [&str; 4] = ["I'm", " fine,", " thanks", " 🌍!"];
const ANSWER: &str = "I'm fine, thanks 🌍!";

fn frame(json: &str) -> String {
    format!("data: {json}\n\n")
}

fn role_chunk() -> String {
    frame(&format!(
        r#"{{{HEAD},"choices":[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}]}}"#
    ))
}

fn content_chunk(text: &str) -> String {
    let text = serde_json::to_string(text).unwrap();
    frame(&format!(
        r#"{{{HEAD},"service_tier":"default","choices":[{{"index":0,"delta":{{"content":{text}}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
    ))
}

fn finish_chunk(usage: bool) -> String {
    let usage =
        if usage { r#","usage":{"prompt_tokens":14,"completion_tokens":30,"total_tokens":44}"# } else { "" };
    frame(&format!(
        r#"{{{HEAD},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]{usage}}}"#
    ))
}

fn usage_chunk() -> String {
    frame(&format!(
        r#"{{{HEAD},"choices":[],"usage":{{"prompt_tokens":14,"completion_tokens":30,"total_tokens":44,"completion_tokens_details":{{"reasoning_tokens":0}}}}}}"#
    ))
}

const DONE: &str = "data: [DONE]\n\n";

/// The body frames of a mode; `None` in the list means "break the connection".
fn frames(mode: Mode) -> Vec<Option<String>> {
    let content = || WORDS.iter().map(|w| content_chunk(w)).collect::<Vec<_>>();
    let mut out = vec![role_chunk()];
    match mode {
        Mode::MidStreamError => {
            out.push(content_chunk(WORDS[0]));
            out.push(frame(r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#));
            out.push(content_chunk("never seen"));
        }
        Mode::DroppedBeforeText => return vec![Some(role_chunk()), None],
        Mode::EndsBeforeText => return vec![Some(role_chunk())],
        Mode::Dropped | Mode::EndsEarly => {
            out.push(content_chunk(WORDS[0]));
            let mut out: Vec<Option<String>> = out.into_iter().map(Some).collect();
            if mode == Mode::Dropped {
                out.push(None);
            }
            return out;
        }
        Mode::KeepAlive => {
            for c in content() {
                out.push(": OPENROUTER PROCESSING\n\n".into());
                out.push(c);
            }
            out.extend([finish_chunk(false), ":\n\n".into(), usage_chunk(), DONE.into()]);
        }
        Mode::LlamaCpp => out.extend(content().into_iter().chain([finish_chunk(true), DONE.into()])),
        Mode::NoUsage => out.extend(content().into_iter().chain([finish_chunk(false), DONE.into()])),
        Mode::EndsAfterFinish => out.extend(content().into_iter().chain([finish_chunk(false)])),
        Mode::Azure => {
            out.insert(0, frame(r#"{"id":"","object":"","created":0,"model":"","choices":[],"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#));
            out.extend(content());
            out.push(frame(r#"{"id":"x","choices":[{"index":0,"finish_reason":null,"content_filter_results":{"hate":{"filtered":false}}}]}"#));
            out.extend([finish_chunk(false), usage_chunk(), DONE.into()]);
        }
        _ => out.extend(content().into_iter().chain([finish_chunk(false), usage_chunk(), DONE.into()])),
    }
    let out = out.into_iter().map(|f| if mode == Mode::CrLf { f.replace('\n', "\r\n") } else { f });
    out.map(Some).collect()
}

#[derive(Debug)]
struct Captured {
    peer: SocketAddr,
    headers: HeaderMap,
    body: serde_json::Value,
}

#[derive(Clone)]
struct Fake {
    mode: Mode,
    captured: Arc<Mutex<Vec<Captured>>>,
}

async fn completions(
    State(fake): State<Fake>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    fake.captured.lock().unwrap().push(Captured { peer, headers, body });
    let error = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("retry-after", "7")
            .header("x-request-id", "req_1")
            .body(Body::from(body))
            .unwrap()
    };
    match fake.mode {
        Mode::RateLimited => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#.into(),
            )
        }
        Mode::ServerError => return error(StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(20_000)),
        Mode::Unauthorized => {
            return error(
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"message":"Incorrect API key provided: sk-***.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
            )
        }
        Mode::QuotaExceeded => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#.into(),
            )
        }
        Mode::ShouldNotRetry => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":{"message":"no"}}"#.into());
            response.headers_mut().insert("x-should-retry", "false".parse().unwrap());
            return response;
        }
        _ => {}
    }
    let mut pieces: Vec<Result<Bytes, std::io::Error>> = Vec::new();
    for f in frames(fake.mode) {
        match f {
            Some(f) if fake.mode == Mode::ByteSplit => {
                pieces.extend(f.into_bytes().into_iter().map(|b| Ok(Bytes::from(vec![b]))));
            }
            Some(f) => pieces.push(Ok(Bytes::from(f))),
            None => pieces.push(Err(std::io::Error::other("upstream went away"))),
        }
    }
    // Yielding before every piece makes the server flush it on its own.
    let body = stream::iter(pieces).then(|p| async move {
        tokio::task::yield_now().await;
        p
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("x-request-id", "req_1")
        .body(Body::from_stream(body))
        .unwrap()
}

async fn spawn(mode: Mode) -> (String, Arc<Mutex<Vec<Captured>>>) {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(Fake { mode, captured: captured.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1/"), captured)
}

fn settings(base_url: &str) -> ProviderSettings {
    ProviderSettings {
        base_url: Some(base_url.into()),
        ..ProviderSettings::new(ProviderKind::Openai, "gpt-4o-mini")
    }
}

fn request() -> ChatRequest {
    let m = |role, content: &str| HistoryMessage { role, content: content.into() };
    ChatRequest {
        system_prompt: Some("You are Acme's shop assistant.".into()),
        history: vec![
            m(Role::User, "Hi"),
            m(Role::Assistant, "Hello! How can I help?"),
            m(Role::System, "An agent joined."),
            m(Role::Agent, "Hi, this is Sam."),
            m(Role::User, "How are you?"),
        ]
        .into(),
        session_id: uuid::Uuid::nil(),
        subject: "visitor:test".into(),
        conversation_id: None,
    }
}

/// Runs a turn against a fake in `mode`; every item of the stream, in order.
async fn run(mode: Mode) -> Vec<Result<ProviderEvent, ProviderError>> {
    let (base, _) = spawn(mode).await;
    let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
    provider.stream(request()).await.unwrap().collect().await
}

fn text_of(items: &[Result<ProviderEvent, ProviderError>]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(ProviderEvent::Delta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn complete(usage: bool) -> Vec<Result<ProviderEvent, ProviderError>> {
    let mut out: Vec<_> = WORDS.iter().map(|w| Ok(ProviderEvent::Delta((*w).into()))).collect();
    out.push(Ok(ProviderEvent::Finish(FinishReason::Stop)));
    if usage {
        out.push(Ok(ProviderEvent::Usage(Usage::new(14, 30, false))));
    }
    out
}

#[tokio::test]
async fn streams_the_recorded_shape() {
    let items = run(Mode::Normal).await;
    assert_eq!(items, complete(true));
    assert_eq!(text_of(&items), ANSWER);
}

#[tokio::test]
async fn tolerates_every_split_line_endings_and_keep_alives() {
    for mode in [Mode::ByteSplit, Mode::CrLf, Mode::KeepAlive, Mode::Azure] {
        assert_eq!(run(mode).await, complete(true), "{mode:?}");
    }
}

#[tokio::test]
async fn usage_may_be_missing_or_on_the_finish_chunk() {
    assert_eq!(run(Mode::NoUsage).await, complete(false));
    assert_eq!(run(Mode::LlamaCpp).await, complete(true));
    // Closing after the finish without `[DONE]` is still a complete answer.
    assert_eq!(run(Mode::EndsAfterFinish).await, complete(false));
}

#[tokio::test]
async fn a_mid_stream_error_ends_the_stream_after_the_text_so_far() {
    let items = run(Mode::MidStreamError).await;
    assert_eq!(items[0], Ok(ProviderEvent::Delta("I'm".into())));
    assert_eq!(items.len(), 2);
    let Err(ProviderError::Transient(message)) = &items[1] else { panic!("{items:?}") };
    assert!(message.contains("The server had an error"), "{message}");
}

#[tokio::test]
async fn a_stream_cut_short_is_an_error() {
    for mode in [Mode::Dropped, Mode::EndsEarly] {
        let items = run(mode).await;
        assert_eq!(items.len(), 2, "{mode:?}: {items:?}");
        assert_eq!(items[0], Ok(ProviderEvent::Delta("I'm".into())));
        assert!(matches!(items[1], Err(ProviderError::Unavailable(_))), "{mode:?}: {items:?}");
    }
    let items = run(Mode::EndsEarly).await;
    assert_eq!(items[1], Err(ProviderError::Unavailable("stream ended early".into())));
    let items = run(Mode::Dropped).await;
    let Err(ProviderError::Unavailable(message)) = &items[1] else { panic!("{items:?}") };
    assert!(message.starts_with("stream broke off"), "{message}");
}

#[tokio::test]
async fn a_stream_cut_before_any_text_is_worth_another_attempt() {
    for mode in [Mode::DroppedBeforeText, Mode::EndsBeforeText] {
        let items = run(mode).await;
        assert_eq!(items.len(), 1, "{mode:?}: {items:?}");
        assert!(
            matches!(&items[0], Err(e @ ProviderError::Transient(_)) if e.retryable()),
            "{mode:?}: {items:?}"
        );
    }
}

#[tokio::test]
async fn refusals_carry_status_retry_hint_and_a_truncated_body() {
    let (base, _) = spawn(Mode::RateLimited).await;
    let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
    let err = provider.stream(request()).await.map(|_| ()).unwrap_err();
    assert!(err.retryable());
    let ProviderError::Refused { status: 429, retry_after, message, .. } = err else { panic!("{err:?}") };
    assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)));
    assert!(message.contains("rate_limit_exceeded"), "{message}");

    let (base, _) = spawn(Mode::ServerError).await;
    let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
    let err = provider.stream(request()).await.map(|_| ()).unwrap_err();
    assert!(err.retryable());
    let ProviderError::Refused { status: 500, message, .. } = err else { panic!("{err:?}") };
    assert!(message.len() < 1000, "body truncated for the log: {} bytes", message.len());
}

#[tokio::test]
async fn refusals_that_will_repeat_are_not_retryable() {
    for (mode, status) in [(Mode::Unauthorized, 401), (Mode::QuotaExceeded, 429), (Mode::ShouldNotRetry, 503)]
    {
        let (base, _) = spawn(mode).await;
        let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
        let err = provider.stream(request()).await.map(|_| ()).unwrap_err();
        assert!(matches!(err, ProviderError::Refused { status: s, .. } if s == status), "{mode:?}: {err:?}");
        assert!(!err.retryable(), "{mode:?}: {err:?}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let provider = OpenAiProvider::new(&settings(&format!("http://{addr}/v1")), None).unwrap();
    let result = provider.stream(request()).await.map(|_| ());
    assert!(
        matches!(&result, Err(e @ ProviderError::Connect { timed_out: false, .. }) if e.retryable()),
        "{result:?}"
    );
}

#[tokio::test]
async fn sends_the_request_the_contract_describes() {
    let (base, captured) = spawn(Mode::Normal).await;
    let mut s = settings(&base);
    s.max_tokens = Some(512);
    s.temperature = Some(0.3);
    let provider = OpenAiProvider::new(&s, Some(SecretString::from("sk-test"))).unwrap();
    assert_eq!(provider.url(), format!("{base}chat/completions"));
    let _ = provider.stream(request()).await.unwrap().collect::<Vec<_>>().await;

    let captured = captured.lock().unwrap();
    let Captured { headers, body, .. } = &captured[0];
    assert_eq!(headers["authorization"], "Bearer sk-test");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["accept"], "text/event-stream");
    let expected = serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "You are Acme's shop assistant."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "assistant", "content": "Hi, this is Sam."},
            {"role": "user", "content": "How are you?"},
        ],
        "max_tokens": 512,
        "temperature": 0.3,
    });
    assert_eq!(body, &expected);
}

#[tokio::test]
async fn without_a_key_or_options_nothing_extra_is_sent() {
    let (base, captured) = spawn(Mode::Normal).await;
    let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
    let mut req = request();
    req.system_prompt = None;
    let _ = provider.stream(req).await.unwrap().collect::<Vec<_>>().await;

    let captured = captured.lock().unwrap();
    let Captured { headers, body, .. } = &captured[0];
    assert!(headers.get("authorization").is_none());
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["messages", "model", "stream", "stream_options"]);
    assert_eq!(body["messages"][0]["role"], "user");
}

#[tokio::test]
async fn connections_are_reused_across_turns() {
    let (base, captured) = spawn(Mode::Normal).await;
    let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
    for _ in 0..5 {
        let items: Vec<_> = provider.stream(request()).await.unwrap().collect().await;
        assert_eq!(items, complete(true));
    }
    let captured = captured.lock().unwrap();
    let mut peers: Vec<SocketAddr> = captured.iter().map(|c| c.peer).collect();
    peers.sort_unstable();
    peers.dedup();
    assert!(peers.len() < 5, "a new connection per turn: {peers:?}");
}
