//! Resume (SPEC §5, §6): which cursors are valid (none, 0, latest, past the
//! end, negative, not decimal, purged), what a resumed subscription replays,
//! joining while an answer streams (its text so far, then deltas from exactly
//! that offset), and a client that drops its connection at random points and
//! comes back with its last id, which must end up with exactly the transcript
//! of a client that never left.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::subscribe::{events_path, EVENT_TIMEOUT};
use common::transcript::Transcript;
use common::{
    chat_body, joined, pieces, unicode_pieces, AppConfig, FakeOpenAi, LiveStream, Mode, TenantSpec, TestApp,
    Visitor,
};
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// A server whose session `sid` holds `turns` finished turns (seqs 1..=2·turns).
async fn app_with_turns(turns: i64) -> (TestApp, FakeOpenAi, String, Visitor) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;
    for i in 0..turns {
        let reply = app.chat_stream(&v, &sid, &format!("question {i}")).await;
        assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
    }
    (app, fake, sid, v)
}

/// Subscribes with the cursor in `Last-Event-ID` (`header`) or in
/// `?last_event_id=` (`query`).
async fn open(
    app: &TestApp,
    v: &Visitor,
    sid: &str,
    header: Option<&str>,
    query: Option<&str>,
) -> Result<LiveStream, common::Reply> {
    let path = match query {
        Some(q) => events_path(sid, &format!("?last_event_id={q}")),
        None => events_path(sid, ""),
    };
    let mut rb = app.request(Method::GET, &path, Some(v));
    if let Some(h) = header {
        rb = rb.header("last-event-id", h);
    }
    app.open_events(rb).await
}

/// Reads the opening of a resumed subscription: `session`, then
/// `resume_cursor {cursor, latest}`.
async fn resumed(sub: &mut LiveStream, cursor: i64, latest: i64) {
    let s = sub.resumed_session_event(cursor).await;
    assert_eq!(s["latest_seq"], latest, "{s}");
    let rc = sub.expect("resume_cursor").await;
    assert!(rc.id.is_none(), "resume_cursor carries no id: {rc:?}");
    let rc = rc.json();
    assert_eq!(
        (rc["last_event_id"].as_i64(), rc["latest_seq"].as_i64()),
        (Some(cursor), Some(latest)),
        "{rc}"
    );
}

/// Rows `from..=to` of the history.
fn history_rows(history: &[Value], from: i64, to: i64) -> Vec<(i64, String, String, String)> {
    Transcript::rows_of_history(history).into_iter().filter(|r| r.0 >= from && r.0 <= to).collect()
}

/// Applies a subscription's events (after what was already checked) to a
/// transcript and returns it.
fn transcript_of(sub: &LiveStream, cursor: Option<i64>) -> Transcript {
    let mut t = Transcript::new();
    t.resumed_from = cursor;
    for ev in &sub.received {
        t.apply_sse(ev);
    }
    t
}

#[tokio::test]
async fn valid_cursors_replay_exactly_what_follows_them() {
    let (app, _fake, sid, v) = app_with_turns(2).await;

    // (header, query, the cursor in force): the header wins over the query.
    let cases: Vec<(Option<&str>, Option<&str>, Option<i64>)> = vec![
        (None, None, None),
        (Some(""), None, None),
        (Some("0"), None, Some(0)),
        (None, Some("0"), Some(0)),
        (None, Some("2"), Some(2)),
        (Some("3"), None, Some(3)),
        (Some("4"), None, Some(4)),
        (None, Some("4"), Some(4)),
        (Some("1"), Some("abc"), Some(1)),
        (Some("2"), Some("9"), Some(2)),
    ];
    let mut subs = Vec::new();
    for (header, query, cursor) in &cases {
        let mut sub = open(&app, &v, &sid, *header, *query)
            .await
            .unwrap_or_else(|r| panic!("header {header:?} query {query:?}: {} {}", r.status, r.text));
        match cursor {
            None => {
                let s = sub.session_event().await;
                assert_eq!(s["latest_seq"], 4);
            }
            Some(c) => {
                resumed(&mut sub, *c, 4).await;
                for seq in c + 1..=4 {
                    let m = sub.expect("message").await;
                    assert_eq!(m.id.as_deref(), Some(seq.to_string().as_str()), "{m:?}");
                    assert_eq!(m.json()["seq"], seq);
                    assert_eq!(m.json()["status"], "complete");
                }
            }
        }
        subs.push(sub);
    }

    // Then live events: the next turn, and nothing replayed twice.
    app.chat_stream(&v, &sid, "one more").await;
    let history = app.messages(&v, &sid).await;
    for ((header, query, cursor), sub) in cases.iter().zip(subs.iter_mut()) {
        sub.until_final(6, EVENT_TIMEOUT).await;
        let t = transcript_of(sub, *cursor);
        let from = cursor.map_or(5, |c| c + 1);
        assert_eq!(t.rows(), history_rows(&history, from, 6), "header {header:?} query {query:?}");
    }
}

#[tokio::test]
async fn invalid_cursors_are_410_in_the_header_and_in_the_query() {
    let (app, fake, sid, v) = app_with_turns(2).await;
    for bad in
        ["5", "6", "1000", "-1", "-0", "abc", "1.5", "1e0", "+1", "0x1", "١", "99999999999999999999999"]
    {
        // A header value is visible ASCII; the query takes anything.
        if bad.is_ascii() {
            let r = open(&app, &v, &sid, Some(bad), None)
                .await
                .err()
                .unwrap_or_else(|| panic!("header {bad:?} accepted"));
            r.assert_error(410, "chat.cursor_invalid");
        }
        let q: String = form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        let r = open(&app, &v, &sid, None, Some(&q))
            .await
            .err()
            .unwrap_or_else(|| panic!("query {bad:?} accepted"));
        r.assert_error(410, "chat.cursor_invalid");
    }
    // An invalid header is not rescued by a valid query.
    open(&app, &v, &sid, Some("abc"), Some("1"))
        .await
        .err()
        .unwrap()
        .assert_error(410, "chat.cursor_invalid");
    // Nothing about a refused subscription changed the session.
    assert_eq!(app.messages(&v, &sid).await.len(), 4);
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn cursors_before_what_retention_kept_are_410() {
    let (app, _fake, sid, v) = app_with_turns(2).await;
    // Retention took seqs 1 and 2: the earliest retained is 3.
    let db = app.data_dir().join("switchboard.db");
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(&db).busy_timeout(Duration::from_secs(5));
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .expect("open the database");
    let done = sqlx::query("DELETE FROM messages WHERE session_id = ?1 AND seq <= 2")
        .bind(&sid)
        .execute(&mut conn)
        .await
        .expect("purge");
    assert_eq!(done.rows_affected(), 2, "the purge deleted nothing: is session_id stored as text?");
    drop(conn);

    for bad in ["0", "1"] {
        open(&app, &v, &sid, Some(bad), None)
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"))
            .assert_error(410, "chat.cursor_invalid");
        open(&app, &v, &sid, None, Some(bad)).await.err().unwrap().assert_error(410, "chat.cursor_invalid");
    }
    // earliest_retained − 1 .. latest are still valid.
    for (cursor, replayed) in [(2, vec![3, 4]), (3, vec![4]), (4, vec![])] {
        let mut sub = open(&app, &v, &sid, Some(&cursor.to_string()), None)
            .await
            .unwrap_or_else(|r| panic!("{cursor}: {}", r.text));
        resumed(&mut sub, cursor, 4).await;
        for seq in replayed {
            assert_eq!(sub.expect("message").await.json()["seq"], seq);
        }
    }
    // Without a cursor nothing changes.
    let mut sub = open(&app, &v, &sid, None, None).await.unwrap();
    assert_eq!(sub.session_event().await["latest_seq"], 4);
}

#[tokio::test]
async fn joining_while_an_answer_streams_shows_its_text_then_continues_from_there() {
    let before = unicode_pieces();
    let after: Vec<String> = [" und", " 🌍", " mehr", "!"].iter().map(|s| (*s).to_owned()).collect();
    let fake = FakeOpenAi::start(Mode::Gated { before: before.clone(), after: after.clone() }).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;
    let mut turn = app.chat_live(&v, &chat_body(&sid, "stream something")).await;
    let start = turn.until("stream_start", EVENT_TIMEOUT).await.json();
    while turn.text_so_far() != joined(&before) {
        turn.next(EVENT_TIMEOUT).await.expect("the turn ended early");
    }
    let so_far = joined(&before);

    // No cursor, cursor 0, cursor 1 (the user message, the last final seq).
    let mut subs = Vec::new();
    for cursor in [None, Some(0), Some(1)] {
        let header = cursor.map(|c: i64| c.to_string());
        let mut sub = open(&app, &v, &sid, header.as_deref(), None).await.unwrap();
        match cursor {
            None => {
                let s = sub.session_event().await;
                assert_eq!(s["latest_seq"], 1, "the session id is the last seq that is final: {s}");
            }
            Some(c) => {
                resumed(&mut sub, c, 1).await;
                if c == 0 {
                    let user = sub.expect("message").await;
                    assert_eq!(user.id.as_deref(), Some("1"));
                    assert_eq!(user.json()["content"], "stream something");
                }
            }
        }
        let m = sub.expect("message").await;
        assert!(m.id.is_none(), "a streaming message carries no id: {m:?}");
        let m = m.json();
        assert_eq!(m["seq"], 2, "{m}");
        assert_eq!(m["status"], "streaming", "{m}");
        assert_eq!(m["role"], "assistant", "{m}");
        assert_eq!(
            m["content"],
            so_far.as_str(),
            "the replay is the live text, not an older checkpoint: {m}"
        );
        assert_eq!(m["revision"], 0, "{m}");
        subs.push((cursor, sub));
    }

    fake.release();
    let full = format!("{so_far}{}", joined(&after));
    let turn_events = turn.finish(EVENT_TIMEOUT).await;
    assert_eq!(common::deltas_text(&turn_events), full);
    for (cursor, sub) in subs.iter_mut() {
        let end = sub.until_final(2, EVENT_TIMEOUT).await;
        assert_eq!(end.event, "stream_end", "cursor {cursor:?}");
        let deltas: Vec<Value> =
            sub.received.iter().filter(|e| e.event == "stream_delta").map(|e| e.json()).collect();
        assert!(!deltas.is_empty(), "cursor {cursor:?}: no deltas after the replay");
        assert_eq!(
            deltas[0]["offset"],
            so_far.chars().count(),
            "cursor {cursor:?}: first delta {}",
            deltas[0]
        );
        assert_eq!(deltas[0]["turn_id"], start["turn_id"]);
        let text: String = deltas.iter().map(|d| d["text"].as_str().unwrap()).collect();
        assert_eq!(format!("{so_far}{text}"), full, "cursor {cursor:?}");
        let t = transcript_of(sub, *cursor);
        assert_eq!(t.messages[&2].content, full, "cursor {cursor:?}");
        assert_eq!(end.json()["message"]["content"], full.as_str());
    }
}

#[tokio::test]
async fn joining_at_any_moment_of_a_fast_stream_misses_nothing() {
    let all: Vec<String> = unicode_pieces().into_iter().chain(pieces(34)).collect();
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(10) }).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;
    let mut turn = app.chat_live(&v, &chat_body(&sid, "go")).await;
    let mut subs = Vec::new();
    let mut deltas_seen = 0;
    for join_after in [0usize, 1, 2, 5, 9, 17, 26, 33] {
        while deltas_seen < join_after {
            let ev = turn.next(EVENT_TIMEOUT).await.expect("the turn ended early");
            deltas_seen += usize::from(ev.event == "stream_delta");
        }
        let cursor = (join_after % 2 == 1).then_some("0");
        subs.push((join_after, open(&app, &v, &sid, cursor, None).await.unwrap()));
    }
    let events = turn.finish(EVENT_TIMEOUT).await;
    assert_eq!(events.last().unwrap().event, "stream_end");
    let full = joined(&all);
    for (join_after, sub) in subs.iter_mut() {
        sub.until_final(2, EVENT_TIMEOUT).await;
        let t = transcript_of(sub, (*join_after % 2 == 1).then_some(0));
        assert_eq!(t.messages[&2].content, full, "joined after {join_after} deltas");
        assert_eq!(t.messages[&2].status, "complete");
        if let Some(replayed) =
            sub.received.iter().find(|e| e.event == "message" && e.json()["status"] == "streaming")
        {
            let text = replayed.json()["content"].as_str().unwrap().to_owned();
            assert!(full.starts_with(&text), "replayed text {text:?} is not a prefix");
        }
    }
}

/// One following client: what it rebuilt, whether (and how likely) it
/// drops after an event, and which id it reconnects with.
struct Client {
    t: Transcript,
    flaky: Option<(rand::rngs::StdRng, f64)>,
    stats: Stats,
}

/// Statistics of the random-disconnect runs.
#[derive(Debug, Default)]
struct Stats {
    reconnects: u32,
    mid_answer: u32,
}

/// Reads a subscription until every message up to `done` (once known) is
/// final in `t`; with `flaky`, drops the connection after an event with
/// probability `p` and comes back with the last id seen, as `EventSource` would.
async fn follow(
    app: &TestApp,
    v: &Visitor,
    sid: &str,
    mut sub: LiveStream,
    done: &AtomicI64,
    c: &mut Client,
) {
    let Client { t, flaky, stats } = c;
    let deadline = Instant::now() + Duration::from_secs(20);
    // What a fresh connection must open with, and the cursor it sent.
    let mut opening: Vec<&str> = vec!["session"];
    let mut sent: Option<i64> = None;
    loop {
        let target = done.load(Ordering::SeqCst);
        if target > 0 && t.final_upto(target) {
            return;
        }
        assert!(Instant::now() < deadline, "the transcript never completed: {:#?}", t.log);
        let ev = match sub.try_next(Duration::from_millis(200)).await {
            Err(()) => continue,
            Ok(None) => panic!("the subscription ended by itself: {:#?}", t.log),
            Ok(Some(ev)) => ev,
        };
        if !opening.is_empty() {
            let kind = opening.remove(0);
            assert_eq!(ev.event, kind, "a (re)connection must open with {kind}: {ev:?}\n{:#?}", t.log);
            if kind == "resume_cursor" {
                assert_eq!(ev.json()["last_event_id"].as_i64(), sent, "{ev:?}");
            }
        }
        // Every event is a point where the connection may drop, the
        // opening `session` and `resume_cursor` included.
        t.apply_sse(&ev);
        let Some((rng, p)) = flaky.as_mut() else { continue };
        if !rng.gen_bool(*p) {
            continue;
        }
        stats.reconnects += 1;
        if t.messages.values().any(|m| m.status == "streaming") {
            stats.mid_answer += 1;
        }
        drop(sub);
        // Some time away, so that events pass while disconnected.
        let away = rng.gen_range(0..30);
        tokio::time::sleep(Duration::from_millis(away)).await;
        let cursor = t.last_id.map(|c| c.to_string());
        let in_query = rng.gen_bool(0.5);
        let (header, query) = if in_query { (None, cursor.as_deref()) } else { (cursor.as_deref(), None) };
        sub = open(app, v, sid, header, query).await.unwrap_or_else(|r| {
            panic!("reconnect with {cursor:?} refused: {} {}\n{:#?}", r.status, r.text, t.log)
        });
        t.log.push(format!("-- reconnected with {cursor:?}"));
        opening = t.last_id.map_or(vec!["session"], |_| vec!["session", "resume_cursor"]);
        sent = t.last_id;
        t.resumed_from = t.last_id;
    }
}

/// 16 seeded cases: 2 or 3 turns (sometimes one failing mid-stream) while a
/// steady client and a client that drops after any event with probability
/// `p` (and stays away up to 30 ms) follow the session. Both must end with
/// the stored history; the dropping one never sees a gap, a duplicate or a
/// delta at the wrong offset on the way.
async fn random_disconnects() {
    let answer: Vec<String> = unicode_pieces().into_iter().chain(pieces(6)).collect();
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: answer.clone(), interval: Duration::from_millis(8) }).await;
    // Connection caps are not under test here.
    let tenant = TenantSpec::openai("acme", &fake).line("max_connections_per_subject = 1000");
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let started = Instant::now();
    let mut stats = Stats::default();
    for case in 0..16u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0000 + case);
        let turns = rng.gen_range(2..=3);
        let failing = if rng.gen_bool(0.3) { Some(rng.gen_range(0..turns)) } else { None };
        let p = [0.05, 0.15, 0.3][rng.gen_range(0..3)];
        let (sid, v) = app.create_session("acme").await;
        let done = AtomicI64::new(0);
        let case_rng = rand::rngs::StdRng::seed_from_u64(0xd00d_0000 + case);
        let mut steady = Client { t: Transcript::new(), flaky: None, stats: Stats::default() };
        let mut dropping =
            Client { t: Transcript::new(), flaky: Some((case_rng, p)), stats: Stats::default() };
        let drive = async {
            for i in 0..turns {
                if failing == Some(i) {
                    fake.push_mode(Mode::MidStreamError(pieces(3)));
                }
                let reply = app.chat_stream(&v, &sid, &format!("case {case} turn {i}")).await;
                let last = &reply.last().event;
                assert!(last == "stream_end" || last == "error", "{:?}", reply.events);
            }
            done.store(2 * turns, Ordering::SeqCst);
        };
        // Both clients are subscribed before the first turn starts.
        let steady_sub = open(&app, &v, &sid, None, None).await.unwrap();
        let dropping_sub = open(&app, &v, &sid, None, None).await.unwrap();
        tokio::join!(
            drive,
            follow(&app, &v, &sid, steady_sub, &done, &mut steady),
            follow(&app, &v, &sid, dropping_sub, &done, &mut dropping),
        );
        let history = Transcript::rows_of_history(&app.messages(&v, &sid).await);
        stats.reconnects += dropping.stats.reconnects;
        stats.mid_answer += dropping.stats.mid_answer;
        let (steady, dropping) = (steady.t, dropping.t);
        assert_eq!(steady.rows(), history, "case {case}: the steady client vs the history");
        assert_eq!(
            dropping.rows(),
            steady.rows(),
            "case {case} (p = {p}): the reconnecting client\n{:#?}",
            dropping.log
        );
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "the cases take too long: {stats:?} after case {case}"
        );
    }
    assert!(stats.reconnects >= 16, "too few reconnects to mean anything: {stats:?}");
    assert!(stats.mid_answer >= 4, "too few reconnects in the middle of an answer: {stats:?}");
}

/// SPEC §5/§6 as a browser lives it: `EventSource` reconnects with the last
/// `id:` it saw (whatever event carried it, the opening `session` included),
/// and "a reconnect always sends a cursor that misses nothing".
#[tokio::test]
async fn a_client_that_drops_at_random_points_ends_with_the_same_transcript() {
    random_disconnects().await;
}

/// A browser that resumes with cursor N gets `session` (whose `id:` is the
/// session's latest final seq L > N), and loses the connection before the
/// replay of N+1..L arrives. `EventSource` now holds L as its last event id;
/// its reconnect must still miss nothing (SPEC §5: the ids are chosen "so
/// that a reconnect always sends a cursor that misses nothing").
#[tokio::test]
async fn a_reconnect_right_after_a_resumed_session_event_misses_nothing() {
    let (app, _fake, sid, v) = app_with_turns(2).await;
    let mut first = open(&app, &v, &sid, Some("2"), None).await.unwrap();
    let session = first.next(EVENT_TIMEOUT).await.expect("session");
    assert_eq!(session.event, "session");
    drop(first);
    // What `EventSource` sends next: the id of the last event that had one.
    let last_id = session.id.clone().unwrap_or_else(|| "2".to_owned());
    let mut again = open(&app, &v, &sid, Some(&last_id), None).await.unwrap();
    app.chat_stream(&v, &sid, "and now").await;
    again.until_final(6, EVENT_TIMEOUT).await;
    let mut seen = Vec::new();
    for ev in &again.received {
        if ev.event == "message" || ev.event == "stream_end" {
            seen.push(ev.json()["seq"].as_i64().unwrap());
        }
    }
    assert!(
        seen.starts_with(&[3, 4]),
        "the session event of a resumed connection (cursor 2) carried id {:?}; reconnecting with it \
         delivered seqs {seen:?}: messages 3 and 4 were never delivered",
        session.id
    );
}
