//! `DELETE /v1/me` and the operator's `…/admin/subjects/{kind}:{id}` (SPEC
//! §18) through the real binary: everything of the subject goes — sessions
//! on every device, messages, memory, links — with an answer running at the
//! time stopped and never written back; every read after is "not found" or
//! empty, and the database holds no row of theirs (checked with SQL);
//! nothing of anyone else goes; a visitor's token is refused after; the
//! audit entry holds counts and a fingerprint, never the id or content.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
mod common;

use admin::{call, get, get_ok, operator_config, user_token, with_jwt, As};
use common::jwt::as_caller;
use common::{FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use std::time::Duration;

fn user(sub: &str) -> Visitor {
    as_caller("acme", &user_token("acme", sub, json!({})))
}

async fn session_of(app: &TestApp, who: &Visitor) -> String {
    let created = app.create_session_for(who).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["session"]["id"].as_str().unwrap().to_owned()
}

async fn erase_me(app: &TestApp, who: &Visitor) -> u16 {
    let reply = app.send(app.request(Method::DELETE, "/v1/me", Some(who))).await;
    assert!(reply.text.is_empty(), "{}", reply.text);
    reply.status.as_u16()
}

async fn put_memory(app: &TestApp, who: &Visitor, key: &str) {
    let put = app.request(Method::PUT, &format!("/v1/memory/{key}"), Some(who)).json(&json!({"value": "M"}));
    assert_eq!(app.send(put).await.status, 200);
}

/// How many rows `query` counts in the server's SQLite database.
async fn count(app: &TestApp, query: &str) -> i64 {
    let db = app.data_dir().join("switchboard.db");
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(&db).busy_timeout(Duration::from_secs(5));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("open the database");
    let (n,): (i64,) = sqlx::query_as(query).fetch_one(&mut conn).await.unwrap();
    n
}

fn fingerprint(tenant: &str, subject: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(format!("{tenant}:{subject}").as_bytes())))
}

async fn audit_entries(app: &TestApp, action: &str) -> Vec<Value> {
    let page = get_ok(app, &As::operator(None), "/v1/admin/audit?limit=100").await;
    page["items"].as_array().unwrap().iter().filter(|e| e["action"] == action).cloned().collect()
}

#[tokio::test]
async fn erasing_oneself_wipes_every_row_and_stops_the_running_answer() {
    let fake = FakeOpenAi::start(Mode::Normal(vec!["an answer".into()])).await;
    let app = TestApp::start(with_jwt(operator_config(), TenantSpec::openai("acme", &fake))).await;
    let (alice, bob) = (user("alice"), user("bob"));
    // Two devices, and the guest she was before logging in.
    let phone = session_of(&app, &alice).await;
    let laptop = session_of(&app, &alice).await;
    assert_eq!(app.chat_stream(&alice, &phone, "alice's phone words").await.last().event, "stream_end");
    let (guest_session, guest) = app.create_session("acme").await;
    assert_eq!(app.chat_stream(&guest, &guest_session, "guest words").await.last().event, "stream_end");
    let link = app.request(Method::POST, "/v1/identity/link", Some(&alice));
    let linked = app.send(link.json(&json!({"visitor_token": guest.token}))).await;
    assert_eq!(linked.status, 200, "{}", linked.text);
    put_memory(&app, &alice, "size").await;
    let bobs = session_of(&app, &bob).await;
    assert_eq!(app.chat_stream(&bob, &bobs, "bob's words").await.last().event, "stream_end");
    put_memory(&app, &bob, "size").await;

    // An answer streams on the laptop while she erases everything.
    let pieces: Vec<String> = (0..200).map(|i| format!("piece{i} ")).collect();
    fake.push_mode(Mode::Paced { pieces, interval: Duration::from_millis(20) });
    let mut live = app.chat_live(&alice, &json!({"session_id": laptop, "message": "a long one"})).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    let erasing = std::time::Instant::now();
    assert_eq!(erase_me(&app, &alice).await, 204);
    let rest = live.finish(Duration::from_secs(10)).await;
    // Stopped, not left to run out (200 pieces at 20 ms would take 4 s).
    let end = rest.last().filter(|e| e.event == "stream_end").unwrap_or_else(|| panic!("{rest:?}"));
    assert_eq!(end.json()["finish_reason"], "aborted", "{}", end.data);
    assert!(erasing.elapsed() < Duration::from_secs(3), "the answer ran on: {:?}", erasing.elapsed());

    // Every read is "not found" or empty.
    for sid in [&phone, &laptop, &guest_session] {
        app.get(&format!("/v1/sessions/{sid}"), Some(&alice)).await.assert_error(404, "session.not_found");
        let messages = app.get(&format!("/v1/sessions/{sid}/messages"), Some(&alice)).await;
        messages.assert_error(404, "session.not_found");
    }
    assert_eq!(app.get("/v1/sessions", Some(&alice)).await.body["items"], json!([]));
    assert_eq!(app.get("/v1/memory", Some(&alice)).await.body["items"], json!([]));
    let export: Value = serde_json::from_str(&app.get("/v1/me/export", Some(&alice)).await.text).unwrap();
    assert_eq!((&export["sessions"], &export["memory"]), (&json!([]), &json!({"items": []})));

    // The stopped answer wrote nothing back, a while later either; no row names her.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = format!("'{phone}', '{laptop}', '{guest_session}'");
    for query in [
        "SELECT count(*) FROM sessions WHERE owner = 'user:alice'".to_owned(),
        format!("SELECT count(*) FROM messages WHERE session_id IN ({ids})"),
        format!("SELECT count(*) FROM usage_events WHERE session_id IN ({ids}) OR subject = 'user:alice'"),
        "SELECT count(*) FROM usage_subject_daily WHERE subject = 'user:alice'".to_owned(),
        "SELECT count(*) FROM memory WHERE subject = 'user:alice'".to_owned(),
        "SELECT count(*) FROM visitor_links WHERE user_subject = 'user:alice'".to_owned(),
        "SELECT count(*) FROM audit_log WHERE target LIKE '%alice%' OR detail LIKE '%alice%'".to_owned(),
    ] {
        assert_eq!(count(&app, &query).await, 0, "{query}");
    }

    // Bob keeps everything.
    let bobs_messages = app.messages(&bob, &bobs).await;
    assert_eq!(bobs_messages.len(), 2);
    assert_eq!(app.get("/v1/memory", Some(&bob)).await.body["items"][0]["key"], "size");
    // The guest she was stays refused; she herself may start afresh.
    app.get("/v1/sessions", Some(&guest)).await.assert_error(401, "auth.invalid");
    session_of(&app, &alice).await;

    // One audit entry, by "self", naming her only by fingerprint.
    let entries = audit_entries(&app, "subject.erased").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!((&entry["actor"], &entry["tenant_id"]), (&json!("self"), &json!("acme")));
    assert_eq!(entry["target"], fingerprint("acme", "user:alice"));
    let detail = &entry["detail"];
    assert_eq!(detail["kind"], "user");
    assert_eq!(detail["erased"]["sessions"], 3);
    assert_eq!(detail["erased"]["memory"], 1);
    assert!(!entry.to_string().contains("alice"), "{entry}");
}

#[tokio::test]
async fn an_erased_visitor_is_refused_from_then_on() {
    let app = TestApp::start(operator_config().tenant(TenantSpec::demo("acme"))).await;
    let (sid, visitor) = app.create_session("acme").await;
    assert_eq!(app.chat_stream(&visitor, &sid, "hello").await.last().event, "stream_end");
    let (other_sid, other) = app.create_session("acme").await;

    assert_eq!(erase_me(&app, &visitor).await, 204);
    app.get(&format!("/v1/sessions/{sid}"), Some(&visitor)).await.assert_error(401, "auth.invalid");
    let subject = format!("visitor:{}", visitor.visitor_id);
    let revoked =
        format!("SELECT count(*) FROM visitor_links WHERE visitor = '{subject}' AND user_subject = ''");
    assert_eq!(count(&app, &revoked).await, 1);
    assert_eq!(count(&app, &format!("SELECT count(*) FROM messages WHERE session_id = '{sid}'")).await, 0);
    // Another visitor is untouched.
    assert_eq!(app.get(&format!("/v1/sessions/{other_sid}"), Some(&other)).await.status, 200);
    // No credentials, no erase.
    let anonymous = app.client.delete(app.url("/v1/me")).header("x-tenant-id", "acme");
    assert_eq!(app.send(anonymous).await.status, 401);
}

#[tokio::test]
async fn the_operator_exports_and_erases_a_subject_and_is_audited() {
    let app = TestApp::start(with_jwt(operator_config(), TenantSpec::demo("acme"))).await;
    let alice = user("alice");
    let sid = session_of(&app, &alice).await;
    assert_eq!(app.chat_stream(&alice, &sid, "alice's words").await.last().event, "stream_end");
    put_memory(&app, &alice, "size").await;
    let op = As::operator(Some("acme"));

    let export = get(&app, &op, "/v1/admin/subjects/user:alice/export").await;
    assert_eq!(export.status.as_u16(), 200, "{}", export.text);
    let doc: Value = serde_json::from_str(&export.text).unwrap();
    assert_eq!(doc["subject"], json!({"kind": "user", "id": "alice"}));
    assert_eq!(doc["sessions"][0]["session"]["id"], sid.as_str());
    assert!(export.text.contains("alice's words"));
    assert_eq!(doc["memory"]["items"][0]["key"], "size");

    // Agents may not; a tenant must be named; the subject must be one.
    let agent = get(&app, &As::agent("acme"), "/v1/admin/subjects/user:alice/export").await;
    agent.assert_error(403, "auth.forbidden");
    let untenanted = get(&app, &As::operator(None), "/v1/admin/subjects/user:alice/export").await;
    assert_eq!(untenanted.status.as_u16(), 400, "{}", untenanted.text);
    let malformed = get(&app, &op, "/v1/admin/subjects/robot:alice/export").await;
    malformed.assert_error(400, "request.invalid");
    let agent_erase =
        call(&app, &As::agent("acme"), Method::DELETE, "/v1/admin/subjects/user:alice", None).await;
    agent_erase.assert_error(403, "auth.forbidden");

    let erased = call(&app, &op, Method::DELETE, "/v1/admin/subjects/user:alice", None).await;
    assert_eq!(erased.status.as_u16(), 204, "{}", erased.text);
    app.get(&format!("/v1/sessions/{sid}"), Some(&alice)).await.assert_error(404, "session.not_found");
    assert_eq!(app.get("/v1/memory", Some(&alice)).await.body["items"], json!([]));
    let after: Value =
        serde_json::from_str(&get(&app, &op, "/v1/admin/subjects/user:alice/export").await.text).unwrap();
    assert_eq!(after["sessions"], json!([]));

    for action in ["subject.exported", "subject.erased"] {
        let entries = audit_entries(&app, action).await;
        assert!(!entries.is_empty(), "no {action} entry");
        let entry = &entries[0];
        assert_eq!((&entry["actor"], &entry["tenant_id"]), (&json!("operator"), &json!("acme")), "{entry}");
        assert_eq!(entry["target"], fingerprint("acme", "user:alice"));
        assert!(!entry.to_string().contains("alice"), "{entry}");
    }
}
