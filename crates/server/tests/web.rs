//! The web face over HTTP (SPEC §14, §9): `/` redirects to the demo while the
//! built-in demo tenant runs, pages carry the strict policy, assets come with
//! their type, ETag and gzip, `/widget.js` fits its budget, and the widget's
//! bootstrap question answers any origin without giving anything away.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{AppConfig, TenantSpec, TestApp};
use reqwest::header;
use std::io::Read;

const SHOP: &str = "https://shop.acme.example";

async fn acme() -> TestApp {
    let acme = TenantSpec::demo("acme").browser_only().line(&format!("allowed_origins = [\"{SHOP}\"]"));
    let off = TenantSpec::demo("off").browser_only().line("kill_switch = true");
    TestApp::start(AppConfig::new().tenant(acme).tenant(off)).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn the_root_shows_the_demo_only_while_the_demo_tenant_runs() {
    let demo = TestApp::start(AppConfig::new()).await;
    let r = no_redirects().get(demo.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/demo");

    let app = acme().await;
    let r = no_redirects().get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_refuse_framing() {
    let app = TestApp::start(AppConfig::new()).await;
    for path in ["/demo", "/admin"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let html = r.text().await.unwrap();
        // No inline script or style: the policy would block it anyway.
        assert!(!html.contains("<style") && !html.contains(" style="), "{path}");
        for script in html.split("<script").skip(1) {
            assert!(script.split('>').next().unwrap().contains(" src="), "{path}: inline script");
        }
    }
}

#[tokio::test]
async fn assets_have_types_validators_and_compression() {
    let app = TestApp::start(AppConfig::new()).await;
    let r = app
        .client
        .get(app.url("/widget.js"))
        .header(header::ACCEPT_ENCODING, "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(r.headers()["cross-origin-resource-policy"], "cross-origin");
    assert!(r.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("max-age"));
    let etag = r.headers()[header::ETAG].clone();
    let plain = r.bytes().await.unwrap();
    assert!(plain.starts_with(b"(function(){"));

    let again = app
        .client
        .get(app.url("/widget.js"))
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    // reqwest here has no gzip feature: read the compressed bytes as sent.
    let gz =
        app.client.get(app.url("/widget.js")).header(header::ACCEPT_ENCODING, "gzip").send().await.unwrap();
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gz.headers()[header::VARY], "Accept-Encoding");
    assert_eq!(gz.headers()[header::ETAG], etag);
    let compressed = gz.bytes().await.unwrap();
    assert!(
        compressed.len() <= 15_000,
        "widget.js is {} bytes gzipped; the budget is 15,000",
        compressed.len()
    );
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut unpacked).unwrap();
    assert_eq!(unpacked, plain);

    let css = app.client.get(app.url("/demo/shop.css")).send().await.unwrap();
    assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let svg = app.client.get(app.url("/demo/img/pack.svg")).send().await.unwrap();
    assert_eq!(svg.headers()[header::CONTENT_TYPE], "image/svg+xml");
    for missing in [
        "/demo/nope.css",
        "/admin/../Cargo.toml",
        "/admin/%2e%2e/Cargo.toml",
        "/widget/10-a.js",
        "/tests/package.json",
    ] {
        let r = app.client.get(app.url(missing)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{missing}");
    }
}

async fn bootstrap(
    app: &TestApp,
    query: &str,
    origin: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = no_redirects().get(app.url(&format!("/v1/widget/bootstrap{query}")));
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    let r = request.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap())
}

#[tokio::test]
async fn the_bootstrap_tells_any_origin_whether_it_may_chat_and_nothing_more() {
    let app = acme().await;
    let (status, h, body) = bootstrap(&app, "?tenant=acme", Some(SHOP)).await;
    assert_eq!(status, 200);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    assert_eq!(
        body,
        serde_json::json!({"origin_allowed": true, "disabled": false, "tenant": {"name": "acme"}})
    );

    for lookalike in [
        "https://shop.acme.example.evil.com",
        "http://shop.acme.example",
        "null",
        "https://shop.acme.example/",
    ] {
        let (status, h, body) = bootstrap(&app, "?tenant=acme", Some(lookalike)).await;
        assert_eq!(status, 200, "{lookalike}");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(body["origin_allowed"], false, "{lookalike}");
    }
    let (_, _, body) = bootstrap(&app, "?tenant=acme", None).await;
    assert_eq!(body["origin_allowed"], false);

    let (_, _, body) = bootstrap(&app, "?tenant=off", Some(SHOP)).await;
    assert_eq!(body["disabled"], true);

    let (status, h, body) = bootstrap(&app, "?tenant=nobody", Some(SHOP)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("tenant.unknown")));
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let (status, _, body) = bootstrap(&app, "", Some(SHOP)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("tenant.missing")));
}

#[tokio::test]
async fn with_port_zero_and_no_public_url_the_demo_allows_the_address_it_got() {
    // A config that says nothing of public_url (the harness's default is left out).
    let config = AppConfig::new().raw("# no public_url: it follows the listener");
    let app = TestApp::start(config).await;
    let own = app.base_url.clone();
    let (_, _, body) = bootstrap(&app, "?tenant=demo", Some(&own)).await;
    assert_eq!(body["origin_allowed"], true, "{own}");
    let (_, _, body) = bootstrap(&app, "?tenant=demo", Some("http://127.0.0.1:8080")).await;
    assert_eq!(body["origin_allowed"], false);
}
