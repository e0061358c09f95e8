//! Retention (SPEC §11.6): the per-session cap applied as a turn writes, and
//! the age sweep driven by a manual clock.

use super::*;
use crate::common::Harness;
use switchboard_core::retention::{Policy, Purged, Sweeper};
use switchboard_core::store::BeginTurn;
use switchboard_core::time::ManualClock;
use switchboard_core::SessionStatus;

const DAY_MS: i64 = 86_400_000;

fn capped(mut turn: BeginTurn, max_messages: u32) -> BeginTurn {
    turn.max_messages = max_messages;
    turn
}

/// Runs a finished turn under the cap; returns its history's seqs.
async fn capped_turn(h: &Harness, s: &Session, cap: u32, n: i64) -> Vec<i64> {
    let t = capped(turn(s, &format!("turn {n}"), at(n * 10)), cap);
    let (_, assistant, history) = start(&h.store, &t).await;
    assert!(h.store.finish_message(&finish_of(&assistant, TENANT, "ok", at(n * 10 + 5))).await.unwrap());
    seqs(&history)
}

async fn kept(h: &Harness, s: &Session) -> (Vec<i64>, i64) {
    let stored = h.store.list_messages(&s.tenant_id, s.id, 100, None).await.unwrap();
    (seqs(&stored), session_of(&h.store, s).await.message_count)
}

pub async fn cap_on_write_keeps_the_newest_messages_and_counts(h: &mut Harness) {
    let s = new_session(&h.store).await;
    assert_eq!(capped_turn(h, &s, 5, 1).await, vec![1]);
    assert_eq!(capped_turn(h, &s, 5, 2).await, vec![1, 2, 3]);
    assert_eq!(kept(h, &s).await, (vec![4, 3, 2, 1], 4));
    // Six would be over five: the oldest goes in the same transaction, and
    // the history the provider gets already lacks it.
    assert_eq!(capped_turn(h, &s, 5, 3).await, vec![2, 3, 4, 5]);
    assert_eq!(kept(h, &s).await, (vec![6, 5, 4, 3, 2], 5));
    assert_eq!(capped_turn(h, &s, 5, 4).await, vec![4, 5, 6, 7]);
    assert_eq!(kept(h, &s).await, (vec![8, 7, 6, 5, 4], 5));
    let session = session_of(&h.store, &s).await;
    assert_eq!(session.latest_seq, 8);
    // A later, higher cap deletes nothing more.
    capped_turn(h, &s, 100, 5).await;
    assert_eq!(kept(h, &s).await, (vec![10, 9, 8, 7, 6, 5, 4], 7));
    // Other sessions are untouched.
    let other = new_session(&h.store).await;
    complete_turn(&h.store, &other, "x", at(0)).await;
    capped_turn(h, &s, 1, 6).await;
    assert_eq!(kept(h, &other).await, (vec![2, 1], 2));
}

pub async fn cap_never_deletes_what_was_just_written(h: &mut Harness) {
    let s = new_session(&h.store).await;
    for n in 1..=3 {
        // A cap of one still keeps the whole turn: its question and the
        // answer streaming for it.
        let t = capped(turn(&s, &format!("q{n}"), at(n * 10)), 1);
        let (user, assistant, history) = start(&h.store, &t).await;
        assert_eq!(seqs(&history), vec![user.seq]);
        let stored = h.store.list_messages(TENANT, s.id, 100, None).await.unwrap();
        assert_eq!(seqs(&stored), vec![assistant.seq, user.seq]);
        assert_eq!(stored[0].status, MessageStatus::Streaming);
        assert_eq!(session_of(&h.store, &s).await.message_count, 2);
        assert!(h.store.finish_message(&finish_of(&assistant, TENANT, "a", at(n * 10 + 1))).await.unwrap());
    }
    // An agent's session takes user messages only: the cap holds there too.
    h.set_session_status(s.id, "human").await;
    for n in 0..3 {
        let t = capped(turn(&s, &format!("to the agent {n}"), at(100 + n)), 2);
        assert!(matches!(h.store.begin_turn(&t).await.unwrap(), BeginTurnOutcome::Human { .. }));
    }
    assert_eq!(kept(h, &s).await, (vec![9, 8], 2));
}

pub async fn history_leaves_out_messages_past_retention(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "old", at(0)).await;
    complete_turn(&h.store, &s, "newer", at(DAY_MS)).await;
    let mut t = turn(&s, "now", at(DAY_MS + 10));
    t.retained_since = at(1);
    let (_, _, history) = start(&h.store, &t).await;
    assert_eq!(seqs(&history), vec![3, 4, 5]);
}

fn sweeper(h: &Harness, clock: &Arc<ManualClock>, batch: u32) -> Sweeper {
    Sweeper::new(h.store.clone(), clock.clone()).batch(batch)
}

pub async fn sweep_deletes_what_is_older_than_the_days(h: &mut Harness) {
    let day = |d: i64| at(d * DAY_MS);
    // Old: three turns on day 0, and an empty session idle since then.
    let old = new_session_for(&h.store, TENANT, OWNER, day(0)).await;
    for n in 0..3 {
        complete_turn(&h.store, &old, &format!("old {n}"), at(n)).await;
    }
    let empty = new_session_for(&h.store, TENANT, OWNER, day(0)).await;
    // Mixed: a turn on day 0 and one on day 9: only the first goes, and the
    // session stays (it was active within the days).
    let mixed = new_session_for(&h.store, TENANT, OWNER, day(0)).await;
    complete_turn(&h.store, &mixed, "early", day(0)).await;
    complete_turn(&h.store, &mixed, "late", day(9)).await;
    // An answer still streaming is never deleted, however old.
    let streaming = new_session_for(&h.store, TENANT, OWNER, day(0)).await;
    start(&h.store, &turn(&streaming, "still going", day(0))).await;
    // Another tenant keeps everything.
    let foreign = new_session_for(&h.store, "other", OWNER, day(0)).await;
    complete_turn(&h.store, &foreign, "theirs", day(0)).await;

    let clock = Arc::new(ManualClock::new(day(5)));
    let policies =
        [Policy { tenant_id: TENANT.into(), days: 7 }, Policy { tenant_id: "other".into(), days: 30 }];
    // Within the days: nothing to do.
    assert_eq!(sweeper(h, &clock, 2).sweep(&policies).await.unwrap(), Purged::default());
    clock.advance(std::time::Duration::from_millis(5 * DAY_MS as u64));
    // Day 10: day 0 is past seven days. Batches of two take several rounds.
    let purged = sweeper(h, &clock, 2).sweep(&policies).await.unwrap();
    assert_eq!(purged, Purged { messages: 6 + 2 + 1, sessions: 2 });

    assert!(h.store.get_session(TENANT, old.id).await.unwrap().is_none());
    assert!(h.store.get_session(TENANT, empty.id).await.unwrap().is_none());
    assert_eq!(kept(h, &mixed).await, (vec![4, 3], 2));
    let (left, count) = kept(h, &streaming).await;
    assert_eq!((left, count), (vec![2], 1));
    assert_eq!(session_of(&h.store, &streaming).await.status, SessionStatus::Active);
    assert_eq!(kept(h, &foreign).await, (vec![2, 1], 2));
    // A second sweep finds nothing left.
    assert_eq!(sweeper(h, &clock, 2).sweep(&policies).await.unwrap(), Purged::default());
    // The session left empty by the sweep goes once its activity is old too.
    let mut t = turn(&mixed, "again", day(10));
    t.retained_since = day(3);
    start(&h.store, &t).await;
    clock.advance(std::time::Duration::from_millis(20 * DAY_MS as u64));
    let purged = sweeper(h, &clock, 500).sweep(&policies).await.unwrap();
    assert_eq!(purged.messages, 3, "the streaming answer of day 10 stays");
    assert!(h.store.get_session(TENANT, mixed.id).await.unwrap().is_some());
}

/// Consecutive turns of one session each get exactly the history the rows
/// hold — the newest within the window, none past the cap or retention, each
/// answer as it was finished (an error's partial text, a reaped answer's last
/// checkpoint) — however the store starts them.
pub async fn consecutive_turns_see_what_was_written(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let mut written: Vec<(i64, String, Timestamp)> = Vec::new();
    for n in 0..9i64 {
        let now = at(n * DAY_MS / 2);
        let mut t = capped(turn(&s, &format!("question {n}"), now), 7);
        t.history_limit = if n == 5 { 2 } else { 4 };
        t.retained_since = at((n - 3) * DAY_MS / 2);
        let (user, assistant, history) = start(&h.store, &t).await;
        written.push((user.seq, user.content.clone(), now));
        let purge = user.seq + 1 - 7;
        let mut expected: Vec<(i64, String)> = written
            .iter()
            .filter(|(seq, _, at)| *seq > purge && *at >= t.retained_since)
            .map(|(seq, text, _)| (*seq, text.clone()))
            .collect();
        expected.drain(..expected.len().saturating_sub(t.history_limit as usize));
        let got: Vec<(i64, String)> = history.iter().map(|m| (m.seq, m.content.clone())).collect();
        assert_eq!(got, expected, "turn {n}");
        let answer = format!("answer {n}");
        if n == 6 {
            // Reaped, not finished: the answer is what its last checkpoint held.
            let cp = Checkpoint {
                tools: Vec::new(),
                tenant_id: TENANT.into(),
                session_id: s.id,
                seq: assistant.seq,
                content: "part of".into(),
                node_id: NODE.into(),
                lease_until: now,
            };
            assert!(h.store.checkpoint(&cp).await.unwrap());
            h.store.reap_expired_leases(now + chrono::Duration::seconds(1)).await.unwrap();
            written.push((assistant.seq, "part of".into(), now));
            continue;
        }
        let mut finish = finish_of(&assistant, TENANT, &answer, now);
        if n == 3 {
            finish.status = MessageStatus::Error;
        }
        assert!(h.store.finish_message(&finish).await.unwrap());
        written.push((assistant.seq, answer, now));
    }
}
