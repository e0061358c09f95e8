//! Who may call the admin API (SPEC §3, §9, §12): the operator token, an
//! agent (the tenant's user JWT with `role: "admin"`, at most
//! `agent_token_max_ttl_secs`) within its own tenant; everything else is
//! refused with the right code, an envelope and a trace id. Also the admin
//! Origin rule, body rules, and that neither end-user rate limits nor kill
//! switches apply to admin routes.

#[path = "common/admin.rs"]
mod admin;
mod common;

use admin::{call, get, operator_config, user_token, with_jwt, As, OPERATOR};
use common::jwt::{hs256, now, HOUR};
use common::{TenantSpec, TestApp};
use reqwest::Method;
use serde_json::json;

const LIST: &str = "/v1/admin/sessions";

async fn app() -> TestApp {
    let config = operator_config().raw("admin_origins = [\"https://ops.example\"]");
    let config = with_jwt(config, TenantSpec::demo("acme"));
    let config = with_jwt(config, TenantSpec::demo("beta"));
    // One session creation a minute: admin calls must not count against it.
    TestApp::start(config.tenant(TenantSpec::demo("tight").rate_limit("tenant", 1, 60))).await
}

#[tokio::test]
async fn the_auth_matrix() {
    let app = app().await;
    let (session, visitor) = app.create_session("acme").await;
    let ticket = app
        .send(app.request(Method::POST, "/v1/tickets", Some(&visitor)).json(&json!({"session_id": session})))
        .await
        .body["ticket"]
        .as_str()
        .expect("a ticket")
        .to_owned();

    // Allowed: the operator naming a tenant; an agent of that tenant, with or without naming it.
    for who in [
        As::operator(Some("acme")),
        As::agent("acme"),
        As { tenant: Some("acme".into()), ..As::agent("acme") },
    ] {
        let reply = get(&app, &who, LIST).await;
        assert_eq!(reply.status.as_u16(), 200, "{who:?}: {}", reply.text);
        assert_eq!(reply.body["items"][0]["id"], session.as_str());
    }
    // The agent of beta sees only beta's sessions.
    assert_eq!(get(&app, &As::agent("beta"), LIST).await.body["items"], json!([]));

    let expired =
        user_token("acme", "agent-1", json!({"role": "admin", "iat": now() - 2 * HOUR, "exp": now() - HOUR}));
    let forged = hs256(
        "not-the-tenant-secret-0123456789abcdef",
        &json!({"sub": "a", "tid": "acme", "role": "admin", "exp": now() + 60}),
    );
    let too_long = user_token("acme", "agent-1", json!({"role": "admin", "exp": now() + 13 * HOUR}));
    let not_admin = user_token("acme", "alice", json!({}));
    let refused: Vec<(&str, As, u16, &str)> = vec![
        (
            "agent of acme naming beta",
            As { tenant: Some("beta".into()), ..As::agent("acme") },
            403,
            "auth.context_mismatch",
        ),
        ("user without the admin role", As::token(&not_admin, None), 403, "auth.forbidden"),
        ("visitor token", As::token(&visitor.token, Some("acme")), 401, "auth.invalid"),
        ("ticket", As::token(&ticket, Some("acme")), 401, "auth.invalid"),
        ("expired agent token", As::token(&expired, None), 401, "auth.invalid"),
        ("forged agent token", As::token(&forged, None), 401, "auth.invalid"),
        ("agent token living 13 h", As::token(&too_long, None), 401, "auth.invalid"),
        ("garbage", As::token("garbage", Some("acme")), 401, "auth.invalid"),
        ("operator naming no tenant", As::operator(None), 400, "tenant.missing"),
        ("operator naming an unknown tenant", As::operator(Some("nope")), 404, "tenant.unknown"),
    ];
    for (what, who, status, code) in refused {
        let reply = get(&app, &who, LIST).await;
        assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text);
        reply.assert_error(status, code);
    }
    // No credentials, or not a bearer token.
    app.send(app.client.get(app.url(LIST))).await.assert_error(401, "auth.missing");
    let basic = app.client.get(app.url(LIST)).header("authorization", "Basic b3A6b3A=");
    app.send(basic).await.assert_error(401, "auth.invalid");
    // Operator-only routes refuse agents; an agent flips only its own tenant's switch.
    for path in ["/v1/admin/tenants", "/v1/admin/tenants/acme", "/v1/admin/kill-switch"] {
        get(&app, &As::agent("acme"), path).await.assert_error(403, "auth.forbidden");
    }
    let flip = call(
        &app,
        &As::agent("acme"),
        Method::PUT,
        "/v1/admin/tenants/beta/kill-switch",
        Some(json!({"enabled": true})),
    )
    .await;
    flip.assert_error(403, "auth.forbidden");
    // The operator token is still no end-user credential.
    let end_user =
        app.client.get(app.url("/v1/sessions")).header("x-tenant-id", "acme").bearer_auth(OPERATOR);
    app.send(end_user).await.assert_error(401, "auth.invalid");
}

#[tokio::test]
async fn origins_headers_bodies_and_limits() {
    let app = app().await;
    let op = As::operator(Some("acme"));
    let with_origin = |origin: &str| {
        app.client
            .get(app.url(LIST))
            .bearer_auth(OPERATOR)
            .header("x-tenant-id", "acme")
            .header("origin", origin)
    };
    app.send(with_origin("https://evil.example")).await.assert_error(403, "origin.forbidden");
    let own = app.send(with_origin("http://127.0.0.1:8080")).await;
    assert_eq!(own.status.as_u16(), 200, "{}", own.text);
    let ops = app.send(with_origin("https://ops.example")).await;
    assert_eq!(ops.status.as_u16(), 200, "{}", ops.text);
    assert_eq!(ops.header("access-control-allow-origin").as_deref(), Some("https://ops.example"));
    let preflight =
        app.client.request(Method::OPTIONS, app.url(LIST)).header("origin", "https://ops.example");
    let preflight = app.send(preflight).await;
    assert_eq!(preflight.status.as_u16(), 204);
    assert!(preflight.header("access-control-allow-methods").unwrap().contains("PATCH"));
    let preflight =
        app.client.request(Method::OPTIONS, app.url(LIST)).header("origin", "https://evil.example");
    assert_eq!(app.send(preflight).await.status.as_u16(), 403);

    // Duplicated critical headers; unknown parameters; trace ids from traceparent.
    let twice = app
        .client
        .get(app.url(LIST))
        .header("x-tenant-id", "acme")
        .header("x-tenant-id", "beta")
        .bearer_auth(OPERATOR);
    app.send(twice).await.assert_error(400, "request.invalid");
    let typo = get(&app, &op, &format!("{LIST}?sort_by=created_at")).await;
    assert_eq!(typo.assert_error(400, "request.invalid")["details"][0]["field"], "sort_by");
    let traced = app
        .client
        .get(app.url(LIST))
        .bearer_auth("nope")
        .header("x-tenant-id", "acme")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let traced = app.send(traced).await;
    assert_eq!(traced.assert_error(401, "auth.invalid")["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // Bodies: JSON only, within the limit, no unknown fields.
    let plain = app
        .client
        .put(app.url("/v1/admin/kill-switch"))
        .bearer_auth(OPERATOR)
        .header("content-type", "text/plain")
        .body("x");
    app.send(plain).await.assert_error(415, "request.unsupported_media_type");
    let huge = json!({"enabled": true, "reason": "x".repeat(200_000)});
    call(&app, &op, Method::PUT, "/v1/admin/kill-switch", Some(huge))
        .await
        .assert_error(413, "request.too_large");
    let extra =
        call(&app, &op, Method::PUT, "/v1/admin/kill-switch", Some(json!({"enabled": false, "by": "me"})))
            .await;
    assert_eq!(extra.assert_error(400, "request.invalid")["details"][0]["field"], "by");
    let missing = call(&app, &op, Method::PUT, "/v1/admin/kill-switch", Some(json!({}))).await;
    assert_eq!(missing.assert_error(400, "request.invalid")["details"][0]["field"], "enabled");
    // Unknown admin routes and methods.
    get(&app, &op, "/v1/admin/nothing").await.assert_error(404, "not_found");
    call(&app, &op, Method::DELETE, LIST, None).await.assert_error(405, "request.method_not_allowed");

    // End-user rate limits do not hold the admin API back.
    let tight = As::operator(Some("tight"));
    for _ in 0..5 {
        assert_eq!(get(&app, &tight, LIST).await.status.as_u16(), 200);
    }
}
