//! A merchant for the tool tests (SPEC §16): a backend that verifies each
//! call's Standard Webhooks signature and answers `{result, display}`, and
//! a `/verify` endpoint answering live product checks; with the server
//! configurations that point a tenant's tools at it.

use super::admin;
use super::common::fake_openai::tool_call;
use super::common::fake_upstream::serve;
use super::common::{pieces, FakeOpenAi, Mode, SseReply, TenantSpec, TestApp};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_tools::SigningKeys;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the merchant answers.
#[derive(Clone)]
pub enum Shop {
    Products,
    Fails,
    Slow,
}

#[derive(Clone)]
pub struct Merchant {
    pub calls: Arc<Mutex<Vec<Value>>>,
    /// The `traceparent` of each call, in order.
    pub traceparents: Arc<Mutex<Vec<Option<String>>>>,
    pub answer: Arc<Mutex<Shop>>,
    /// The product checks (`verify_url`) received.
    pub checks: Arc<Mutex<Vec<Value>>>,
    /// The `traceparent` of each product check, in order.
    pub check_traceparents: Arc<Mutex<Vec<Option<String>>>>,
    /// How long a check takes to answer.
    pub check_delay: Arc<Mutex<Duration>>,
}

impl Merchant {
    pub async fn start() -> (Self, u16) {
        let merchant = Self {
            calls: Arc::default(),
            traceparents: Arc::default(),
            answer: Arc::new(Mutex::new(Shop::Products)),
            checks: Arc::default(),
            check_traceparents: Arc::default(),
            check_delay: Arc::default(),
        };
        let app = Router::new()
            .route("/tools", post(tool))
            .route("/verify", post(verify))
            .with_state(merchant.clone());
        (merchant, serve(app).await)
    }

    pub fn calls(&self) -> Vec<Value> {
        self.calls.lock().unwrap().clone()
    }

    pub fn answer(&self, shop: Shop) {
        *self.answer.lock().unwrap() = shop;
    }
}

pub fn products() -> Value {
    json!({"type": "products", "items": [{"id": "p1", "title": "Trail runner", "price": "89.90",
        "currency": "EUR", "availability": "in_stock", "url": "https://shop.example/p1",
        "image": "https://shop.example/p1.svg"}]})
}

/// Refuses what is not signed with [`SECRET`], like a tenant's backend.
async fn tool(State(m): State<Merchant>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let keys = SigningKeys::parse(SECRET).unwrap();
    let now = chrono::Utc::now().timestamp();
    if keys.verify(&headers, &body, now, Duration::from_secs(300)).is_err() {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let call: Value = serde_json::from_slice(&body).unwrap();
    m.calls.lock().unwrap().push(call.clone());
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    m.traceparents.lock().unwrap().push(traceparent);
    if call["arguments"]["query"] == "slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let shop = m.answer.lock().unwrap().clone();
    match shop {
        Shop::Products => (
            StatusCode::OK,
            json!({"result": {"found": 1, "ids": ["p1"]}, "display": products()}).to_string(),
        ),
        Shop::Fails => (StatusCode::INTERNAL_SERVER_ERROR, "boom".into()),
        Shop::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, json!({"result": "late"}).to_string())
        }
    }
}

/// A shop's live data, signed like a tool call: p1's price went down and
/// its stock with it.
async fn verify(State(m): State<Merchant>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let keys = SigningKeys::parse(SECRET).unwrap();
    if keys.verify(&headers, &body, chrono::Utc::now().timestamp(), Duration::from_secs(300)).is_err() {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let check: Value = serde_json::from_slice(&body).unwrap();
    m.checks.lock().unwrap().push(check);
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    m.check_traceparents.lock().unwrap().push(traceparent);
    let delay = *m.check_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let live =
        json!({"items": [{"id": "p1", "price": "79.90", "currency": "EUR", "availability": "low_stock"}]});
    (StatusCode::OK, live.to_string())
}

/// Checks shown products at the merchant's `/verify`, signed with the
/// tools' secret.
pub const VERIFY: &str = "[tenants.tooling]\nverify_url = \"http://127.0.0.1:PORT/verify\"\n\
     verify_secret_env = \"SHOP_TOOL_SECRET\"\nverify_timeout_ms = 300";

pub const SEARCH: &str = r#"[[tenants.tools]]
name = "search_products"
description = "Search the shop's catalog"
parameters = { type = "object", properties = { query = { type = "string" } }, required = ["query"] }
url = "http://127.0.0.1:PORT/tools"
secret_env = "SHOP_TOOL_SECRET"
timeout_ms = 1000"#;

pub async fn start(extra: &str) -> (TestApp, FakeOpenAi, Merchant) {
    start_with(SEARCH, extra).await
}

pub async fn start_with(search: &str, extra: &str) -> (TestApp, FakeOpenAi, Merchant) {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let (merchant, port) = Merchant::start().await;
    let tenant = TenantSpec::openai("acme", &fake)
        .table(&search.replace("PORT", &port.to_string()))
        .table(&extra.replace("PORT", &port.to_string()))
        .env("SHOP_TOOL_SECRET", SECRET);
    let config = admin::operator_config().raw(r#"tool_allow_private = ["127.0.0.1"]"#).tenant(tenant);
    let app = TestApp::start(config).await;
    (app, fake, merchant)
}

pub fn events(reply: &SseReply, kind: &str) -> Vec<Value> {
    reply.events.iter().filter(|e| e.event == kind).map(|e| e.json()).collect()
}

pub fn search(id: &str, arguments: &str) -> Mode {
    Mode::ToolCalls {
        text: vec!["Let me look.".into()],
        calls: vec![tool_call(id, "search_products", arguments)],
    }
}
