//! The `dify` provider against a fake Dify chat app that replays the
//! recorded chat-messages wire format (keep-alive pings between chunks, events
//! of agent and chatflow apps, mid-stream errors, the HTTP refusals) and keeps
//! conversations the way Dify does.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::response::Response;
use common::{collect, start_error, text_of, Captured, Items, Requests};
use secrecy::SecretString;
use switchboard_core::model::{FinishReason, Role, Usage};
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderEvent};
use switchboard_core::tenant::{ProviderKind, ProviderSettings};
use switchboard_providers::dify::{DifyProvider, DEFAULT_BASE_URL};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    ByteSplit,
    CrLf,
    /// Every event a chatflow or agent app adds, and one no Dify has yet.
    Noisy,
    Agent,
    Replace,
    NoUsage,
    MidStreamError(&'static str, u16),
    EndsEarly,
    Dropped,
    Garbage,
    /// More events and then a broken connection after `message_end`.
    TrailingAfterEnd,
    Http(u16, &'static str),
    /// Knows no conversation but the one it creates: a sent id gets a 404.
    StaleConversation,
}

const CONV: &str = "45701982-8118-4bc5-8e9b-64562b4555f2";
const WORDS: [&str; 2] = ["Sunny", ", 21°C."];
const ANSWER: &str = "Sunny, 21°C.";
const NOT_FOUND: &str = r#"{"code":"not_found","message":"Conversation Not Exists.","status":404}"#;

/// The ids every Dify chunk repeats, in Dify's order; `HEAD` in a chunk below.
const HEAD: &str = r#""conversation_id":"45701982-8118-4bc5-8e9b-64562b4555f2","message_id":"5ad4cb98-f0c7-4085-b384-88c403be6290","created_at":1705398420,"task_id":"900bbd43-dc0b-4383-a372-aa6e6c414227","id":"5ad4cb98-f0c7-4085-b384-88c403be6290""#;

// The events of the reference transcript, each without its closing blank line.
const SUNNY: &str = r#"{"event":"message",HEAD,"answer":"Sunny"}"#;
const PING: &str = "event: ping";
const DEGREES: &str = r#"{"event":"message",HEAD,"answer":", 21°C."}"#;
const END: &str = r#"{"event":"message_end",HEAD,"metadata":{"usage":{"prompt_tokens":1033,"prompt_unit_price":"0.001","prompt_price_unit":"0.001","prompt_price":"0.0010330","completion_tokens":135,"completion_unit_price":"0.002","completion_price_unit":"0.001","completion_price":"0.0002700","total_tokens":1168,"total_price":"0.0013030","currency":"USD","latency":1.38,"time_to_first_token":0.41,"time_to_generate":0.97},"retriever_resources":[]},"files":[]}"#;
const END_WITHOUT_USAGE: &str =
    r#"{"event":"message_end",HEAD,"metadata":{"retriever_resources":[]},"files":[]}"#;
const TTS_END: &str = r#"{"event":"tts_message_end",HEAD,"audio":""}"#;

/// A chatflow app with an agent node, speech and files, and an event no Dify has sent yet.
const NOISY: [&str; 15] = [
    r#"{"event":"workflow_started",HEAD,"workflow_run_id":"w1","data":{"id":"w1","workflow_id":"f1","inputs":{"sys.query":"Weather?"},"created_at":1705398420}}"#,
    r#"{"event":"node_started",HEAD,"workflow_run_id":"w1","data":{"id":"n1","node_id":"llm","node_type":"llm","title":"LLM","index":1}}"#,
    PING,
    ": a comment line",
    r#"{"event":"agent_thought",HEAD,"position":1,"thought":"","observation":"","tool":"weather","tool_input":"{\"weather\":{\"city\":\"Paris\"}}","message_files":[]}"#,
    SUNNY,
    r#"{"event":"message_file",HEAD,"type":"image","belongs_to":"assistant","url":"https://upload.dify.ai/files/f.png"}"#,
    PING,
    r#"{"event":"future_event","payload":{"answer":[1,2]}}"#,
    r#"{"event":"node_finished",HEAD,"workflow_run_id":"w1","data":{"id":"n1","status":"succeeded","outputs":{"text":"Sunny, 21°C."},"execution_metadata":{"total_price":"0.0013030"}}}"#,
    DEGREES,
    r#"{"event":"tts_message",HEAD,"audio":"SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjU4Ljc2LjEwMAAAAAAA"}"#,
    TTS_END,
    r#"{"event":"workflow_finished",HEAD,"workflow_run_id":"w1","data":{"id":"w1","status":"succeeded","outputs":{"answer":"Sunny, 21°C."},"total_tokens":1168}}"#,
    END,
];

const AGENT: [&str; 6] = [
    r#"{"event":"agent_thought",HEAD,"position":1,"thought":"","observation":"","tool":"","tool_input":"","message_files":[]}"#,
    r#"{"event":"agent_message",HEAD,"answer":"Sunny"}"#,
    PING,
    r#"{"event":"agent_thought",HEAD,"position":1,"thought":"Sunny, 21°C.","observation":"","tool":"","tool_input":"","message_files":[]}"#,
    r#"{"event":"agent_message",HEAD,"answer":", 21°C."}"#,
    END,
];

const REPLACED: [&str; 5] = [
    SUNNY,
    DEGREES,
    r#"{"event":"message_replace",HEAD,"answer":"Sorry, I can't talk about that.","reason":"output_moderation"}"#,
    r#"{"event":"message",HEAD,"answer":" Ask me anything else."}"#,
    END,
];

/// One event on the wire: JSON goes in a `data:` line, anything else as is.
fn frame(event: &str) -> String {
    if event.starts_with('{') {
        format!("data: {}\n\n", event.replacen("HEAD", HEAD, 1))
    } else {
        format!("{event}\n\n")
    }
}

/// The body frames of a mode; `None` in the list means "break the connection".
fn frames(mode: Mode) -> Vec<Option<String>> {
    let error;
    let events: Vec<&str> = match mode {
        Mode::Noisy => NOISY.to_vec(),
        Mode::Agent => AGENT.to_vec(),
        Mode::Replace => REPLACED.to_vec(),
        Mode::NoUsage => vec![SUNNY, DEGREES, END_WITHOUT_USAGE],
        Mode::MidStreamError(code, status) => {
            error = format!(
                r#"{{"event":"error",HEAD,"code":"{code}","message":"[openai] Error: the model went away","status":{status}}}"#
            );
            vec![SUNNY, PING, &error, r#"{"event":"message",HEAD,"answer":"never seen"}"#]
        }
        Mode::EndsEarly => vec![SUNNY],
        Mode::Dropped => return vec![Some(frame(SUNNY)), None],
        Mode::Garbage => vec![SUNNY, r#"{"event":"message","answer":"#],
        Mode::TrailingAfterEnd => {
            let mut out: Vec<_> = [SUNNY, PING, DEGREES, END, TTS_END].map(|e| Some(frame(e))).to_vec();
            out.push(None);
            return out;
        }
        _ => vec![SUNNY, PING, DEGREES, END],
    };
    let frames = events.into_iter().map(frame);
    frames.map(|f| Some(if mode == Mode::CrLf { f.replace('\n', "\r\n") } else { f })).collect()
}

fn chat_messages(mode: &Mode, request: &Captured) -> Response {
    let sent_conversation = request.body["conversation_id"].as_str().unwrap_or("");
    match *mode {
        Mode::Http(status, body) => return common::json_error(status, &[], body),
        Mode::StaleConversation if !sent_conversation.is_empty() => {
            return common::json_error(404, &[], NOT_FOUND)
        }
        _ => {}
    }
    let pieces = common::pieces(frames(*mode), *mode == Mode::ByteSplit);
    let headers = [("content-type", "text/event-stream; charset=utf-8"), ("x-version", "1.9.1")];
    common::stream_response(&headers, pieces)
}

async fn spawn(mode: Mode) -> (String, Requests) {
    let (addr, captured) = common::spawn("/v1/chat-messages", mode, chat_messages).await;
    (format!("http://{addr}/v1"), captured)
}

fn settings(base_url: &str) -> ProviderSettings {
    common::settings(ProviderKind::Dify, "dify", base_url)
}

fn request(conversation_id: Option<&str>) -> ChatRequest {
    let history = [
        (Role::User, "Hi"),
        (Role::Assistant, "Hello! How can I help?"),
        (Role::Agent, "Hi, this is Sam."),
        (Role::User, "What's the weather in Paris?"),
        (Role::System, "An agent left."),
    ];
    ChatRequest {
        subject: "visitor:0b7e3c1a-5f0e-4c4e-9d7a-3f1d2b6c8e90".into(),
        conversation_id: conversation_id.map(str::to_owned),
        tools: Default::default(),
        ..common::request(&history)
    }
}

async fn turn(provider: &DifyProvider, conversation_id: Option<&str>) -> Items {
    collect(provider, request(conversation_id)).await
}

/// Runs a first turn (no conversation yet) against a fake in `mode`.
async fn run(mode: Mode) -> Items {
    let (base, _) = spawn(mode).await;
    turn(&DifyProvider::new(&settings(&base), None).unwrap(), None).await
}

fn delta(text: &str) -> Result<ProviderEvent, ProviderError> {
    Ok(ProviderEvent::Delta(text.into()))
}

fn conversation() -> Result<ProviderEvent, ProviderError> {
    Ok(ProviderEvent::Conversation(CONV.into()))
}

fn usage() -> Result<ProviderEvent, ProviderError> {
    Ok(ProviderEvent::Usage(Usage::new(1033, 135, false)))
}

fn finish(reason: FinishReason) -> Result<ProviderEvent, ProviderError> {
    Ok(ProviderEvent::Finish(reason))
}

/// A whole answer; `new_conversation` when Dify created the conversation.
fn complete(new_conversation: bool) -> Items {
    let mut out = if new_conversation { vec![conversation()] } else { vec![] };
    out.extend([delta(WORDS[0]), delta(WORDS[1]), finish(FinishReason::Stop), usage()]);
    out
}

#[tokio::test]
async fn streams_the_recorded_shape() {
    let items = run(Mode::Normal).await;
    assert_eq!(items, complete(true));
    assert_eq!(text_of(&items), ANSWER);
}

#[tokio::test]
async fn tolerates_every_split_line_endings_pings_and_unknown_events() {
    for mode in [Mode::ByteSplit, Mode::CrLf] {
        assert_eq!(run(mode).await, complete(true), "{mode:?}");
    }
    // The agent node's tool use is reported for display; the rest is the answer.
    let (tools, answer): (Vec<_>, Vec<_>) =
        run(Mode::Noisy).await.into_iter().partition(|i| matches!(i, Ok(ProviderEvent::RemoteTool(_))));
    assert_eq!(answer, complete(true));
    let [Ok(ProviderEvent::RemoteTool(tool))] = tools.as_slice() else { panic!("{tools:?}") };
    assert_eq!((tool.name.as_str(), tool.arguments.as_str()), ("weather", r#"{"weather":{"city":"Paris"}}"#));
    assert_eq!(tool.result, None);
}

#[tokio::test]
async fn agent_apps_stream_their_messages() {
    assert_eq!(run(Mode::Agent).await, complete(true));
}

#[tokio::test]
async fn a_replacement_keeps_its_place_in_the_stream() {
    let items = run(Mode::Replace).await;
    let expected = vec![
        conversation(),
        delta(WORDS[0]),
        delta(WORDS[1]),
        Ok(ProviderEvent::Replace("Sorry, I can't talk about that.".into())),
        delta(" Ask me anything else."),
        finish(FinishReason::ContentFilter),
        usage(),
    ];
    assert_eq!(items, expected);
}

#[tokio::test]
async fn usage_may_be_missing() {
    let items = run(Mode::NoUsage).await;
    assert_eq!(items, vec![conversation(), delta(WORDS[0]), delta(WORDS[1]), finish(FinishReason::Stop)]);
}

#[tokio::test]
async fn the_conversation_is_learned_then_sent_back() {
    let (base, captured) = spawn(Mode::Normal).await;
    let provider = DifyProvider::new(&settings(&base), None).unwrap();
    assert_eq!(turn(&provider, None).await, complete(true));
    // The engine hands the learned id back: it travels, and is not news.
    assert_eq!(turn(&provider, Some(CONV)).await, complete(false));
    // Another id than the one Dify answers under is reported again.
    assert_eq!(turn(&provider, Some("0c9d0a3e-0000-4000-8000-000000000000")).await, complete(true));
    let captured = captured.lock().unwrap();
    let sent: Vec<&str> = captured.iter().map(|c| c.body["conversation_id"].as_str().unwrap()).collect();
    assert_eq!(sent, ["", CONV, "0c9d0a3e-0000-4000-8000-000000000000"]);
}

#[tokio::test]
async fn a_stale_conversation_starts_a_new_one_once() {
    let (base, captured) = spawn(Mode::StaleConversation).await;
    let provider = DifyProvider::new(&settings(&base), None).unwrap();
    assert_eq!(turn(&provider, Some("gone")).await, complete(true));
    let sent: Vec<String> =
        captured.lock().unwrap().iter().map(|c| c.body["conversation_id"].as_str().unwrap().into()).collect();
    assert_eq!(sent, ["gone", ""]);

    // A 404 that persists is refused after that one retry.
    let (base, captured) = spawn(Mode::Http(404, NOT_FOUND)).await;
    let provider = DifyProvider::new(&settings(&base), None).unwrap();
    let err = start_error(&provider, request(Some("gone"))).await;
    assert!(matches!(err, ProviderError::Refused { status: 404, .. }), "{err:?}");
    assert_eq!(captured.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn sends_the_request_the_contract_describes() {
    let (base, captured) = spawn(Mode::Normal).await;
    let mut s = settings(&base);
    s.api_key_env = Some("ACME_DIFY_KEY".into());
    s.max_tokens = Some(512);
    s.temperature = Some(0.3);
    let provider = DifyProvider::new(&s, Some(SecretString::from("app-test"))).unwrap();
    assert_eq!(provider.url(), format!("{base}/chat-messages"));
    let _ = turn(&provider, None).await;

    let captured = captured.lock().unwrap();
    let Captured { headers, body, .. } = &captured[0];
    assert_eq!(headers["authorization"], "Bearer app-test");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["accept"], "text/event-stream");
    // No system prompt, history or sampling options: the Dify app has them.
    let expected = serde_json::json!({
        "inputs": {},
        "query": "What's the weather in Paris?",
        "response_mode": "streaming",
        "conversation_id": "",
        "user": "visitor:0b7e3c1a-5f0e-4c4e-9d7a-3f1d2b6c8e90",
    });
    assert_eq!(body, &expected);
}

#[tokio::test]
async fn without_a_key_no_authorization_is_sent() {
    let (base, captured) = spawn(Mode::Normal).await;
    let provider = DifyProvider::new(&settings(&base), None).unwrap();
    let _ = turn(&provider, None).await;
    assert!(captured.lock().unwrap()[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_turn_without_a_user_message_is_not_sent() {
    let (base, captured) = spawn(Mode::Normal).await;
    let provider = DifyProvider::new(&settings(&base), None).unwrap();
    let mut req = request(None);
    req.history = req.history.iter().filter(|m| m.role != Role::User).cloned().collect();
    let err = start_error(&provider, req).await;
    let ProviderError::Unavailable(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("no user message"), "{message}");
    assert!(!err.retryable());
    assert!(captured.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_mid_stream_error_ends_the_stream_after_the_text_so_far() {
    for (code, status, transient) in [
        ("invalid_param", 400, false),
        ("provider_not_initialize", 400, false),
        ("provider_quota_exceeded", 400, false),
        ("model_currently_not_support", 400, false),
        ("completion_request_error", 400, false),
        ("too_many_requests", 429, true),
        ("completion_request_error", 503, true),
        ("internal_server_error", 500, true),
    ] {
        let items = run(Mode::MidStreamError(code, status)).await;
        assert_eq!(items.len(), 3, "{code}: {items:?}");
        assert_eq!(items[..2], [conversation(), delta(WORDS[0])]);
        let Err(e) = &items[2] else { panic!("{code}: {items:?}") };
        assert_eq!(matches!(e, ProviderError::Transient(_)), transient, "{code} {status}: {e:?}");
        assert_eq!(matches!(e, ProviderError::Unavailable(_)), !transient, "{code} {status}: {e:?}");
        assert!(e.to_string().contains(code) && e.to_string().contains("the model went away"), "{e}");
    }
}

#[tokio::test]
async fn a_stream_cut_short_or_garbled_is_an_error() {
    for (mode, starts) in [
        (Mode::EndsEarly, "stream ended early"),
        (Mode::Dropped, "stream broke off"),
        (Mode::Garbage, "unparseable"),
    ] {
        let items = run(mode).await;
        assert_eq!(items.len(), 3, "{mode:?}: {items:?}");
        assert_eq!(items[..2], [conversation(), delta(WORDS[0])]);
        let Err(ProviderError::Unavailable(message)) = &items[2] else { panic!("{mode:?}: {items:?}") };
        assert!(message.starts_with(starts), "{mode:?}: {message}");
    }
}

#[tokio::test]
async fn nothing_after_the_end_is_read() {
    assert_eq!(run(Mode::TrailingAfterEnd).await, complete(true));
}

#[tokio::test]
async fn refusals_carry_their_status_and_body_for_the_log() {
    for (status, body) in [
        (400, r#"{"code":"invalid_param","message":"query is required","status":400}"#),
        (
            400,
            r#"{"code":"app_unavailable","message":"App unavailable, please check your app configurations.","status":400}"#,
        ),
        (401, r#"{"code":"unauthorized","message":"Access token is invalid","status":401}"#),
        (404, NOT_FOUND),
        (
            429,
            r#"{"code":"too_many_requests","message":"Too many requests. Please try again later.","status":429}"#,
        ),
        (500, r#"{"message":"Internal Server Error","code":"unknown"}"#),
    ] {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        let code = json["code"].as_str().unwrap();
        let (base, captured) = spawn(Mode::Http(status, body)).await;
        let provider = DifyProvider::new(&settings(&base), None).unwrap();
        let err = start_error(&provider, request(None)).await;
        assert_eq!(err.retryable(), status == 429 || status >= 500, "{status}");
        let ProviderError::Refused { status: got, message, .. } = err else { panic!("{err:?}") };
        assert_eq!(got, status);
        assert!(message.contains(code), "{message}");
        // Without a stored conversation even a 404 is not retried.
        assert_eq!(captured.lock().unwrap().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error() {
    let base = format!("http://{}/v1", common::closed_addr());
    let provider = DifyProvider::new(&settings(&base), None).unwrap();
    let err = start_error(&provider, request(Some(CONV))).await;
    assert!(matches!(&err, e @ ProviderError::Connect { timed_out: false, .. } if e.retryable()), "{err:?}");
}

#[tokio::test]
async fn names_the_app_without_its_key() {
    let mut s = ProviderSettings::new(ProviderKind::Dify, "dify");
    s.api_key_env = Some("ACME_DIFY_KEY".into());
    let provider = DifyProvider::new(&s, Some(SecretString::from("app-very-secret"))).unwrap();
    assert_eq!((provider.kind(), provider.model()), ("dify", "dify"));
    assert_eq!(provider.url(), format!("{DEFAULT_BASE_URL}/chat-messages"));
    let key = provider.conversation_key().unwrap();
    assert_eq!(key, "dify https://api.dify.ai/v1/chat-messages ACME_DIFY_KEY");
    assert!(!format!("{provider:?}").contains("app-very-secret"));

    // Another app (another key variable, another server) is another key.
    s.api_key_env = Some("ACME_DIFY_SUPPORT_KEY".into());
    let other = DifyProvider::new(&s, None).unwrap();
    assert_ne!(other.conversation_key(), Some(key));
    let local = DifyProvider::new(&settings("http://127.0.0.1:5001/v1/"), None).unwrap();
    assert_eq!(local.conversation_key(), Some("dify http://127.0.0.1:5001/v1/chat-messages"));
}

#[tokio::test]
async fn connections_are_reused_across_turns() {
    let (base, captured) = spawn(Mode::Normal).await;
    let provider = DifyProvider::new(&settings(&base), None).unwrap();
    for _ in 0..5 {
        assert_eq!(turn(&provider, None).await, complete(true));
    }
    let peers = common::peers(&captured);
    assert!(peers.len() < 5, "a new connection per turn: {peers:?}");
}
