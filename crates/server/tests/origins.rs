//! Origins and CORS on end-user endpoints (SPEC §9): the allowlist after
//! normalisation, lookalikes refused, CORS headers exactly when the origin is
//! accepted (errors included), the same-origin rule, `allow_no_origin`, and
//! preflights without a tenant.

mod common;

use common::{AppConfig, Reply, TenantSpec, TestApp};
use reqwest::Method;

const SHOP: &str = "https://shop.acme.example";

async fn app() -> TestApp {
    let acme = TenantSpec::demo("acme")
        .browser_only()
        .line(r#"allowed_origins = ["https://shop.acme.example", "http://localhost:3000"]"#);
    let other =
        TenantSpec::demo("other").browser_only().line(r#"allowed_origins = ["https://other.example"]"#);
    let server = TenantSpec::demo("server");
    let own =
        TenantSpec::demo("own").browser_only().line(r#"allowed_origins = ["https://switchboard.example"]"#);
    let config = AppConfig::new()
        .tenant(acme)
        .tenant(other)
        .tenant(server)
        .tenant(own)
        .raw(r#"public_url = "https://switchboard.example""#);
    TestApp::start(config).await
}

async fn create(app: &TestApp, tenant: &str, origin: Option<&str>, extra: &[(&str, &str)]) -> Reply {
    let mut rb = app.client.post(app.url("/v1/sessions")).header("x-tenant-id", tenant);
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    app.send(rb).await
}

fn assert_no_cors(reply: &Reply) {
    let leaked: Vec<_> = reply.headers.keys().filter(|k| k.as_str().starts_with("access-control-")).collect();
    assert!(leaked.is_empty(), "CORS headers on a refusal: {leaked:?}");
}

fn assert_cors(reply: &Reply, origin: &str) {
    assert_eq!(reply.header("access-control-allow-origin").as_deref(), Some(origin), "{}", reply.text);
    assert_eq!(reply.header("access-control-allow-credentials").as_deref(), Some("true"));
    assert!(reply.headers.get_all("vary").iter().any(|v| v.to_str().unwrap_or("").contains("Origin")));
    let exposed = reply.header("access-control-expose-headers").unwrap_or_default();
    for h in ["X-Trace-Id", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]
    {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
}

#[tokio::test]
async fn allowed_origins_after_normalisation_get_cors_headers() {
    let app = app().await;
    for origin in
        [SHOP, "HTTPS://SHOP.ACME.EXAMPLE", "https://shop.acme.example:443", "http://localhost:3000"]
    {
        let reply = create(&app, "acme", Some(origin), &[]).await;
        assert_eq!(reply.status.as_u16(), 201, "{origin}: {}", reply.text);
        assert_cors(&reply, origin);
    }
}

#[tokio::test]
async fn lookalikes_and_malformed_origins_are_forbidden_without_cors() {
    let app = app().await;
    for origin in [
        "null",
        "*",
        "https://shop.acme.example.evil.com",
        "https://evilshop.acme.example",
        "https://evil.com/https://shop.acme.example",
        "http://shop.acme.example",
        "https://shop.acme.example:8443",
        "https://shop.acme.example/",
        "https://shop.acme.example/path",
        "https://shop.acme.example?x=1",
        "https://user@shop.acme.example",
        "https://shop.acme.example@evil.com",
        "https://other.example",
        "ws://shop.acme.example",
        "http://localhost:3001",
    ] {
        let reply = create(&app, "acme", Some(origin), &[]).await;
        reply.assert_error(403, "origin.forbidden");
        assert_no_cors(&reply);
    }
}

#[tokio::test]
async fn a_missing_origin_is_refused_unless_the_tenant_allows_it() {
    let app = app().await;
    let reply = create(&app, "acme", None, &[]).await;
    reply.assert_error(403, "origin.missing");
    assert_no_cors(&reply);
    let reply = create(&app, "server", None, &[]).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_no_cors(&reply);
}

#[tokio::test]
async fn same_origin_requests_count_as_the_public_url() {
    let app = app().await;
    let same = [("sec-fetch-site", "same-origin")];
    let reply = create(&app, "own", None, &same).await;
    assert_eq!(reply.status.as_u16(), 201, "public_url is in own's allowlist: {}", reply.text);
    let reply = create(&app, "acme", None, &same).await;
    reply.assert_error(403, "origin.forbidden");
    let reply = create(&app, "acme", None, &[("sec-fetch-site", "cross-site")]).await;
    reply.assert_error(403, "origin.missing");
}

#[tokio::test]
async fn errors_to_an_allowed_origin_carry_cors_headers() {
    let app = app().await;
    let rb = app
        .client
        .post(app.url("/v1/chat"))
        .header("x-tenant-id", "acme")
        .header("origin", SHOP)
        .header("content-type", "application/json")
        .body("{}");
    let reply = app.send(rb).await;
    reply.assert_error(401, "auth.missing");
    assert_cors(&reply, SHOP);
}

#[tokio::test]
async fn tenant_refusals_come_before_origin_and_carry_no_cors() {
    let app = app().await;
    let reply = app.send(app.client.post(app.url("/v1/sessions")).header("origin", SHOP)).await;
    reply.assert_error(400, "tenant.missing");
    assert_no_cors(&reply);
    let reply = create(&app, "nope", Some(SHOP), &[]).await;
    reply.assert_error(404, "tenant.unknown");
    assert_no_cors(&reply);
}

async fn preflight(app: &TestApp, path: &str, origin: Option<&str>) -> Reply {
    let mut rb = app
        .client
        .request(Method::OPTIONS, app.url(path))
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, x-tenant-id");
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    app.send(rb).await
}

#[tokio::test]
async fn preflights_need_no_tenant_and_answer_only_allowed_origins() {
    let app = app().await;
    let reply = preflight(&app, "/v1/chat", Some(SHOP)).await;
    assert_eq!(reply.status.as_u16(), 204, "{}", reply.text);
    assert_cors(&reply, SHOP);
    assert_eq!(reply.header("access-control-max-age").as_deref(), Some("86400"));
    let allowed = reply.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    for h in ["authorization", "content-type", "x-tenant-id", "last-event-id", "traceparent"] {
        assert!(allowed.contains(h), "{h} not allowed: {allowed}");
    }
    assert!(reply.header("access-control-allow-methods").unwrap_or_default().contains("POST"));

    let reply = preflight(&app, "/v1/sessions?tenant=acme", Some(SHOP)).await;
    assert_eq!(reply.status.as_u16(), 204);
    let reply = preflight(&app, "/v1/sessions?tenant=other", Some(SHOP)).await;
    assert_eq!(reply.status.as_u16(), 403);
    assert_no_cors(&reply);
    let reply = preflight(&app, "/v1/chat", Some("https://evil.example")).await;
    assert_eq!(reply.status.as_u16(), 403);
    assert_no_cors(&reply);
    let reply = preflight(&app, "/v1/chat", None).await;
    assert_eq!(reply.status.as_u16(), 403);
    assert_no_cors(&reply);
}

#[tokio::test]
async fn a_preflight_with_a_critical_header_sent_twice_is_refused_like_the_real_request() {
    let app = app().await;
    // The admin API allows its own origin (public_url); end-user endpoints the tenant's.
    let admin_origin = "https://switchboard.example";
    for (path, origin) in
        [("/v1/chat", SHOP), ("/v1/sessions?tenant=acme", SHOP), ("/v1/admin/sessions", admin_origin)]
    {
        // With one of each, the preflight passes.
        let reply = preflight(&app, path, Some(origin)).await;
        assert_eq!(reply.status.as_u16(), 204, "{path}: {}", reply.text);
        for (name, values) in [
            ("origin", [origin, origin]),
            ("origin", [origin, "https://evil.example"]),
            ("x-tenant-id", ["acme", "other"]),
            ("authorization", ["Bearer a", "Bearer b"]),
            ("content-type", ["application/json", "text/plain"]),
        ] {
            let mut rb = app
                .client
                .request(Method::OPTIONS, app.url(path))
                .header("access-control-request-method", "POST");
            if name != "origin" {
                rb = rb.header("origin", origin);
            }
            for v in values {
                rb = rb.header(name, v);
            }
            let reply = app.send(rb).await;
            let err = reply.assert_error(400, "request.invalid");
            assert_eq!(err["details"][0]["field"], name, "{path}: {}", reply.text);
            assert_no_cors(&reply);
        }
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = app().await;
    for reply in [create(&app, "acme", Some(SHOP), &[]).await, create(&app, "acme", None, &[]).await] {
        assert_eq!(reply.header("x-content-type-options").as_deref(), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy").as_deref(), Some("no-referrer"));
    }
}
