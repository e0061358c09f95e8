//! Two nodes behind a load balancer (SPEC §6, §7, §15; docs/deployment.md):
//! two real server processes on one fresh PostgreSQL database and one Redis
//! (and again on NATS), behind a plain round-robin TCP balancer with no
//! sticky sessions. The test then speaks only to the balancer's address, as
//! the widget would: it creates a session, subscribes over SSE (landing on
//! one node) and opens a WebSocket (landing on the other), sends turns
//! alternately with `POST /v1/chat` (each request a new connection, so they
//! alternate between the nodes) and with the WebSocket's `message` frame,
//! and checks that the SSE subscriber and the WebSocket each see every turn
//! completely (the user message, `stream_start`, contiguous deltas,
//! `stream_end` with the final text), in order and once; that the history
//! read through the balancer, from either node, is the whole conversation;
//! and that an SSE subscription reconnecting with `Last-Event-ID` (landing
//! on the other node) replays exactly what followed its cursor, then
//! streams live again.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "common/balancer.rs"]
mod balancer;
#[allow(dead_code)]
#[path = "common/cluster.rs"]
mod cluster;
mod common;

use balancer::Balancer;
use cluster::{Backend, Cluster};
use common::checks::check_stream_turn;
use common::subscribe::{events_path, EVENT_TIMEOUT};
use common::transcript::Transcript;
use common::ws::WsClient;
use common::{joined, FakeOpenAi, LiveStream, Mode, SseEvent, TenantSpec, TestApp, Visitor};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const NODE_NAMES: [&str; 2] = ["a", "b"];
/// Turns before the SSE subscription drops, and while it is away.
const TURNS_BEFORE_DROP: usize = 4;
const TURNS_WHILE_AWAY: usize = 2;

/// The kinds of event a client keeps to rebuild a conversation.
const DURABLE: [&str; 5] = ["message", "stream_start", "stream_delta", "stream_replace", "stream_end"];

/// The answer of turn `i`: distinct per turn, with multi-byte characters,
/// in pieces the fake upstream sends one by one.
fn answer_pieces(i: usize) -> Vec<String> {
    let mut p = vec![format!("Turn {i}:"), " Grüße".to_owned(), " aus".to_owned(), " 東京".to_owned()];
    p.extend((0..6).map(|j| format!(" w{i}.{j}")));
    p.push(" 🎉🦀.".to_owned());
    p
}

/// How turn `i` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Rest,
    Socket,
}

fn via(i: usize) -> Via {
    if i.is_multiple_of(2) {
        Via::Rest
    } else {
        Via::Socket
    }
}

/// One turn as sent, and where it ran.
#[derive(Debug, Clone)]
struct Sent {
    user_seq: i64,
    message: String,
    answer: String,
    via: Via,
    node: usize,
    turn_id: String,
}

/// The widget's view of the cluster: the balancer and a client that opens
/// a new connection for every request (no keep-alive pool), so that
/// consecutive requests are balanced like requests of separate page loads.
struct Front {
    lb: Balancer,
    app: TestApp,
}

impl Front {
    async fn start(c: &Cluster) -> Self {
        let lb = Balancer::over(&[c.a.base_url.as_str(), c.b.base_url.as_str()]).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let app = TestApp::remote(&lb.base_url(), client);
        Self { lb, app }
    }

    /// Makes the next connection land on `node`: when round robin would
    /// send it elsewhere, a health probe takes that turn first.
    async fn steer(&self, node: usize) {
        if self.lb.next_backend() != node {
            let r = self.app.get("/healthz", None).await;
            assert_eq!(r.status, StatusCode::OK, "health probe through the balancer: {}", r.text);
        }
        assert_eq!(self.lb.next_backend(), node, "could not steer to node {}", NODE_NAMES[node]);
    }

    /// The node that connection number `n` (from 0) went to, checking
    /// that exactly one connection was made since.
    fn landed(&self, n: usize, what: &str) -> usize {
        assert_eq!(
            self.lb.accepted(),
            n + 1,
            "{what} opened more than one connection: {:?}",
            self.lb.routed()
        );
        self.lb.backend_of(n)
    }

    /// `POST /v1/sessions` as a new visitor: the session, the visitor and
    /// the ticket bound to the session that comes with it.
    async fn create_session(&self, tenant: &str) -> (String, Visitor, String) {
        let rb = self.app.client.post(self.app.url("/v1/sessions")).header("x-tenant-id", tenant);
        let reply = self.app.send(rb).await;
        assert_eq!(reply.status, StatusCode::CREATED, "create session: {}", reply.text);
        let b = &reply.body;
        let visitor = Visitor {
            tenant: tenant.to_owned(),
            token: b["token"].as_str().expect("token").to_owned(),
            visitor_id: b["visitor_id"].as_str().expect("visitor_id").to_owned(),
        };
        let ticket = b["ticket"].as_str().expect("ticket").to_owned();
        (b["session"]["id"].as_str().expect("session.id").to_owned(), visitor, ticket)
    }

    /// An `EventSource`-like subscription: the `?ticket=` URL, and
    /// `Last-Event-ID` when reconnecting. Returns it and its node.
    async fn subscribe(&self, sid: &str, ticket: &str, last_event_id: Option<i64>) -> (LiveStream, usize) {
        let n = self.lb.accepted();
        let mut rb = self.app.client.get(self.app.url(&events_path(sid, &format!("?ticket={ticket}"))));
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id.to_string());
        }
        let sub = match self.app.open_events(rb).await {
            Ok(sub) => sub,
            Err(r) => panic!("subscription through the balancer refused: {} {}", r.status, r.text),
        };
        (sub, self.landed(n, "a subscription"))
    }

    /// A WebSocket that said hello for `sid`; returns it, its welcome and its node.
    async fn socket(&self, v: &Visitor, sid: &str) -> (WsClient, Value, usize) {
        let n = self.lb.accepted();
        let (ws, welcome) = self.app.ws_hello(&v.tenant, &v.token, sid, None).await;
        (ws, welcome, self.landed(n, "a WebSocket"))
    }

    /// The whole history through the balancer, read from `node`, oldest first.
    async fn history(&self, v: &Visitor, sid: &str, node: usize) -> Vec<Value> {
        self.steer(node).await;
        let n = self.lb.accepted();
        let reply = self.app.messages_page(v, sid, "?limit=200").await;
        assert_eq!(self.landed(n, "a history request"), node);
        assert_eq!(reply.status, StatusCode::OK, "history from node {}: {}", NODE_NAMES[node], reply.text);
        let items = reply.body["items"].as_array().expect("items").clone();
        let seqs: Vec<i64> = items.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
        let mut newest_first = seqs.clone();
        newest_first.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(seqs, newest_first, "history from node {} is not newest first", NODE_NAMES[node]);
        assert!(reply.body["next_cursor"].is_null(), "one page holds it all: {}", reply.text);
        items.into_iter().rev().collect()
    }
}

/// `(kind, payload)` of the durable events of an SSE stream.
fn sse_durable(events: &[SseEvent]) -> Vec<(String, Value)> {
    events
        .iter()
        .filter(|e| DURABLE.contains(&e.event.as_str()))
        .map(|e| (e.event.clone(), e.json()))
        .collect()
}

/// `(kind, frame)` of the durable frames of a WebSocket.
fn ws_durable(frames: &[Value]) -> Vec<(String, Value)> {
    frames
        .iter()
        .filter_map(|f| {
            let kind = f["type"].as_str().expect("type");
            DURABLE.contains(&kind).then(|| (kind.to_owned(), f.clone()))
        })
        .collect()
}

/// Checks that `events` are exactly these turns, each complete, in order
/// and once: the user message, `stream_start`, deltas whose offsets are
/// contiguous, and `stream_end` with the text the deltas add up to, which is
/// the answer the upstream gave. Nothing else, nothing twice. Returns the
/// turn ids seen.
fn check_turns(who: &str, events: &[(String, Value)], turns: &[Sent], sid: &str) -> Vec<String> {
    let listing = || events.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join("\n");
    let mut at = 0;
    let mut next = |what: &str| {
        let (kind, v) = events
            .get(at)
            .unwrap_or_else(|| panic!("{who}: the stream has no {what} at #{at}; events:\n{}", listing()));
        at += 1;
        (kind.clone(), v.clone())
    };
    let mut ids = Vec::new();
    for t in turns {
        let (u, a) = (t.user_seq, t.user_seq + 1);
        let ctx = format!("{who}, turn {u} ({:?})", t.via);

        let (kind, m) = next("user message");
        assert_eq!(kind, "message", "{ctx}: expected the user message first, got {kind} {m}\n{}", listing());
        assert_eq!(
            (m["seq"].as_i64(), m["role"].as_str(), m["content"].as_str(), m["status"].as_str()),
            (Some(u), Some("user"), Some(t.message.as_str()), Some("complete")),
            "{ctx}: {m}"
        );
        assert_eq!(m["session_id"], sid, "{ctx}: {m}");

        let (kind, s) = next("stream_start");
        assert_eq!(kind, "stream_start", "{ctx}: expected stream_start, got {kind} {s}\n{}", listing());
        assert_eq!((s["seq"].as_i64(), s["user_seq"].as_i64()), (Some(a), Some(u)), "{ctx}: {s}");
        let turn_id = s["turn_id"].as_str().unwrap_or_else(|| panic!("{ctx}: no turn_id: {s}")).to_owned();

        let mut text = String::new();
        let mut deltas = 0;
        let end = loop {
            let (kind, d) = next("stream_end");
            match kind.as_str() {
                "stream_delta" => {
                    assert_eq!(
                        (d["seq"].as_i64(), d["turn_id"].as_str()),
                        (Some(a), Some(turn_id.as_str())),
                        "{ctx}: {d}"
                    );
                    assert_eq!(d["revision"], 0, "{ctx}: {d}");
                    let offset = d["offset"].as_u64().unwrap_or_else(|| panic!("{ctx}: no offset: {d}"));
                    assert_eq!(
                        offset,
                        text.chars().count() as u64,
                        "{ctx}: a gap or an overlap at {d}\n{}",
                        listing()
                    );
                    text.push_str(d["text"].as_str().unwrap_or_else(|| panic!("{ctx}: no text: {d}")));
                    deltas += 1;
                }
                "stream_end" => break d,
                _ => panic!("{ctx}: {kind} {d} in the middle of the answer\n{}", listing()),
            }
        };
        assert!(deltas > 0, "{ctx}: no delta before stream_end");
        assert_eq!(
            (end["seq"].as_i64(), end["turn_id"].as_str()),
            (Some(a), Some(turn_id.as_str())),
            "{ctx}: {end}"
        );
        let m = &end["message"];
        assert_eq!(
            (m["seq"].as_i64(), m["role"].as_str(), m["status"].as_str()),
            (Some(a), Some("assistant"), Some("complete")),
            "{ctx}: {end}"
        );
        assert_eq!(
            m["content"].as_str(),
            Some(text.as_str()),
            "{ctx}: the deltas do not add up to stream_end's text"
        );
        assert_eq!(text, t.answer, "{ctx}: not the answer the upstream gave");
        assert_eq!(end["finish_reason"], "stop", "{ctx}: {end}");
        ids.push(turn_id);
    }
    assert_eq!(at, events.len(), "{who}: events after the last turn (a duplicate?):\n{}", listing());
    ids
}

/// The SSE subscription's transcript, checking its ids as it goes.
fn transcript(sub: &LiveStream, resumed_from: Option<i64>) -> Transcript {
    let mut t = Transcript::new();
    t.resumed_from = resumed_from;
    sub.received.iter().for_each(|e| t.apply_sse(e));
    t
}

/// `(seq, role, content, status)` rows of history messages.
fn rows(history: &[Value]) -> Vec<(i64, String, String, String)> {
    Transcript::rows_of_history(history)
}

async fn widget_through_a_balancer(backend: Backend, test: &str) {
    let fake = FakeOpenAi::start(Mode::Normal(answer_pieces(99))).await;
    let Some(c) = Cluster::start(test, backend, &[TenantSpec::openai("acme", &fake)]).await else { return };
    let front = Front::start(&c).await;

    let (sid, v, ticket) = front.create_session("acme").await;
    // The SSE subscription on one node, the WebSocket on the other.
    front.steer(1).await;
    let (mut sse, sse_node) = front.subscribe(&sid, &ticket, None).await;
    let session = sse.session_event().await;
    assert_eq!(session["latest_seq"], 0, "{session}");
    front.steer(0).await;
    let (mut ws, welcome, ws_node) = front.socket(&v, &sid).await;
    assert_ne!(sse_node, ws_node, "the SSE subscription and the WebSocket landed on one node");
    assert_eq!(welcome["latest_seq"], 0, "{welcome}");
    assert_eq!(welcome["session"]["id"], sid.as_str(), "{welcome}");
    println!("SSE subscription on node {}, WebSocket on node {}", NODE_NAMES[sse_node], NODE_NAMES[ws_node]);

    let mut sent: Vec<Sent> = Vec::new();

    // Turns while both listen.
    for i in 0..TURNS_BEFORE_DROP {
        let t = run_turn(&front, &mut ws, ws_node, &fake, &v, &sid, i).await;
        sse.until_final(t.user_seq + 1, EVENT_TIMEOUT).await;
        println!("turn {i} ({:?}) ran on node {}", t.via, NODE_NAMES[t.node]);
        sent.push(t);
    }
    let rest_nodes: Vec<usize> = sent.iter().filter(|t| t.via == Via::Rest).map(|t| t.node).collect();
    assert!(
        rest_nodes.contains(&0) && rest_nodes.contains(&1),
        "the chat requests did not alternate between the nodes: {rest_nodes:?}"
    );
    let sse_turns = check_turns("SSE", &sse_durable(&sse.received), &sent, &sid);
    let ws_turns = check_turns("WebSocket", &ws_durable(&ws.received), &sent, &sid);
    let sent_ids: Vec<String> = sent.iter().map(|t| t.turn_id.clone()).collect();
    assert_eq!(sse_turns, sent_ids, "SSE: turn ids");
    assert_eq!(ws_turns, sent_ids, "WebSocket: turn ids");
    let sse_view = transcript(&sse, None);
    let last_id = sse_view.last_id.expect("the SSE subscription saw no id");
    assert_eq!(last_id, 2 * TURNS_BEFORE_DROP as i64, "the last id the widget holds");

    // The history through the balancer, from either node, is the conversation.
    let from_a = front.history(&v, &sid, 0).await;
    let from_b = front.history(&v, &sid, 1).await;
    assert_eq!(from_a.len(), 2 * TURNS_BEFORE_DROP, "{from_a:#?}");
    assert_eq!(from_a, from_b, "the nodes serve different histories");
    assert_eq!(sse_view.rows(), rows(&from_a), "SSE transcript vs history");
    for (i, t) in sent.iter().enumerate() {
        let (user, answer) = (&from_a[2 * i], &from_a[2 * i + 1]);
        assert_eq!(
            (user["role"].as_str(), user["content"].as_str()),
            (Some("user"), Some(t.message.as_str()))
        );
        assert_eq!(
            (answer["role"].as_str(), answer["content"].as_str()),
            (Some("assistant"), Some(t.answer.as_str()))
        );
        assert_eq!(answer["status"], "complete", "{answer}");
    }

    // The SSE subscription drops (a network blip); turns go on meanwhile.
    drop(sse);
    for i in TURNS_BEFORE_DROP..TURNS_BEFORE_DROP + TURNS_WHILE_AWAY {
        let t = run_turn(&front, &mut ws, ws_node, &fake, &v, &sid, i).await;
        println!(
            "turn {i} ({:?}) ran on node {} while the SSE subscription was away",
            t.via, NODE_NAMES[t.node]
        );
        sent.push(t);
    }
    let latest = 2 * sent.len() as i64;
    let ws_turns = check_turns("WebSocket", &ws_durable(&ws.received), &sent, &sid);
    assert_eq!(ws_turns, sent.iter().map(|t| t.turn_id.clone()).collect::<Vec<_>>(), "WebSocket: turn ids");

    // It reconnects with its Last-Event-ID, landing on the other node; and
    // a subscription from an older cursor opens on the first one's node.
    let other = 1 - sse_node;
    front.steer(other).await;
    let (mut back, node) = front.subscribe(&sid, &ticket, Some(last_id)).await;
    assert_eq!(node, other);
    let history = front.history(&v, &sid, sse_node).await;
    assert_eq!(history.len() as i64, latest, "{history:#?}");
    check_replay("reconnected", &mut back, last_id, latest, &history[last_id as usize..]).await;
    const OLDER: i64 = 3;
    front.steer(sse_node).await;
    let (mut older, _) = front.subscribe(&sid, &ticket, Some(OLDER)).await;
    check_replay("older cursor", &mut older, OLDER, latest, &history[OLDER as usize..]).await;
    let replayed = (back.received.len(), older.received.len());

    // Both stream live from there, and nothing else: one more turn.
    let t = run_turn(&front, &mut ws, ws_node, &fake, &v, &sid, sent.len()).await;
    println!("turn {} ({:?}) ran on node {} after the reconnect", sent.len(), t.via, NODE_NAMES[t.node]);
    for (name, sub, from) in
        [("reconnected", &mut back, replayed.0), ("older cursor", &mut older, replayed.1)]
    {
        sub.until_final(t.user_seq + 1, EVENT_TIMEOUT).await;
        let live = sse_durable(&sub.received[from..]);
        check_turns(&format!("{name} SSE, after its replay"), &live, std::slice::from_ref(&t), &sid);
    }
    sent.push(t);
    let history = front.history(&v, &sid, other).await;
    assert_eq!(history.len(), 2 * sent.len());
    for (name, sub, cursor) in [("reconnected", &back, last_id), ("older cursor", &older, OLDER)] {
        let after_cursor: Vec<_> = rows(&history).into_iter().filter(|r| r.0 > cursor).collect();
        assert_eq!(transcript(sub, Some(cursor)).rows(), after_cursor, "{name}: its transcript vs history");
    }
    let ws_turns = check_turns("WebSocket", &ws_durable(&ws.received), &sent, &sid);
    assert_eq!(ws_turns, sent.iter().map(|t| t.turn_id.clone()).collect::<Vec<_>>(), "WebSocket: turn ids");

    drop((back, older));
    ws.close().await;
    drop(front);
    c.shutdown().await;
}

/// A subscription resumed from `cursor` opens with `session` and
/// `resume_cursor {cursor, latest}`, then replays exactly `missed` (the
/// stored messages after the cursor, oldest first), each once, final, with
/// its seq as id. (That nothing follows the replay but live events is
/// checked by the caller, with the next turn.)
async fn check_replay(name: &str, sub: &mut LiveStream, cursor: i64, latest: i64, missed: &[Value]) {
    let s = sub.resumed_session_event(cursor).await;
    assert_eq!(s["latest_seq"], latest, "{name}: {s}");
    let rc = sub.expect("resume_cursor").await;
    assert!(rc.id.is_none(), "{name}: resume_cursor carries no id: {rc:?}");
    let rc = rc.json();
    assert_eq!(
        (rc["last_event_id"].as_i64(), rc["latest_seq"].as_i64()),
        (Some(cursor), Some(latest)),
        "{name}: {rc}"
    );
    for m in missed {
        let ev = sub
            .next(EVENT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{name}: the replay ended early: {:?}", sub.received));
        assert_eq!(ev.event, "message", "{name}: replay from {cursor}: {ev:?}\nso far: {:?}", sub.received);
        let seq = m["seq"].as_i64().unwrap();
        assert_eq!(ev.id.as_deref(), Some(seq.to_string().as_str()), "{name}: replayed message id: {ev:?}");
        assert_eq!(&ev.json(), m, "{name}: the replayed message differs from the stored one");
    }
}

/// Sends turn `i` (by REST or by the WebSocket, see `via`) and waits until
/// the WebSocket has seen its end; returns what was sent and where it ran.
async fn run_turn(
    front: &Front,
    ws: &mut WsClient,
    ws_node: usize,
    fake: &FakeOpenAi,
    v: &Visitor,
    sid: &str,
    i: usize,
) -> Sent {
    let pieces = answer_pieces(i);
    fake.push_mode(Mode::Paced { pieces: pieces.clone(), interval: Duration::from_millis(15) });
    let message = format!("message {i} from the widget");
    let user_seq = 2 * i as i64 + 1;
    let (node, own_turn_id) = match via(i) {
        Via::Rest => {
            // The chat requests alternate between the nodes (b, a, b, …),
            // whatever other requests went through the balancer meanwhile.
            front.steer((i / 2 + 1) % 2).await;
            let n = front.lb.accepted();
            let reply = front.app.chat_stream(v, sid, &message).await;
            let node = front.landed(n, "a chat request");
            let turn = check_stream_turn(&reply, &message, user_seq);
            assert_eq!(turn.text, joined(&pieces), "turn {i}: the answer on its own stream");
            (node, Some(turn.turn_id))
        }
        Via::Socket => {
            ws.send_json(&json!({"type": "message", "content": message})).await;
            (ws_node, None)
        }
    };
    // The WebSocket sees the turn to its end, whoever sent it.
    let end = ws.until("stream_end", EVENT_TIMEOUT).await;
    assert_eq!(end["seq"], user_seq + 1, "turn {i}: {end}");
    let turn_id = own_turn_id.unwrap_or_else(|| end["turn_id"].as_str().expect("turn_id").to_owned());
    Sent { user_seq, message, answer: joined(&pieces), via: via(i), node, turn_id }
}

#[tokio::test]
async fn redis_a_widget_through_a_round_robin_balancer() {
    widget_through_a_balancer(Backend::Redis, "redis_a_widget_through_a_round_robin_balancer").await;
}

#[tokio::test]
async fn nats_a_widget_through_a_round_robin_balancer() {
    widget_through_a_balancer(Backend::Nats, "nats_a_widget_through_a_round_robin_balancer").await;
}
