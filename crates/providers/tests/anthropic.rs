//! The `anthropic` provider against a fake Messages API that replays the
//! recorded wire format byte for byte, cut and mangled the ways real
//! connections and upstreams do.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::response::Response;
use common::{collect, start_error, text_of, Captured, Items, Requests};
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::model::{FinishReason, Role, Usage};
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderEvent};
use switchboard_core::tenant::{ProviderKind, ProviderSettings};
use switchboard_core::tools::ToolCall;
use switchboard_providers::anthropic::{self, AnthropicProvider};
use switchboard_providers::BuildError;

/// The recorded stream of the wire-format reference, verbatim: a text block,
/// a ping whose JSON carries spaces, a tool_use block, then the stop.
const REFERENCE: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I'll check the weather."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\": \"Paris\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":65}}

event: message_stop
data: {"type":"message_stop"}

"#;

const REFERENCE_TEXT: &str = "I'll check the weather.";

/// A text answer in the same shape, with cached prompt tokens and characters
/// of several bytes (to be split mid-character).
const CHAT: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":100,"cache_read_input_tokens":256,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Il fait"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" beau à"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" Paris"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" 🌍!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}

event: message_stop
data: {"type":"message_stop"}

"#;

const WORDS: [&str; 4] = ["Il fait", " beau à", " Paris", " 🌍!"];
const ANSWER: &str = "Il fait beau à Paris 🌍!";

/// The events of a recording, each with its blank line.
fn frames(recording: &str) -> Vec<String> {
    recording.split_inclusive("\n\n").map(str::to_owned).collect()
}

fn reference() -> Vec<String> {
    frames(REFERENCE)
}

fn chat() -> Vec<String> {
    frames(CHAT)
}

/// The chat up to its first word, then an error event (and a word that
/// must never be read after it).
fn failing(error_type: &str, message: &str) -> Vec<String> {
    let chat = chat();
    let error = format!(
        "event: error\ndata: {{\"type\": \"error\", \"error\": {{\"type\": \"{error_type}\", \"message\": \"{message}\"}}}}\n\n"
    );
    [&chat[..4], &[error], &chat[4..5]].concat()
}

fn line_endings(frames: Vec<String>, ending: &str) -> Vec<String> {
    frames.into_iter().map(|f| f.replace('\n', ending)).collect()
}

#[derive(Debug, Clone)]
enum Reply {
    /// A 200 event stream sent in these pieces; `None` breaks the connection.
    Stream(Vec<Option<Vec<u8>>>),
    Refuse {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: String,
    },
}

/// One network chunk per event.
fn by_event(frames: Vec<String>) -> Reply {
    Reply::Stream(frames.into_iter().map(|f| Some(f.into_bytes())).collect())
}

/// One network chunk per byte.
fn by_byte(frames: Vec<String>) -> Reply {
    Reply::Stream(frames.concat().into_bytes().into_iter().map(|b| Some(vec![b])).collect())
}

/// The whole body in two chunks, split at byte `at`.
fn split_at(frames: &[String], at: usize) -> Reply {
    let body = frames.concat();
    let (a, b) = body.as_bytes().split_at(at);
    Reply::Stream(vec![Some(a.to_vec()), Some(b.to_vec())])
}

/// A running fake: the handle to change its reply, and the requests it got.
struct Fake {
    reply: Arc<Mutex<Reply>>,
    captured: Requests,
}

fn messages(reply: &Arc<Mutex<Reply>>, _: &Captured) -> Response {
    let reply = reply.lock().unwrap().clone();
    let request_id = ("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy");
    match reply {
        Reply::Refuse { status, headers, body } => {
            common::json_error(status, &[&[request_id], &headers[..]].concat(), body)
        }
        Reply::Stream(pieces) => common::stream_response(
            &[request_id, ("content-type", "text/event-stream; charset=utf-8")],
            pieces,
        ),
    }
}

/// A fake Messages API; its base URL and the handle to change its reply.
async fn spawn(reply: Reply) -> (String, Fake) {
    let reply = Arc::new(Mutex::new(reply));
    let (addr, captured) = common::spawn("/v1/messages", reply.clone(), messages).await;
    (format!("http://{addr}"), Fake { reply, captured })
}

fn settings(base_url: &str) -> ProviderSettings {
    common::settings(ProviderKind::Anthropic, "claude-sonnet-4-5", base_url)
}

fn request() -> ChatRequest {
    common::request(&[
        (Role::Assistant, "Welcome to Acme!"),
        (Role::User, "Hi"),
        (Role::User, ""),
        (Role::User, "Anyone there?"),
        (Role::Assistant, "Hello! How can I help?"),
        (Role::System, "An agent joined."),
        (Role::Agent, "Hi, this is Sam."),
        (Role::User, "What's the weather in Paris?"),
    ])
}

async fn turn(provider: &AnthropicProvider) -> Items {
    collect(provider, request()).await
}

/// Runs one turn against a fake giving `reply`; every item of the stream.
async fn run(reply: Reply) -> Items {
    let (base, _) = spawn(reply).await;
    turn(&AnthropicProvider::new(&settings(&base), None).unwrap()).await
}

/// The reference's call, whole once its block stopped.
fn reference_call() -> ProviderEvent {
    ProviderEvent::ToolCall(ToolCall {
        id: "toolu_1".into(),
        name: "get_weather".into(),
        arguments: r#"{"location": "Paris"}"#.into(),
    })
}

fn reference_answer() -> Items {
    vec![
        Ok(ProviderEvent::Delta(REFERENCE_TEXT.into())),
        Ok(reference_call()),
        Ok(ProviderEvent::Finish(FinishReason::ToolCalls)),
        Ok(ProviderEvent::Usage(Usage::new(377, 65, false))),
    ]
}

fn chat_answer() -> Items {
    let mut out: Items = WORDS.iter().map(|w| Ok(ProviderEvent::Delta((*w).into()))).collect();
    out.push(Ok(ProviderEvent::Finish(FinishReason::Stop)));
    // 21 + 100 cache writes + 256 cache reads.
    out.push(Ok(ProviderEvent::Usage(Usage::new(377, 12, false))));
    out
}

#[tokio::test]
async fn streams_the_reference_transcript() {
    assert_eq!((reference().len(), chat().len()), (11, 10), "one frame per event");
    let items = run(by_event(reference())).await;
    assert_eq!(items, reference_answer());
    assert_eq!(text_of(&items), REFERENCE_TEXT);
}

#[tokio::test]
async fn counts_cached_prompt_tokens_and_ends_a_text_answer() {
    let items = run(by_event(chat())).await;
    assert_eq!(items, chat_answer());
    assert_eq!(text_of(&items), ANSWER);
}

#[tokio::test]
async fn tolerates_a_byte_at_a_time_and_every_line_ending() {
    assert_eq!(run(by_byte(reference())).await, reference_answer());
    assert_eq!(run(by_byte(chat())).await, chat_answer());
    for ending in ["\r\n", "\r"] {
        assert_eq!(run(by_event(line_endings(reference(), ending))).await, reference_answer());
        assert_eq!(run(by_byte(line_endings(chat(), ending))).await, chat_answer());
    }
}

#[tokio::test]
async fn the_same_answer_whatever_byte_the_body_splits_at() {
    // CRLF endings, so every CR-LF pair and multi-byte character is split once.
    let (base, fake) = spawn(by_event(chat())).await;
    let provider = AnthropicProvider::new(&settings(&base), None).unwrap();
    let crlf = line_endings(chat(), "\r\n");
    let len = crlf.concat().len();
    for at in 1..len {
        *fake.reply.lock().unwrap() = split_at(&crlf, at);
        assert_eq!(turn(&provider).await, chat_answer(), "split at byte {at}");
    }
    let len = REFERENCE.len();
    for at in 1..len {
        *fake.reply.lock().unwrap() = split_at(&reference(), at);
        assert_eq!(turn(&provider).await, reference_answer(), "split at byte {at}");
    }
}

#[tokio::test]
async fn tolerates_pings_comments_and_events_it_does_not_know() {
    let mut frames = chat();
    let extra = [
        ": keep-alive\n\n",
        "event: ping\n\n",
        "event: content_block_future\ndata: {\"type\":\"content_block_future\",\"index\":0,\"glimmer\":[1]}\n\n",
        // No `event:` line: the type inside the data is what counts.
        "data: {\"type\":\"ping\"}\n\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\n\n",
    ];
    frames.splice(3..3, extra.map(str::to_owned));
    assert_eq!(run(by_event(frames)).await, chat_answer());
}

#[tokio::test]
async fn an_overloaded_stream_fails_transiently_after_the_text_so_far() {
    let items = run(by_event(failing("overloaded_error", "Overloaded"))).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], Ok(ProviderEvent::Delta(WORDS[0].into())));
    let Err(e @ ProviderError::Transient(message)) = &items[1] else { panic!("{items:?}") };
    assert!(e.retryable());
    assert!(message.contains("overloaded_error") && message.contains("Overloaded"), "{message}");
}

#[tokio::test]
async fn a_lasting_stream_error_is_unavailable() {
    let items = run(by_event(failing("invalid_request_error", "prompt is too long"))).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], Ok(ProviderEvent::Delta(WORDS[0].into())));
    let Err(e @ ProviderError::Unavailable(message)) = &items[1] else { panic!("{items:?}") };
    assert!(!e.retryable());
    assert!(message.contains("prompt is too long"), "{message}");
}

#[tokio::test]
async fn a_stream_without_message_stop_is_cut_short() {
    // Even after the stop reason: only `message_stop` completes an answer.
    let mut frames = reference();
    frames.pop();
    let items = run(by_event(frames)).await;
    assert_eq!(
        items,
        vec![
            Ok(ProviderEvent::Delta(REFERENCE_TEXT.into())),
            Ok(reference_call()),
            Ok(ProviderEvent::Finish(FinishReason::ToolCalls)),
            Err(ProviderError::Unavailable("stream ended early".into())),
        ]
    );

    let frames = chat().into_iter().take(4).map(|f| Some(f.into_bytes())).chain([None]).collect();
    let items = run(Reply::Stream(frames)).await;
    assert_eq!(items[0], Ok(ProviderEvent::Delta(WORDS[0].into())));
    let Some(Err(ProviderError::Unavailable(message))) = items.get(1) else { panic!("{items:?}") };
    assert!(message.starts_with("stream broke off"), "{message}");
    assert_eq!(items.len(), 2);
}

#[tokio::test]
async fn unparseable_data_is_unavailable() {
    let frames =
        vec![chat().remove(0), "event: content_block_delta\ndata: {\"type\":\"content_bl\n\n".into()];
    let items = run(by_event(frames)).await;
    let [Err(ProviderError::Unavailable(message))] = items.as_slice() else { panic!("{items:?}") };
    assert!(message.starts_with("unparseable stream event"), "{message}");
}

#[tokio::test]
async fn every_refusal_of_the_reference_keeps_its_status_and_retry_hint() {
    let (base, fake) = spawn(by_event(chat())).await;
    let provider = AnthropicProvider::new(&settings(&base), None).unwrap();
    let cases: [(u16, &str, &str, bool); 9] = [
        (400, "invalid_request_error", "max_tokens: Field required", false),
        (401, "authentication_error", "invalid x-api-key", false),
        (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
            false,
        ),
        (404, "not_found_error", "model: claude-nope", false),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", false),
        (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", true),
        (500, "api_error", "Internal server error", true),
        (504, "timeout_error", "Request timeout", true),
        (529, "overloaded_error", "Overloaded", true),
    ];
    for (status, kind, text, retryable) in cases {
        let headers = if status == 429 {
            vec![
                ("retry-after", "7"),
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", "2026-11-22T08:00:07Z"),
            ]
        } else {
            vec![]
        };
        let body = format!(
            r#"{{"type":"error","error":{{"type":"{kind}","message":"{text}"}},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}}"#
        );
        *fake.reply.lock().unwrap() = Reply::Refuse { status, headers, body };
        let err = start_error(&provider, request()).await;
        assert_eq!(err.retryable(), retryable, "{status}: {err:?}");
        let ProviderError::Refused { status: got, retry_after, message, .. } = err else { panic!("{err:?}") };
        assert_eq!(got, status);
        let hint = (status == 429).then_some(Duration::from_secs(7));
        assert_eq!(retry_after, hint, "{status}");
        assert!(message.contains(kind) && message.contains(text), "{status}: {message}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error() {
    let base = format!("http://{}", common::closed_addr());
    let provider = AnthropicProvider::new(&settings(&base), None).unwrap();
    let err = start_error(&provider, request()).await;
    assert!(matches!(&err, e @ ProviderError::Connect { timed_out: false, .. } if e.retryable()), "{err:?}");
}

#[tokio::test]
async fn sends_the_request_the_contract_describes() {
    let (base, fake) = spawn(by_event(chat())).await;
    let mut s = settings(&format!("{base}/"));
    s.max_tokens = Some(512);
    s.temperature = Some(0.3);
    let provider = AnthropicProvider::new(&s, Some(SecretString::from("sk-ant-test"))).unwrap();
    assert_eq!(provider.url(), format!("{base}/v1/messages"));
    assert_eq!(turn(&provider).await, chat_answer());

    let captured = fake.captured.lock().unwrap();
    let Captured { headers, body, .. } = &captured[0];
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["accept"], "text/event-stream");
    assert!(headers.get("authorization").is_none());
    let expected = serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "stream": true,
        "system": "You are Acme's shop assistant.",
        "temperature": 0.3,
        "messages": [
            {"role": "user", "content": "Hi\n\nAnyone there?"},
            {"role": "assistant", "content": "Hello! How can I help?\n\nHi, this is Sam."},
            {"role": "user", "content": "What's the weather in Paris?"},
        ],
    });
    assert_eq!(body, &expected);
}

#[tokio::test]
async fn without_a_key_or_options_only_what_the_api_requires_is_sent() {
    let (base, fake) = spawn(by_event(chat())).await;
    let provider = AnthropicProvider::new(&settings(&base), None).unwrap();
    let mut req = request();
    req.system_prompt = None;
    let _ = collect(&provider, req).await;

    let captured = fake.captured.lock().unwrap();
    let Captured { headers, body, .. } = &captured[0];
    assert!(headers.get("x-api-key").is_none());
    assert!(headers.get("authorization").is_none());
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["max_tokens", "messages", "model", "stream"]);
    assert_eq!(body["max_tokens"], anthropic::DEFAULT_MAX_TOKENS);
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["messages"][0]["role"], "user");
}

#[test]
fn builds_from_settings_and_keeps_the_key_out_of_debug() {
    let s = ProviderSettings::new(ProviderKind::Anthropic, "claude-sonnet-4-5");
    let provider = AnthropicProvider::new(&s, Some(SecretString::from("sk-ant-very-secret"))).unwrap();
    assert_eq!(provider.url(), "https://api.anthropic.com/v1/messages");
    assert_eq!(anthropic::DEFAULT_BASE_URL, "https://api.anthropic.com");
    assert_eq!((provider.kind(), provider.model()), ("anthropic", "claude-sonnet-4-5"));
    let debug = format!("{provider:?}");
    assert!(!debug.contains("sk-ant-very-secret") && debug.contains("[redacted]"), "{debug}");

    let bad_key = AnthropicProvider::new(&s, Some(SecretString::from("sk-ant\nx"))).unwrap_err();
    assert!(matches!(bad_key, BuildError::InvalidApiKey(_)), "{bad_key:?}");
    assert!(!bad_key.to_string().contains("sk-ant"));
    let mut s = s;
    s.base_url = Some("api.anthropic.com".into());
    assert!(matches!(AnthropicProvider::new(&s, None), Err(BuildError::InvalidBaseUrl { .. })));
}
