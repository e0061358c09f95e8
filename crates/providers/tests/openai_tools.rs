//! The `openai` provider's tool calls against a fake Chat Completions server:
//! recorded tool-call streams (and the shapes compatible servers send) cut at
//! every byte, and the requests that offer tools and carry a turn's rounds.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{text_of, Items, Pieces, Requests};
use serde_json::json;
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::ProviderEvent;
use switchboard_core::tenant::ProviderKind;
use switchboard_core::tools::{ToolCall, ToolChoice, ToolContext};
use switchboard_providers::OpenAiProvider;

/// One chunk with this `delta` and `finish_reason`, in the reference's
/// tool-call shape (without the id, model and fingerprint every chunk also
/// carries, which only lengthen the bodies cut at every byte).
fn chunk(delta: &str, finish: &str) -> String {
    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
}

/// The first fragment of a call, as OpenAI sends it.
fn start(index: u32, id: &str, name: &str) -> String {
    chunk(
        &format!(
            r#"{{"tool_calls":[{{"index":{index},"id":"{id}","type":"function","function":{{"name":"{name}","arguments":""}}}}]}}"#
        ),
        "null",
    )
}

/// A later fragment: the index and a piece of the arguments only.
fn args(index: u32, piece: &str) -> String {
    let piece = serde_json::to_string(piece).unwrap();
    chunk(&format!(r#"{{"tool_calls":[{{"index":{index},"function":{{"arguments":{piece}}}}}]}}"#), "null")
}

fn content(text: &str) -> String {
    chunk(&format!(r#"{{"content":{}}}"#, serde_json::to_string(text).unwrap()), "null")
}

const ROLE: &str = r#"{"role":"assistant","content":null,"refusal":null}"#;

fn finish(reason: &str) -> String {
    chunk("{}", &format!("\"{reason}\""))
}

const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":17,\"total_tokens\":99}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

/// The recorded stream of the wire-format reference, verbatim (one blank
/// line after each event), with a last fragment to close the arguments.
const REFERENCE: &str = r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Pieq","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"lo"}}]},"finish_reason":null}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"cation\": \"T"}}]},"finish_reason":null}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"okyo\"}"}}]},"finish_reason":null}]}

data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: {"choices":[],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99}}

data: [DONE]

"#;

fn call(
    id: &str,
    name: &str,
    arguments: &str,
) -> Result<ProviderEvent, switchboard_core::provider::ProviderError> {
    Ok(ProviderEvent::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }))
}

fn tool_calls_end() -> Items {
    vec![
        Ok(ProviderEvent::Finish(FinishReason::ToolCalls)),
        Ok(ProviderEvent::Usage(Usage::new(82, 17, false))),
    ]
}

fn reference_answer() -> Items {
    [vec![call("call_Pieq", "get_weather", r#"{"location": "Tokyo"}"#)], tool_calls_end()].concat()
}

const QUERY: &str = r#"{"query": "chaussures de course légères 🏃", "max_price": 120}"#;
const NOT_JSON: &str = r#"{"id": p1, "size": 42"#;

/// Three parallel calls whose fragments interleave (started 0, 1, 2, then
/// 1, then 0 and 2 alternating), the first's arguments in many fragments,
/// the third's not JSON.
fn parallel() -> String {
    let mut body = chunk(ROLE, "null");
    body += &start(0, "call_A1", "search_products");
    body += &start(1, "call_B2", "view_cart");
    body += &start(2, "call_C3", "get_product");
    body += &args(1, "{}");
    let query: Vec<char> = QUERY.chars().collect();
    let mut third = NOT_JSON.split_inclusive(' ');
    for piece in query.chunks(9) {
        body += &args(0, &piece.iter().collect::<String>());
        if let Some(piece) = third.next() {
            body += &args(2, piece);
        }
    }
    body + &finish("tool_calls") + USAGE + DONE
}

fn parallel_answer() -> Items {
    let calls = vec![
        call("call_A1", "search_products", QUERY),
        call("call_B2", "view_cart", "{}"),
        call("call_C3", "get_product", NOT_JSON),
    ];
    [calls, tool_calls_end()].concat()
}

/// As Ollama-compatible servers send a parallel batch: every call on index
/// 0, each whole in one chunk with an id of its own, then `stop`.
fn reused_index() -> String {
    let whole = |id: &str, name: &str, arguments: &str| {
        let arguments = serde_json::to_string(arguments).unwrap();
        chunk(
            &format!(
                r#"{{"role":"assistant","content":"","tool_calls":[{{"id":"{id}","index":0,"type":"function","function":{{"name":"{name}","arguments":{arguments}}}}}]}}"#
            ),
            "null",
        )
    };
    let body = whole("call_o1", "search_products", r#"{"query":"hoodies"}"#)
        + &whole("call_o2", "view_cart", "{}")
        + &start(0, "call_o3", "get_product")
        + &args(0, r#"{"id":"#)
        + &args(0, r#""h2"}"#);
    body + &finish("stop") + USAGE + DONE
}

fn reused_index_answer() -> Items {
    let calls = vec![
        call("call_o1", "search_products", r#"{"query":"hoodies"}"#),
        call("call_o2", "view_cart", "{}"),
        call("call_o3", "get_product", r#"{"id":"h2"}"#),
    ];
    [calls, tool_calls_end()].concat()
}

/// Text, a call, and more text after it in the same answer.
fn text_around_a_call() -> String {
    let body = chunk(ROLE, "null") + &content("Let me check ") + &content("the cart 🛒.");
    let body = body + &start(0, "call_t1", "view_cart") + &args(0, "{}") + &content(" One moment.");
    body + &finish("tool_calls") + USAGE + DONE
}

fn text_around_a_call_answer() -> Items {
    let text = ["Let me check ", "the cart 🛒.", " One moment."].map(|t| Ok(ProviderEvent::Delta(t.into())));
    [text.to_vec(), vec![call("call_t1", "view_cart", "{}")], tool_calls_end()].concat()
}

async fn spawn() -> (OpenAiProvider, Pieces, Requests) {
    let (addr, pieces, requests) = common::spawn_replay("/v1/chat/completions").await;
    let settings = common::settings(ProviderKind::Openai, "gpt-4o-mini", &format!("http://{addr}/v1/"));
    (OpenAiProvider::new(&settings, None).unwrap(), pieces, requests)
}

async fn the_same_whatever_the_cut(body: &str, expected: &Items) {
    let (provider, pieces, _) = spawn().await;
    common::same_whatever_the_cut(&provider, &pieces, body, expected).await;
}

#[tokio::test]
async fn the_recorded_call_whatever_the_cut() {
    the_same_whatever_the_cut(REFERENCE, &reference_answer()).await;
}

#[tokio::test]
async fn three_parallel_interleaved_calls_whatever_the_cut() {
    the_same_whatever_the_cut(&parallel(), &parallel_answer()).await;
}

#[tokio::test]
async fn a_reused_index_with_new_ids_whatever_the_cut() {
    the_same_whatever_the_cut(&reused_index(), &reused_index_answer()).await;
}

#[tokio::test]
async fn text_around_a_call_whatever_the_cut() {
    let expected = text_around_a_call_answer();
    the_same_whatever_the_cut(&text_around_a_call(), &expected).await;
    assert_eq!(text_of(&expected), "Let me check the cart 🛒. One moment.");
}

/// The body of the one request a turn with `tools` sent.
async fn sent(tools: ToolContext) -> serde_json::Value {
    let (provider, pieces, requests) = spawn().await;
    common::sent(&provider, &pieces, &requests, &text_around_a_call(), tools).await
}

fn history() -> serde_json::Value {
    json!([
        {"role": "system", "content": "You are Acme's shop assistant."},
        {"role": "user", "content": "Do you have running shoes?"},
    ])
}

fn offered() -> serde_json::Value {
    json!([{"type": "function", "function": {
        "name": "search_products",
        "description": "Search the shop's catalog.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    }}])
}

fn rounds() -> serde_json::Value {
    json!([
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search_products", "arguments": "{\"query\": \"running shoes\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "view_cart", "arguments": "{\"cart"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"items\":[{\"id\":\"p1\",\"title\":\"Trail runner\"}]}"},
        {"role": "tool", "tool_call_id": "call_2", "content": "{\"error\":\"arguments are not valid JSON: \\\"{\\\\\\\"cart\\\"\"}"},
        {"role": "assistant", "content": "Found one. ", "tool_calls": [
            {"id": "call_3", "type": "function", "function": {"name": "get_product", "arguments": "{\"id\":\"p1\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_3", "content": "Only 2 left"},
    ])
}

fn messages_with_rounds() -> serde_json::Value {
    let mut messages = history();
    messages.as_array_mut().unwrap().extend(rounds().as_array().unwrap().iter().cloned());
    messages
}

#[tokio::test]
async fn offers_tools_in_the_functions_shape() {
    let body =
        sent(ToolContext { offered: vec![common::search_products()].into(), ..ToolContext::default() }).await;
    let expected = json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": history(),
        "tools": offered(),
    });
    assert_eq!(body, expected);
}

#[tokio::test]
async fn sends_the_rounds_back_as_calls_and_tool_messages() {
    let tools = ToolContext {
        offered: vec![common::search_products()].into(),
        rounds: common::rounds(),
        choice: ToolChoice::Auto,
    };
    let body = sent(tools).await;
    let expected = json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": messages_with_rounds(),
        "tools": offered(),
    });
    assert_eq!(body, expected);
    // The error reads back as JSON with the reason intact.
    let error: serde_json::Value =
        serde_json::from_str(body["messages"][4]["content"].as_str().unwrap()).unwrap();
    assert_eq!(error, json!({"error": "arguments are not valid JSON: \"{\\\"cart\""}));
}

#[tokio::test]
async fn the_last_request_after_the_round_limit_offers_no_tools() {
    let tools = ToolContext {
        offered: vec![common::search_products()].into(),
        rounds: common::rounds(),
        choice: ToolChoice::None,
    };
    let expected = json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": messages_with_rounds(),
    });
    assert_eq!(sent(tools).await, expected);
}
