//! Outbound events (SPEC §19) through the real binary, to a receiver that
//! checks every signature: an endpoint that is down, then fails, then
//! answers gets each event once, with one `webhook-id` on every try;
//! `Retry-After` is honoured; a `410` disables the endpoint until resumed;
//! the last failed try is `dead` and a retry sends it again; a kill -9
//! mid-try loses nothing; the lifecycle's events carry their data and the
//! official Standard Webhooks library for Python verifies them; two nodes
//! on PostgreSQL never both deliver one event.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
#[path = "common/cluster.rs"]
#[allow(dead_code)] // Only its service URL and bus prefix are used here.
mod cluster;
mod common;
#[allow(dead_code)] // The merchant's verification and answers are not used here.
mod merchant;
mod receiver;

use admin::{call, get_ok, operator_config, As};
use cluster::{with_prefix, Backend};
use common::postgres::TestDatabase;
use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use receiver::{Receiver, SECRET};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const ALLOW_LOOPBACK: &str = r#"tool_allow_private = ["127.0.0.1"]"#;

fn tenant(receiver: &Receiver, extra: &str) -> TenantSpec {
    TenantSpec::demo("acme").table(&receiver.table(extra)).env("EVENTS_SECRET", SECRET)
}

fn config(receiver: &Receiver, extra: &str) -> AppConfig {
    operator_config().raw(ALLOW_LOOPBACK).tenant(tenant(receiver, extra))
}

async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let page = get_ok(app, &As::operator(Some("acme")), &format!("/v1/admin/deliveries{query}")).await;
    page["items"].as_array().unwrap().clone()
}

/// Polls the admin list until `check` holds for the newest delivery.
async fn until_delivery(app: &TestApp, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        if let Some(d) = deliveries(app, "").await.into_iter().next().filter(|d| check(d)) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no delivery {what}: {:?}", deliveries(app, "").await);
}

#[tokio::test]
async fn a_receiver_down_then_failing_then_up_gets_each_event_once_with_one_id() {
    let receiver = Receiver::down().await;
    let extra = "types = [\"session.created\"]\nretry_schedule_secs = [1, 1, 1]";
    let app = TestApp::start(config(&receiver, extra)).await;
    let (sid, visitor) = app.create_session("acme").await;
    // The first try finds nothing listening.
    let failed = until_delivery(&app, "after a refused try", |d| d["attempts"] == 1).await;
    assert_eq!((&failed["status"], &failed["last_status"]), (&json!("pending"), &Value::Null));
    assert!(failed["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{failed}");
    receiver.script(&[(500, None)]);
    receiver.listen().await;

    let got = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 200]);
    assert_eq!(got[0].id, got[1].id, "one webhook-id on every try");
    assert_eq!(got[0].body, got[1].body, "the same bytes on every try");
    let event = &got[1].json;
    assert_eq!(event["type"], "session.created");
    assert_eq!(event["id"], got[1].id.as_str());
    assert_eq!((&event["tenant_id"], &event["session_id"]), (&json!("acme"), &json!(sid)));
    assert_eq!(event["data"]["subject"], json!({"kind": "visitor", "id": visitor.visitor_id}));
    assert!(event["occurred_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let delivered = until_delivery(&app, "delivered", |d| d["status"] == "delivered").await;
    assert_eq!((&delivered["attempts"], &delivered["last_status"]), (&json!(3), &json!(200)));
    // Each try counted by outcome; the wait to delivery measured; the outbox by status.
    let metrics = app.get("/metrics", None).await.text;
    for series in [
        "switchboard_outbound_deliveries_total{outcome=\"failed\"} 2",
        "switchboard_outbound_deliveries_total{outcome=\"delivered\"} 1",
        "switchboard_outbound_delivery_seconds_count 1",
        "switchboard_outbox_deliveries{status=\"pending\"}",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    assert_eq!(delivered["id"], got[1].id.as_str());
    assert!(delivered["delivered_at"].as_str().is_some() && delivered["next_attempt_at"].is_null());
    // Delivered once: nothing more comes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn the_deliveries_api_refuses_bad_queries_foreign_tenants_and_visitors() {
    let receiver = Receiver::start().await;
    let other = TenantSpec::demo("globex").table(&receiver.table("")).env("EVENTS_SECRET", SECRET);
    let app = TestApp::start(config(&receiver, "types = [\"session.created\"]").tenant(other)).await;
    app.create_session("acme").await;
    let delivered = until_delivery(&app, "delivered", |d| d["status"] == "delivered").await;
    let op = As::operator(Some("acme"));
    for query in ["?status=lost", "?cursor=not-a-cursor", "?limit=0", "?limit=201", "?colour=blue"] {
        let reply = admin::get(&app, &op, &format!("/v1/admin/deliveries{query}")).await;
        reply.assert_error(400, "request.invalid");
    }
    let path = |id: &str| format!("/v1/admin/deliveries/{id}/retry");
    call(&app, &op, Method::POST, &path("nope"), None).await.assert_error(404, "delivery.not_found");
    // Another tenant's operator scope and agents see none of acme's deliveries.
    let globex = As::operator(Some("globex"));
    assert!(deliveries_of(&app, &globex).await.is_empty());
    let id = delivered["id"].as_str().unwrap();
    call(&app, &globex, Method::POST, &path(id), None).await.assert_error(404, "delivery.not_found");
    // Without a tenant, or as a visitor, nothing.
    let untenanted = admin::get(&app, &As::operator(None), "/v1/admin/deliveries").await;
    assert_eq!(untenanted.status.as_u16(), 400, "{}", untenanted.text);
    let (_, visitor) = app.create_session("acme").await;
    let refused = admin::get(&app, &As::token(&visitor.token, Some("acme")), "/v1/admin/deliveries").await;
    assert!(matches!(refused.status.as_u16(), 401 | 403), "{}", refused.text);
    // A body on the resume is refused.
    let bodied =
        call(&app, &op, Method::POST, "/v1/admin/deliveries/resume", Some(json!({"all": true}))).await;
    bodied.assert_error(400, "request.invalid");
}

async fn deliveries_of(app: &TestApp, who: &As) -> Vec<Value> {
    get_ok(app, who, "/v1/admin/deliveries").await["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn retry_after_replaces_the_delay() {
    let receiver = Receiver::start().await;
    receiver.script(&[(503, Some(3))]);
    let app =
        TestApp::start(config(&receiver, "types = [\"session.created\"]\nretry_schedule_secs = [1]")).await;
    app.create_session("acme").await;
    let got = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got.iter().map(|r| r.answered).collect::<Vec<_>>(), [503, 200]);
    // Three seconds asked, not the schedule's one (jitter never applies to it).
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_millis(2900), "retried after {waited:?}");
}

#[tokio::test]
async fn a_410_disables_the_endpoint_until_it_is_resumed() {
    let receiver = Receiver::start().await;
    receiver.script(&[(410, None)]);
    let app = TestApp::start(config(&receiver, "types = [\"session.created\"]")).await;
    app.create_session("acme").await;
    let gone = until_delivery(&app, "gone", |d| d["status"] == "gone").await;
    assert_eq!(gone["last_status"], 410);
    // New events wait while the endpoint is disabled.
    app.create_session("acme").await;
    let held = deliveries(&app, "?status=held").await;
    assert_eq!(held.len(), 1, "{held:?}");
    let path = format!("/v1/admin/deliveries/{}/retry", gone["id"].as_str().unwrap());
    let op = As::operator(Some("acme"));
    call(&app, &op, Method::POST, &path, None).await.assert_error(409, "events.disabled");
    let missing = format!("/v1/admin/deliveries/{}/retry", uuid::Uuid::now_v7());
    call(&app, &op, Method::POST, &missing, None).await.assert_error(404, "delivery.not_found");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.received().len(), 1, "nothing is sent while disabled");

    let resumed = call(&app, &op, Method::POST, "/v1/admin/deliveries/resume", None).await;
    assert_eq!(resumed.body, json!({"resumed": 1}), "{}", resumed.text);
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].id, held[0]["id"].as_str().unwrap());
    // The gone one goes again when asked, with its id.
    let retried = call(&app, &op, Method::POST, &path, None).await;
    assert_eq!(retried.body["status"], "pending", "{}", retried.text);
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!((got[2].id.as_str(), got[2].answered), (gone["id"].as_str().unwrap(), 200));
    // Agents see and act on their tenant's deliveries too; both actions are audited.
    let audit = get_ok(&app, &As::operator(None), "/v1/admin/audit").await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"deliveries.resume") && actions.contains(&"delivery.retry"), "{actions:?}");
}

#[tokio::test]
async fn the_last_failed_try_is_dead_and_a_retry_sends_it_again() {
    let receiver = Receiver::start().await;
    receiver.script(&[(500, None), (500, None)]);
    let app =
        TestApp::start(config(&receiver, "types = [\"session.created\"]\nretry_schedule_secs = [1]")).await;
    app.create_session("acme").await;
    let dead = until_delivery(&app, "dead", |d| d["status"] == "dead").await;
    assert_eq!((&dead["attempts"], &dead["last_status"]), (&json!(2), &json!(500)));
    assert_eq!(deliveries(&app, "?status=dead").await.len(), 1);
    let path = format!("/v1/admin/deliveries/{}/retry", dead["id"].as_str().unwrap());
    let retried = call(&app, &As::operator(Some("acme")), Method::POST, &path, None).await;
    assert_eq!(retried.status.as_u16(), 200, "{}", retried.text);
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 200]);
    assert!(got.iter().all(|r| r.id == dead["id"].as_str().unwrap()));
    until_delivery(&app, "delivered", |d| d["status"] == "delivered").await;
}

#[tokio::test]
async fn a_kill_mid_try_loses_nothing_and_the_restarted_node_sends_it_at_once() {
    let receiver = Receiver::start().await;
    // The first try hangs: the node is killed while it holds the delivery.
    receiver.script(&[(0, None)]);
    let mut app = TestApp::start(config(&receiver, "types = [\"session.created\"]")).await;
    let (sid, _) = app.create_session("acme").await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    app.kill().await;
    app.restart().await;
    // At once: the restarted node ends its own leases (30 s otherwise).
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "not sent again after the restart");
    assert_eq!((got[1].id.as_str(), got[1].answered), (first[0].id.as_str(), 200));
    assert_eq!(got[1].json["session_id"], sid.as_str());
}

#[tokio::test]
async fn an_answer_cut_by_a_crash_is_told_as_failed_once_the_node_is_back() {
    let receiver = Receiver::start().await;
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: pieces(300), interval: Duration::from_millis(20) }).await;
    let tenant = TenantSpec::openai("acme", &fake)
        .table(&receiver.table("types = [\"turn.failed\", \"turn.completed\"]"))
        .env("EVENTS_SECRET", SECRET);
    let mut app = TestApp::start(operator_config().raw(ALLOW_LOOPBACK).tenant(tenant)).await;
    let (sid, visitor) = app.create_session("acme").await;
    let mut live = app.chat_live(&visitor, &json!({"session_id": sid, "message": "a long one"})).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    app.kill().await;
    app.restart().await;
    // The restarted node reaps its own answer at once, and says so.
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "no turn.failed after the restart");
    let event = &got[0].json;
    assert_eq!((&event["type"], &event["session_id"]), (&json!("turn.failed"), &json!(sid)));
    assert_eq!((&event["data"]["seq"], &event["data"]["code"]), (&json!(2), &json!("turn.interrupted")));
    assert!(event["data"]["turn_id"].as_str().is_some(), "{event}");
}

#[tokio::test]
async fn lifecycle_events_carry_their_data_and_the_official_library_verifies_them() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(config(&receiver, "")).await;
    let (sid, visitor) = app.create_session("acme").await;
    assert_eq!(app.chat_stream(&visitor, &sid, "hello").await.last().event, "stream_end");
    let op = As::operator(Some("acme"));
    for action in ["takeover", "release", "close"] {
        let path = format!("/v1/admin/sessions/{sid}/{action}");
        let done = call(&app, &op, Method::POST, &path, None).await;
        assert_eq!(done.status.as_u16(), 200, "{action}: {}", done.text);
    }
    let got = receiver.wait_for(5, Duration::from_secs(10)).await;
    let by_type: HashMap<String, Value> =
        got.iter().map(|r| (r.json["type"].as_str().unwrap().to_owned(), r.json["data"].clone())).collect();
    let completed = &by_type["turn.completed"];
    assert_eq!((&completed["seq"], &completed["finish_reason"]), (&json!(2), &json!("stop")));
    assert!(completed["usage"]["completion_tokens"].as_u64().is_some_and(|n| n > 0), "{completed}");
    assert!(completed["turn_id"].as_str().is_some());
    assert_eq!(by_type["takeover.started"], json!({"agent": {"name": "Operator"}}));
    assert_eq!(by_type["takeover.ended"], json!({"agent": {"name": "Operator"}}));
    assert_eq!(by_type["session.closed"], json!({"by": {"kind": "operator"}}));
    assert!(by_type.contains_key("session.created"));
    // A second close changes nothing and says nothing.
    call(&app, &op, Method::POST, &format!("/v1/admin/sessions/{sid}/close"), None).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.received().len(), 5);

    let Some(python) = switchboard_testkit::python::official_library() else { return };
    for r in &got {
        let headers =
            json!({"webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature});
        let request = json!({"op": "verify", "secrets": [SECRET], "headers": headers, "body": r.body});
        let answer = switchboard_testkit::python::run(&python, &request).unwrap();
        assert_eq!(answer["verified"], json!([true]), "{answer}");
    }
}

#[tokio::test]
async fn a_quiet_session_is_told_once_with_its_subject_and_each_tools_last_display() {
    let receiver = Receiver::start().await;
    // The merchant's tool secret signs the events too.
    let table = receiver.table("types = [\"session.idle\"]\nidle_after_secs = 1");
    let (app, fake, _merchant) = merchant::start(&table.replace("EVENTS_SECRET", "SHOP_TOOL_SECRET")).await;
    let (sid, visitor) = app.create_session("acme").await;
    fake.push_mode(merchant::search("c1", r#"{"query":"trail shoes"}"#));
    assert_eq!(app.chat_stream(&visitor, &sid, "shoes?").await.last().event, "stream_end");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let event = &got[0].json;
    assert_eq!((&event["type"], &event["session_id"]), (&json!("session.idle"), &json!(sid)));
    assert_eq!(event["data"]["subject"], json!({"kind": "visitor", "id": visitor.visitor_id}));
    assert_eq!(event["data"]["displays"], json!({"search_products": merchant::products()}));
    // Once per quiet stretch; a new message starts another.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(app.chat_stream(&visitor, &sid, "still there").await.last().event, "stream_end");
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    assert_ne!(got[0].id, got[1].id);
}

#[tokio::test]
async fn two_nodes_on_postgresql_never_both_deliver_one_event() {
    let Some(service) = Backend::Redis.service_url() else { return };
    let Some(db) = TestDatabase::create("outbound_two_nodes").await else { return };
    let receiver = Receiver::start().await;
    let prefix = format!("sb{}", uuid::Uuid::new_v4().simple());
    let node = |name: &str| {
        operator_config()
            .raw(ALLOW_LOOPBACK)
            .database_url(&db.url)
            .raw(&format!("bus_url = \"{}\"", with_prefix(&service, &prefix)))
            .raw(&format!("node_id = \"{name}-{prefix}\""))
            .env("SWITCHBOARD_ENCRYPTION_KEYS", "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .tenant(tenant(&receiver, "types = [\"session.created\"]"))
    };
    let mut a = TestApp::start(node("a")).await;
    let mut b = TestApp::start(node("b")).await;
    // A node tries the events it writes itself; to make both nodes race
    // for the same rows, the events wait held (the endpoint answered 410)
    // and are resumed at once, for both nodes' looks.
    receiver.script(&[(410, None)]);
    a.create_session("acme").await;
    until_delivery(&a, "gone", |d| d["status"] == "gone").await;
    const EVENTS: usize = 500;
    const HANDED: usize = 20;
    for i in 0..EVENTS {
        let created =
            if i % 2 == 0 { a.create_session("acme").await } else { b.create_session("acme").await };
        assert!(!created.0.is_empty());
    }
    let op = As::operator(Some("acme"));
    let resumed = call(&a, &op, Method::POST, "/v1/admin/deliveries/resume", None).await;
    assert_eq!(resumed.body, json!({"resumed": EVENTS}), "{}", resumed.text);
    // And events written after, each tried by the node that wrote it.
    for i in 0..HANDED {
        if i % 2 == 0 {
            a.create_session("acme").await
        } else {
            b.create_session("acme").await
        };
    }
    receiver.wait_for(1 + EVENTS + HANDED, Duration::from_secs(60)).await;
    // A moment more, for a second delivery of any of them to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.received();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in got.iter().skip(1) {
        *per_id.entry(r.id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), EVENTS + HANDED, "every event arrived");
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    // Both nodes shared the work (each leases what is due when it looks).
    for node in [&a, &b] {
        let metrics = node.get("/metrics", None).await.text;
        let delivered = metrics
            .lines()
            .find_map(|l| l.strip_prefix("switchboard_outbound_deliveries_total{outcome=\"delivered\"} "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(delivered > 0.0, "a node delivered nothing:\n{metrics}");
    }
    a.kill().await;
    b.kill().await;
    db.drop_database().await;
}
