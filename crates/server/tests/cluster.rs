//! Two real server processes as one cluster (SPEC §6, §11.2, §15, §17), on
//! PostgreSQL with Redis and again with NATS as the bus: a turn on one node
//! streams to a subscriber on the other, a subscriber joining mid-turn on the
//! other node gets the live text and then the deltas with no gap, a kill
//! switch flipped with the CLI reaches both nodes and ends open
//! subscriptions, rate limits are counted across nodes, and a node killed
//! mid-turn leaves an answer the other node marks `interrupted`, after which
//! the session takes turns there again. A session's lifecycle across nodes
//! is in `cluster_lifecycle.rs`.
//!
//! Each scenario is written once, taking the backend, and run by two tests.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{Backend, Cluster};
use common::checks::{assert_message_shape, check_deltas, check_stream_turn};
use common::subscribe::EVENT_TIMEOUT;
use common::{
    chat_body, eventually, joined, pieces, unicode_pieces, FakeOpenAi, LiveStream, Mode, Reply, SseEvent,
    TenantSpec, TestApp, Visitor,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A kill switch flipped with the CLI must be followed by every node within this.
const RELOAD: Duration = Duration::from_secs(10);
/// A killed node's answer must be found `interrupted` within this (10 s lease,
/// a reaper every 2 s, slack for a loaded machine).
const REAP: Duration = Duration::from_secs(20);

fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}

/// The events a client keeps of a turn (no `typing`), parsed, with their ids.
fn durable(events: &[SseEvent]) -> Vec<(String, Value, Option<String>)> {
    events
        .iter()
        .filter(|e| ["message", "stream_start", "stream_delta", "stream_end"].contains(&e.event.as_str()))
        .map(|e| (e.event.clone(), e.json(), e.id.clone()))
        .collect()
}

/// The events of `sub` from the user message of `user_seq` on.
fn from_user_message(sub: &LiveStream, user_seq: i64) -> Vec<SseEvent> {
    let at = sub
        .received
        .iter()
        .position(|e| e.event == "message" && e.json()["seq"] == user_seq)
        .unwrap_or_else(|| panic!("no user message {user_seq} among {:?}", sub.received));
    sub.received[at..].to_vec()
}

// ---------------------------------------------------------------------------
// 1. A turn on one node streams to subscribers on the other.
// ---------------------------------------------------------------------------

async fn cross_node_streaming(backend: Backend, test: &str) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let paced = || Mode::Paced { pieces: unicode_pieces(), interval: Duration::from_millis(30) };
    let Some(c) = Cluster::start(test, backend, &[TenantSpec::openai("acme", &fake)]).await else { return };
    let (sid, v) = c.a.create_session("acme").await;

    let mut on_b = c.b.subscribe(&v, &sid, None).await;
    let mut on_a = c.a.subscribe(&v, &sid, None).await;
    assert_eq!(on_b.session_event().await["latest_seq"], 0);
    assert_eq!(on_a.session_event().await["latest_seq"], 0);

    // Turn 1 on A, watched from B.
    fake.push_mode(paced());
    let reply = c.a.chat_stream(&v, &sid, "Hello from node A").await;
    let turn = check_stream_turn(&reply, "Hello from node A", 1);
    assert_eq!(turn.text, joined(&unicode_pieces()));
    let end = on_b.until_final(2, EVENT_TIMEOUT).await;
    assert_eq!(end.event, "stream_end", "B saw {:?}", on_b.received);
    let seen = from_user_message(&on_b, 1);
    let names = common::kinds(&seen);
    let opening: Vec<&str> = names.iter().filter(|n| *n != "typing").take(2).map(String::as_str).collect();
    assert_eq!(opening, ["message", "stream_start"], "B: {names:?}");
    let user = seen[0].json();
    assert_message_shape(&user);
    assert_eq!((user["seq"].as_i64(), user["content"].as_str()), (Some(1), Some("Hello from node A")));
    assert_eq!(seen[0].id.as_deref(), Some("1"), "the user message's id on B");
    assert_eq!(check_deltas(&seen, &turn.turn_id, 2), turn.text, "B's deltas");
    assert_eq!(end.id.as_deref(), Some("2"), "stream_end id on B");
    assert_eq!(end.json()["message"]["content"], turn.text.as_str());
    assert_eq!(end.json()["message"]["status"], "complete");
    assert_eq!(durable(&seen), durable(&reply.events), "B's events vs the turn's own stream on A");

    // Turn 2 on B, watched from A (and from B's own subscriber).
    fake.push_mode(paced());
    let reply = c.b.chat_stream(&v, &sid, "And now from node B").await;
    let turn = check_stream_turn(&reply, "And now from node B", 3);
    assert_eq!(on_a.until_final(2, EVENT_TIMEOUT).await.event, "stream_end");
    let end = on_a.until_final(4, EVENT_TIMEOUT).await;
    assert_eq!(end.event, "stream_end", "A saw {:?}", on_a.received);
    let seen = from_user_message(&on_a, 3);
    assert_eq!(check_deltas(&seen, &turn.turn_id, 4), turn.text, "A's deltas");
    assert_eq!(durable(&seen), durable(&reply.events), "A's events vs the turn's own stream on B");
    assert_eq!(on_b.until_final(4, EVENT_TIMEOUT).await.event, "stream_end");

    // Both nodes serve the same history.
    let (ha, hb) = (c.a.messages(&v, &sid).await, c.b.messages(&v, &sid).await);
    assert_eq!(ha.len(), 4, "{ha:?}");
    assert_eq!(ha, hb, "history differs between the nodes");
    drop((on_a, on_b));
    c.shutdown().await;
}

#[tokio::test]
async fn redis_cross_node_streaming() {
    cross_node_streaming(Backend::Redis, "redis_cross_node_streaming").await;
}

#[tokio::test]
async fn nats_cross_node_streaming() {
    cross_node_streaming(Backend::Nats, "nats_cross_node_streaming").await;
}

// ---------------------------------------------------------------------------
// 2. Joining a streaming answer on the other node mid-turn.
// ---------------------------------------------------------------------------

/// Checks a subscription that joined answer `seq` mid-turn: `events` starts
/// at its replayed `message` (status `streaming`, no id, a non-empty prefix
/// of `full`), and its deltas continue exactly at the replayed length.
/// Returns the rebuilt text.
fn check_joined(name: &str, events: &[SseEvent], seq: i64, turn_id: &str, full: &str) -> String {
    let snapshot = &events[0];
    assert_eq!(snapshot.event, "message", "{name}: expected the streaming message first: {events:?}");
    assert!(snapshot.id.is_none(), "{name}: a streaming message carries no id: {snapshot:?}");
    let m = snapshot.json();
    assert_message_shape(&m);
    assert_eq!((m["seq"].as_i64(), m["role"].as_str()), (Some(seq), Some("assistant")), "{name}: {m}");
    assert_eq!(m["status"], "streaming", "{name}: {m}");
    let so_far = m["content"].as_str().unwrap_or_else(|| panic!("{name}: content: {m}")).to_owned();
    assert!(!so_far.is_empty(), "{name}: the replayed live text is empty: {m}");
    assert!(full.starts_with(&so_far), "{name}: {so_far:?} is not a prefix of the answer {full:?}");
    let revision = m.get("revision").and_then(Value::as_u64).unwrap_or(0);

    let mut text = so_far.clone();
    let mut first = true;
    for d in events[1..].iter().filter(|e| e.event == "stream_delta") {
        let v = d.json();
        assert_eq!((v["turn_id"].as_str(), v["seq"].as_i64()), (Some(turn_id), Some(seq)), "{name}: {v}");
        assert_eq!(v["revision"].as_u64(), Some(revision), "{name}: {v}");
        let offset = v["offset"].as_u64().unwrap_or_else(|| panic!("{name}: offset: {v}"));
        if first {
            assert_eq!(
                offset,
                chars(&so_far),
                "{name}: the first delta does not continue at the replayed text's length ({so_far:?}): {v}"
            );
            first = false;
        }
        assert_eq!(offset, chars(&text), "{name}: offsets not contiguous at {v}");
        text.push_str(v["text"].as_str().unwrap_or_else(|| panic!("{name}: text: {v}")));
    }
    let end = events.last().unwrap();
    assert_eq!(end.event, "stream_end", "{name}: {events:?}");
    assert_eq!(end.id.as_deref(), Some(seq.to_string().as_str()), "{name}: {end:?}");
    assert_eq!(end.json()["message"]["content"], text.as_str(), "{name}: rebuilt text vs stream_end");
    text
}

async fn join_mid_turn_on_the_other_node(backend: Backend, test: &str) {
    let all = pieces(60);
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    fake.push_mode(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(50) });
    let Some(c) = Cluster::start(test, backend, &[TenantSpec::openai("acme", &fake)]).await else { return };
    let (sid, v) = c.a.create_session("acme").await;

    let mut turn = c.a.chat_live(&v, &chat_body(&sid, "a long answer please")).await;
    let start = turn.until("stream_start", EVENT_TIMEOUT).await.json();
    let turn_id = start["turn_id"].as_str().unwrap().to_owned();
    while turn.text_so_far().split(' ').count() < 8 {
        turn.next(EVENT_TIMEOUT).await.expect("the turn ended early");
    }

    // Without a cursor: session, the streaming answer as it is now, then its deltas.
    let mut plain = c.b.subscribe(&v, &sid, None).await;
    let session = plain.session_event().await;
    assert_eq!(session["latest_seq"], 1, "the session event counts final messages only: {session}");
    // With cursor 0: session, resume_cursor, the user message, the streaming answer.
    let mut resumed = c.b.subscribe(&v, &sid, Some("0")).await;
    resumed.resumed_session_event(0).await;
    let cursor = resumed.expect("resume_cursor").await.json();
    assert_eq!(cursor["last_event_id"], 0, "{cursor}");
    let user = resumed.expect("message").await;
    assert_eq!((user.json()["seq"].as_i64(), user.id.as_deref()), (Some(1), Some("1")), "{user:?}");
    assert!(!turn.text_so_far().is_empty());

    let mine = turn.finish(Duration::from_secs(20)).await;
    let end = mine.last().expect("the turn's stream is empty");
    assert_eq!(end.event, "stream_end", "{mine:?}");
    let full = end.json()["message"]["content"].as_str().unwrap().to_owned();
    assert_eq!(full, joined(&all));

    for (name, sub) in [("no cursor", &mut plain), ("cursor 0", &mut resumed)] {
        sub.until_final(2, Duration::from_secs(10)).await;
        let at = sub
            .received
            .iter()
            .position(|e| e.event == "message" && e.json()["seq"] == 2)
            .unwrap_or_else(|| panic!("{name}: no replayed answer: {:?}", sub.received));
        let between: Vec<&str> = sub.received[..at].iter().map(|e| e.event.as_str()).collect();
        let expected: &[&str] =
            if name == "no cursor" { &["session"] } else { &["session", "resume_cursor", "message"] };
        assert_eq!(between, expected, "{name}: events before the replayed answer");
        let rebuilt = check_joined(name, &sub.received[at..], 2, &turn_id, &full);
        assert_eq!(rebuilt, full, "{name}: rebuilt text vs the answer on A");
    }
    drop((plain, resumed));
    c.shutdown().await;
}

#[tokio::test]
async fn redis_join_mid_turn_on_the_other_node() {
    join_mid_turn_on_the_other_node(Backend::Redis, "redis_join_mid_turn_on_the_other_node").await;
}

#[tokio::test]
async fn nats_join_mid_turn_on_the_other_node() {
    join_mid_turn_on_the_other_node(Backend::Nats, "nats_join_mid_turn_on_the_other_node").await;
}

// ---------------------------------------------------------------------------
// 3. A kill switch flipped with the CLI reaches every node.
// ---------------------------------------------------------------------------

/// How a node answers `who` listing its sessions: 200, or 403 while the
/// kill switch is on. No side effects.
async fn probe(app: &TestApp, who: &Visitor) -> Reply {
    app.send(app.request(Method::GET, "/v1/sessions", Some(who))).await
}

/// Waits (from `since`, at most `RELOAD`) until `app` answers the probe with
/// `status`; returns how long after `since` that was.
async fn until_status(app: &TestApp, who: &Visitor, status: u16, what: &str, since: Instant) -> Duration {
    let left = RELOAD.saturating_sub(since.elapsed());
    eventually(what, left, || async { (probe(app, who).await.status.as_u16() == status).then_some(()) })
        .await;
    since.elapsed()
}

async fn kill_switch_propagation(backend: Backend, test: &str) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let tenants = [TenantSpec::openai("acme", &fake), TenantSpec::demo("globex")];
    let Some(c) = Cluster::start(test, backend, &tenants).await else { return };
    let (sid, v) = c.a.create_session("acme").await;
    let (gsid, gv) = c.b.create_session("globex").await;
    c.a.chat_stream(&v, &sid, "before").await;
    for app in [&c.a, &c.b] {
        assert_eq!(probe(app, &v).await.status, StatusCode::OK);
    }
    let mut on_b = c.b.subscribe(&v, &sid, None).await;
    on_b.session_event().await;
    let mut other_tenant = c.b.subscribe(&gv, &gsid, None).await;
    other_tenant.session_event().await;

    c.cli(&["tenant", "update", "acme", "--kill-switch", "on"]).await.expect_ok("flip on");
    let flipped = Instant::now();
    let took_a = until_status(&c.a, &v, 403, "node a to refuse the tenant", flipped).await;
    let took_b = until_status(&c.b, &v, 403, "node b to refuse the tenant", flipped).await;
    println!("kill switch on: node a after {took_a:?}, node b after {took_b:?}");
    for (name, app) in [("a", &c.a), ("b", &c.b)] {
        probe(app, &v).await.assert_error(403, "tenant.disabled");
        app.chat_raw(&v, &chat_body(&sid, "are you there?")).await.assert_error(403, "tenant.disabled");
        let anonymous = app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "acme");
        app.send(anonymous).await.assert_error(403, "tenant.disabled");
        app.subscribe_refused(&v, &sid, None).await.assert_error(403, "tenant.disabled");
        println!("node {name} refuses every request of the disabled tenant");
    }
    // The subscription open on B ends with tenant.disabled.
    let error = on_b.until("error", RELOAD.saturating_sub(flipped.elapsed())).await.json();
    assert_eq!(error["error"]["code"], "tenant.disabled", "{error}");
    assert_eq!(error["error"]["http_status"], 403, "{error}");
    let rest = on_b.until_end(Duration::from_secs(5)).await;
    assert!(
        rest.iter().all(|e| e.event == "error" && e.json()["error"]["code"] == "tenant.disabled"),
        "after the error: {rest:?}"
    );
    // Another tenant's subscription on B goes on.
    c.a.chat_stream(&gv, &gsid, "still here?").await;
    assert_eq!(other_tenant.until_final(2, EVENT_TIMEOUT).await.event, "stream_end");

    c.cli(&["tenant", "update", "acme", "--kill-switch", "off"]).await.expect_ok("flip off");
    let back = Instant::now();
    until_status(&c.a, &v, 200, "node a to serve the tenant again", back).await;
    until_status(&c.b, &v, 200, "node b to serve the tenant again", back).await;
    let turn = check_stream_turn(&c.b.chat_stream(&v, &sid, "back on?").await, "back on?", 3);
    assert_eq!(turn.text, joined(&pieces(3)));
    drop((on_b, other_tenant));
    c.shutdown().await;
}

#[tokio::test]
async fn redis_kill_switch_propagation() {
    kill_switch_propagation(Backend::Redis, "redis_kill_switch_propagation").await;
}

#[tokio::test]
async fn nats_kill_switch_propagation() {
    kill_switch_propagation(Backend::Nats, "nats_kill_switch_propagation").await;
}

// ---------------------------------------------------------------------------
// 4. Rate limits are counted across nodes.
// ---------------------------------------------------------------------------

/// `(limit, remaining)` from the `X-RateLimit-*` headers.
fn quota(reply: &Reply) -> (String, String) {
    let get = |name: &str| {
        reply.header(name).unwrap_or_else(|| panic!("no {name} on {}: {}", reply.status, reply.text))
    };
    (get("x-ratelimit-limit"), get("x-ratelimit-remaining"))
}

fn assert_limited(reply: &Reply, what: &str) {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{what}: {}", reply.text);
    reply.assert_error(429, "rate_limited");
    let retry: u64 =
        reply.header("retry-after").unwrap_or_else(|| panic!("{what}: no Retry-After")).parse().unwrap();
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    assert_eq!(quota(reply), ("3".to_owned(), "0".to_owned()), "{what}: {:?}", reply.headers);
}

async fn rate_limits_hold_across_nodes(backend: Backend, test: &str) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let tenant = TenantSpec::openai("acme", &fake).rate_limit("user", 3, 60);
    let Some(c) = Cluster::start(test, backend, &[tenant]).await else { return };
    // No subject yet: the user scope does not apply to this one.
    let (sid, v) = c.a.create_session("acme").await;

    // Three requests of one visitor, spread over both nodes, are admitted.
    let r = c.a.create_session_for(&v).await;
    assert_eq!(r.status, StatusCode::CREATED, "1st on a: {}", r.text);
    assert_eq!(quota(&r), ("3".to_owned(), "2".to_owned()), "1st on a");
    let r = c.b.create_session_for(&v).await;
    assert_eq!(r.status, StatusCode::CREATED, "2nd on b: {}", r.text);
    assert_eq!(quota(&r), ("3".to_owned(), "1".to_owned()), "2nd on b: node b did not see node a's count");
    let r = c.a.chat_json(&v, &sid, "third").await;
    assert_eq!(r.status, StatusCode::OK, "3rd on a: {}", r.text);
    assert_eq!(quota(&r), ("3".to_owned(), "0".to_owned()), "3rd on a");

    // The fourth is refused on either node, and counts nowhere.
    let calls = fake.calls();
    assert_limited(
        &c.b.chat_raw(&v, &json!({"session_id": sid, "message": "fourth", "stream": false})).await,
        "chat on b",
    );
    assert_limited(&c.b.create_session_for(&v).await, "session on b");
    assert_limited(&c.a.chat_raw(&v, &chat_body(&sid, "fourth again")).await, "chat on a");
    assert_limited(&c.a.create_session_for(&v).await, "session on a");
    assert_eq!(fake.calls(), calls, "a refused chat reached the provider");
    assert_eq!(c.b.messages(&v, &sid).await.len(), 2, "a refused chat was stored");

    // Another visitor is not held by that subject, on either node.
    let (osid, ov) = c.b.create_session("acme").await;
    let r = c.b.create_session_for(&ov).await;
    assert_eq!((r.status, quota(&r)), (StatusCode::CREATED, ("3".to_owned(), "2".to_owned())), "{}", r.text);
    let r = c.a.chat_json(&ov, &osid, "hello").await;
    assert_eq!((r.status, quota(&r)), (StatusCode::OK, ("3".to_owned(), "1".to_owned())), "{}", r.text);
    c.shutdown().await;
}

#[tokio::test]
async fn redis_rate_limits_hold_across_nodes() {
    rate_limits_hold_across_nodes(Backend::Redis, "redis_rate_limits_hold_across_nodes").await;
}

#[tokio::test]
async fn nats_rate_limits_hold_across_nodes() {
    rate_limits_hold_across_nodes(Backend::Nats, "nats_rate_limits_hold_across_nodes").await;
}

// ---------------------------------------------------------------------------
// 5. A node killed mid-turn.
// ---------------------------------------------------------------------------

async fn node_killed_mid_turn(backend: Backend, test: &str) {
    let all = pieces(200);
    let full = joined(&all);
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    fake.push_mode(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(100) });
    let Some(mut c) = Cluster::start(test, backend, &[TenantSpec::openai("acme", &fake)]).await else {
        return;
    };
    let (sid, v) = c.a.create_session("acme").await;
    let mut on_b = c.b.subscribe(&v, &sid, None).await;
    on_b.session_event().await;

    let mut turn = c.a.chat_live(&v, &chat_body(&sid, "tell me a long story")).await;
    turn.until("stream_start", EVENT_TIMEOUT).await;
    on_b.until("stream_start", EVENT_TIMEOUT).await;
    // Long enough for a checkpoint (at least every second) and for B to follow.
    let streaming_since = Instant::now();
    while streaming_since.elapsed() < Duration::from_millis(1700) {
        let ev = on_b.next(EVENT_TIMEOUT).await.expect("B's subscription ended");
        assert!(["stream_delta", "typing"].contains(&ev.event.as_str()), "B: {:?}", on_b.received);
    }
    let seen_on_b = on_b.text_so_far();
    assert!(!seen_on_b.is_empty() && full.starts_with(&seen_on_b), "B followed {seen_on_b:?}");

    c.a.kill().await;
    drop(turn);
    let killed = Instant::now();
    // A subscriber joining on B while the dead node's lease still runs.
    let mut orphan = c.b.subscribe(&v, &sid, None).await;
    let s = orphan.session_event().await;
    assert_eq!(s["latest_seq"], 1, "the answer is not final yet: {s}");

    // B's subscriber learns that the answer was interrupted.
    let final_msg = on_b.until_final(2, REAP).await;
    println!("interrupted seen on b {:?} after the kill", killed.elapsed());
    assert_eq!(final_msg.event, "message", "B: {:?}", on_b.received);
    assert_eq!(final_msg.id.as_deref(), Some("2"), "{final_msg:?}");
    let m = final_msg.json();
    assert_message_shape(&m);
    assert_eq!((m["seq"].as_i64(), m["status"].as_str()), (Some(2), Some("interrupted")), "{m}");
    let kept = m["content"].as_str().unwrap();
    assert!(!kept.is_empty() && full.starts_with(kept), "the interrupted answer keeps {kept:?}");
    let orphan_final = orphan.until_final(2, REAP.saturating_sub(killed.elapsed())).await;
    assert_eq!(orphan_final.event, "message", "joined after the kill: {:?}", orphan.received);
    assert_eq!(orphan_final.json(), m, "joined after the kill: the final message differs");
    assert_eq!(orphan_final.id.as_deref(), Some("2"));

    // A subscriber joining on B now sees the answer interrupted too.
    let mut late = c.b.subscribe(&v, &sid, None).await;
    let s = late.session_event().await;
    assert_eq!(s["latest_seq"], 2, "{s}");
    let stored = c.b.message(&v, &sid, 2).await.expect("the answer is gone");
    assert_eq!((stored["status"].as_str(), stored["content"].as_str()), (Some("interrupted"), Some(kept)));

    // The session takes turns again, on B.
    let reply = c.b.chat_stream(&v, &sid, "are you back?").await;
    let turn = check_stream_turn(&reply, "are you back?", 3);
    assert_eq!(turn.text, joined(&pieces(3)));
    assert_eq!(on_b.until_final(4, EVENT_TIMEOUT).await.event, "stream_end");
    assert_eq!(late.until_final(4, EVENT_TIMEOUT).await.event, "stream_end");
    assert_eq!(orphan.until_final(4, EVENT_TIMEOUT).await.event, "stream_end");
    drop((on_b, late, orphan));
    c.shutdown().await;
}

#[tokio::test]
async fn redis_node_killed_mid_turn() {
    node_killed_mid_turn(Backend::Redis, "redis_node_killed_mid_turn").await;
}

#[tokio::test]
async fn nats_node_killed_mid_turn() {
    node_killed_mid_turn(Backend::Nats, "nats_node_killed_mid_turn").await;
}
