//! Retention (SPEC §11.6) through the binary: `max_messages_per_session`
//! applied as `POST /v1/chat` writes (history, counts, what the provider
//! sees), `retention_days` applied on read before any sweep (records made old
//! straight in the database), and resume cursors below what is kept answered
//! with 410 `chat.cursor_invalid` over SSE and WebSocket.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
mod common;

use admin::{get_ok, operator_config, As};
use common::ws::hello;
use common::{pieces, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use serde_json::{json, Value};
use sqlx::Connection;
use std::time::Duration;

const CLOSE_WITHIN: Duration = Duration::from_secs(5);

async fn app_with(line: &str) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let tenant = TenantSpec::openai("acme", &fake).line(line);
    (TestApp::start(operator_config().tenant(tenant)).await, fake)
}

async fn turn(app: &TestApp, v: &Visitor, sid: &str, n: usize) {
    let reply = app.chat_stream(v, sid, &format!("question {n}")).await;
    assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
}

fn seqs(items: &[Value]) -> Vec<i64> {
    items.iter().map(|m| m["seq"].as_i64().unwrap()).collect()
}

/// The contents of the messages the provider was last sent.
fn sent_to_provider(fake: &FakeOpenAi) -> Vec<String> {
    let body = fake.last_request().body;
    let sent = body["messages"].as_array().unwrap();
    sent.iter().map(|m| m["content"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn message_count(app: &TestApp, v: &Visitor, sid: &str) -> i64 {
    let reply = app.get(&format!("/v1/sessions/{sid}"), Some(v)).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply.body["message_count"].as_i64().unwrap_or_else(|| panic!("no message_count: {}", reply.text))
}

/// SSE with `Last-Event-ID: cursor` must be 410 `chat.cursor_invalid`.
async fn sse_refused(app: &TestApp, v: &Visitor, sid: &str, cursor: i64) {
    let r = app.subscribe_refused(v, sid, Some(&cursor.to_string())).await;
    r.assert_error(410, "chat.cursor_invalid");
}

/// A WebSocket hello with `cursor` must get the 410 envelope, then 4003.
async fn ws_refused(app: &TestApp, v: &Visitor, sid: &str, cursor: i64) {
    let mut ws = app.ws("?tenant=acme").await;
    ws.send_json(&hello("acme", Some(&v.token), sid, Some(json!(cursor)))).await;
    ws.expect_error("chat.cursor_invalid", 410).await;
    ws.expect_close(4003, CLOSE_WITHIN).await;
}

/// A subscription from `cursor` replays exactly `replayed` (SSE and WebSocket).
async fn resumes(app: &TestApp, v: &Visitor, sid: &str, cursor: i64, replayed: &[i64]) {
    let mut sub = app.subscribe(v, sid, Some(&cursor.to_string())).await;
    sub.resumed_session_event(cursor).await;
    sub.expect("resume_cursor").await;
    for seq in replayed {
        assert_eq!(sub.expect("message").await.json()["seq"], *seq);
    }
    let (mut ws, welcome) = app.ws_hello("acme", &v.token, sid, Some(json!(cursor))).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws.expect("resume_cursor").await;
    for seq in replayed {
        assert_eq!(ws.expect("message").await["seq"], *seq);
    }
}

#[tokio::test]
async fn the_cap_deletes_the_oldest_messages_as_turns_are_written() {
    let (app, fake) = app_with("max_messages_per_session = 4").await;
    let (sid, v) = app.create_session("acme").await;
    for n in 0..2 {
        turn(&app, &v, &sid, n).await;
    }
    assert_eq!(seqs(&app.messages(&v, &sid).await), vec![4, 3, 2, 1]);
    turn(&app, &v, &sid, 2).await;
    // Six messages would be two over the cap: the first turn is gone, and the
    // provider never saw it in the history of the third.
    assert_eq!(seqs(&app.messages(&v, &sid).await), vec![6, 5, 4, 3]);
    let sent = sent_to_provider(&fake);
    assert!(sent.iter().all(|c| !c.contains("question 0")), "{sent:?}");
    assert!(sent.iter().any(|c| c.contains("question 1")), "{sent:?}");
    assert_eq!(message_count(&app, &v, &sid).await, 4);
    turn(&app, &v, &sid, 3).await;
    assert_eq!(seqs(&app.messages(&v, &sid).await), vec![8, 7, 6, 5]);
    assert_eq!(message_count(&app, &v, &sid).await, 4);
    // Paging back returns what is kept, and ends there.
    let page = app.messages_page(&v, &sid, "?before_seq=7&limit=10").await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert_eq!(seqs(page.body["items"].as_array().unwrap()), vec![6, 5]);
    assert_eq!(page.body["next_cursor"], Value::Null);
    let page = app.messages_page(&v, &sid, "?before_seq=3").await;
    assert_eq!(page.body["items"], json!([]));

    // Seqs 1..=4 are gone: a cursor below 4 would miss messages.
    for cursor in [0, 1, 3] {
        sse_refused(&app, &v, &sid, cursor).await;
        ws_refused(&app, &v, &sid, cursor).await;
    }
    resumes(&app, &v, &sid, 4, &[5, 6, 7, 8]).await;
    resumes(&app, &v, &sid, 8, &[]).await;
    // Without a cursor nothing changes.
    let mut sub = app.subscribe(&v, &sid, None).await;
    assert_eq!(sub.session_event().await["latest_seq"], 8);
}

/// Moves the messages of `sid` up to `upto_seq` `days` into the past, as
/// if written then (the creation time is not part of what is encrypted).
async fn age(app: &TestApp, sid: &str, upto_seq: i64, days: i64) {
    let db = app.data_dir().join("switchboard.db");
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(&db).busy_timeout(Duration::from_secs(5));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("open the database");
    let old = chrono::Utc::now().timestamp_millis() - days * 86_400_000;
    let done = sqlx::query("UPDATE messages SET created_at = ?1 WHERE session_id = ?2 AND seq <= ?3")
        .bind(old)
        .bind(sid)
        .bind(upto_seq)
        .execute(&mut conn)
        .await
        .expect("age the messages");
    assert_eq!(done.rows_affected(), upto_seq as u64);
}

#[tokio::test]
async fn messages_older_than_the_days_are_not_read_before_any_sweep() {
    let (mut app, fake) = app_with("retention_days = 1").await;
    let (sid, v) = app.create_session("acme").await;
    for n in 0..2 {
        turn(&app, &v, &sid, n).await;
    }
    age(&app, &sid, 2, 2).await;
    // The rows were aged behind the server's back: on SQLite it is the
    // database's one writer and remembers the history it wrote (with the
    // real times, which age as the clock does). The first sweep comes long
    // after the restart.
    app.restart().await;

    assert_eq!(seqs(&app.messages(&v, &sid).await), vec![4, 3]);
    let page = app.messages_page(&v, &sid, "?before_seq=4&limit=1").await;
    assert_eq!(seqs(page.body["items"].as_array().unwrap()), vec![3]);
    // Nothing kept is older: no next page.
    assert_eq!(page.body["next_cursor"], Value::Null);
    let page = app.messages_page(&v, &sid, "?before_seq=3").await;
    assert_eq!((page.body["items"].clone(), page.body["next_cursor"].clone()), (json!([]), Value::Null));
    let detail = get_ok(&app, &As::operator(Some("acme")), &format!("/v1/admin/sessions/{sid}")).await;
    assert_eq!(seqs(detail["messages"].as_array().unwrap()), vec![3, 4], "{detail}");

    // Cursors: 2 is the last one before what is kept.
    for cursor in [0, 1] {
        sse_refused(&app, &v, &sid, cursor).await;
        ws_refused(&app, &v, &sid, cursor).await;
    }
    resumes(&app, &v, &sid, 2, &[3, 4]).await;

    // The provider's history leaves them out too.
    turn(&app, &v, &sid, 2).await;
    let sent = sent_to_provider(&fake);
    assert!(sent.iter().all(|c| !c.contains("question 0")), "{sent:?}");
    assert!(sent.iter().any(|c| c.contains("question 1")), "{sent:?}");
    assert_eq!(seqs(&app.messages(&v, &sid).await), vec![6, 5, 4, 3]);
}

#[tokio::test]
async fn a_replay_overtaken_by_retention_ends_with_cursor_invalid() {
    let (app, _fake) = app_with("max_messages_per_session = 1000").await;
    let (sid, v) = app.create_session("acme").await;
    // More than one replay page (256 messages).
    for n in 0..140 {
        turn(&app, &v, &sid, n).await;
    }
    // As if retention deleted, while the subscriber was still replaying its
    // first page, what its second page needed (the first message after the
    // cursor is still there, so the cursor itself is valid).
    let db = app.data_dir().join("switchboard.db");
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(&db).busy_timeout(Duration::from_secs(5));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("open the database");
    sqlx::query("DELETE FROM messages WHERE session_id = ?1 AND seq BETWEEN 257 AND 270")
        .bind(&sid)
        .execute(&mut conn)
        .await
        .expect("purge");
    drop(conn);

    let mut sub = app.subscribe(&v, &sid, Some("0")).await;
    sub.resumed_session_event(0).await;
    sub.expect("resume_cursor").await;
    let rest = sub.until_end(Duration::from_secs(10)).await;
    let (messages, last) = rest.split_at(rest.len() - 1);
    assert_eq!(messages.len(), 256, "{:?}", rest.iter().map(|e| &e.event).collect::<Vec<_>>());
    assert!(messages.iter().all(|e| e.event == "message"));
    assert_eq!(last[0].event, "error");
    assert_eq!(last[0].json()["error"]["code"], "chat.cursor_invalid", "{:?}", last[0]);

    let (mut ws, _) = app.ws_hello("acme", &v.token, &sid, Some(json!(0))).await;
    ws.expect("resume_cursor").await;
    for seq in 1..=256 {
        assert_eq!(ws.expect("message").await["seq"], seq);
    }
    let e = ws.expect("error").await;
    common::ws::check_error_frame(&e, "chat.cursor_invalid", 410);
}
