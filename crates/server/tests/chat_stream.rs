//! Full turns, streamed and not, through the demo provider and the fake OpenAI
//! upstream: event order, seqs, offsets, content, usage, stored state, upstream
//! framing variants, and what the upstream is sent (system prompt, history).
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::checks::{
    assert_message_shape, assert_session_shape, check_latency, check_stream_turn, check_usage,
};
use common::fake_openai::{FAKE_API_KEY, PROMPT_TOKENS};
use common::{joined, pieces, unicode_pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use serde_json::{json, Value};
use std::time::Duration;

/// The stored history matches a finished turn.
async fn assert_stored_turn(app: &TestApp, v: &Visitor, sid: &str, user_seq: i64, user: &str, answer: &str) {
    let msgs = app.messages(v, sid).await;
    let find =
        |seq: i64| msgs.iter().find(|m| m["seq"] == seq).cloned().unwrap_or_else(|| panic!("no seq {seq}"));
    let (u, a) = (find(user_seq), find(user_seq + 1));
    for m in [&u, &a] {
        assert_message_shape(m);
        assert_eq!(m["session_id"], sid);
        assert_eq!(m["status"], "complete", "{m}");
    }
    assert_eq!(u["role"], "user");
    assert_eq!(u["content"], user);
    assert_eq!(a["role"], "assistant");
    assert_eq!(a["content"], answer);
    let seqs: Vec<i64> = msgs.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(seqs, sorted, "history is not newest first");
}

#[tokio::test]
async fn streamed_turns_through_the_builtin_demo_tenant() {
    let app = TestApp::start(AppConfig::new()).await;
    let (sid, v) = app.create_session("demo").await;

    let reply = app.chat_stream(&v, &sid, "Hello there").await;
    let turn = check_stream_turn(&reply, "Hello there", 1);
    assert_eq!(turn.end["provider"], "demo");
    assert!(
        reply.events.iter().filter(|e| e.event == "stream_delta").count() > 1,
        "the demo streams word by word"
    );
    assert_stored_turn(&app, &v, &sid, 1, "Hello there", &turn.text).await;

    let session = app.get(&format!("/v1/sessions/{sid}"), Some(&v)).await;
    assert_eq!(session.status.as_u16(), 200, "{}", session.text);
    assert_session_shape(&session.body);
    assert_eq!(session.body["message_count"], 2);
    assert_eq!(session.body["latest_seq"], 2);

    let turn2 = check_stream_turn(&app.chat_stream(&v, &sid, "Once more").await, "Once more", 3);
    assert_eq!(turn2.seq, 4);
    assert_ne!(turn2.turn_id, turn.turn_id);
    assert_stored_turn(&app, &v, &sid, 3, "Once more", &turn2.text).await;
}

/// A `stream: false` reply (SPEC §4), checked against the stored history.
async fn check_json_turn(app: &TestApp, v: &Visitor, sid: &str, message: &str) -> Value {
    let reply = app.chat_json(v, sid, message).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert!(reply.header("content-type").unwrap_or_default().starts_with("application/json"));
    assert!(reply.header("x-trace-id").is_some());
    let b = &reply.body;
    assert_message_shape(&b["message"]);
    assert_message_shape(&b["user_message"]);
    assert_eq!(b["user_message"]["seq"], 1);
    assert_eq!(b["user_message"]["content"], message);
    assert_eq!(b["user_message"]["role"], "user");
    assert_eq!(b["message"]["seq"], 2);
    assert_eq!(b["message"]["role"], "assistant");
    assert_eq!(b["message"]["status"], "complete");
    check_usage(&b["usage"]);
    check_latency(&b["latency_ms"]);
    let answer = b["message"]["content"].as_str().unwrap().to_owned();
    assert!(!answer.is_empty());
    assert_stored_turn(app, v, sid, 1, message, &answer).await;
    b.clone()
}

#[tokio::test]
async fn non_streamed_turn_through_a_demo_tenant() {
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::demo("shop"))).await;
    let (sid, v) = app.create_session("shop").await;
    check_json_turn(&app, &v, &sid, "What do you sell?").await;
}

#[tokio::test]
async fn streamed_turn_through_the_openai_upstream() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(5))).await;
    let tenant = TenantSpec::openai("acme", &fake).system_prompt("You are a test assistant.");
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = app.create_session("acme").await;

    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "Hi").await, "Hi", 1);
    assert_eq!(turn.text, "w0 w1 w2 w3 w4");
    assert_eq!(
        turn.end["usage"],
        json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 5, "total_tokens": PROMPT_TOKENS + 5, "estimated": false})
    );
    assert_eq!(turn.end["provider"], "openai");
    let model = turn.end["model"].as_str().unwrap();
    assert!(model == "gpt-fake" || model == "gpt-fake-2024-08-06", "model {model}");
    assert_stored_turn(&app, &v, &sid, 1, "Hi", &turn.text).await;

    assert_eq!(fake.calls(), 1);
    let req = fake.last_request();
    assert_eq!(req.authorization.as_deref(), Some(format!("Bearer {FAKE_API_KEY}").as_str()));
    assert_eq!(req.body["model"], "gpt-fake");
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["stream_options"]["include_usage"], true, "usage must be requested: {}", req.body);
    assert_eq!(
        req.body["messages"],
        json!([{"role": "system", "content": "You are a test assistant."}, {"role": "user", "content": "Hi"}])
    );
}

#[tokio::test]
async fn non_streamed_turn_through_the_openai_upstream() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;
    let b = check_json_turn(&app, &v, &sid, "Hello").await;
    assert_eq!(b["message"]["content"], "w0 w1 w2");
    assert_eq!(b["usage"]["completion_tokens"], 3);
    assert_eq!(b["usage"]["estimated"], false);
    assert_eq!(fake.calls(), 1);
    assert_eq!(fake.last_request().body["messages"], json!([{"role": "user", "content": "Hello"}]));
}

#[tokio::test]
async fn upstream_framing_variants_are_decoded() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(1))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;
    let expected = joined(&unicode_pieces());

    // Every byte its own write (UTF-8 characters and lines split), then
    // keep-alive comments with CRLF line ends, then no usage chunk at all.
    let modes = [
        Mode::SplitBytes(unicode_pieces()),
        Mode::KeepAlive(unicode_pieces()),
        Mode::NoUsage(unicode_pieces()),
    ];
    for (i, mode) in modes.into_iter().enumerate() {
        let name = format!("{mode:?}");
        fake.push_mode(mode);
        let user_seq = 1 + 2 * i as i64;
        let message = format!("variant {i}");
        let turn = check_stream_turn(&app.chat_stream(&v, &sid, &message).await, &message, user_seq);
        assert_eq!(turn.text, expected, "{name}");
        let estimated = turn.end["usage"]["estimated"].as_bool().unwrap();
        assert_eq!(estimated, i == 2, "usage.estimated for {name}: {}", turn.end["usage"]);
        if i < 2 {
            assert_eq!(turn.end["usage"]["completion_tokens"], unicode_pieces().len(), "{name}");
        }
        assert_stored_turn(&app, &v, &sid, user_seq, &message, &expected).await;
    }
}

#[tokio::test]
async fn history_window_and_system_prompt_reach_the_upstream() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let tenant = TenantSpec::openai("acme", &fake).system_prompt("Be brief.").history_messages(3);
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = app.create_session("acme").await;

    let mut conversation: Vec<Value> = Vec::new();
    for i in 1..=4 {
        let message = format!("question {i}");
        let turn = check_stream_turn(&app.chat_stream(&v, &sid, &message).await, &message, 2 * i - 1);
        conversation.push(json!({"role": "user", "content": message}));
        let sent = fake.last_request().body["messages"].as_array().unwrap().clone();
        assert_eq!(sent[0], json!({"role": "system", "content": "Be brief."}), "turn {i}: {sent:?}");
        let window = &sent[1..];
        // The current message is always sent last, after a contiguous suffix
        // of the earlier conversation, oldest first.
        assert!(conversation.ends_with(window), "turn {i}: {window:?} is not the end of {conversation:?}");
        let expected_len = conversation.len().min(3);
        assert!(
            window.len() == expected_len || window.len() == (conversation.len() - 1).min(3) + 1,
            "turn {i}: history_messages = 3 but {} messages were sent: {window:?}",
            window.len()
        );
        conversation.push(json!({"role": "assistant", "content": turn.text}));
    }
    let last_window = fake.last_request().body["messages"].as_array().unwrap().len() - 1;
    assert!(last_window < 7, "history was not cut to the window");
}

#[tokio::test]
async fn quiet_streams_carry_heartbeat_comments() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(1), after: vec![" end".to_owned()] }).await;
    let config = AppConfig::new().tenant(TenantSpec::openai("acme", &fake)).raw("heartbeat_secs = 1");
    let app = TestApp::start(config).await;
    let (sid, v) = app.create_session("acme").await;
    let mut live = app.chat_live(&v, &common::chat_body(&sid, "hi")).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    live.until_comment("heartbeat", Duration::from_secs(5)).await;
    fake.release();
    let events = live.finish(Duration::from_secs(10)).await;
    assert_eq!(events.last().unwrap().event, "stream_end");
    assert_eq!(common::deltas_text(&events), "w0 end");
}

#[tokio::test]
async fn turns_in_two_sessions_of_one_visitor_run_side_by_side() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(1), after: vec![" end".to_owned()] }).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (s1, v) = app.create_session("acme").await;
    let second = app.create_session_for(&v).await;
    let s2 = second.body["session"]["id"].as_str().unwrap().to_owned();

    let mut a = app.chat_live(&v, &common::chat_body(&s1, "one")).await;
    a.until("stream_delta", Duration::from_secs(10)).await;
    let mut b = app.chat_live(&v, &common::chat_body(&s2, "two")).await;
    b.until("stream_delta", Duration::from_secs(10)).await;
    fake.release();
    for live in [a, b] {
        let events = live.finish(Duration::from_secs(10)).await;
        assert_eq!(events.last().unwrap().event, "stream_end", "{events:?}");
        assert_eq!(common::deltas_text(&events), "w0 end");
    }
    assert_eq!(fake.calls(), 2);
}
