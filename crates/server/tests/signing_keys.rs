//! Rotating the runtime's signing key (`SWITCHBOARD_SIGNING_KEY`, visitor
//! tokens and tickets): tokens name their key (`kid`), the first key signs,
//! every listed key verifies. With the new key first and the old one kept,
//! tokens issued before go on working and new ones are signed with the new
//! key; once the old key is removed, only its tokens stop working.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::{AppConfig, TenantSpec, TestApp, Visitor};
use serde_json::Value;

const SIGNING: &str = "SWITCHBOARD_SIGNING_KEY";

fn key(kid: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{kid}:{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    serde_json::from_slice::<Value>(&json).unwrap()["kid"].as_str().unwrap().to_owned()
}

async fn status(app: &TestApp, visitor: &Visitor) -> (u16, Value) {
    let reply = app.get("/v1/sessions", Some(visitor)).await;
    (reply.status.as_u16(), reply.body["error"]["code"].clone())
}

async fn restart_with(app: &mut TestApp, keys: &str) {
    app.config.env = vec![(SIGNING.into(), keys.into())];
    app.restart().await;
}

#[tokio::test]
async fn a_new_signing_key_first_keeps_old_tokens_until_the_old_key_is_removed() {
    let (old, new) = (key("old"), key("new"));
    let mut app = TestApp::start(AppConfig::new().tenant(TenantSpec::demo("acme")).env(SIGNING, &old)).await;
    let (_, before) = app.create_session("acme").await;
    assert_eq!(kid_of(&before.token), "old");
    assert_eq!(status(&app, &before).await.0, 200);

    restart_with(&mut app, &format!("{new},{old}")).await;
    assert_eq!(status(&app, &before).await.0, 200, "a token of the old key stopped working too early");
    let (_, after) = app.create_session("acme").await;
    assert_eq!(kid_of(&after.token), "new", "the first key signs");
    assert_eq!(status(&app, &after).await.0, 200);

    restart_with(&mut app, &new).await;
    assert_eq!(status(&app, &before).await, (401, Value::from("auth.invalid")));
    assert_eq!(status(&app, &after).await.0, 200);
}
