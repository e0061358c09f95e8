//! Cases about usage and budgets: concurrent reservations never overshoot a
//! limit, a finished turn's usage lands in its day's sums once (with its
//! reservation settled), expired and released reservations stop counting.

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

pub async fn concurrent_reservations_never_overshoot(h: &mut Harness) {
    let limits = Limits { daily_tokens: Some(1000), ..Limits::default() };
    let now = at(0);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = h.store.clone();
            let r = reserve(&format!("visitor:{i}"), 100, limits, now);
            tokio::spawn(async move { store.reserve_budget(&r).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => granted += 1,
            Err(spent) => assert_eq!(spent, Spent::TenantTokens),
        }
    }
    assert_eq!(granted, 10, "a budget of 1000 holds ten reservations of 100");

    // Released and expired reservations stop counting; the cost limit is its own.
    let r = reserve("visitor:a", 100, Limits::default(), now);
    h.store.reserve_budget(&r).await.unwrap().unwrap();
    h.store.release_budget(TENANT, r.id).await.unwrap();
    let later = now + chrono::Duration::minutes(6);
    let again = reserve("visitor:a", 1000, limits, later);
    assert_eq!(h.store.reserve_budget(&again).await.unwrap(), Ok(()), "expired reservations still counted");
    let cost = Limits { daily_cost_micro_usd: Some(5000), ..Limits::default() };
    assert_eq!(
        h.store.reserve_budget(&reserve("visitor:b", 600, cost, later)).await.unwrap(),
        Err(Spent::TenantCost)
    );
}

pub async fn subject_budgets_are_per_subject(h: &mut Harness) {
    let limits = Limits { subject_daily_tokens: Some(250), ..Limits::default() };
    let now = at(0);
    for _ in 0..2 {
        h.store.reserve_budget(&reserve("visitor:a", 100, limits, now)).await.unwrap().unwrap();
    }
    let third = h.store.reserve_budget(&reserve("visitor:a", 100, limits, now)).await.unwrap();
    assert_eq!(third, Err(Spent::SubjectTokens));
    h.store.reserve_budget(&reserve("visitor:b", 100, limits, now)).await.unwrap().unwrap();
}

pub async fn finished_turns_add_their_usage_once(h: &mut Harness) {
    let session = new_session(&h.store).await;
    let limits = Limits { daily_tokens: Some(100), ..Limits::default() };
    let mut events = Vec::new();
    for i in 0..3 {
        let now = at(i * 1000);
        let r = reserve(OWNER, 40, limits, now);
        h.store.reserve_budget(&r).await.unwrap().unwrap();
        let (_, assistant, _) = start(&h.store, &turn(&session, "q", now)).await;
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
    assert_eq!(h.store.reserve_budget(&reserve(OWNER, 52, limits, at(5000))).await.unwrap(), Ok(()));
    assert_eq!(
        h.store.reserve_budget(&reserve(OWNER, 1, limits, at(5000))).await.unwrap(),
        Err(Spent::TenantTokens)
    );
    // Other tenants see nothing of it.
    assert!(h.store.daily_usage("other", day - 1, day + 1).await.unwrap().is_empty());
}
