//! `GET /v1/me/export` (SPEC §18) through the real binary: everything stored
//! about the caller, from every device, and nothing of anyone else; tool
//! displays but never the tenant's raw tool payloads; a visitor's export
//! too; no credentials, no export.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::jwt::{self, as_caller, claims, hs256};
use common::{AppConfig, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "me-export-acme-secret-0123456789abcdef";

fn user(sub: &str) -> Visitor {
    as_caller("acme", &hs256(SECRET, &claims("acme", sub)))
}

async fn session_of(app: &TestApp, who: &Visitor) -> String {
    let created = app.create_session_for(who).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["session"]["id"].as_str().unwrap().to_owned()
}

async fn export(app: &TestApp, who: &Visitor) -> (u16, String) {
    let reply = app.get("/v1/me/export", Some(who)).await;
    (reply.status.as_u16(), reply.text)
}

#[tokio::test]
async fn an_export_holds_everything_of_the_caller_and_nothing_of_others() {
    let tenant = TenantSpec::demo("acme").line(&jwt::hs256_line("ACME_JWT_SECRET"));
    let app = TestApp::start(AppConfig::new().tenant(tenant).env("ACME_JWT_SECRET", SECRET)).await;
    let (alice, bob) = (user("alice"), user("alice-not"));
    // Two devices: two sessions of one user.
    let phone = session_of(&app, &alice).await;
    let laptop = session_of(&app, &alice).await;
    assert_eq!(app.chat_stream(&alice, &phone, "hello from the phone").await.last().event, "stream_end");
    assert_eq!(app.chat_stream(&alice, &laptop, "hello from the laptop").await.last().event, "stream_end");
    let put = app.request(Method::PUT, "/v1/memory/size", Some(&alice)).json(&json!({"value": "M"}));
    assert_eq!(app.send(put).await.status, 200);
    let bobs = session_of(&app, &bob).await;
    assert_eq!(app.chat_stream(&bob, &bobs, "bob's secret words").await.last().event, "stream_end");

    let (status, text) = export(&app, &alice).await;
    assert_eq!(status, 200, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["subject"], json!({"kind": "user", "id": "alice"}));
    assert!(doc["exported_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{doc}");
    let sessions = doc["sessions"].as_array().unwrap();
    let mut ids: Vec<&str> = sessions.iter().map(|s| s["session"]["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut mine = [phone.as_str(), laptop.as_str()];
    mine.sort_unstable();
    assert_eq!(ids, mine);
    for s in sessions {
        let messages = s["messages"].as_array().unwrap();
        let seqs: Vec<i64> = messages.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [1, 2], "oldest first, the answer included");
        assert_eq!(messages[0]["role"], "user");
    }
    assert!(text.contains("hello from the phone") && text.contains("hello from the laptop"));
    assert_eq!(doc["memory"]["items"][0]["key"], "size");
    assert_eq!(doc["memory"]["items"][0]["value"], "M");
    assert!(!text.contains("bob's secret words") && !text.contains(&bobs), "nothing of another user");
    assert!(!text.contains("tool_calls"), "never the tenant's raw tool payloads");

    // A visitor exports its own sessions; it has no memory.
    let (sid, visitor) = app.create_session("acme").await;
    assert_eq!(app.chat_stream(&visitor, &sid, "hi there").await.last().event, "stream_end");
    let (status, text) = export(&app, &visitor).await;
    assert_eq!(status, 200, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["subject"]["kind"], "visitor");
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(doc["sessions"][0]["session"]["id"], sid.as_str());
    assert_eq!(doc["memory"], json!({"items": []}));

    let anonymous = app.client.get(app.url("/v1/me/export")).header("x-tenant-id", "acme");
    let reply = app.send(anonymous).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
}
