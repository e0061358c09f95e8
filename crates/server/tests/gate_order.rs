//! The gate of SPEC §4 as one pipeline: each refusal (no tenant, unknown
//! tenant, missing or forbidden origin, 415, missing or invalid auth, disabled
//! tenant, rate limited, invalid body) wins over the ones after it, and none of
//! them stores anything or calls the model.

mod common;

use common::jwt::{claims, hs256, hs256_line};
use common::{pieces, AppConfig, FakeOpenAi, Mode, Reply, TenantSpec, TestApp};
use serde_json::{json, Value};

const SHOP: &str = "https://shop.acme.example";
const SECRET: &str = "gate-order-secret-0123456789abcdef";

struct Attempt<'a> {
    tenant: Option<&'a str>,
    origin: Option<&'a str>,
    token: Option<&'a str>,
    content_type: &'a str,
    body: String,
    extra: Vec<(&'a str, &'a str)>,
}

impl<'a> Attempt<'a> {
    fn new(tenant: &'a str, token: &'a str, body: &Value) -> Self {
        Self {
            tenant: Some(tenant),
            origin: Some(SHOP),
            token: Some(token),
            content_type: "application/json",
            body: body.to_string(),
            extra: vec![],
        }
    }

    async fn send(&self, app: &TestApp) -> Reply {
        let mut rb = app.client.post(app.url("/v1/chat")).header("content-type", self.content_type);
        if let Some(t) = self.tenant {
            rb = rb.header("x-tenant-id", t);
        }
        if let Some(o) = self.origin {
            rb = rb.header("origin", o);
        }
        if let Some(t) = self.token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in &self.extra {
            rb = rb.header(*k, *v);
        }
        app.send(rb.body(self.body.clone())).await
    }
}

fn browser_tenant(id: &str, fake: &FakeOpenAi) -> TenantSpec {
    TenantSpec::openai(id, fake)
        .browser_only()
        .line(&format!("allowed_origins = [\"{SHOP}\"]"))
        .line(&hs256_line("GATE_ORDER_SECRET"))
}

#[tokio::test]
async fn every_refusal_wins_in_order_and_leaves_no_trace() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let config = AppConfig::new()
        .env("GATE_ORDER_SECRET", SECRET)
        .tenant(browser_tenant("acme", &fake))
        .tenant(browser_tenant("off", &fake).line("kill_switch = true"))
        .tenant(browser_tenant("tight", &fake).rate_limit("user", 1, 600));
    let app = TestApp::start(config).await;
    let alice = hs256(SECRET, &claims("acme", "alice"));
    let off_user = hs256(SECRET, &claims("off", "bob"));
    let tight_user = hs256(SECRET, &claims("tight", "carol"));

    let created = app
        .send(
            app.client
                .post(app.url("/v1/sessions"))
                .header("x-tenant-id", "acme")
                .header("origin", SHOP)
                .bearer_auth(&alice),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let sid = created.body["session"]["id"].as_str().unwrap().to_owned();
    let good = json!({"session_id": sid, "message": "hello"});
    let bad_body = json!({"session_id": "not-a-uuid", "message": ""});

    let cases: Vec<(&str, Attempt, u16, &str)> = vec![
        (
            "duplicated X-Tenant-Id first",
            {
                let mut a = Attempt::new("nope", "garbage", &bad_body);
                a.extra.push(("x-tenant-id", "acme"));
                a.origin = Some("https://evil.example");
                a
            },
            400,
            "request.invalid",
        ),
        (
            "no tenant",
            Attempt { tenant: None, token: None, ..Attempt::new("acme", "", &good) },
            400,
            "tenant.missing",
        ),
        (
            "unknown tenant before origin",
            Attempt { origin: Some("https://evil.example"), ..Attempt::new("nope", &alice, &good) },
            404,
            "tenant.unknown",
        ),
        (
            "missing origin",
            Attempt { origin: None, ..Attempt::new("acme", &alice, &good) },
            403,
            "origin.missing",
        ),
        (
            "forbidden origin before 415 and auth",
            Attempt {
                origin: Some("https://shop.acme.example.evil.com"),
                content_type: "text/plain",
                ..Attempt::new("acme", "garbage", &good)
            },
            403,
            "origin.forbidden",
        ),
        (
            "415 before auth",
            Attempt { content_type: "text/plain", token: None, ..Attempt::new("acme", "", &good) },
            415,
            "request.unsupported_media_type",
        ),
        ("missing auth", Attempt { token: None, ..Attempt::new("acme", "", &good) }, 401, "auth.missing"),
        (
            "invalid auth before the kill switch",
            Attempt::new("off", "garbage", &bad_body),
            401,
            "auth.invalid",
        ),
        ("another tenant's token", Attempt::new("off", &alice, &good), 403, "auth.context_mismatch"),
        ("disabled before validation", Attempt::new("off", &off_user, &bad_body), 403, "tenant.disabled"),
    ];
    for (name, attempt, status, code) in &cases {
        let reply = attempt.send(&app).await;
        assert_eq!(reply.status.as_u16(), *status, "{name}: {}", reply.text);
        reply.assert_error(*status, code);
    }

    // The tight tenant admits one request per subject: an invalid one uses it
    // (limits come before validation), and the next is refused before the body
    // is even looked at.
    let tight_sid = uuid::Uuid::new_v4().to_string();
    let first = Attempt::new("tight", &tight_user, &bad_body).send(&app).await;
    first.assert_error(400, "request.invalid");
    let limited = Attempt::new("tight", &tight_user, &json!({"session_id": tight_sid, "message": "hi"}))
        .send(&app)
        .await;
    limited.assert_error(429, "rate_limited");
    assert!(limited.header("retry-after").is_some());

    assert_eq!(fake.calls(), 0, "a refused request reached the model");
    let history = app
        .send(
            app.client
                .get(app.url(&format!("/v1/sessions/{sid}/messages")))
                .header("origin", SHOP)
                .bearer_auth(&alice),
        )
        .await;
    assert_eq!(history.status.as_u16(), 200, "{}", history.text);
    assert_eq!(history.body["items"], json!([]), "a refused request stored something");
}
