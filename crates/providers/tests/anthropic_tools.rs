//! The `anthropic` provider's tool calls against a fake Messages API:
//! recorded `tool_use` streams cut at every byte, and the requests that
//! offer tools and carry a turn's rounds.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{text_of, Items, Pieces, Requests};
use serde_json::json;
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::{ProviderError, ProviderEvent};
use switchboard_core::tenant::ProviderKind;
use switchboard_core::tools::{ToolCall, ToolChoice, ToolContext};
use switchboard_providers::AnthropicProvider;

/// The tool-use events of the wire-format reference, verbatim (its first
/// `partial_json` empty, a ping in between), closed into a whole answer.
const REFERENCE: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01KF","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Par"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":57}}

event: message_stop
data: {"type":"message_stop"}

"#;

fn call(id: &str, name: &str, arguments: &str) -> Result<ProviderEvent, ProviderError> {
    Ok(ProviderEvent::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }))
}

fn delta(text: &str) -> Result<ProviderEvent, ProviderError> {
    Ok(ProviderEvent::Delta(text.into()))
}

fn tool_use_end(output_tokens: u32) -> Items {
    vec![
        Ok(ProviderEvent::Finish(FinishReason::ToolCalls)),
        Ok(ProviderEvent::Usage(Usage::new(377, output_tokens, false))),
    ]
}

fn reference_answer() -> Items {
    [
        vec![delta("Let me check."), call("toolu_01KF", "get_weather", r#"{"location": "Paris"}"#)],
        tool_use_end(57),
    ]
    .concat()
}

/// One event of the recorded shape: its name, then its data.
fn event(data: &str) -> String {
    let kind: serde_json::Value = serde_json::from_str(data).unwrap();
    format!("event: {}\ndata: {data}\n\n", kind["type"].as_str().unwrap())
}

fn block_start(index: u32, block: &str) -> String {
    event(&format!(r#"{{"type":"content_block_start","index":{index},"content_block":{block}}}"#))
}

fn tool_start(index: u32, id: &str, name: &str) -> String {
    block_start(index, &format!(r#"{{"type":"tool_use","id":"{id}","name":"{name}","input":{{}}}}"#))
}

fn input(index: u32, piece: &str) -> String {
    let piece = serde_json::to_string(piece).unwrap();
    event(&format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"input_json_delta","partial_json":{piece}}}}}"#
    ))
}

fn text(index: u32, text: &str) -> String {
    let text = serde_json::to_string(text).unwrap();
    event(&format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{text}}}}}"#
    ))
}

fn block_stop(index: u32) -> String {
    event(&format!(r#"{{"type":"content_block_stop","index":{index}}}"#))
}

const QUERY: &str = r#"{"query": "chaussures de course légères 🏃", "max_price": 120}"#;
const NOT_JSON: &str = r#"{"id": p1, "size": 42"#;

/// Text, then three `tool_use` blocks (the first's input in many
/// fragments, the second without input, the third's input not JSON), then
/// a text block after them.
fn parallel() -> String {
    let first = REFERENCE.split_inclusive("\n\n").next().unwrap().to_owned();
    let mut body =
        first + &block_start(0, r#"{"type":"text","text":""}"#) + &text(0, "Looking… ") + &block_stop(0);
    body += &tool_start(1, "toolu_01A", "search_products");
    body += &input(1, "");
    let query: Vec<char> = QUERY.chars().collect();
    for piece in query.chunks(9) {
        body += &input(1, &piece.iter().collect::<String>());
    }
    body += &block_stop(1);
    body += &(tool_start(2, "toolu_01B", "view_cart") + &block_stop(2));
    body +=
        &(tool_start(3, "toolu_01C", "get_product") + &input(3, &NOT_JSON[..9]) + &input(3, &NOT_JSON[9..]));
    body += &block_stop(3);
    body += &(block_start(4, r#"{"type":"text","text":""}"#) + &text(4, "One moment 🛒.") + &block_stop(4));
    body += &event(
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":140}}"#,
    );
    body + &event(r#"{"type":"message_stop"}"#)
}

fn parallel_answer() -> Items {
    let calls = vec![
        delta("Looking… "),
        call("toolu_01A", "search_products", QUERY),
        call("toolu_01B", "view_cart", "{}"),
        call("toolu_01C", "get_product", NOT_JSON),
        delta("One moment 🛒."),
    ];
    [calls, tool_use_end(140)].concat()
}

async fn spawn() -> (AnthropicProvider, Pieces, Requests) {
    let (addr, pieces, requests) = common::spawn_replay("/v1/messages").await;
    let settings = common::settings(ProviderKind::Anthropic, "claude-sonnet-4-5", &format!("http://{addr}"));
    (AnthropicProvider::new(&settings, None).unwrap(), pieces, requests)
}

async fn the_same_whatever_the_cut(body: &str, expected: &Items) {
    let (provider, pieces, _) = spawn().await;
    common::same_whatever_the_cut(&provider, &pieces, body, expected).await;
}

#[tokio::test]
async fn the_recorded_tool_use_whatever_the_cut() {
    the_same_whatever_the_cut(REFERENCE, &reference_answer()).await;
}

#[tokio::test]
async fn parallel_calls_with_text_before_and_after_whatever_the_cut() {
    let expected = parallel_answer();
    the_same_whatever_the_cut(&parallel(), &expected).await;
    assert_eq!(text_of(&expected), "Looking… One moment 🛒.");
}

/// The body of the one request a turn with `tools` sent.
async fn sent(tools: ToolContext) -> serde_json::Value {
    let (provider, pieces, requests) = spawn().await;
    common::sent(&provider, &pieces, &requests, REFERENCE, tools).await
}

fn offered() -> serde_json::Value {
    json!([{
        "name": "search_products",
        "description": "Search the shop's catalog.",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    }])
}

fn messages_with_rounds() -> serde_json::Value {
    json!([
        {"role": "user", "content": "Do you have running shoes?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "search_products", "input": {"query": "running shoes"}},
            // Arguments that are not JSON go as an empty input.
            {"type": "tool_use", "id": "call_2", "name": "view_cart", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "{\"items\":[{\"id\":\"p1\",\"title\":\"Trail runner\"}]}"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "arguments are not valid JSON: \"{\\\"cart\"", "is_error": true},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Found one. "},
            {"type": "tool_use", "id": "call_3", "name": "get_product", "input": {"id": "p1"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_3", "content": "Only 2 left"},
        ]},
    ])
}

#[tokio::test]
async fn offers_tools_with_their_input_schema() {
    let body =
        sent(ToolContext { offered: vec![common::search_products()].into(), ..ToolContext::default() }).await;
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": true,
        "system": "You are Acme's shop assistant.",
        "messages": [{"role": "user", "content": "Do you have running shoes?"}],
        "tools": offered(),
    });
    assert_eq!(body, expected);
}

#[tokio::test]
async fn sends_the_rounds_back_as_tool_use_and_tool_result_blocks() {
    let tools = ToolContext {
        offered: vec![common::search_products()].into(),
        rounds: common::rounds(),
        choice: ToolChoice::Auto,
    };
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": true,
        "system": "You are Acme's shop assistant.",
        "messages": messages_with_rounds(),
        "tools": offered(),
    });
    assert_eq!(sent(tools).await, expected);
}

#[tokio::test]
async fn the_last_request_after_the_round_limit_keeps_the_tools_and_forbids_them() {
    let tools = ToolContext {
        offered: vec![common::search_products()].into(),
        rounds: common::rounds(),
        choice: ToolChoice::None,
    };
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": true,
        "system": "You are Acme's shop assistant.",
        "messages": messages_with_rounds(),
        "tools": offered(),
        "tool_choice": {"type": "none"},
    });
    assert_eq!(sent(tools).await, expected);
}
