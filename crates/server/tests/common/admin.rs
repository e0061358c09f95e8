//! Helpers of the admin API suites (`admin_*.rs`): the operator token, agent
//! and user JWTs of tenants that verify HS256 tokens, and typed calls to
//! `/v1/admin`. Included with `#[path]` by those suites (not part of
//! `common`'s module list, so other test binaries do not compile it).
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use crate::common::jwt::{hs256, hs256_line, now, HOUR};
use crate::common::{AppConfig, Reply, TenantSpec, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// The operator token every admin suite's server is given.
pub const OPERATOR: &str = "op-token-for-the-admin-suite-0123456789abcdef";

/// The HS256 secret of tenant `id` (at least 32 bytes) and the variable holding it.
pub fn secret_of(id: &str) -> String {
    format!("{id}-secret-for-the-admin-suite-0123456789")
}

pub fn secret_var(id: &str) -> String {
    format!("ADMIN_SUITE_{}_JWT", id.to_ascii_uppercase().replace('-', "_"))
}

/// `tenant` verifying user JWTs with its own secret, which it gives the server.
pub fn jwt_tenant(tenant: TenantSpec) -> TenantSpec {
    let (var, secret) = (secret_var(&tenant.id), secret_of(&tenant.id));
    tenant.line(&hs256_line(&var)).env(&var, &secret)
}

/// `config` with [`jwt_tenant`]`(tenant)`.
pub fn with_jwt(config: AppConfig, tenant: TenantSpec) -> AppConfig {
    config.tenant(jwt_tenant(tenant))
}

/// A config with the operator token set.
pub fn operator_config() -> AppConfig {
    AppConfig::new().env("SWITCHBOARD_OPERATOR_TOKEN", OPERATOR)
}

/// A user JWT of `tenant`, signed with its secret, with `extra` claims laid over
/// `{sub, tid, iat, exp: in an hour}`.
pub fn user_token(tenant: &str, sub: &str, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "tid": tenant, "iat": now(), "exp": now() + HOUR});
    if let (Some(c), Value::Object(e)) = (claims.as_object_mut(), extra) {
        c.extend(e);
    }
    hs256(&secret_of(tenant), &claims)
}

/// An agent's token: `role: "admin"`, named "Ada".
pub fn agent_token(tenant: &str) -> String {
    user_token(tenant, "agent-1", json!({"role": "admin", "name": "Ada"}))
}

/// Who calls: a bearer token and, optionally, `X-Tenant-Id`.
#[derive(Debug, Clone)]
pub struct As {
    pub token: String,
    pub tenant: Option<String>,
}

impl As {
    pub fn operator(tenant: Option<&str>) -> Self {
        Self { token: OPERATOR.into(), tenant: tenant.map(str::to_owned) }
    }

    pub fn agent(tenant: &str) -> Self {
        Self { token: agent_token(tenant), tenant: None }
    }

    pub fn token(token: &str, tenant: Option<&str>) -> Self {
        Self { token: token.into(), tenant: tenant.map(str::to_owned) }
    }
}

/// `method path` as `who`, with a JSON body when given.
pub async fn call(app: &TestApp, who: &As, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut rb = app.client.request(method, app.url(path)).bearer_auth(&who.token);
    if let Some(t) = &who.tenant {
        rb = rb.header("x-tenant-id", t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    app.send(rb).await
}

pub async fn get(app: &TestApp, who: &As, path: &str) -> Reply {
    call(app, who, Method::GET, path, None).await
}

/// `GET path`, expecting 200; returns the body.
pub async fn get_ok(app: &TestApp, who: &As, path: &str) -> Value {
    let reply = get(app, who, path).await;
    assert_eq!(reply.status.as_u16(), 200, "GET {path}: {}", reply.text);
    reply.body
}

/// Every page of `GET /v1/admin/sessions?<query>`; returns the sessions and
/// how many pages it took.
pub async fn all_pages(app: &TestApp, who: &As, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/sessions?{query}&cursor={c}"),
            None => format!("/v1/admin/sessions?{query}"),
        };
        let body = get_ok(app, who, &path).await;
        pages += 1;
        items.extend(body["items"].as_array().expect("items").iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, pages),
        }
        assert!(pages < 10_000, "paging does not end: {query}");
    }
}
