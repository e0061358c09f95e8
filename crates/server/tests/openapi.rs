//! `GET /openapi.json` (SPEC §4): the API description is complete and is
//! what the server serves. Routes of the API are registered together with
//! their description (`utoipa-axum`'s `routes!`); this test fails when a
//! route is registered around it, or when an endpoint of the contract is
//! missing from the description.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{AppConfig, TenantSpec, TestApp};
use serde_json::Value;
use std::path::Path;

/// Served without a description, on purpose: pages and assets (not JSON),
/// and the demo shop's signed webhook (the demo merchant's, not the API).
const UNDESCRIBED: &[&str] =
    &["/", "/widget.js", "/demo", "/demo/{*file}", "/admin", "/admin/{*file}", "PATH"];

/// Every endpoint of SPEC §4, §12, §18 and §19, as `METHOD path`.
const CONTRACT: &[&str] = &[
    "POST /v1/sessions",
    "GET /v1/sessions",
    "GET /v1/sessions/{id}",
    "DELETE /v1/sessions/{id}",
    "GET /v1/sessions/{id}/messages",
    "GET /v1/sessions/{id}/events",
    "POST /v1/chat",
    "GET /v1/ws",
    "POST /v1/tickets",
    "POST /v1/identity/link",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
    "GET /v1/widget/bootstrap",
    "GET /v1/memory",
    "DELETE /v1/memory",
    "GET /v1/memory/{key}",
    "PUT /v1/memory/{key}",
    "DELETE /v1/memory/{key}",
    "GET /v1/me/export",
    "DELETE /v1/me",
    "GET /v1/admin/sessions",
    "GET /v1/admin/sessions/{id}",
    "POST /v1/admin/sessions/{id}/close",
    "POST /v1/admin/sessions/{id}/takeover",
    "POST /v1/admin/sessions/{id}/release",
    "POST /v1/admin/sessions/{id}/messages",
    "GET /v1/admin/sessions/{id}/events",
    "POST /v1/admin/tickets",
    "GET /v1/admin/tenants",
    "POST /v1/admin/tenants",
    "GET /v1/admin/tenants/{id}",
    "PATCH /v1/admin/tenants/{id}",
    "DELETE /v1/admin/tenants/{id}",
    "PUT /v1/admin/tenants/{id}/kill-switch",
    "GET /v1/admin/kill-switch",
    "PUT /v1/admin/kill-switch",
    "GET /v1/admin/usage",
    "GET /v1/admin/audit",
    "GET /v1/admin/audit/verify",
    "GET /v1/admin/deliveries",
    "POST /v1/admin/deliveries/resume",
    "POST /v1/admin/deliveries/{id}/retry",
    "DELETE /v1/admin/subjects/{subject}",
    "GET /v1/admin/subjects/{subject}/export",
];

fn description() -> Value {
    let text = switchboard_server::routes::description().to_json().expect("the description serialises");
    serde_json::from_str(&text).expect("the description is JSON")
}

/// `METHOD path` of every operation described.
fn operations(api: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (path, item) in api["paths"].as_object().expect("paths").iter() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                out.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    out
}

/// The path of every `.route("…"` / `.route(NAME` in the server's sources.
fn plain_routes(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read the sources") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            plain_routes(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        for piece in text.split(".route(").skip(1) {
            let target = piece.split(',').next().unwrap_or_default().trim().trim_matches('"').to_owned();
            found.push((path.display().to_string(), target));
        }
    }
}

#[test]
fn every_route_is_described_or_knowingly_left_out() {
    let mut found = Vec::new();
    plain_routes(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
    assert!(found.iter().any(|(_, r)| r == "/widget.js"), "the scan found the page routes: {found:?}");
    let strays: Vec<_> = found.iter().filter(|(_, r)| !UNDESCRIBED.contains(&r.as_str())).collect();
    assert!(
        strays.is_empty(),
        "routes registered without a description (use `.routes(routes!(handler))` and annotate \
         the handler with #[utoipa::path]): {strays:?}"
    );
}

#[test]
fn every_endpoint_of_the_contract_is_described() {
    let api = description();
    assert_eq!(api["openapi"], "3.1.0");
    let described = operations(&api);
    let missing: Vec<_> = CONTRACT.iter().filter(|op| !described.contains(&op.to_string())).collect();
    assert!(missing.is_empty(), "missing from the description: {missing:?}");
    let unknown: Vec<_> = described.iter().filter(|op| !CONTRACT.contains(&op.as_str())).collect();
    assert!(unknown.is_empty(), "described but not in this test's list of the contract: {unknown:?}");
}

#[test]
fn every_operation_answers_errors_with_the_envelope_and_names_its_security() {
    let api = description();
    let schemes = api["components"]["securitySchemes"].as_object().expect("security schemes");
    for name in ["user_jwt", "visitor_token", "ticket", "operator_token"] {
        assert!(schemes.contains_key(name), "security scheme {name}");
    }
    for (path, item) in api["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{method} {path}: no success"
            );
            for (status, response) in responses {
                let Ok(code) = status.parse::<u16>() else { continue };
                let envelope = &response["content"]["application/json"]["schema"]["$ref"];
                if code >= 400 && !(path == "/readyz" && code == 503) {
                    assert_eq!(envelope, "#/components/schemas/ErrorEnvelope", "{method} {path} {status}");
                    assert!(response["description"].as_str().is_some_and(|d| d.contains('`')), "codes named");
                }
            }
            if path.starts_with("/v1/") && path != "/v1/widget/bootstrap" {
                assert!(
                    op["security"].as_array().is_some_and(|s| !s.is_empty()),
                    "{method} {path}: security"
                );
                for status in ["400", "401", "429", "500"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
            }
        }
    }
    // The SSE endpoints' events, each with its payload's schema.
    let events = &api["paths"]["/v1/sessions/{id}/events"]["get"]["responses"]["200"]["content"];
    assert_eq!(events["text/event-stream"]["schema"]["$ref"], "#/components/schemas/SseEvent");
    let kinds = api["components"]["schemas"]["SseEvent"]["oneOf"].as_array().expect("event kinds");
    let names: Vec<_> = kinds.iter().filter_map(|k| k["properties"]["event"]["enum"][0].as_str()).collect();
    for name in ["session", "message", "stream_start", "stream_delta", "stream_end", "error", "tool"] {
        assert!(names.contains(&name), "event {name} in {names:?}");
    }
}

#[tokio::test]
async fn the_server_serves_the_description_to_anyone() {
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme"))).await;
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text);
    assert!(response.header("content-type").unwrap_or_default().starts_with("application/json"));
    let served: Value = serde_json::from_str(&response.text).expect("JSON");
    assert_eq!(served, description());
}

#[test]
fn operation_ids_are_unique() {
    let api = description();
    let mut ids: Vec<String> = Vec::new();
    for item in api["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("a path item").values() {
            let id = op["operationId"].as_str().expect("every operation has an id").to_owned();
            assert!(!ids.contains(&id), "operationId {id} twice: generated clients would clash");
            ids.push(id);
        }
    }
}
