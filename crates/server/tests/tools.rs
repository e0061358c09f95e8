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
#[allow(dead_code)]
mod merchant;

use common::fake_openai::tool_call;
use common::{chat_body, eventually, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use merchant::{events, products, search, start, start_with, Merchant, Shop, SEARCH, SECRET};
use serde_json::{json, Value};
use std::time::Duration;

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
    // With the turn's trace id (`traceparent`).
    let trace_id = reply.headers.get("x-trace-id").and_then(|h| h.to_str().ok()).unwrap();
    let traceparent = merchant.traceparents.lock().unwrap()[0].clone().expect("a traceparent");
    assert_eq!(traceparent.split('-').nth(1), Some(trace_id), "{traceparent}");

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
