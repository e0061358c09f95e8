//! The `openai` provider against a fake Chat Completions server that replays
//! the recorded wire format, in the modes real upstreams misbehave in.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::response::Response;
use common::{collect, start_error, text_of, Captured, Items, Requests};
use secrecy::SecretString;
use switchboard_core::model::{FinishReason, Role, Usage};
use switchboard_core::provider::{ChatRequest, ProviderError, ProviderEvent};
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

fn completions(mode: &Mode, _: &Captured) -> Response {
    let error = |status: u16, body: String| {
        common::json_error(status, &[("retry-after", "7"), ("x-request-id", "req_1")], body)
    };
    match mode {
        Mode::RateLimited => {
            return error(
                429,
                r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#.into(),
            )
        }
        Mode::ServerError => return error(500, "x".repeat(20_000)),
        Mode::Unauthorized => {
            return error(
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-***.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
            )
        }
        Mode::QuotaExceeded => {
            return error(
                429,
                r#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#.into(),
            )
        }
        Mode::ShouldNotRetry => {
            let mut response = error(503, r#"{"error":{"message":"no"}}"#.into());
            response.headers_mut().insert("x-should-retry", "false".parse().unwrap());
            return response;
        }
        _ => {}
    }
    let pieces = common::pieces(frames(*mode), *mode == Mode::ByteSplit);
    common::stream_response(&[("content-type", "text/event-stream"), ("x-request-id", "req_1")], pieces)
}

async fn spawn(mode: Mode) -> (String, Requests) {
    let (addr, captured) = common::spawn("/v1/chat/completions", mode, completions).await;
    (format!("http://{addr}/v1/"), captured)
}

fn settings(base_url: &str) -> ProviderSettings {
    common::settings(ProviderKind::Openai, "gpt-4o-mini", base_url)
}

fn request() -> ChatRequest {
    common::request(&[
        (Role::User, "Hi"),
        (Role::Assistant, "Hello! How can I help?"),
        (Role::System, "An agent joined."),
        (Role::Agent, "Hi, this is Sam."),
        (Role::User, "How are you?"),
    ])
}

/// Runs a turn against a fake in `mode`; every item of the stream, in order.
async fn run(mode: Mode) -> Items {
    let (base, _) = spawn(mode).await;
    collect(&OpenAiProvider::new(&settings(&base), None).unwrap(), request()).await
}

fn complete(usage: bool) -> Items {
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
    let err = start_error(&provider, request()).await;
    assert!(err.retryable());
    let ProviderError::Refused { status: 429, retry_after, message, .. } = err else { panic!("{err:?}") };
    assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)));
    assert!(message.contains("rate_limit_exceeded"), "{message}");

    let (base, _) = spawn(Mode::ServerError).await;
    let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
    let err = start_error(&provider, request()).await;
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
        let err = start_error(&provider, request()).await;
        assert!(matches!(err, ProviderError::Refused { status: s, .. } if s == status), "{mode:?}: {err:?}");
        assert!(!err.retryable(), "{mode:?}: {err:?}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error() {
    let base = format!("http://{}/v1", common::closed_addr());
    let provider = OpenAiProvider::new(&settings(&base), None).unwrap();
    let err = start_error(&provider, request()).await;
    assert!(matches!(&err, e @ ProviderError::Connect { timed_out: false, .. } if e.retryable()), "{err:?}");
}

#[tokio::test]
async fn sends_the_request_the_contract_describes() {
    let (base, captured) = spawn(Mode::Normal).await;
    let mut s = settings(&base);
    s.max_tokens = Some(512);
    s.temperature = Some(0.3);
    let provider = OpenAiProvider::new(&s, Some(SecretString::from("sk-test"))).unwrap();
    assert_eq!(provider.url(), format!("{base}chat/completions"));
    let _ = collect(&provider, request()).await;

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
    let _ = collect(&provider, req).await;

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
        let items = collect(&provider, request()).await;
        assert_eq!(items, complete(true));
    }
    let peers = common::peers(&captured);
    assert!(peers.len() < 5, "a new connection per turn: {peers:?}");
}
