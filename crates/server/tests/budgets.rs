//! Budgets (SPEC §8, §11.1, §13) through the binary: concurrent turns against
//! a daily budget never overshoot it (each takes a reservation before the
//! provider is called), a refused turn stores nothing and says when the
//! budget resets, and per-subject budgets keep one visitor from draining the
//! tenant.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
mod common;

use common::checks::check_stream_turn;
use common::{chat_body, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Each turn here reserves 1 token of message ("hi") and the default
/// completion allowance of 1024 (no `max_tokens`, no system prompt).
const PER_TURN: u64 = 1025;

fn tenant(fake: &FakeOpenAi, budget: &str) -> TenantSpec {
    TenantSpec::openai("acme", fake).table(&format!("[tenants.budget]\n{budget}"))
}

fn assert_quota_exceeded(status: u16, headers: &reqwest::header::HeaderMap, body: &serde_json::Value) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota.exceeded", "{body}");
    let reset =
        body["error"]["details"]["reset_at"].as_str().unwrap_or_else(|| panic!("no reset_at: {body}"));
    let reset = chrono::DateTime::parse_from_rfc3339(reset).unwrap();
    assert_eq!(reset.timestamp() % 86_400, 0, "the budget resets at a UTC midnight: {reset}");
    let retry: i64 = headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    let until = reset.timestamp() - chrono::Utc::now().timestamp();
    assert!(retry >= 1 && (retry - until).abs() <= 2, "Retry-After {retry} s, reset in {until} s");
}

#[tokio::test]
async fn fifty_concurrent_turns_never_overshoot_the_budget() {
    let allowed = 5;
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(1), after: pieces(1) }).await;
    let app = TestApp::start(
        AppConfig::new().tenant(tenant(&fake, &format!("daily_tokens = {}", allowed * PER_TURN))),
    )
    .await;
    let mut sessions = Vec::new();
    for _ in 0..50 {
        sessions.push(app.create_session("acme").await);
    }
    let bodies: Vec<_> = sessions.iter().map(|(sid, _)| chat_body(sid, "hi")).collect();
    let refused = AtomicUsize::new(0);
    let turns = futures_util::future::join_all(sessions.iter().zip(&bodies).map(|((_, v), body)| {
        let (app, refused) = (&app, &refused);
        async move {
            let reply = app.chat_raw(v, body).await;
            if reply.status.as_u16() != 200 {
                refused.fetch_add(1, Ordering::SeqCst);
            }
            reply
        }
    }));
    // The admitted turns wait at the gate until every turn is decided: each
    // one refused or at the provider, so one admitted too many would be
    // counted there.
    let release = async {
        let (f, r) = (&fake, &refused);
        common::eventually(
            "every turn to be refused or to reach the provider",
            Duration::from_secs(20),
            || async move { (f.calls() + r.load(Ordering::SeqCst) >= 50).then_some(()) },
        )
        .await;
        fake.release();
    };
    let (replies, ()) = tokio::join!(turns, release);
    let mut answered = 0;
    for reply in replies {
        if reply.status.as_u16() == 200 {
            assert!(reply.text.contains("event: stream_end"), "{}", reply.text);
            answered += 1;
        } else {
            assert_quota_exceeded(reply.status.as_u16(), &reply.headers, &reply.body);
        }
    }
    assert_eq!(fake.calls(), allowed as usize, "more turns reached the provider than the budget allows");
    assert_eq!(answered, allowed as usize);
    // Refused turns stored nothing.
    let mut stored = 0;
    for (sid, v) in &sessions {
        stored += app.messages(v, sid).await.len();
    }
    assert_eq!(stored, 2 * allowed as usize, "a refused turn left messages behind");
}

#[tokio::test]
async fn a_subject_budget_stops_one_visitor_not_the_others() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let prices = "[prices.gpt-fake]\ninput = 1.5\noutput = 6.0";
    let tenant = tenant(&fake, &format!("per_subject_daily_tokens = {}", PER_TURN + 20));
    let app = TestApp::start(admin::operator_config().raw(prices).tenant(tenant)).await;
    let (sid, v) = app.create_session("acme").await;
    check_stream_turn(&app.chat_stream(&v, &sid, "hi").await, "hi", 1);
    // The first turn settled at its real usage (14 + 2 tokens), so one more fits…
    check_stream_turn(&app.chat_stream(&v, &sid, "hi").await, "hi", 3);
    // … but not a third: 2 × 16 + 1025 > 1045.
    let refused = app.chat_json(&v, &sid, "hi").await;
    assert_quota_exceeded(refused.status.as_u16(), &refused.headers, &refused.body);
    assert_eq!(app.messages(&v, &sid).await.len(), 4, "the refused turn stored something");
    assert_eq!(fake.calls(), 2);
    // Another visitor has a budget of their own.
    let (other, v2) = app.create_session("acme").await;
    check_stream_turn(&app.chat_stream(&v2, &other, "hi").await, "hi", 1);

    // The day's sums are the three answered turns (the refused one cost nothing).
    let usage = admin::get_ok(&app, &admin::As::operator(Some("acme")), "/v1/admin/usage").await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let day = usage["items"].as_array().unwrap().iter().find(|d| d["day"] == today.as_str()).cloned();
    let day = day.unwrap_or_else(|| panic!("no usage for {today}: {usage}"));
    assert_eq!((day["turns"].as_i64(), day["prompt_tokens"].as_i64()), (Some(3), Some(3 * 14)), "{day}");
    assert_eq!(
        (day["completion_tokens"].as_i64(), day["total_tokens"].as_i64()),
        (Some(6), Some(48)),
        "{day}"
    );
    // 42 prompt tokens at $1.5 and 6 completion tokens at $6 per million.
    let cost = day["cost_usd"].as_f64().unwrap();
    assert!((cost - (42.0 * 1.5 + 6.0 * 6.0) / 1e6).abs() < 1e-9, "{day}");
}

/// The budget is the last check (SPEC §4): once it is spent, a retried
/// message still gets its earlier answer (no provider call), and a message
/// to an unknown session is still `session.not_found`.
#[tokio::test]
async fn a_spent_budget_still_answers_retries_with_the_earlier_turn() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let app =
        TestApp::start(AppConfig::new().tenant(tenant(&fake, &format!("daily_tokens = {PER_TURN}")))).await;
    let (sid, v) = app.create_session("acme").await;
    let body =
        serde_json::json!({"session_id": sid, "message": "hi", "client_message_id": "m-1", "stream": false});
    let first = app.chat_raw(&v, &body).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.body);
    // The settled turn (16 tokens) leaves less than a reservation (1025).
    let spent = app.chat_json(&v, &sid, "hi").await;
    assert_quota_exceeded(spent.status.as_u16(), &spent.headers, &spent.body);
    let retry = app.chat_raw(&v, &body).await;
    assert_eq!(retry.status.as_u16(), 200, "{}", retry.body);
    assert_eq!(retry.body["message"], first.body["message"], "the retry got another answer");
    assert_eq!(fake.calls(), 1);
    let lost = app.chat_json(&v, &uuid::Uuid::new_v4().to_string(), "hi").await;
    assert_eq!(lost.body["error"]["code"], "session.not_found", "{}", lost.body);
}
