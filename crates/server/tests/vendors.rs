//! The `anthropic` and `dify` providers end to end (SPEC §5, §8, §11.3, §13),
//! through the real binary against fake vendors speaking the recorded wire
//! formats: the vendor's own usage and the request it is sent, retries of
//! failures before the first token (HTTP and in-stream), the upstream
//! connection closed when a visitor leaves under `on_disconnect = "abort"`,
//! a stale Dify conversation replaced by a new one, and fallbacks of another
//! kind than the primary, with `stream_end` naming who answered.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::checks::{check_error_event, check_stream_turn};
use common::fake_anthropic::{AnthropicMode, FakeAnthropic, OUTPUT_TOKENS, PROMPT_TOKENS};
use common::fake_dify::{conversation, DifyMode, FakeDify, ANSWER};
use common::fake_openai::FAKE_API_KEY;
use common::{
    chat_body, eventually, joined, pieces, AppConfig, FakeOpenAi, Mode, SseReply, TenantSpec, TestApp,
    Timeouts, Visitor,
};
use serde_json::{json, Value};
use std::time::Duration;

const TIMEOUTS: Timeouts = Timeouts { connect: 1.0, first_token: 5.0, idle: 2.0, total: 20.0 };

fn anthropic(fake: &FakeAnthropic) -> TenantSpec {
    TenantSpec::upstream("acme", "anthropic", &fake.base_url(), "sonnet-fake").timeouts(TIMEOUTS)
}

fn dify(fake: &FakeDify) -> TenantSpec {
    TenantSpec::upstream("acme", "dify", &fake.base_url(), "support-bot").timeouts(TIMEOUTS)
}

/// A fallback table of `kind` at `base_url`, keyed like the primary.
fn fallback(kind: &str, base_url: &str, model: &str) -> String {
    format!(
        "[[tenants.fallbacks]]\nkind = \"{kind}\"\nmodel = \"{model}\"\nbase_url = \"{base_url}\"\n\
         api_key_env = \"SWITCHBOARD_TEST_FAKE_API_KEY\""
    )
}

async fn app_with(tenant: TenantSpec) -> (TestApp, String, Visitor) {
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = app.create_session("acme").await;
    (app, sid, v)
}

fn no_error_event(reply: &SseReply) {
    assert!(reply.events.iter().all(|e| e.event != "error"), "a retried failure reached the client");
}

/// Leaves a streamed turn after two deltas; waits until `dropped` says the
/// upstream body was closed, then returns the stored answer and what the
/// visitor had seen.
async fn leave_mid_answer(
    app: &TestApp,
    v: &Visitor,
    sid: &str,
    dropped: impl Fn() -> usize,
) -> (Value, String) {
    let mut live = app.chat_live(v, &chat_body(sid, "hello")).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    let seen = live.text_so_far();
    drop(live);
    let dropped = &dropped;
    eventually("the upstream stream to be closed", Duration::from_secs(5), || async move {
        (dropped() == 1).then_some(())
    })
    .await;
    let answer = eventually("the answer to be aborted", Duration::from_secs(5), || async move {
        let m = app.message(v, sid, 2).await?;
        (m["status"] != "streaming").then_some(m)
    })
    .await;
    (answer, seen)
}

/// The stored answer is `aborted` and keeps a strict prefix of `whole`
/// holding at least what the visitor saw.
fn check_aborted(answer: &Value, seen: &str, whole: &str) {
    assert_eq!(answer["status"], "aborted", "{answer}");
    let kept = answer["content"].as_str().unwrap();
    assert!(kept.starts_with(seen), "kept {kept:?} lacks what was streamed: {seen:?}");
    assert!(whole.starts_with(kept), "kept {kept:?} is not a prefix of the answer");
    assert!(kept.len() < whole.len(), "the whole answer was read despite the abort");
}

#[tokio::test]
async fn an_anthropic_turn_reports_the_vendors_usage_and_sends_the_alternating_history() {
    let fake = FakeAnthropic::start(AnthropicMode::Normal(pieces(3))).await;
    let (app, sid, v) = app_with(anthropic(&fake).system_prompt("Be brief.")).await;

    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "Hi").await, "Hi", 1);
    assert_eq!(turn.text, "w0 w1 w2");
    assert_eq!(
        (turn.end["provider"].as_str(), turn.end["model"].as_str()),
        (Some("anthropic"), Some("sonnet-fake"))
    );
    // Cached prompt tokens count as prompt tokens; the output count is the last one.
    assert_eq!(
        turn.end["usage"],
        json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
               "total_tokens": PROMPT_TOKENS + OUTPUT_TOKENS, "estimated": false})
    );
    assert_eq!((fake.calls(), fake.completed(), fake.dropped()), (1, 1, 0));
    let first = fake.last_request();
    assert_eq!(first.header("x-api-key"), Some(FAKE_API_KEY));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.header("authorization"), None, "the key travels in x-api-key only");
    assert!(first.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let body = &first.body;
    assert_eq!((body["model"].as_str(), body["stream"].as_bool()), (Some("sonnet-fake"), Some(true)));
    assert!(body["max_tokens"].as_u64().is_some_and(|n| n > 0), "max_tokens is required: {body}");
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));

    check_stream_turn(&app.chat_stream(&v, &sid, "And then?").await, "And then?", 3);
    let second = fake.last_request().body;
    assert_eq!(second["system"], "Be brief.", "the system prompt is top level on every turn");
    assert_eq!(
        second["messages"],
        json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "w0 w1 w2"},
               {"role": "user", "content": "And then?"}])
    );
    assert!(second["messages"].as_array().unwrap().iter().all(|m| m["role"] != "system"));
    let stored = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!((stored["status"].as_str(), stored["content"].as_str()), (Some("complete"), Some("w0 w1 w2")));
}

#[tokio::test]
async fn anthropic_overload_and_rate_limit_before_text_are_retried() {
    let fake = FakeAnthropic::start(AnthropicMode::Normal(pieces(2))).await;
    fake.push_mode(AnthropicMode::overloaded());
    fake.push_mode(AnthropicMode::rate_limited(1));
    let (app, sid, v) = app_with(anthropic(&fake)).await;

    let reply = app.chat_stream(&v, &sid, "hi").await;
    let turn = check_stream_turn(&reply, "hi", 1);
    assert_eq!(turn.text, "w0 w1");
    assert_eq!(turn.end["provider"], "anthropic");
    no_error_event(&reply);
    assert_eq!(fake.calls(), 3, "a 529 and a 429 before the first token are both retried");
    let at: Vec<_> = fake.requests().iter().map(|r| r.at).collect();
    let gap = at[2].duration_since(at[1]);
    assert!(gap >= Duration::from_millis(950), "retry-after: 1 not honoured: {gap:?}");
}

#[tokio::test]
async fn an_anthropic_in_stream_overload_before_text_is_retried() {
    let fake = FakeAnthropic::start(AnthropicMode::Normal(pieces(2))).await;
    fake.push_mode(AnthropicMode::StreamOverloaded);
    let (app, sid, v) = app_with(anthropic(&fake)).await;

    let reply = app.chat_stream(&v, &sid, "hi").await;
    let turn = check_stream_turn(&reply, "hi", 1);
    assert_eq!(turn.text, "w0 w1");
    no_error_event(&reply);
    assert_eq!(fake.calls(), 2, "an overloaded_error event before any text is worth another attempt");
}

#[tokio::test]
async fn a_refused_anthropic_key_is_not_retried_and_the_vendors_words_stay_in_the_log() {
    let fake = FakeAnthropic::start(AnthropicMode::HttpError {
        status: 401,
        kind: "authentication_error",
        retry_after: None,
    })
    .await;
    let (app, sid, v) = app_with(anthropic(&fake)).await;

    let reply = app.chat_stream(&v, &sid, "hi").await;
    let err = check_error_event(&reply, "llm.unavailable", 502);
    assert_eq!(fake.calls(), 1, "a refused key would be refused again");
    let message = err["message"].as_str().unwrap();
    for leak in ["authentication_error", "x-api-key", "req_fake", "401"] {
        assert!(!message.contains(leak), "the error shows the vendor's {leak:?}: {message}");
    }
    let answer = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!(answer["status"], "error", "{answer}");
}

#[tokio::test]
async fn anthropic_under_abort_a_visitor_leaving_closes_the_upstream_stream() {
    let all = pieces(100);
    let fake = FakeAnthropic::start(AnthropicMode::Paced {
        pieces: all.clone(),
        interval: Duration::from_millis(100),
    })
    .await;
    let (app, sid, v) = app_with(anthropic(&fake).on_disconnect("abort")).await;

    let (answer, seen) = leave_mid_answer(&app, &v, &sid, || fake.dropped()).await;
    check_aborted(&answer, &seen, &joined(&all));
    assert_eq!(fake.completed(), 0);

    fake.set_mode(AnthropicMode::Normal(pieces(2)));
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "again").await, "again", 3);
    assert_eq!(turn.text, "w0 w1");
}

#[tokio::test]
async fn dify_under_abort_a_visitor_leaving_closes_the_upstream_stream() {
    let all = pieces(100);
    let fake =
        FakeDify::start_with(DifyMode::Paced { pieces: all.clone(), interval: Duration::from_millis(100) })
            .await;
    let (app, sid, v) = app_with(dify(&fake).on_disconnect("abort")).await;

    let (answer, seen) = leave_mid_answer(&app, &v, &sid, || fake.dropped()).await;
    check_aborted(&answer, &seen, &joined(&all));
    assert_eq!(fake.completed(), 0);

    fake.set_mode(DifyMode::Answer);
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "again").await, "again", 3);
    assert_eq!(turn.text, ANSWER);
    // The aborted answer had already named its conversation.
    assert_eq!(fake.requests()[1]["conversation_id"], conversation(1).as_str());
}

#[tokio::test]
async fn a_dify_in_stream_error_before_text_is_retried() {
    let fake = FakeDify::start().await;
    fake.push_mode(DifyMode::StreamError);
    let (app, sid, v) = app_with(dify(&fake)).await;

    let reply = app.chat_stream(&v, &sid, "Weather?").await;
    let turn = check_stream_turn(&reply, "Weather?", 1);
    assert_eq!((turn.text.as_str(), turn.end["provider"].as_str()), (ANSWER, Some("dify")));
    no_error_event(&reply);
    let sent: Vec<Value> = fake.requests().iter().map(|r| r["conversation_id"].clone()).collect();
    assert_eq!(sent, [json!(""), json!("")], "a 500 error chunk before any text is worth another attempt");
    let bearer = format!("Bearer {FAKE_API_KEY}");
    assert!(fake.authorizations().iter().all(|a| a.as_deref() == Some(bearer.as_str())));

    // The failed attempt's conversation is not the session's: the one that answered is.
    check_stream_turn(&app.chat_stream(&v, &sid, "Tomorrow?").await, "Tomorrow?", 3);
    assert_eq!(fake.requests()[2]["conversation_id"], conversation(2).as_str());
}

#[tokio::test]
async fn a_stale_dify_conversation_is_replaced_by_a_new_one() {
    let fake = FakeDify::start().await;
    let (app, sid, v) = app_with(dify(&fake)).await;
    let (a, b) = (conversation(1), conversation(2));

    check_stream_turn(&app.chat_stream(&v, &sid, "Weather?").await, "Weather?", 1);
    fake.forget(&a);
    let reply = app.chat_stream(&v, &sid, "Tomorrow?").await;
    let turn = check_stream_turn(&reply, "Tomorrow?", 3);
    assert_eq!(turn.text, ANSWER);
    no_error_event(&reply);
    check_stream_turn(&app.chat_stream(&v, &sid, "And after?").await, "And after?", 5);

    let sent: Vec<Value> = fake.requests().iter().map(|r| r["conversation_id"].clone()).collect();
    assert_eq!(sent, [json!(""), json!(a), json!(""), json!(b)], "stale id {a} then new id {b}");
    let queries: Vec<Value> = fake.requests().iter().map(|r| r["query"].clone()).collect();
    assert_eq!(queries[1..3], [json!("Tomorrow?"), json!("Tomorrow?")], "the new conversation asks again");
}

#[tokio::test]
async fn an_anthropic_fallback_answers_for_a_failing_openai_primary() {
    let primary = FakeOpenAi::start(Mode::ServerError).await;
    let fake = FakeAnthropic::start(AnthropicMode::Normal(pieces(3))).await;
    let tenant = TenantSpec::openai("acme", &primary)
        .timeouts(TIMEOUTS)
        .system_prompt("Be brief.")
        .table("[tenants.provider.retry]\nattempts = 1")
        .table(&fallback("anthropic", &fake.base_url(), "sonnet-fallback"));
    let (app, sid, v) = app_with(tenant).await;

    let reply = app.chat_stream(&v, &sid, "hi").await;
    let turn = check_stream_turn(&reply, "hi", 1);
    no_error_event(&reply);
    assert_eq!(turn.text, "w0 w1 w2");
    assert_eq!(
        (turn.end["provider"].as_str(), turn.end["model"].as_str()),
        (Some("anthropic"), Some("sonnet-fallback"))
    );
    assert_eq!(turn.end["usage"]["completion_tokens"], OUTPUT_TOKENS);
    assert_eq!((primary.calls(), fake.calls()), (1, 1));
    let sent = fake.last_request();
    assert_eq!(sent.header("x-api-key"), Some(FAKE_API_KEY));
    assert_eq!(sent.body["model"], "sonnet-fallback");
    assert_eq!(sent.body["system"], "Be brief.", "a fallback without its own prompt speaks the tenant's");
    assert_eq!(sent.body["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[tokio::test]
async fn a_dify_fallback_answers_and_keeps_its_conversation() {
    let primary = FakeOpenAi::start(Mode::ServerError).await;
    let fake = FakeDify::start().await;
    let tenant = TenantSpec::openai("acme", &primary)
        .timeouts(TIMEOUTS)
        .table("[tenants.provider.retry]\nattempts = 1")
        .table(&fallback("dify", &fake.base_url(), "support-bot"));
    let (app, sid, v) = app_with(tenant).await;

    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "Weather?").await, "Weather?", 1);
    assert_eq!(turn.text, ANSWER);
    assert_eq!(
        (turn.end["provider"].as_str(), turn.end["model"].as_str()),
        (Some("dify"), Some("support-bot"))
    );
    assert_eq!(turn.end["usage"]["prompt_tokens"], 1033);

    check_stream_turn(&app.chat_stream(&v, &sid, "Tomorrow?").await, "Tomorrow?", 3);
    assert_eq!(primary.calls(), 2, "the primary is tried first on every turn");
    let sent: Vec<Value> = fake.requests().iter().map(|r| r["conversation_id"].clone()).collect();
    assert_eq!(sent, [json!(""), json!(conversation(1))], "the fallback's conversation is kept");
}

/// The upstream request of a turn carries a W3C `traceparent` with the
/// turn's trace id: the one its response names in `X-Trace-Id`, which is
/// the client's own when it sent a `traceparent`, under a parent id of the
/// runtime's own.
#[tokio::test]
async fn the_upstream_request_carries_the_turns_trace_id() {
    let fake = FakeAnthropic::start(AnthropicMode::Normal(pieces(2))).await;
    let (app, sid, v) = app_with(anthropic(&fake)).await;
    let parts = |header: Option<&str>| -> Vec<String> {
        header.unwrap_or_default().split('-').map(str::to_owned).collect()
    };

    let reply = app.chat_stream(&v, &sid, "Hi").await;
    let trace_id = reply.headers.get("x-trace-id").and_then(|h| h.to_str().ok()).unwrap().to_owned();
    let sent = parts(fake.last_request().header("traceparent"));
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!((sent[0].as_str(), sent[1].as_str(), sent[3].as_str()), ("00", trace_id.as_str(), "01"));
    assert!(sent[2].len() == 16 && sent[2].bytes().all(|b| b.is_ascii_hexdigit()), "{sent:?}");

    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_parent = "00f067aa0ba902b7";
    let request = app
        .request(reqwest::Method::POST, "/v1/chat", Some(&v))
        .header("traceparent", format!("00-{client_trace}-{client_parent}-01"))
        .json(&chat_body(&sid, "And then?"));
    let reply = app.send(request).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.header("x-trace-id").as_deref(), Some(client_trace));
    let sent = parts(fake.last_request().header("traceparent"));
    assert_eq!(sent[1], client_trace);
    assert_ne!(sent[2], client_parent, "the upstream call is a span of the runtime's own");
}
