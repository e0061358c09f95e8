//! What the server log must never hold: tickets travel in URLs, so the
//! access log redacts them; refused credentials are never echoed.

mod common;

use common::{AppConfig, TenantSpec, TestApp};
use std::time::{Duration, Instant};

#[tokio::test]
async fn tickets_and_tokens_never_reach_the_log() {
    let config = AppConfig::new().env("RUST_LOG", "debug").tenant(TenantSpec::demo("acme"));
    let app = TestApp::start(config).await;
    let (_sid, visitor) = app.create_session("acme").await;
    let marker = "TICKETMARKER0123456789";
    let reply = app
        .send(app.client.get(app.url(&format!("/v1/sessions?tenant=acme&ticket={marker}&token={marker}"))))
        .await;
    assert_eq!(reply.status.as_u16(), 401, "{}", reply.text);
    let bad = app
        .send(
            app.request(reqwest::Method::GET, "/v1/sessions", None)
                .header("x-tenant-id", "acme")
                .bearer_auth(marker),
        )
        .await;
    bad.assert_error(401, "auth.invalid");
    assert!(!bad.text.contains(marker));

    // The access line of the last request shows up once the log is flushed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !app.log().contains("ticket=REDACTED") {
        assert!(Instant::now() < deadline, "no redacted access line in the log:\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = app.log();
    assert!(!log.contains(marker), "a credential reached the log");
    assert!(!log.contains(&visitor.token), "a visitor token reached the log");
}
