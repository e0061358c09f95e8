//! A session's lifecycle across the nodes of a cluster (SPEC §4, §12, §15),
//! on PostgreSQL with Redis and again with NATS: deleting or closing a
//! session on one node stops the answer streaming on the other, and waits for
//! its end before it answers, so nothing of that answer is written after the
//! wipe or the close (checked in the database itself).
//!
//! Each scenario is written once, taking the backend, and run by two tests.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
#[path = "common/cluster.rs"]
#[allow(dead_code)] // The CLI and shared secrets of the cluster are not used here.
mod cluster;
mod common;

use admin::{call, jwt_tenant, As};
use cluster::{Backend, Cluster};
use common::subscribe::EVENT_TIMEOUT;
use common::{chat_body, eventually, pieces, FakeOpenAi, LiveStream, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;

/// A cluster whose upstream holds every answer after two pieces until
/// released (so only a stop ends it), a session of `acme` on node B, and a
/// turn running there, read up to where the upstream holds it.
struct HeldOnB {
    c: Cluster,
    fake: FakeOpenAi,
    sid: String,
    v: Visitor,
    live: LiveStream,
}

impl HeldOnB {
    async fn start(backend: Backend, test: &str) -> Option<Self> {
        let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
        let c = Cluster::start(test, backend, &[jwt_tenant(TenantSpec::openai("acme", &fake))]).await?;
        let (sid, v) = c.b.create_session("acme").await;
        let mut live = c.b.chat_live(&v, &chat_body(&sid, "tell me")).await;
        while live.text_so_far() != "w0 w1" {
            live.next(EVENT_TIMEOUT).await.expect("the stream ended early");
        }
        Some(Self { c, fake, sid, v, live })
    }

    /// The session's message rows as the database holds them: `(seq, role, status)`.
    async fn message_rows(&self) -> Vec<(i64, String, String)> {
        let sql = "SELECT seq, role, status FROM messages WHERE session_id = $1 ORDER BY seq";
        let mut conn = self.database().await;
        let rows = sqlx::query_as(sql).bind(&self.sid).fetch_all(&mut conn).await.expect("read the messages");
        sqlx::Connection::close(conn).await.ok();
        rows
    }

    async fn session_rows(&self) -> i64 {
        let sql = "SELECT count(*) FROM sessions WHERE id = $1";
        let mut conn = self.database().await;
        let n =
            sqlx::query_scalar(sql).bind(&self.sid).fetch_one(&mut conn).await.expect("count the sessions");
        sqlx::Connection::close(conn).await.ok();
        n
    }

    async fn database(&self) -> sqlx::PgConnection {
        let url = &self.c.shared.database_url;
        sqlx::Connection::connect(url).await.expect("connect to the test database")
    }

    /// Node B's answer had ended, stopped (`aborted`), by the time the change
    /// taken on node A was answered: no turn runs on B any more.
    async fn assert_ended_on_b(&self, what: &str) {
        let in_flight = metric(&self.c.b, "switchboard_turns_in_flight", &[]).await;
        assert_eq!(in_flight, Some(0.0), "{what} answered while the answer still ran on B");
        let aborted = ["tenant=\"acme\"", "status=\"aborted\""];
        let finished = metric(&self.c.b, "switchboard_turns_finished_total", &aborted).await;
        assert_eq!(finished, Some(1.0), "{what}");
    }

    /// The stopped answer's stream ends with `stream_end` (`aborted`, with
    /// the text so far), then the response ends; B let the upstream go.
    async fn assert_stopped(&mut self) {
        let end = self.live.until("stream_end", EVENT_TIMEOUT).await.json();
        assert_eq!(end["finish_reason"], "aborted", "{end}");
        assert_eq!(end["message"]["content"], "w0 w1", "{end}");
        let after = self.live.next(EVENT_TIMEOUT).await;
        assert!(after.is_none(), "events after the end: {:?}", self.live.received);
        let fake = &self.fake;
        eventually("the upstream stream dropped", EVENT_TIMEOUT, || async {
            (fake.dropped() == 1).then_some(())
        })
        .await;
    }
}

/// A sample of node `app`'s `/metrics` whose labels include all of `labels`.
async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> Option<f64> {
    let text = app.get("/metrics", None).await.text;
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        (metric == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse().ok())?
    })
}

/// The owner deletes the session on node A while its answer streams on B.
async fn delete_during_an_answer_on_the_other_node(backend: Backend, test: &str) {
    let Some(mut h) = HeldOnB::start(backend, test).await else { return };
    assert_eq!(h.message_rows().await.len(), 2, "the user message and the streaming answer");

    let path = format!("/v1/sessions/{}", h.sid);
    let deleted = h.c.a.send(h.c.a.request(Method::DELETE, &path, Some(&h.v))).await;
    assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text);
    h.assert_ended_on_b("the delete").await;
    assert_eq!(h.message_rows().await, [], "rows left after the wipe");
    assert_eq!(h.session_rows().await, 0);
    h.assert_stopped().await;
    h.fake.release();
    for app in [&h.c.a, &h.c.b] {
        app.get(&path, Some(&h.v)).await.assert_error(404, "session.not_found");
    }
    assert_eq!(h.message_rows().await, [], "written after the wipe");
    assert_eq!((h.session_rows().await, h.fake.calls()), (0, 1));
    h.c.shutdown().await;
}

#[tokio::test]
async fn redis_a_delete_stops_the_answer_on_the_other_node_before_the_wipe() {
    let test = "redis_a_delete_stops_the_answer_on_the_other_node_before_the_wipe";
    delete_during_an_answer_on_the_other_node(Backend::Redis, test).await;
}

#[tokio::test]
async fn nats_a_delete_stops_the_answer_on_the_other_node_before_the_wipe() {
    let test = "nats_a_delete_stops_the_answer_on_the_other_node_before_the_wipe";
    delete_during_an_answer_on_the_other_node(Backend::Nats, test).await;
}

/// An agent closes the session on node A while its answer streams on B.
async fn close_during_an_answer_on_the_other_node(backend: Backend, test: &str) {
    let Some(mut h) = HeldOnB::start(backend, test).await else { return };

    let path = format!("/v1/admin/sessions/{}/close", h.sid);
    let closed = call(&h.c.a, &As::agent("acme"), Method::POST, &path, None).await;
    assert_eq!(closed.status.as_u16(), 200, "{}", closed.text);
    assert_eq!(closed.body["status"], "closed", "{}", closed.text);
    h.assert_ended_on_b("the close").await;
    let kept = [(1, "user", "complete"), (2, "assistant", "aborted")]
        .map(|(seq, role, status)| (seq, role.to_owned(), status.to_owned()));
    assert_eq!(h.message_rows().await, kept);
    h.assert_stopped().await;
    let answer = h.c.a.message(&h.v, &h.sid, 2).await.expect("the answer");
    assert_eq!((answer["status"].as_str(), answer["content"].as_str()), (Some("aborted"), Some("w0 w1")));
    h.fake.release();
    h.c.b.chat_raw(&h.v, &chat_body(&h.sid, "hello?")).await.assert_error(409, "session.closed");
    assert_eq!(h.message_rows().await, kept, "written after the close");
    assert_eq!(h.fake.calls(), 1);
    h.c.shutdown().await;
}

#[tokio::test]
async fn redis_a_close_waits_for_the_answer_on_the_other_node() {
    close_during_an_answer_on_the_other_node(Backend::Redis, "redis_a_close_waits_for_the_answer").await;
}

#[tokio::test]
async fn nats_a_close_waits_for_the_answer_on_the_other_node() {
    close_during_an_answer_on_the_other_node(Backend::Nats, "nats_a_close_waits_for_the_answer").await;
}
