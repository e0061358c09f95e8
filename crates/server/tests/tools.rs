//! Tool calls end to end (SPEC §16), through the real binary: a fake OpenAI
//! upstream that streams tool calls the way OpenAI does, and a merchant's
//! webhook that verifies each call's Standard Webhooks signature and answers
//! `{result, display}`. What the model is sent back, what the visitor sees
//! (`tool` events, `tools` on the stored answer: never arguments or
//! results), and that a failing, slow or refused tool never breaks the
//! stream.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::fake_anthropic::{AnthropicMode, FakeAnthropic};
use common::fake_openai::tool_call;
use common::fake_upstream::serve;
use common::{chat_body, eventually, pieces, AppConfig, FakeOpenAi, Mode, SseReply, TenantSpec, TestApp};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_tools::SigningKeys;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the merchant answers.
#[derive(Clone)]
enum Shop {
    Products,
    Fails,
    Slow,
}

#[derive(Clone)]
struct Merchant {
    calls: Arc<Mutex<Vec<Value>>>,
    answer: Arc<Mutex<Shop>>,
    /// The product checks (`verify_url`) received.
    checks: Arc<Mutex<Vec<Value>>>,
    /// How long a check takes to answer.
    check_delay: Arc<Mutex<Duration>>,
}

impl Merchant {
    async fn start() -> (Self, u16) {
        let merchant = Self {
            calls: Arc::default(),
            answer: Arc::new(Mutex::new(Shop::Products)),
            checks: Arc::default(),
            check_delay: Arc::default(),
        };
        let app = Router::new()
            .route("/tools", post(tool))
            .route("/verify", post(verify))
            .with_state(merchant.clone());
        (merchant, serve(app).await)
    }

    fn calls(&self) -> Vec<Value> {
        self.calls.lock().unwrap().clone()
    }

    fn answer(&self, shop: Shop) {
        *self.answer.lock().unwrap() = shop;
    }
}

fn products() -> Value {
    json!({"type": "products", "items": [{"id": "p1", "title": "Trail runner", "price": "89.90",
        "currency": "EUR", "availability": "in_stock", "url": "https://shop.example/p1",
        "image": "https://shop.example/p1.svg"}]})
}

/// Refuses what is not signed with [`SECRET`], like a tenant's backend.
async fn tool(State(m): State<Merchant>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let keys = SigningKeys::parse(SECRET).unwrap();
    let now = chrono::Utc::now().timestamp();
    if keys.verify(&headers, &body, now, Duration::from_secs(300)).is_err() {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let call: Value = serde_json::from_slice(&body).unwrap();
    m.calls.lock().unwrap().push(call.clone());
    if call["arguments"]["query"] == "slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let shop = m.answer.lock().unwrap().clone();
    match shop {
        Shop::Products => (
            StatusCode::OK,
            json!({"result": {"found": 1, "ids": ["p1"]}, "display": products()}).to_string(),
        ),
        Shop::Fails => (StatusCode::INTERNAL_SERVER_ERROR, "boom".into()),
        Shop::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, json!({"result": "late"}).to_string())
        }
    }
}

/// A shop's live data, signed like a tool call: p1's price went down and
/// its stock with it.
async fn verify(State(m): State<Merchant>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let keys = SigningKeys::parse(SECRET).unwrap();
    if keys.verify(&headers, &body, chrono::Utc::now().timestamp(), Duration::from_secs(300)).is_err() {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let check: Value = serde_json::from_slice(&body).unwrap();
    m.checks.lock().unwrap().push(check);
    let delay = *m.check_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let live =
        json!({"items": [{"id": "p1", "price": "79.90", "currency": "EUR", "availability": "low_stock"}]});
    (StatusCode::OK, live.to_string())
}

/// Checks shown products at the merchant's `/verify`, signed with the
/// tools' secret.
const VERIFY: &str = "[tenants.tooling]\nverify_url = \"http://127.0.0.1:PORT/verify\"\n\
     verify_secret_env = \"SHOP_TOOL_SECRET\"\nverify_timeout_ms = 300";

const SEARCH: &str = r#"[[tenants.tools]]
name = "search_products"
description = "Search the shop's catalog"
parameters = { type = "object", properties = { query = { type = "string" } }, required = ["query"] }
url = "http://127.0.0.1:PORT/tools"
secret_env = "SHOP_TOOL_SECRET"
timeout_ms = 1000"#;

async fn start(extra: &str) -> (TestApp, FakeOpenAi, Merchant) {
    start_with(SEARCH, extra).await
}

async fn start_with(search: &str, extra: &str) -> (TestApp, FakeOpenAi, Merchant) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let (merchant, port) = Merchant::start().await;
    let tenant = TenantSpec::openai("acme", &fake)
        .table(&search.replace("PORT", &port.to_string()))
        .table(&extra.replace("PORT", &port.to_string()))
        .env("SHOP_TOOL_SECRET", SECRET);
    let config = admin::operator_config().raw(r#"tool_allow_private = ["127.0.0.1"]"#).tenant(tenant);
    let app = TestApp::start(config).await;
    (app, fake, merchant)
}

fn events(reply: &SseReply, kind: &str) -> Vec<Value> {
    reply.events.iter().filter(|e| e.event == kind).map(|e| e.json()).collect()
}

fn search(id: &str, arguments: &str) -> Mode {
    Mode::ToolCalls {
        text: vec!["Let me look.".into()],
        calls: vec![tool_call(id, "search_products", arguments)],
    }
}

#[tokio::test]
async fn a_tool_round_runs_the_signed_webhook_and_the_answer_goes_on_in_the_same_message() {
    let (app, fake, merchant) = start("").await;
    fake.push_mode(search("call_abc", r#"{"query": "running shoes"}"#));
    let (sid, v) = app.create_session("acme").await;

    let reply = app.chat_stream(&v, &sid, "show me running shoes").await;
    let names: Vec<&str> = reply.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.last(), Some(&"stream_end"), "{names:?}");
    let tools = events(&reply, "tool");
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert_eq!((tools[0]["status"].as_str(), tools[1]["status"].as_str()), (Some("running"), Some("done")));
    assert_eq!(tools[1]["call_id"], "call_abc");
    assert_eq!(tools[1]["name"], "search_products");
    assert_eq!(tools[1]["display"], products());
    for t in &tools {
        assert!(t.get("arguments").is_none() && t.get("result").is_none(), "{t}");
    }
    // Both rounds' text in one message and one stream.
    let end = reply.last().json();
    assert_eq!(end["message"]["content"], "Let me look.w0 w1 w2");
    assert_eq!(end["finish_reason"], "stop");
    assert_eq!(end["message"]["tools"][0]["status"], "done");
    // Every round's tokens (the fake counts its prompt as 14, a piece or a
    // call as one completion token).
    assert_eq!(
        end["usage"],
        json!({"prompt_tokens": 28, "completion_tokens": 5, "total_tokens": 33, "estimated": false})
    );

    // The merchant got a signed call with the turn's ids and the subject.
    let calls = merchant.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call["type"], "tool.call");
    assert_eq!(call["tenant_id"], "acme");
    assert_eq!(call["session_id"], sid.as_str());
    assert_eq!(call["turn_id"], end["turn_id"]);
    assert_eq!(call["call_id"], "call_abc");
    assert_eq!(call["tool"], "search_products");
    assert_eq!(call["arguments"], json!({"query": "running shoes"}));
    assert_eq!(call["subject"]["kind"], "visitor");

    // The model was offered the tool, then sent its call and the result.
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["tools"][0]["function"]["name"], "search_products");
    let messages = requests[1].body["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    assert_eq!(messages[n - 2]["tool_calls"][0]["id"], "call_abc");
    assert_eq!(messages[n - 1]["role"], "tool");
    assert_eq!(messages[n - 1]["tool_call_id"], "call_abc");
    let result: Value = serde_json::from_str(messages[n - 1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"found": 1, "ids": ["p1"]}));

    // Stored: the visible part only, for the visitor.
    let stored = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!(stored["content"], "Let me look.w0 w1 w2");
    let kept = &stored["tools"][0];
    assert_eq!((kept["call_id"].as_str(), kept["status"].as_str()), (Some("call_abc"), Some("done")));
    assert_eq!(kept["display"], products());
    assert!(kept.get("arguments").is_none() && kept.get("result").is_none(), "{kept}");

    // Agents see each call whole.
    let detail =
        admin::get_ok(&app, &admin::As::operator(Some("acme")), &format!("/v1/admin/sessions/{sid}")).await;
    let answer = detail["messages"].as_array().unwrap().iter().find(|m| m["seq"] == 2).unwrap().clone();
    let call = &answer["tool_calls"][0];
    assert_eq!(call["arguments"], json!({"query": "running shoes"}));
    assert_eq!(call["result"], json!({"found": 1, "ids": ["p1"]}));
    assert_eq!(call["display"], products());
    assert_eq!(call["status"], "done");
    assert!(call["started_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{call}");
    assert!(call["duration_ms"].is_u64(), "{call}");
    assert!(detail["messages"][0].get("tool_calls").is_none(), "only answers carry tool_calls");

    let metrics = app.get("/metrics", None).await.text;
    let line = metrics.lines().find(|l| l.starts_with("switchboard_tool_calls_total{")).unwrap_or_default();
    assert!(line.contains(r#"tool="search_products""#) && line.contains(r#"outcome="done""#), "{line}");
    assert!(metrics.contains("switchboard_tool_call_duration_seconds"), "{metrics}");
}

#[tokio::test]
async fn arguments_that_break_the_schema_are_never_sent_and_the_model_hears_why() {
    let (app, fake, merchant) = start("").await;
    fake.push_mode(search("call_1", r#"{"query": 7}"#));
    let (sid, v) = app.create_session("acme").await;
    let reply = app.chat_stream(&v, &sid, "shoes?").await;
    let tools = events(&reply, "tool");
    assert_eq!(tools.len(), 1, "only an error event: {tools:?}");
    assert_eq!(tools[0]["status"], "error");
    assert!(merchant.calls().is_empty(), "nothing was sent to the merchant");
    let messages = fake.last_request().body["messages"].as_array().unwrap().clone();
    let why: Value = serde_json::from_str(messages.last().unwrap()["content"].as_str().unwrap()).unwrap();
    assert!(why["error"].as_str().unwrap().contains("schema"), "{why}");
    assert_eq!(reply.last().event, "stream_end");

    // Not JSON at all, and an unknown tool: the same.
    fake.push_mode(Mode::ToolCalls {
        text: vec![],
        calls: vec![
            tool_call("call_2", "search_products", r#"{"query": "#),
            tool_call("call_3", "rm_rf", "{}"),
        ],
    });
    let reply = app.chat_stream(&v, &sid, "again").await;
    let statuses: Vec<String> = events(&reply, "tool").iter().map(|t| t["status"].to_string()).collect();
    assert_eq!(statuses, ["\"error\"", "\"error\""]);
    assert!(merchant.calls().is_empty());
    assert_eq!(reply.last().event, "stream_end");
}

#[tokio::test]
async fn a_failing_or_slow_tool_is_an_error_result_and_the_stream_goes_on() {
    let (app, fake, merchant) = start("").await;
    let (sid, v) = app.create_session("acme").await;
    for (shop, reason) in [(Shop::Fails, "HTTP 500"), (Shop::Slow, "timeout")] {
        merchant.answer(shop);
        fake.push_mode(search("call_x", r#"{"query": "hoodies"}"#));
        let reply = app.chat_stream(&v, &sid, "hoodies?").await;
        let tools = events(&reply, "tool");
        assert_eq!(tools.last().unwrap()["status"], "error", "{tools:?}");
        assert_eq!(reply.last().event, "stream_end", "{reason}");
        let messages = fake.last_request().body["messages"].as_array().unwrap().clone();
        let why: Value = serde_json::from_str(messages.last().unwrap()["content"].as_str().unwrap()).unwrap();
        assert_eq!(why, json!({"error": reason}));
    }
}

#[tokio::test]
async fn after_the_last_round_the_model_is_asked_once_more_without_tools() {
    let (app, fake, _merchant) = start("[tenants.tooling]\nmax_tool_rounds = 2").await;
    for i in 0..2 {
        fake.push_mode(search(&format!("call_{i}"), r#"{"query": "socks"}"#));
    }
    let (sid, v) = app.create_session("acme").await;
    let reply = app.chat_stream(&v, &sid, "socks").await;
    assert_eq!(reply.last().event, "stream_end");
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "two rounds, then words");
    assert!(requests[1].body.get("tools").is_some());
    assert!(requests[2].body.get("tools").is_none(), "the last request offers no tools");
    assert_eq!(events(&reply, "tool").len(), 4, "running and done for each round");
}

#[tokio::test]
async fn tools_reach_private_addresses_only_when_the_operator_allows_it() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let (merchant, port) = Merchant::start().await;
    let tenant = TenantSpec::openai("acme", &fake)
        .table(&SEARCH.replace("PORT", &port.to_string()))
        .env("SHOP_TOOL_SECRET", SECRET);
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    fake.push_mode(search("call_1", r#"{"query": "x"}"#));
    let (sid, v) = app.create_session("acme").await;
    let reply = app.chat_stream(&v, &sid, "x").await;
    assert_eq!(events(&reply, "tool").last().unwrap()["status"], "error");
    assert!(merchant.calls().is_empty(), "a loopback webhook is refused without tool_allow_private");
    let messages = fake.last_request().body["messages"].as_array().unwrap().clone();
    let why: Value = serde_json::from_str(messages.last().unwrap()["content"].as_str().unwrap()).unwrap();
    assert_eq!(why, json!({"error": "address not allowed"}));
}

#[tokio::test]
async fn an_unreachable_mcp_server_stops_nothing() {
    let (app, fake, _merchant) =
        start("[[tenants.mcp]]\nname = \"shop\"\nurl = \"https://mcp.shop.example/mcp\"\ntimeout_ms = 500")
            .await;
    let (sid, v) = app.create_session("acme").await;
    let reply = app.chat_stream(&v, &sid, "hi").await;
    assert_eq!(reply.last().event, "stream_end", "a turn still answers");
    let tools = fake.last_request().body["tools"].clone();
    let names: Vec<&str> =
        tools.as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["search_products"], "nothing offered from the server that cannot be reached");
}

/// SIGKILL while a round runs: after the restart the answer is
/// `interrupted` with what was said and the calls so far; the call that
/// finished keeps its display, the one still running reads as an error.
#[tokio::test]
async fn a_crash_mid_round_keeps_the_text_and_the_calls_made_so_far() {
    let (mut app, fake, merchant) =
        start_with(&SEARCH.replace("timeout_ms = 1000", "timeout_ms = 60000"), "").await;
    fake.push_mode(Mode::ToolCalls {
        text: vec!["Let me look.".into()],
        calls: vec![
            tool_call("call_fast", "search_products", r#"{"query": "fast"}"#),
            tool_call("call_slow", "search_products", r#"{"query": "slow"}"#),
        ],
    });
    let (sid, v) = app.create_session("acme").await;
    let mut live = app.chat_live(&v, &chat_body(&sid, "shoes, quickly")).await;
    let done = loop {
        let ev = live.next(Duration::from_secs(10)).await.expect("the stream ended early");
        if ev.event == "tool" && ev.json()["status"] == "done" {
            break ev.json();
        }
    };
    assert_eq!(done["call_id"], "call_fast");
    // A checkpoint (every second) stores the calls so far.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(merchant.calls().len(), 2, "both calls were made");
    app.kill().await;
    drop(live);

    app.restart().await;
    let (appr, vr, sidr) = (&app, &v, sid.as_str());
    let answer = eventually("the answer to be marked interrupted", Duration::from_secs(5), || async move {
        let m = appr.message(vr, sidr, 2).await?;
        (m["status"] == "interrupted").then_some(m)
    })
    .await;
    assert_eq!(answer["content"], "Let me look.");
    let tools = answer["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert_eq!(
        (tools[0]["call_id"].as_str(), tools[0]["status"].as_str()),
        (Some("call_fast"), Some("done"))
    );
    assert_eq!(tools[0]["display"], products());
    assert_eq!(
        (tools[1]["call_id"].as_str(), tools[1]["status"].as_str()),
        (Some("call_slow"), Some("error"))
    );
}

/// The built-in `handoff_to_human` (SPEC §16): the session waits for a
/// person, the visitor's messages go to the agents, the console's
/// `waiting` filter finds it, and an agent taking over then releasing gives
/// it back to the AI.
#[tokio::test]
async fn a_handoff_leaves_the_session_waiting_for_an_agent() {
    let (app, fake, _merchant) = start("[tenants.tooling]\nbuiltin_tools = [\"handoff_to_human\"]").await;
    fake.push_mode(Mode::ToolCalls {
        text: vec![],
        calls: vec![tool_call("call_h", "handoff_to_human", r#"{"reason": "wants a refund"}"#)],
    });
    fake.push_mode(Mode::Normal(vec!["A person".into(), " will join you.".into()]));
    let (sid, v) = app.create_session("acme").await;
    let reply = app.chat_stream(&v, &sid, "I want to talk to a person").await;
    let requests = fake.requests();
    let offered: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["search_products", "handoff_to_human"]);
    let handoff = events(&reply, "handoff");
    assert_eq!(handoff, [json!({"status": "waiting", "reason": "wants a refund"})]);
    assert_eq!(reply.last().event, "stream_end");
    assert_eq!(reply.last().json()["message"]["content"], "A person will join you.");

    let session = app.get(&format!("/v1/sessions/{sid}"), Some(&v)).await;
    assert_eq!(session.body["status"], "waiting", "{}", session.text);
    let note = app.message(&v, &sid, 3).await.unwrap();
    assert_eq!(
        (note["role"].as_str(), note["content"].as_str()),
        (Some("system"), Some("Handoff requested"))
    );

    // The AI is silent: the message is kept for the agents.
    let calls = fake.calls();
    let sent = app.chat_json(&v, &sid, "hello?").await;
    assert_eq!(sent.status.as_u16(), 202, "{}", sent.text);
    assert_eq!(sent.body["handled_by"], "agent");
    assert_eq!(fake.calls(), calls, "the model is not asked");

    let operator = admin::As::operator(Some("acme"));
    let waiting = admin::get_ok(&app, &operator, "/v1/admin/sessions?status=waiting").await;
    let ids: Vec<&str> =
        waiting["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid.as_str()]);

    let path = format!("/v1/admin/sessions/{sid}");
    let taken = admin::call(&app, &operator, reqwest::Method::POST, &format!("{path}/takeover"), None).await;
    assert_eq!(taken.status.as_u16(), 200, "{}", taken.text);
    assert_eq!(taken.body["status"], "human");
    let released =
        admin::call(&app, &operator, reqwest::Method::POST, &format!("{path}/release"), None).await;
    assert_eq!(released.status.as_u16(), 200, "{}", released.text);
    assert_eq!(released.body["status"], "active");
    let again = app.chat_stream(&v, &sid, "still there?").await;
    assert_eq!(again.last().event, "stream_end", "the AI answers again");
}

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
    let at = |name: &str| order.iter().position(|e| e == name).unwrap_or_else(|| panic!("{name}: {order:?}"));
    assert!(at("tool:shown") < at("delta:w0"), "{order:?}");
    assert!(at("delta: w2") < at("tool:unverified"), "the text came before the check's end: {order:?}");
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
