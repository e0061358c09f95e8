//! Tenant management through the admin API (SPEC §12, §17): create, read,
//! patch and delete database tenants with the configuration file's
//! validation; the file's tenants are read-only; secrets are only ever
//! named, and URL credentials are masked; a change is served by this node
//! before the answer.

#[path = "common/admin.rs"]
mod admin;
mod common;

use admin::{call, get, get_ok, operator_config, secret_of, secret_var, user_token, As};
use common::{TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::json;

const SHOP_SECRET: &str = "shop-secret-value-that-must-never-be-echoed-42";

async fn app() -> TestApp {
    let config = operator_config()
        .tenant(TenantSpec::demo("filed").line(&common::jwt::hs256_line(&secret_var("filed"))))
        .env(&secret_var("filed"), &secret_of("filed"))
        .env("SHOP_JWT", SHOP_SECRET);
    TestApp::start(config).await
}

fn shop() -> serde_json::Value {
    json!({
        "id": "shop",
        "name": "The Shop",
        "allowed_origins": ["https://shop.example"],
        "allow_no_origin": true,
        "jwt": {"hs256_secret_env": "SHOP_JWT"},
        "provider": {"kind": "demo", "system_prompt": "Be brief."},
    })
}

#[tokio::test]
async fn create_read_patch_delete_with_the_files_rules() {
    let app = app().await;
    let op = As::operator(None);
    let created = call(&app, &op, Method::POST, "/v1/admin/tenants", Some(shop())).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let t = &created.body;
    assert_eq!(
        (t["id"].as_str(), t["name"].as_str(), t["source"].as_str()),
        (Some("shop"), Some("The Shop"), Some("db"))
    );
    assert_eq!((t["kill_switch"].as_bool(), t["served"].as_bool()), (Some(false), Some(true)));
    assert_eq!(t["settings"]["jwt"]["hs256_secret_env"], "SHOP_JWT");
    assert!(!created.text.contains(SHOP_SECRET), "a secret was echoed: {}", created.text);
    // Served at once on this node, users' tokens included.
    let session = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "shop")).await;
    assert_eq!(session.status.as_u16(), 201, "{}", session.text);
    let claims = json!({"sub": "bob", "tid": "shop", "exp": common::jwt::now() + 600});
    let bob = Visitor {
        tenant: "shop".into(),
        token: common::jwt::hs256(SHOP_SECRET, &claims),
        visitor_id: String::new(),
    };
    assert_eq!(app.create_session_for(&bob).await.status.as_u16(), 201);

    // Refusals, each with the field at fault, and nothing stored.
    let cases = [
        (shop(), "id"),
        (json!({"id": "Not A Slug"}), "id"),
        (json!({"id": "x1", "allowed_origins": ["*"]}), "allowed_origins"),
        (json!({"id": "x2", "provider": {"kind": "openai"}}), "provider.model"),
        (
            json!({"id": "x3", "provider": {"kind": "openai", "model": "m", "api_key_env": "NOT_SET_ANYWHERE"}}),
            "provider",
        ),
        (json!({"id": "x4", "jwt": {"hs256_secret_env": "NOT_SET_ANYWHERE"}}), "jwt"),
    ];
    for (body, field) in cases {
        let reply = call(&app, &op, Method::POST, "/v1/admin/tenants", Some(body.clone())).await;
        let err = reply.assert_error(400, "request.invalid");
        assert_eq!(err["details"][0]["field"], field, "{body}: {}", reply.text);
    }
    let unknown =
        call(&app, &op, Method::POST, "/v1/admin/tenants", Some(json!({"id": "x5", "colour": "red"}))).await;
    unknown.assert_error(400, "request.invalid");
    for id in ["x1", "x2", "x3", "x4", "x5"] {
        get(&app, &op, &format!("/v1/admin/tenants/{id}")).await.assert_error(404, "tenant.unknown");
    }

    // URL credentials are stored (the server needs them) but never shown.
    let mut creds = json!({"id": "vendor", "allow_no_origin": true, "provider": {
        "kind": "openai", "model": "m", "api_key_env": "SWITCHBOARD_TEST_FAKE_API_KEY",
        "base_url": "https://user:hunter2@llm.example/v1?api-key=zzz-secret"}});
    let made = call(&app, &op, Method::POST, "/v1/admin/tenants", Some(creds.take())).await;
    assert_eq!(made.status.as_u16(), 201, "{}", made.text);
    assert!(!made.text.contains("hunter2") && !made.text.contains("zzz-secret"), "{}", made.text);
    assert_eq!(made.body["settings"]["provider"]["base_url"], "https://***@llm.example/v1?api-key=***");

    // PATCH merges; what it does not name stays; an invalid patch changes nothing.
    let patch = json!({"name": "Shop 2", "provider": {"system_prompt": "Be kind."}, "allowed_origins": null});
    let patched = call(&app, &op, Method::PATCH, "/v1/admin/tenants/shop", Some(patch)).await;
    assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
    let s = &patched.body["settings"];
    assert_eq!(
        (patched.body["name"].as_str(), s["provider"]["system_prompt"].as_str()),
        (Some("Shop 2"), Some("Be kind."))
    );
    assert_eq!(
        (s["jwt"]["hs256_secret_env"].as_str(), s["provider"]["kind"].as_str()),
        (Some("SHOP_JWT"), Some("demo"))
    );
    assert!(s.get("allowed_origins").is_none_or(|o| o == &json!([])), "{s}");
    let bad =
        call(&app, &op, Method::PATCH, "/v1/admin/tenants/shop", Some(json!({"allowed_origins": ["nope"]})))
            .await;
    bad.assert_error(400, "request.invalid");
    let renamed =
        call(&app, &op, Method::PATCH, "/v1/admin/tenants/shop", Some(json!({"id": "other"}))).await;
    renamed.assert_error(400, "request.invalid");
    assert_eq!(get_ok(&app, &op, "/v1/admin/tenants/shop").await["name"], "Shop 2");
    call(&app, &op, Method::PATCH, "/v1/admin/tenants/ghost", Some(json!({"name": "x"})))
        .await
        .assert_error(404, "tenant.unknown");

    // The file's tenant: readable, not editable, not deletable.
    let filed = get_ok(&app, &op, "/v1/admin/tenants/filed").await;
    assert_eq!((filed["source"].as_str(), filed["served"].as_bool()), (Some("config"), Some(true)));
    let edit = call(&app, &op, Method::PATCH, "/v1/admin/tenants/filed", Some(json!({"name": "x"}))).await;
    edit.assert_error(403, "auth.forbidden");
    call(&app, &op, Method::DELETE, "/v1/admin/tenants/filed", None)
        .await
        .assert_error(403, "auth.forbidden");
    let listed = get_ok(&app, &op, "/v1/admin/tenants").await;
    let ids: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["filed", "shop", "vendor"]);
    assert!(!listed.to_string().contains(SHOP_SECRET) && !listed.to_string().contains(&secret_of("filed")));
    // The CLI sees what the API made.
    let cli = app.cli(&["tenant", "list", "--json"]).await;
    assert!(cli.expect_ok("tenant list").contains("\"shop\""), "{}", cli.stdout);

    // Delete: gone at once, for the API and for end users.
    assert_eq!(call(&app, &op, Method::DELETE, "/v1/admin/tenants/shop", None).await.status.as_u16(), 204);
    get(&app, &op, "/v1/admin/tenants/shop").await.assert_error(404, "tenant.unknown");
    call(&app, &op, Method::DELETE, "/v1/admin/tenants/shop", None).await.assert_error(404, "tenant.unknown");
    let gone = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "shop")).await;
    gone.assert_error(404, "tenant.unknown");
    // Agents manage no tenants, not even their own.
    let agent = As::token(&user_token("filed", "a", json!({"role": "admin"})), None);
    call(&app, &agent, Method::POST, "/v1/admin/tenants", Some(shop()))
        .await
        .assert_error(403, "auth.forbidden");
}
