//! Unit tests of the Messages request body: the history reshaping, the
//! tools and the rounds, compared as the exact bytes or JSON sent.

use super::*;
use std::sync::Arc;
use switchboard_core::model::Role;
use switchboard_core::tools::{ToolCall, ToolContext, ToolResult, ToolSpec};

fn m(role: Role, content: &str) -> HistoryMessage {
    HistoryMessage { role, content: content.into() }
}

fn pairs(history: &[HistoryMessage]) -> Vec<(&'static str, String)> {
    let text = |content| match content {
        Content::Text(text) => Cow::into_owned(text),
        Content::Blocks(blocks) => panic!("blocks in the history: {blocks:?}"),
    };
    messages(history).into_iter().map(|w| (w.role, text(w.content))).collect()
}

#[test]
fn a_plain_conversation_passes_through_borrowed() {
    let history = [m(Role::User, "Hi"), m(Role::Assistant, "Hello!"), m(Role::User, "How are you?")];
    let out = messages(&history);
    assert!(out.iter().all(|w| matches!(w.content, Content::Text(Cow::Borrowed(_)))));
    assert_eq!(
        pairs(&history),
        [("user", "Hi".into()), ("assistant", "Hello!".into()), ("user", "How are you?".into())]
    );
}

#[test]
fn agents_join_the_assistant_side_and_system_notes_are_dropped() {
    let history = [
        m(Role::User, "Hi"),
        m(Role::Assistant, "Hello! How can I help?"),
        m(Role::System, "An agent joined."),
        m(Role::Agent, "Hi, this is Sam."),
        m(Role::User, "How are you?"),
    ];
    assert_eq!(
        pairs(&history),
        [
            ("user", "Hi".into()),
            ("assistant", "Hello! How can I help?\n\nHi, this is Sam.".into()),
            ("user", "How are you?".into()),
        ]
    );
}

#[test]
fn neighbours_of_one_role_merge_across_dropped_messages() {
    let history = [
        m(Role::User, "Hi"),
        m(Role::System, "The assistant failed."),
        m(Role::Assistant, ""),
        m(Role::User, "Anyone there?"),
        m(Role::User, " \n "),
        m(Role::User, "Hello?"),
    ];
    assert_eq!(pairs(&history), [("user", "Hi\n\nAnyone there?\n\nHello?".into())]);
}

#[test]
fn the_first_message_is_the_users() {
    let history = [
        m(Role::Assistant, "Welcome to Acme!"),
        m(Role::System, "Note"),
        m(Role::Agent, "I am here too."),
        m(Role::User, "Hi"),
        m(Role::Assistant, "Hello"),
    ];
    assert_eq!(pairs(&history), [("user", "Hi".into()), ("assistant", "Hello".into())]);
    assert!(messages(&[m(Role::Assistant, "Welcome")]).is_empty());
    assert!(messages(&[]).is_empty());
}

#[test]
fn blank_system_prompts_are_left_out() {
    assert_eq!(system(Some("Be brief.")), Some("Be brief."));
    assert_eq!(system(Some(" \n")), None);
    assert_eq!(system(None), None);
}

fn request(tools: ToolContext) -> ChatRequest {
    ChatRequest {
        system_prompt: Some("Be brief.".into()),
        history: vec![m(Role::User, "Hi"), m(Role::Assistant, "Hello!"), m(Role::User, "Shoes?")].into(),
        session_id: uuid::Uuid::nil(),
        subject: "visitor:test".into(),
        conversation_id: None,
        trace_id: String::new(),
        tools,
    }
}

fn body(request: &ChatRequest) -> String {
    serde_json::to_string(&RequestBody::new("claude-sonnet-4-5", 1024, None, request)).unwrap()
}

fn search_products() -> ToolSpec {
    ToolSpec {
        name: "search_products".into(),
        description: "Search the catalog.".into(),
        // Keys in sorted order: the bytes below are the same whether or not
        // serde_json keeps insertion order (its `preserve_order` feature).
        parameters: serde_json::json!({"properties": {"q": {"type": "string"}}, "type": "object"}),
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
            text: "Let me look.".into(),
            calls: vec![
                call("toolu_1", "search_products", r#"{"q": "shoes"}"#),
                call("toolu_2", "view_cart", "{oops"),
                call("toolu_3", "get_product", r#"["p1"]"#),
            ],
            results: vec![
                result("toolu_1", r#"[{"id":"p1"}]"#, false),
                result("toolu_2", "arguments are not JSON", true),
                result("toolu_3", "arguments must be an object", true),
            ],
        },
        ToolRound {
            text: " \n".into(),
            calls: vec![call("toolu_4", "view_cart", "")],
            results: vec![result("toolu_4", "Your cart is empty", false)],
        },
    ]
    .into()
}

const HISTORY: &str = r#"{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"Shoes?"}"#;

#[test]
fn without_tools_the_body_is_the_plain_chat_request() {
    let expected = format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":"Be brief.","messages":[{HISTORY}]}}"#
    );
    assert_eq!(body(&request(ToolContext::default())), expected);
}

#[test]
fn offered_tools_go_with_their_input_schema() {
    let tools = ToolContext { offered: vec![search_products()].into(), ..ToolContext::default() };
    let expected = format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":"Be brief.","messages":[{HISTORY}],"tools":[{{"name":"search_products","description":"Search the catalog.","input_schema":{{"properties":{{"q":{{"type":"string"}}}},"type":"object"}}}}]}}"#
    );
    assert_eq!(body(&request(tools)), expected);
}

#[test]
fn rounds_follow_the_history_as_tool_use_and_tool_result_blocks() {
    let tools =
        ToolContext { offered: vec![search_products()].into(), rounds: rounds(), choice: ToolChoice::Auto };
    let sent: serde_json::Value = serde_json::from_str(&body(&request(tools))).unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3 + 4);
    assert_eq!(
        Value::from(&messages[3..]),
        serde_json::json!([
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "search_products", "input": {"q": "shoes"}},
                // Not JSON, or JSON but not an object: `{}`.
                {"type": "tool_use", "id": "toolu_2", "name": "view_cart", "input": {}},
                {"type": "tool_use", "id": "toolu_3", "name": "get_product", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "[{\"id\":\"p1\"}]"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "arguments are not JSON", "is_error": true},
                {"type": "tool_result", "tool_use_id": "toolu_3", "content": "arguments must be an object", "is_error": true},
            ]},
            // A blank text makes no block; no arguments at all are `{}`.
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_4", "name": "view_cart", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_4", "content": "Your cart is empty"},
            ]},
        ])
    );
    assert!(sent.get("tool_choice").is_none());
}

#[test]
fn the_last_request_keeps_the_tools_and_forbids_them() {
    let tools =
        ToolContext { offered: vec![search_products()].into(), rounds: rounds(), choice: ToolChoice::None };
    let sent: serde_json::Value = serde_json::from_str(&body(&request(tools))).unwrap();
    assert_eq!(sent["tool_choice"], serde_json::json!({"type": "none"}));
    assert_eq!(sent["tools"][0]["name"], "search_products");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 7);
    let text = body(&request(ToolContext { choice: ToolChoice::None, ..ToolContext::default() }));
    assert!(!text.contains("tool"), "no tools, nothing to forbid: {text}");
}
