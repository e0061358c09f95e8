//! Budgets (SPEC §13) through the engine: a turn reserves the most it may
//! use (system prompt, message and the completion allowance) in the write
//! that starts it, so concurrent turns never overshoot; a refused turn
//! stores nothing, calls no provider and says when the day resets; a
//! finished turn settles its reservation at what it really used.

use super::*;
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::ProviderEvent;
use switchboard_core::store::Store;
use switchboard_core::turn::SendError;
use switchboard_core::usage::{day_of, Budget};
use switchboard_testkit::{at, tenant, Reply, Step};

/// Each turn here reserves 1 token of message ("hi") and the completion
/// allowance of 1024 (no `max_tokens`, no system prompt).
const PER_TURN: u64 = 1025;

/// The next UTC midnight after the test clock's epoch (2026-11-22T10:00Z).
fn midnight() -> switchboard_core::time::Timestamp {
    at(14 * 3_600_000)
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_turns_never_overshoot_the_budget() {
    let allowed = 5;
    // Every admitted turn holds its reservation for a second before it answers.
    let slow = Reply::steps([Step::wait_ms(1000), Step::delta("w0")]);
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(slow));
    let mut t = tenant("acme", route(&p, |_| {}), vec![]);
    t.budget = Some(Budget { daily_tokens: Some(allowed * PER_TURN), ..Budget::default() });
    let h = Harness::new(t);
    let mut sessions = Vec::new();
    for _ in 0..50 {
        sessions.push(h.session().await.unwrap());
    }
    let sends = sessions.iter().map(|(sid, v)| h.send(*sid, v, "hi"));
    let outcomes = futures_util::future::join_all(sends).await;

    let mut streams = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(SendOutcome::Streaming(stream)) => streams.push(stream),
            Err(SendError::QuotaExceeded { reset_at }) => assert_eq!(reset_at, midnight()),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("neither started nor refused"),
        }
    }
    assert_eq!(streams.len(), allowed as usize);
    for stream in streams {
        assert_eq!(text_of(&drain(stream).await), "w0");
    }
    assert_eq!(p.call_count(), allowed as usize, "more turns reached the provider than the budget allows");
    assert_eq!(h.store.reservations("acme"), 0, "every reservation was settled");
    let mut stored = 0;
    for (sid, _) in &sessions {
        stored += h.store.list_messages("acme", *sid, 10, None).await.unwrap().len();
    }
    assert_eq!(stored, 2 * allowed as usize, "a refused turn left messages behind");
}

#[tokio::test(start_paused = true)]
async fn a_finished_turn_settles_its_reservation_at_what_it_used() {
    let used = Reply::steps([
        Step::delta("w0 w1"),
        Step::Event(ProviderEvent::Usage(Usage::new(14, 2, false))),
        Step::Event(ProviderEvent::Finish(FinishReason::Stop)),
    ]);
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(used));
    let mut t = tenant("acme", route(&p, |_| {}), vec![]);
    t.budget = Some(Budget { per_subject_daily_tokens: Some(PER_TURN + 20), ..Budget::default() });
    let h = Harness::new(t);
    let (sid, v) = h.session().await.unwrap();

    assert_eq!(turn(&h, sid, &v, "hi").await.text, "w0 w1");
    // Settled at 14 + 2 tokens, so one more reservation fits…
    assert_eq!(turn(&h, sid, &v, "hi").await.text, "w0 w1");
    // …but not a third: 2 × 16 + 1025 > 1045.
    match h.send(sid, &v, "hi").await {
        Err(SendError::QuotaExceeded { reset_at }) => assert_eq!(reset_at, midnight()),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the third turn started"),
    }
    assert_eq!(p.call_count(), 2);
    assert_eq!(
        h.store.list_messages("acme", sid, 10, None).await.unwrap().len(),
        4,
        "the refusal stored something"
    );
    // Another visitor has a budget of their own.
    let (other, v2) = h.session().await.unwrap();
    assert_eq!(turn(&h, other, &v2, "hi").await.text, "w0 w1");

    let day = day_of(&at(0));
    let sums = h.store.daily_usage("acme", day, day).await.unwrap();
    assert_eq!(sums.len(), 1);
    assert_eq!((sums[0].turns, sums[0].prompt_tokens, sums[0].completion_tokens), (3, 3 * 14, 3 * 2));
}
