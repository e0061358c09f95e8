//! Tools end to end, continued (SPEC §16): the page context kept for tools
//! and agents, live product verification, and a tool round with
//! Anthropic's wire format, through the real binary.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
mod common;
#[allow(dead_code)]
mod merchant;

use common::fake_anthropic::{AnthropicMode, FakeAnthropic};
use common::fake_openai::tool_call;
use common::{chat_body, TenantSpec, TestApp};
use merchant::{events, products, search, start, Merchant, Shop, SEARCH, SECRET, VERIFY};
use serde_json::{json, Value};
use std::time::Duration;

/// The page context goes to tools with its message; a message without one
/// gets the session's latest; agents see the latest, visitors never do.
#[tokio::test]
async fn the_page_context_reaches_tools_and_the_latest_is_shown_to_agents_only() {
    let (app, fake, merchant) = start("").await;
    let (sid, v) = app.create_session("acme").await;
    let page = json!({"page": "/shoes", "title": "Running shoes", "cart_id": "c-1"});
    let mut body = chat_body(&sid, "show me running shoes");
    body["context"] = page.clone();
    fake.push_mode(search("call_1", r#"{"query": "running shoes"}"#));
    assert_eq!(app.chat_stream_body(&v, &body).await.last().event, "stream_end");
    fake.push_mode(search("call_2", r#"{"query": "trail"}"#));
    assert_eq!(app.chat_stream(&v, &sid, "and for trails?").await.last().event, "stream_end");
    let contexts: Vec<Value> = merchant.calls().iter().map(|c| c["context"].clone()).collect();
    assert_eq!(contexts, [page.clone(), page.clone()], "the second message had none: the session's latest");

    let detail =
        admin::get_ok(&app, &admin::As::operator(Some("acme")), &format!("/v1/admin/sessions/{sid}")).await;
    assert_eq!(detail["session"]["context"], page);
    let mine = app.get(&format!("/v1/sessions/{sid}"), Some(&v)).await;
    assert_eq!(mine.status.as_u16(), 200, "{}", mine.text);
    assert!(mine.body.get("context").is_none(), "a visitor never reads it back: {}", mine.text);
    let listed = admin::get_ok(&app, &admin::As::operator(Some("acme")), "/v1/admin/sessions").await;
    assert!(listed["items"][0].get("context").is_none(), "the list leaves it out");

    // A new page replaces it.
    let mut body = chat_body(&sid, "thanks");
    body["context"] = json!({"page": "/cart"});
    assert_eq!(app.chat_stream_body(&v, &body).await.last().event, "stream_end");
    let detail =
        admin::get_ok(&app, &admin::As::operator(Some("acme")), &format!("/v1/admin/sessions/{sid}")).await;
    assert_eq!(detail["session"]["context"], json!({"page": "/cart"}));
}

/// Shown products are checked live in parallel with the text: `shown`,
/// then `verified` with the shop's live fields, before `stream_end`; the
/// stored entry keeps the last state.
#[tokio::test]
async fn shown_products_are_verified_live_before_the_turn_ends() {
    let (app, fake, merchant) = start(VERIFY).await;
    fake.push_mode(search("call_v", r#"{"query": "running shoes"}"#));
    let (sid, v) = app.create_session("acme").await;
    let reply = app.chat_stream(&v, &sid, "show me running shoes").await;
    let tools = events(&reply, "tool");
    let statuses: Vec<&str> = tools.iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["running", "shown", "verified"]);
    assert_eq!(tools[1]["display"], products(), "shown as the tool gave it");
    let live = &tools[2]["display"]["items"][0];
    assert_eq!((live["price"].as_str(), live["availability"].as_str()), (Some("79.90"), Some("low_stock")));
    assert_eq!(live["title"], "Trail runner", "what the check did not send stays");
    assert_eq!(reply.last().event, "stream_end");
    assert_eq!(merchant.checks.lock().unwrap().clone(), [json!({"type": "products.verify", "ids": ["p1"]})]);
    // With the turn's trace id (`traceparent`), like the tool call.
    let trace_id = reply.headers.get("x-trace-id").and_then(|h| h.to_str().ok()).unwrap();
    let traceparent = merchant.check_traceparents.lock().unwrap()[0].clone().expect("a traceparent");
    assert_eq!(traceparent.split('-').nth(1), Some(trace_id), "{traceparent}");

    let stored = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!(stored["tools"][0]["status"], "verified");
    assert_eq!(stored["tools"][0]["display"]["items"][0]["price"], "79.90");
    let detail =
        admin::get_ok(&app, &admin::As::operator(Some("acme")), &format!("/v1/admin/sessions/{sid}")).await;
    let answer = detail["messages"].as_array().unwrap().iter().find(|m| m["seq"] == 2).unwrap().clone();
    assert_eq!(answer["tool_calls"][0]["status"], "verified");
    assert_eq!(
        answer["tool_calls"][0]["result"],
        json!({"found": 1, "ids": ["p1"]}),
        "the model's result unchanged"
    );
}

/// A check slower than `verify_timeout_ms` ends `unverified`, and the
/// answer's text never waits for it.
#[tokio::test]
async fn a_slow_check_ends_unverified_and_never_delays_the_text() {
    let (app, fake, merchant) = start(VERIFY).await;
    *merchant.check_delay.lock().unwrap() = Duration::from_secs(2);
    fake.push_mode(search("call_s", r#"{"query": "running shoes"}"#));
    let (sid, v) = app.create_session("acme").await;
    let reply = app.chat_stream(&v, &sid, "show me running shoes").await;
    let order: Vec<String> = reply
        .events
        .iter()
        .filter(|e| e.event != "typing")
        .map(|e| match e.event.as_str() {
            "tool" => format!("tool:{}", e.json()["status"].as_str().unwrap()),
            "stream_delta" => format!("delta:{}", e.json()["text"].as_str().unwrap()),
            other => other.to_owned(),
        })
        .collect();
    // Where the event that names this came (text may come joined in fewer deltas).
    let at = |name: &str| {
        order.iter().position(|e| e.contains(name)).unwrap_or_else(|| panic!("{name}: {order:?}"))
    };
    assert!(at("tool:shown") < at("delta:w0"), "{order:?}");
    assert!(at(" w2") < at("tool:unverified"), "the text came before the check's end: {order:?}");
    assert_eq!(order.last().map(String::as_str), Some("stream_end"), "{order:?}");
    let unverified = events(&reply, "tool").pop().unwrap();
    assert_eq!(unverified["display"], products(), "nothing live to show");
    let stored = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!(stored["tools"][0]["status"], "unverified");
}

/// The same round with Anthropic's wire format, through the binary: the
/// `tool_use` block assembled from `input_json_delta`, the call run, and
/// the next request carrying the assistant's `tool_use` and a user turn of
/// `tool_result` blocks (`is_error` for a failing tool).
#[tokio::test]
async fn an_anthropic_tool_round_goes_through_the_binary_in_its_own_format() {
    let fake = FakeAnthropic::start(AnthropicMode::Normal(vec!["Found".into(), " it.".into()])).await;
    let (merchant, port) = Merchant::start().await;
    let tenant = TenantSpec::upstream("acme", "anthropic", &fake.base_url(), "sonnet-fake")
        .table(&SEARCH.replace("PORT", &port.to_string()))
        .env("SHOP_TOOL_SECRET", SECRET);
    let app =
        TestApp::start(admin::operator_config().raw(r#"tool_allow_private = ["127.0.0.1"]"#).tenant(tenant))
            .await;
    let (sid, v) = app.create_session("acme").await;
    let use_search = |id: &str| AnthropicMode::ToolUse {
        text: vec!["Let me ".into(), "look.".into()],
        calls: vec![tool_call(id, "search_products", r#"{"query": "trail shoes"}"#)],
    };

    fake.push_mode(use_search("toolu_01A"));
    let reply = app.chat_stream(&v, &sid, "trail shoes?").await;
    assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
    assert_eq!(reply.last().json()["message"]["content"], "Let me look.Found it.");
    let tools = events(&reply, "tool");
    assert_eq!(tools.last().unwrap()["status"], "done");
    assert_eq!(tools.last().unwrap()["call_id"], "toolu_01A");
    assert_eq!(merchant.calls()[0]["arguments"], json!({"query": "trail shoes"}));

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["tools"][0]["name"], "search_products");
    assert_eq!(requests[0].body["tools"][0]["input_schema"]["required"], json!(["query"]));
    let messages = requests[1].body["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    let said = messages[n - 2]["content"].as_array().unwrap();
    assert_eq!(said[0], json!({"type": "text", "text": "Let me look."}));
    assert_eq!(
        said[1],
        json!({"type": "tool_use", "id": "toolu_01A", "name": "search_products", "input": {"query": "trail shoes"}})
    );
    assert_eq!(messages[n - 1]["role"], "user");
    let result = &messages[n - 1]["content"][0];
    assert_eq!(
        (result["type"].as_str(), result["tool_use_id"].as_str()),
        (Some("tool_result"), Some("toolu_01A"))
    );
    assert_ne!(result["is_error"], true);
    let content: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"found": 1, "ids": ["p1"]}));

    // A failing tool: the model reads an error result, the stream goes on.
    merchant.answer(Shop::Fails);
    fake.push_mode(use_search("toolu_01B"));
    let reply = app.chat_stream(&v, &sid, "and again?").await;
    assert_eq!(reply.last().event, "stream_end");
    assert_eq!(events(&reply, "tool").last().unwrap()["status"], "error");
    let last = fake.last_request();
    let messages = last.body["messages"].as_array().unwrap();
    let result = &messages[messages.len() - 1]["content"][0];
    assert_eq!(
        (result["tool_use_id"].as_str(), result["is_error"].as_bool()),
        (Some("toolu_01B"), Some(true))
    );
    assert!(result["content"].as_str().unwrap().contains("500"), "{result}");
}
