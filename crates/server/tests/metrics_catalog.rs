//! The metrics operators rely on (docs/operations.md#metrics): after a
//! scripted session (an SSE subscription and a WebSocket open, a turn that
//! retries, falls back, calls a tool and is checkpointed, refusals over
//! HTTP and over the WebSocket) every documented series is exposed, with
//! no label but its documented ones, and nothing undocumented is; with a
//! cluster bus, the bus series too. The Grafana dashboard and the alert
//! rules use only documented series, so neither can drift from the code.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cluster.rs"]
#[allow(dead_code)] // the CLI helpers are other tests'
mod cluster;
mod common;

use cluster::{Backend, Cluster};
use common::fake_openai::tool_call;
use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// A series of the documentation's table.
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
}

fn repo_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The words in backticks of a table cell.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The series table of docs/operations.md's metrics section, by name.
fn documented() -> BTreeMap<String, Documented> {
    let text = repo_file("docs/operations.md");
    let section = text.split("\n## Metrics\n").nth(1).expect("a metrics section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut series = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `switchboard_")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let name = quoted(cells[0]).remove(0);
        let labels = quoted(cells[2]).into_iter().collect();
        series.insert(name, Documented { kind: cells[1].to_owned(), labels });
    }
    assert!(series.len() >= 20, "too few documented series: {series:?}");
    series
}

/// One sample line: its metric name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, rest) = series.split_once('{').unwrap_or((series, ""));
            Sample {
                name: name.to_owned(),
                labels: labels(rest.trim_end_matches('}')),
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// `a="x",b="y, z"` (values may hold commas, and escaped quotes).
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    out
}

/// The documented series a sample belongs to (a histogram's `_bucket`,
/// `_sum` and `_count` are its own).
fn base<'a>(name: &'a str, docs: &BTreeMap<String, Documented>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if docs.get(base).is_some_and(|d| d.kind == "histogram") {
                return base;
            }
        }
    }
    name
}

/// Every series of `text` is documented and carries only its documented
/// labels; every documented one that `wanted` accepts is there.
fn check_against_docs(text: &str, wanted: impl Fn(&str) -> bool) {
    let docs = documented();
    let mut seen = BTreeSet::new();
    for s in samples(text).iter().filter(|s| s.name.starts_with("switchboard_")) {
        let name = base(&s.name, &docs);
        let doc = docs.get(name).unwrap_or_else(|| panic!("{} is not in docs/operations.md", s.name));
        for label in s.labels.keys().filter(|l| !(*l == "le" && s.name.ends_with("_bucket"))) {
            assert!(
                doc.labels.contains(label),
                "{}: label {label} is not documented ({:?})",
                s.name,
                doc.labels
            );
        }
        if doc.kind == "histogram" {
            assert!(s.name != name, "{name} is documented as a histogram: {s:?}");
        }
        seen.insert(name.to_owned());
    }
    let missing: Vec<&String> = docs.keys().filter(|n| wanted(n) && !seen.contains(*n)).collect();
    assert!(missing.is_empty(), "documented but not exposed: {missing:?}\n{text}");
}

/// The value of the sample `name` with exactly these labels among its own.
fn value(text: &str, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| {
            s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[tokio::test]
async fn metrics_name_every_documented_series_after_a_scripted_session() {
    // The primary fails with 5xx (retried, then given up); the fallback
    // calls the built-in handoff, then answers slowly enough to be
    // checkpointed (one a second).
    let primary = FakeOpenAi::start(Mode::ServerError).await;
    let backup = FakeOpenAi::start(Mode::Normal(pieces(1))).await;
    backup.push_mode(Mode::ToolCalls {
        text: vec![],
        calls: vec![tool_call("call_h", "handoff_to_human", r#"{"reason": "metrics"}"#)],
    });
    backup.push_mode(Mode::Paced { pieces: pieces(6), interval: Duration::from_millis(250) });
    let tenant = TenantSpec::openai("acme", &primary)
        .fallback(&backup, "backup-model")
        .table("[tenants.tooling]\nbuiltin_tools = [\"handoff_to_human\"]");
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (session, visitor) = app.create_session("acme").await;

    let mut sub = app.subscribe(&visitor, &session, None).await;
    sub.session_event().await;
    let (mut ws, _) = app.ws_hello("acme", &visitor.token, &session, None).await;
    // Refused over the WebSocket, and over HTTP.
    ws.send_json(&json!({"type": "no_such_frame"})).await;
    ws.expect_error("request.invalid", 400).await;
    let refused = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "nope")).await;
    refused.assert_error(404, "tenant.unknown");

    let open = app.get("/metrics", None).await.text;
    let conn = "switchboard_connections_open";
    assert_eq!(value(&open, conn, &[("transport", "sse")]), Some(1.0), "{open}");
    assert_eq!(value(&open, conn, &[("transport", "websocket")]), Some(1.0), "{open}");
    let breaker = "switchboard_provider_breaker_state";
    let fallback_route = [("tenant", "acme"), ("provider", "openai"), ("model", "backup-model")];
    assert_eq!(value(&open, breaker, &fallback_route), Some(0.0), "{open}");
    let pair = [("from", "openai"), ("to", "openai")];
    assert_eq!(value(&open, "switchboard_provider_fallbacks_total", &pair), Some(0.0), "at zero: {open}");

    let reply = app.chat_stream(&visitor, &session, "hello").await;
    assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
    ws.close().await;

    let text = app.get("/metrics", None).await.text;
    check_against_docs(&text, |name| !name.starts_with("switchboard_bus_"));
    let at_least_one = |name: &str, with: &[(&str, &str)]| {
        assert!(value(&text, name, with).is_some_and(|n| n >= 1.0), "{name} {with:?}: {text}");
    };
    at_least_one("switchboard_provider_retries_total", &[("provider", "openai")]);
    at_least_one("switchboard_provider_failures_total", &[("provider", "openai"), ("then", "gave_up")]);
    at_least_one("switchboard_provider_fallbacks_total", &pair);
    at_least_one("switchboard_checkpoint_writes_total", &[("outcome", "written")]);
    at_least_one("switchboard_tool_calls_total", &[("tool", "handoff_to_human"), ("outcome", "done")]);
    at_least_one("switchboard_refusals_total", &[("code", "request.invalid")]);
    at_least_one("switchboard_refusals_total", &[("code", "tenant.unknown")]);
    for op in ["begin_turn", "finish_message", "create_session", "get_session"] {
        at_least_one("switchboard_store_operation_seconds_count", &[("op", op)]);
    }
    for op in switchboard_store::operations() {
        assert!(value(&text, "switchboard_store_operation_seconds_count", &[("op", op)]).is_some(), "{op}");
    }
    let first_token = [("provider", "openai"), ("model", "backup-model")];
    at_least_one("switchboard_turn_first_token_seconds_count", &first_token);
    at_least_one("switchboard_turns_finished_total", &[("tenant", "acme"), ("status", "complete")]);
    assert_eq!(value(&text, "switchboard_turns_finished_total", &[("status", "error")]), Some(0.0));
    assert!(!text.contains(&session) && !text.contains(&visitor.visitor_id), "an id became a label");
}

/// With a cluster bus, a node that delivers another node's events measures
/// their lag, and counts its reconnects (none here).
async fn bus_series(backend: Backend, bus: &str, test: &str) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let Some(c) = Cluster::start(test, backend, &[TenantSpec::openai("acme", &fake)]).await else { return };
    let (session, visitor) = c.a.create_session("acme").await;
    let mut on_b = c.b.subscribe(&visitor, &session, None).await;
    on_b.session_event().await;
    let reply = c.a.chat_stream(&visitor, &session, "hello").await;
    assert_eq!(reply.last().event, "stream_end");
    on_b.until_final(2, Duration::from_secs(10)).await;

    let text = c.b.get("/metrics", None).await.text;
    check_against_docs(&text, |name| name.starts_with("switchboard_bus_"));
    let lag = value(&text, "switchboard_bus_lag_seconds_count", &[("bus", bus)]);
    assert!(lag.is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(value(&text, "switchboard_bus_reconnects_total", &[("bus", bus)]), Some(0.0), "{text}");
    c.shutdown().await;
}

#[tokio::test]
async fn metrics_of_the_redis_bus() {
    bus_series(Backend::Redis, "redis", "metrics_of_the_redis_bus").await;
}

#[tokio::test]
async fn metrics_of_the_nats_bus() {
    bus_series(Backend::Nats, "nats", "metrics_of_the_nats_bus").await;
}

/// Every `expr` string of a JSON document.
fn expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

/// The `switchboard_…` names a query text uses, as documented series.
fn series_used(text: &str, docs: &BTreeMap<String, Documented>) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("switchboard_"))
        .map(|w| base(w, docs).to_owned())
        .collect()
}

#[test]
fn metrics_of_the_dashboard_are_documented() {
    let docs = documented();
    let dashboard: Value = serde_json::from_str(&repo_file("deploy/grafana/switchboard.json")).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 39), "schemaVersion");
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().expect("a panel id")), "panel ids repeat: {panel}");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", panel["title"]);
        }
    }
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| series_used(e, &docs)).collect();
    let unknown: Vec<&String> = used.iter().filter(|n| !docs.contains_key(*n)).collect();
    assert!(unknown.is_empty(), "the dashboard uses undocumented series: {unknown:?}");
    // Every documented series is on the dashboard.
    let unused: Vec<&String> = docs.keys().filter(|n| !used.contains(*n)).collect();
    assert!(unused.is_empty(), "not on the dashboard: {unused:?}");
}

#[test]
fn metrics_of_the_alert_rules_are_documented() {
    let docs = documented();
    let rules = repo_file("deploy/prometheus/alerts.yml");
    let code: String =
        rules.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let used = series_used(&code, &docs);
    assert!(used.len() >= 10, "{used:?}");
    let unknown: Vec<&String> = used.iter().filter(|n| !docs.contains_key(*n)).collect();
    assert!(unknown.is_empty(), "the alert rules use undocumented series: {unknown:?}");
    // The operations guide names each alert it shows.
    let guide = repo_file("docs/operations.md");
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(guide.contains(&format!("`{alert}`")), "{alert} is not in docs/operations.md");
    }
}
