//! Unit tests of the Chat Completions request body, compared as the exact
//! bytes sent.

use super::*;
use std::sync::Arc;
use switchboard_core::model::Role;
use switchboard_core::provider::HistoryMessage;
use switchboard_core::tools::{ToolCall, ToolContext, ToolResult};

fn request(tools: ToolContext) -> ChatRequest {
    let history =
        [(Role::User, "Hi"), (Role::Assistant, "Hello!"), (Role::System, "Note"), (Role::User, "Shoes?")];
    ChatRequest {
        system_prompt: Some("Be brief.".into()),
        history: history.map(|(role, content)| HistoryMessage { role, content: content.into() }).into(),
        session_id: uuid::Uuid::nil(),
        subject: "visitor:test".into(),
        conversation_id: None,
        trace_id: String::new(),
        tools,
    }
}

fn body(request: &ChatRequest) -> String {
    serde_json::to_string(&RequestBody::new("gpt-4o-mini", Some(64), None, request)).unwrap()
}

fn search_products() -> ToolSpec {
    ToolSpec {
        name: "search_products".into(),
        description: "Search the catalog.".into(),
        // Keys in sorted order: the bytes below are the same whether or not
        // serde_json keeps insertion order (its `preserve_order` feature).
        parameters: serde_json::json!({"properties": {"q": {"type": "string"}}, "required": ["q"], "type": "object"}),
    }
}

fn rounds() -> Arc<[ToolRound]> {
    let call = |id: &str, name: &str, arguments: &str| ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    };
    let result = |call_id: &str, content: &str, is_error: bool| ToolResult {
        call_id: call_id.into(),
        content: content.into(),
        is_error,
    };
    vec![
        ToolRound {
            text: String::new(),
            calls: vec![
                call("call_1", "search_products", r#"{"q":"shoes"}"#),
                call("call_2", "view_cart", "{oops"),
            ],
            results: vec![
                result("call_1", r#"[{"id":"p1","title":"Trail runner"}]"#, false),
                result("call_2", "arguments are not JSON: \"{oops\"", true),
            ],
        },
        ToolRound {
            text: "Found one.".into(),
            calls: vec![call("call_3", "get_product", r#"{"id":"p1"}"#)],
            results: vec![result("call_3", "In stock", false)],
        },
    ]
    .into()
}

const HISTORY: &str = r#"{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"Shoes?"}"#;

#[test]
fn without_tools_the_body_is_the_plain_chat_request() {
    let expected = format!(
        r#"{{"model":"gpt-4o-mini","stream":true,"stream_options":{{"include_usage":true}},"messages":[{HISTORY}],"max_tokens":64}}"#
    );
    assert_eq!(body(&request(ToolContext::default())), expected);
}

#[test]
fn offered_tools_go_in_the_functions_shape() {
    let tools = ToolContext { offered: vec![search_products()].into(), ..ToolContext::default() };
    let expected = format!(
        r#"{{"model":"gpt-4o-mini","stream":true,"stream_options":{{"include_usage":true}},"messages":[{HISTORY}],"max_tokens":64,"tools":[{{"type":"function","function":{{"name":"search_products","description":"Search the catalog.","parameters":{{"properties":{{"q":{{"type":"string"}}}},"required":["q"],"type":"object"}}}}}}]}}"#
    );
    assert_eq!(body(&request(tools)), expected);
}

#[test]
fn rounds_follow_the_history_as_calls_and_tool_messages() {
    let tools =
        ToolContext { offered: vec![search_products()].into(), rounds: rounds(), choice: ToolChoice::Auto };
    let sent: serde_json::Value = serde_json::from_str(&body(&request(tools))).unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4 + 3 + 2);
    assert_eq!(
        serde_json::Value::from(&messages[4..]),
        serde_json::json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "search_products", "arguments": "{\"q\":\"shoes\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "view_cart", "arguments": "{oops"}},
            ]},
            {"role": "tool", "content": "[{\"id\":\"p1\",\"title\":\"Trail runner\"}]", "tool_call_id": "call_1"},
            {"role": "tool", "content": "{\"error\":\"arguments are not JSON: \\\"{oops\\\"\"}", "tool_call_id": "call_2"},
            {"role": "assistant", "content": "Found one.", "tool_calls": [
                {"id": "call_3", "type": "function", "function": {"name": "get_product", "arguments": "{\"id\":\"p1\"}"}},
            ]},
            {"role": "tool", "content": "In stock", "tool_call_id": "call_3"},
        ])
    );
    // The error's reason is escaped inside JSON that reads back.
    let error: serde_json::Value = serde_json::from_str(messages[6]["content"].as_str().unwrap()).unwrap();
    assert_eq!(error, serde_json::json!({"error": "arguments are not JSON: \"{oops\""}));
    assert_eq!(sent["tools"][0]["function"]["name"], "search_products");
    assert!(sent.get("tool_choice").is_none());
}

#[test]
fn the_last_request_offers_no_tools_but_keeps_the_rounds() {
    let tools =
        ToolContext { offered: vec![search_products()].into(), rounds: rounds(), choice: ToolChoice::None };
    let sent: serde_json::Value = serde_json::from_str(&body(&request(tools))).unwrap();
    let keys: Vec<&str> = sent.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["max_tokens", "messages", "model", "stream", "stream_options"]);
    assert_eq!(sent["messages"].as_array().unwrap().len(), 9);
}
