//! The admin audit log (SPEC §12) through the binary: every admin action is
//! listed with who did it, newest first, in pages; agents see their tenant's
//! entries only; the chain verifies, survives a restart (the generated key is
//! kept), and an edit made straight in the database is reported at the entry
//! it touched.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
mod common;

use admin::{call, get, get_ok, operator_config, with_jwt, As};
use common::{TenantSpec, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

async fn switch(app: &TestApp, who: &As, path: &str, enabled: bool) {
    let reply = call(app, who, Method::PUT, path, Some(json!({"enabled": enabled, "reason": "test"}))).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
}

fn actions(page: &Value) -> Vec<(String, String)> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["actor"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn admin_actions_are_listed_verified_and_tampering_is_found() {
    let config = with_jwt(operator_config(), TenantSpec::demo("acme")).tenant(TenantSpec::demo("beta"));
    let mut app = TestApp::start(config).await;
    let op = As::operator(None);
    switch(&app, &op, "/v1/admin/tenants/acme/kill-switch", true).await;
    switch(&app, &As::agent("acme"), "/v1/admin/tenants/acme/kill-switch", false).await;
    switch(&app, &op, "/v1/admin/tenants/beta/kill-switch", true).await;
    switch(&app, &op, "/v1/admin/kill-switch", true).await;
    switch(&app, &op, "/v1/admin/kill-switch", false).await;

    // Newest first, paged, with who did what.
    let first = get_ok(&app, &op, "/v1/admin/audit?limit=2").await;
    assert_eq!(
        actions(&first),
        [("kill_switch".into(), "operator".into()), ("kill_switch".into(), "operator".into())]
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = get_ok(&app, &op, &format!("/v1/admin/audit?limit=50&cursor={cursor}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert!(rest["next_cursor"].is_null());
    let agent_entry = &rest["items"][1];
    assert_eq!(agent_entry["actor"], "agent:agent-1", "{agent_entry}");
    assert_eq!(
        (agent_entry["tenant_id"].as_str(), agent_entry["target"].as_str()),
        (Some("acme"), Some("acme"))
    );
    assert_eq!(agent_entry["detail"]["enabled"], false, "{agent_entry}");
    assert_eq!(rest["items"][2]["seq"], 1);

    // An agent sees its tenant's entries only, and may not verify.
    let agents = get_ok(&app, &As::agent("acme"), "/v1/admin/audit").await;
    assert_eq!(agents["items"].as_array().unwrap().len(), 2, "{agents}");
    assert!(agents["items"].as_array().unwrap().iter().all(|e| e["tenant_id"] == "acme"));
    get(&app, &As::agent("acme"), "/v1/admin/audit/verify").await.assert_error(403, "auth.forbidden");
    get(&app, &op, "/v1/admin/audit?limit=0").await.assert_error(400, "request.invalid");

    let verified = get_ok(&app, &op, "/v1/admin/audit/verify").await;
    assert_eq!(verified, json!({"intact": true, "entries": 5, "first_broken": null}));

    // The generated key is kept: after a restart the chain still verifies and grows.
    app.restart().await;
    switch(&app, &op, "/v1/admin/tenants/beta/kill-switch", false).await;
    assert_eq!(get_ok(&app, &op, "/v1/admin/audit/verify").await["entries"], 6);

    // Someone with only the database edits an entry.
    let db = format!("sqlite://{}", app.data_dir().join("switchboard.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'operator' WHERE seq = 2").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let broken = get_ok(&app, &op, "/v1/admin/audit/verify").await;
    assert_eq!(broken["intact"], false, "{broken}");
    assert_eq!(broken["first_broken"]["seq"], 2, "{broken}");
}

/// Tenant changes made with the command line are admin actions too: each is
/// in the log as actor `cli`, sealed with the servers' key, so the chain
/// goes on verifying around them.
#[tokio::test]
async fn command_line_tenant_changes_are_in_the_chain() {
    let app = TestApp::start(operator_config().tenant(TenantSpec::demo("filed"))).await;
    let op = As::operator(None);
    switch(&app, &op, "/v1/admin/tenants/filed/kill-switch", true).await;
    let create = ["tenant", "create", "--id", "shop", "--allow-no-origin", "on"];
    app.cli(&create).await.expect_ok("create");
    app.cli(&["tenant", "update", "shop", "--system-prompt", "Be brief."]).await.expect_ok("update");
    app.cli(&["tenant", "update", "filed", "--kill-switch", "off"]).await.expect_ok("kill switch");
    app.cli(&["tenant", "delete", "shop"]).await.expect_ok("delete");

    let page = get_ok(&app, &op, "/v1/admin/audit?limit=10").await;
    let cli = |action: &str| (action.to_owned(), "cli".to_owned());
    assert_eq!(
        actions(&page),
        [
            cli("tenant.delete"),
            cli("tenant.kill_switch"),
            cli("tenant.update"),
            cli("tenant.create"),
            ("tenant.kill_switch".into(), "operator".into()),
        ]
    );
    let items = page["items"].as_array().unwrap();
    assert_eq!((items[0]["target"].as_str(), items[0]["tenant_id"].as_str()), (Some("shop"), Some("shop")));
    assert_eq!(items[1]["detail"]["enabled"], false, "{}", items[1]);
    // Top-level settings, as a PATCH names them: the prompt is in `provider`.
    assert_eq!(items[2]["detail"]["fields"], json!(["provider"]), "{}", items[2]);
    let verified = get_ok(&app, &op, "/v1/admin/audit/verify").await;
    assert_eq!(verified, json!({"intact": true, "entries": 5, "first_broken": null}));
}
