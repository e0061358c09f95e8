//! Cases about usage and budgets: reservations taken as turns start never
//! overshoot a limit, even concurrently, and come after every other check;
//! a finished turn's usage lands in its day's sums once (with its
//! reservation settled); expired reservations stop counting.

use super::*;
use crate::common::Harness;
use switchboard_core::model::Usage;
use switchboard_core::usage::{day_of, DailyUsage, Limits, Reserve, Spent, UsageRecord};

fn reserve(subject: &str, tokens: i64, limits: Limits, now: Timestamp) -> Reserve {
    Reserve {
        id: Uuid::now_v7(),
        tenant_id: TENANT.into(),
        subject: subject.into(),
        day: day_of(&now),
        tokens,
        cost_micro_usd: tokens * 10,
        limits,
        now,
        expires_at: now + chrono::Duration::minutes(5),
    }
}

fn record(subject: &str, prompt: u32, completion: u32, reservation: Option<Uuid>) -> UsageRecord {
    UsageRecord {
        subject: subject.into(),
        provider: "openai".into(),
        model: "gpt-test".into(),
        usage: Usage::new(prompt, completion, false),
        cost_micro_usd: i64::from(prompt + completion) * 10,
        first_token_ms: Some(12),
        total_ms: 40,
        reservation,
    }
}

/// A turn of a new session of `subject` that takes `r`.
async fn budgeted(h: &Harness, r: &Reserve) -> BeginTurnOutcome {
    let session = new_session_for(&h.store, TENANT, &r.subject, r.now).await;
    let mut turn = turn(&session, "q", r.now);
    turn.budget = Some(r.clone());
    h.store.begin_turn(&turn).await.unwrap()
}

fn started(outcome: &BeginTurnOutcome) -> bool {
    matches!(outcome, BeginTurnOutcome::Started { .. })
}

pub async fn concurrent_reservations_never_overshoot(h: &mut Harness) {
    let limits = Limits { daily_tokens: Some(1000), ..Limits::default() };
    let now = at(0);
    let mut sessions = Vec::new();
    for i in 0..50 {
        let session = new_session_for(&h.store, TENANT, &format!("visitor:{i}"), now).await;
        let mut turn = turn(&session, "q", now);
        turn.budget = Some(reserve(&session.owner, 100, limits, now));
        sessions.push(turn);
    }
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|turn| {
            let store = h.store.clone();
            tokio::spawn(async move { store.begin_turn(&turn).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            outcome if started(&outcome) => granted += 1,
            BeginTurnOutcome::QuotaExceeded(spent) => assert_eq!(spent, Spent::TenantTokens),
            other => panic!("expected Started or QuotaExceeded, got {other:?}"),
        }
    }
    assert_eq!(granted, 10, "a budget of 1000 holds ten reservations of 100");

    // Expired reservations stop counting; the cost limit is its own.
    let later = now + chrono::Duration::minutes(6);
    assert!(started(&budgeted(h, &reserve("visitor:a", 1000, limits, later)).await), "expired still counted");
    let cost = Limits { daily_cost_micro_usd: Some(5000), ..Limits::default() };
    let outcome = budgeted(h, &reserve("visitor:b", 600, cost, later)).await;
    assert!(matches!(outcome, BeginTurnOutcome::QuotaExceeded(Spent::TenantCost)), "{outcome:?}");
}

pub async fn subject_budgets_are_per_subject(h: &mut Harness) {
    let limits = Limits { subject_daily_tokens: Some(250), ..Limits::default() };
    let now = at(0);
    for _ in 0..2 {
        assert!(started(&budgeted(h, &reserve("visitor:a", 100, limits, now)).await));
    }
    let third = budgeted(h, &reserve("visitor:a", 100, limits, now)).await;
    assert!(matches!(third, BeginTurnOutcome::QuotaExceeded(Spent::SubjectTokens)), "{third:?}");
    assert!(started(&budgeted(h, &reserve("visitor:b", 100, limits, now)).await));
}

/// The budget is the last check (SPEC §4): with the budget spent, a retried
/// message still gets its earlier turn, and a turn refused for another
/// reason or handed to an agent takes no reservation.
pub async fn budgets_are_checked_last(h: &mut Harness) {
    let limits = Limits { daily_tokens: Some(100), ..Limits::default() };
    let now = at(0);
    let session = new_session(&h.store).await;
    let mut first = with_client_id(turn(&session, "q", now), "c1");
    first.budget = Some(reserve(OWNER, 100, limits, now));
    let (_, assistant, _) = start(&h.store, &first).await;
    // Spent now: the same message again is a duplicate, another is in progress.
    let mut again = first.clone();
    again.budget = Some(reserve(OWNER, 100, limits, now));
    let outcome = h.store.begin_turn(&again).await.unwrap();
    assert!(matches!(outcome, BeginTurnOutcome::Duplicate { .. }), "{outcome:?}");
    let mut other = turn(&session, "q2", now);
    other.budget = Some(reserve(OWNER, 1, limits, now));
    assert!(matches!(h.store.begin_turn(&other).await.unwrap(), BeginTurnOutcome::InProgress));
    assert!(h.store.finish_message(&finish_of(&assistant, TENANT, "a", now)).await.unwrap());
    let outcome = h.store.begin_turn(&other).await.unwrap();
    assert!(matches!(outcome, BeginTurnOutcome::QuotaExceeded(Spent::TenantTokens)), "{outcome:?}");
    // An unknown session refuses before the budget is looked at.
    let mut lost = other.clone();
    lost.session_id = Uuid::new_v4();
    assert!(matches!(h.store.begin_turn(&lost).await.unwrap(), BeginTurnOutcome::NotFound));
}

pub async fn finished_turns_add_their_usage_once(h: &mut Harness) {
    let session = new_session(&h.store).await;
    let limits = Limits { daily_tokens: Some(100), ..Limits::default() };
    let mut events = Vec::new();
    for i in 0..3 {
        let now = at(i * 1000);
        let r = reserve(OWNER, 40, limits, now);
        let mut begin = turn(&session, "q", now);
        begin.budget = Some(r.clone());
        let (_, assistant, _) = start(&h.store, &begin).await;
        let used = record(OWNER, 5 + i as u32, 10, Some(r.id));
        let mut finish = finish_of(&assistant, TENANT, "a", now);
        finish.usage = Some(used.clone());
        assert!(h.store.finish_message(&finish).await.unwrap());
        // A second finish of the same answer adds nothing (its reservation is gone already).
        assert!(!h.store.finish_message(&finish).await.unwrap());
        events.push(used);
    }
    let day = day_of(&at(0));
    let sums = h.store.daily_usage(TENANT, day - 1, day + 1).await.unwrap();
    let prompt: i64 = events.iter().map(|e| i64::from(e.usage.prompt_tokens)).sum();
    let completion: i64 = events.iter().map(|e| i64::from(e.usage.completion_tokens)).sum();
    let cost: i64 = events.iter().map(|e| e.cost_micro_usd).sum();
    let expected = DailyUsage {
        day,
        turns: 3,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cost_micro_usd: cost,
    };
    assert_eq!(sums, vec![expected]);
    // Settled: only real usage counts now (48 of 100), so 40 more fit and 60 do not.
    assert!(started(&budgeted(h, &reserve(OWNER, 52, limits, at(5000))).await));
    let over = budgeted(h, &reserve(OWNER, 1, limits, at(5000))).await;
    assert!(matches!(over, BeginTurnOutcome::QuotaExceeded(Spent::TenantTokens)), "{over:?}");
    // Other tenants see nothing of it.
    assert!(h.store.daily_usage("other", day - 1, day + 1).await.unwrap().is_empty());
}
