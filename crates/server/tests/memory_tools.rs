//! The model's side of a user's memory (SPEC §18), through the real binary
//! with `[tenants.tooling] memory = true`: what is remembered goes to the
//! model with the system prompt; its built-in `remember` / `forget` change
//! it, each change a `tool` event the user sees; a visitor is offered
//! neither and the model is told nothing about memory.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fake_openai::tool_call;
use common::jwt::{self, as_caller, claims, hs256};
use common::{pieces, AppConfig, FakeOpenAi, Mode, SseReply, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "memory-tools-acme-secret-0123456789ab";

async fn start() -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let tenant = TenantSpec::openai("acme", &fake)
        .line(&jwt::hs256_line("ACME_JWT_SECRET"))
        .table("[tenants.tooling]\nmemory = true");
    let app = TestApp::start(AppConfig::new().tenant(tenant).env("ACME_JWT_SECRET", SECRET)).await;
    (app, fake)
}

async fn user_session(app: &TestApp, sub: &str) -> (String, Visitor) {
    let who = as_caller("acme", &hs256(SECRET, &claims("acme", sub)));
    let created = app.create_session_for(&who).await;
    assert_eq!(created.status, 201, "{}", created.text);
    (created.body["session"]["id"].as_str().unwrap().to_owned(), who)
}

fn tools_of(reply: &SseReply) -> Vec<(String, Value)> {
    let events = reply.events.iter().filter(|e| e.event == "tool").map(|e| e.json());
    events.map(|t| (t["status"].as_str().unwrap().to_owned(), t["display"].clone())).collect()
}

fn offered(request: &Value) -> Vec<String> {
    let tools = request["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
    tools.iter().map(|t| t["function"]["name"].as_str().unwrap().to_owned()).collect()
}

fn system_prompt(request: &Value) -> String {
    let first = &request["messages"][0];
    assert_eq!(first["role"], "system", "{request}");
    first["content"].as_str().unwrap().to_owned()
}

async fn memory(app: &TestApp, who: &Visitor) -> Value {
    app.get("/v1/memory", Some(who)).await.body["items"].clone()
}

#[tokio::test]
async fn the_model_reads_the_memory_and_keeps_it_with_remember_and_forget() {
    let (app, fake) = start().await;
    let (sid, alice) = user_session(&app, "alice").await;
    let put = app.request(Method::PUT, "/v1/memory/size", Some(&alice)).json(&json!({"value": "M"}));
    assert_eq!(app.send(put).await.status, 200);

    fake.push_mode(Mode::ToolCalls {
        text: vec![],
        calls: vec![tool_call("call_r", "remember", r#"{"key": "likes", "value": "denim"}"#)],
    });
    let reply = app.chat_stream(&alice, &sid, "remember I like denim").await;
    assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
    assert_eq!(
        tools_of(&reply),
        [
            ("running".to_owned(), Value::Null),
            ("done".to_owned(), json!({"type": "text", "text": "Remembered: likes = denim"}))
        ]
    );
    let first = &fake.requests()[0].body;
    assert_eq!(offered(first), ["remember", "forget"]);
    assert!(system_prompt(first).contains("What you remember about this user"), "{first}");
    assert!(system_prompt(first).contains("\n- size: M"), "{first}");
    let items = memory(&app, &alice).await;
    let keys: Vec<(&str, &str)> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap(), i["value"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("likes", "denim"), ("size", "M")]);
    // The model heard it was kept.
    let sent_back = fake.requests()[1].body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(sent_back["role"], "tool");
    assert!(sent_back["content"].as_str().unwrap().contains("denim"), "{sent_back}");

    // Forget a key it holds, and one it does not: the second is an error
    // result, the stream goes on.
    fake.push_mode(Mode::ToolCalls {
        text: vec![],
        calls: vec![
            tool_call("call_f", "forget", r#"{"key": "size"}"#),
            tool_call("call_g", "forget", r#"{"key": "colour"}"#),
        ],
    });
    let reply = app.chat_stream(&alice, &sid, "forget my size and my colour").await;
    assert_eq!(reply.last().event, "stream_end");
    let ended: Vec<String> =
        tools_of(&reply).into_iter().map(|(s, _)| s).filter(|s| s != "running").collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.contains(&"done".to_owned()) && ended.contains(&"error".to_owned()), "{ended:?}");
    assert_eq!(memory(&app, &alice).await.as_array().unwrap().len(), 1);

    // Broken arguments never reach the memory.
    fake.push_mode(Mode::ToolCalls {
        text: vec![],
        calls: vec![tool_call("call_x", "remember", r#"{"key": "Bad Key", "value": "x"}"#)],
    });
    let reply = app.chat_stream(&alice, &sid, "remember this").await;
    assert_eq!(tools_of(&reply), [("error".to_owned(), Value::Null)]);
    assert_eq!(memory(&app, &alice).await.as_array().unwrap().len(), 1);
    // The next turn's model reads the memory as it is now.
    let prompt = system_prompt(&fake.requests()[4].body);
    assert!(prompt.contains("- likes: denim") && !prompt.contains("size"), "{prompt}");
}

#[tokio::test]
async fn a_visitor_is_offered_no_memory_and_a_user_with_none_is_told_so() {
    let (app, fake) = start().await;
    let (sid, visitor) = app.create_session("acme").await;
    assert_eq!(app.chat_stream(&visitor, &sid, "hi").await.last().event, "stream_end");
    let request = &fake.last_request().body;
    assert!(offered(request).is_empty(), "{request}");
    assert!(request["messages"][0]["role"] != "system" || !system_prompt(request).contains("remember"));

    // A visitor's own call of the tool (a model may try) is refused, never run.
    fake.push_mode(Mode::ToolCalls {
        text: vec![],
        calls: vec![tool_call("call_v", "remember", r#"{"key": "size", "value": "M"}"#)],
    });
    let reply = app.chat_stream(&visitor, &sid, "remember my size").await;
    assert_eq!(tools_of(&reply), [("error".to_owned(), Value::Null)]);

    let (sid, bob) = user_session(&app, "bob").await;
    assert_eq!(app.chat_stream(&bob, &sid, "hi").await.last().event, "stream_end");
    let prompt = system_prompt(&fake.last_request().body);
    assert!(prompt.contains("You remember nothing about this user yet"), "{prompt}");
}

/// The offline demo model keeps and reads a user's memory too.
#[tokio::test]
async fn the_demo_model_remembers_recalls_and_forgets() {
    let tenant = TenantSpec::demo("acme")
        .line(&jwt::hs256_line("ACME_JWT_SECRET"))
        .table("[tenants.tooling]\nmemory = true");
    let app = TestApp::start(AppConfig::new().tenant(tenant).env("ACME_JWT_SECRET", SECRET)).await;
    let (sid, alice) = user_session(&app, "alice").await;
    let said = |reply: &SseReply| reply.last().json()["message"]["content"].as_str().unwrap().to_owned();

    let reply = app.chat_stream(&alice, &sid, "Remember I like denim and size M").await;
    assert_eq!(said(&reply), "I'll remember likes: denim. I'll remember size: M.");
    let kept: Vec<Value> =
        tools_of(&reply).into_iter().filter(|(s, _)| s == "done").map(|(_, d)| d).collect();
    assert_eq!(kept.len(), 2, "each change shown");
    let items = memory(&app, &alice).await;
    assert_eq!(items[0]["key"], "likes");
    assert_eq!(items[1]["value"], "M");

    let reply = app.chat_stream(&alice, &sid, "What do you remember about me?").await;
    assert!(said(&reply).contains("- likes: denim\n- size: M"), "{}", said(&reply));

    let reply = app.chat_stream(&alice, &sid, "forget my size preference").await;
    assert_eq!(said(&reply), "I've forgotten size.");
    assert_eq!(memory(&app, &alice).await.as_array().unwrap().len(), 1);
}
