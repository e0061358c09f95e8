//! Users' JWTs on the end-user API (SPEC §3): the attacks that must all be
//! `auth.invalid`, tokens naming another tenant, RS256/ES256 and audiences,
//! agents' lifetimes, isolation between users and tenants, `require_user`,
//! and `switchboard token mint`.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cli::run_cli;
use common::jwt::{self, as_caller, b64, claims, es256, hs256, rs256, HOUR};
use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use reqwest::Method;
use serde_json::{json, Value};

const ACME_SECRET: &str = "acme-secret-for-user-tokens-0123456789";
const GLOBEX_SECRET: &str = "globex-secret-for-user-tokens-987654321";
const OPERATOR: &str = "operator-token-for-the-identity-tests";

struct World {
    app: TestApp,
    fake: FakeOpenAi,
}

/// `acme` (fake upstream, HS256), `globex` (HS256, another secret), `rsa`
/// (RS256) and `ec` (ES256), with an operator token configured.
async fn world() -> World {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let config = AppConfig::new()
        .tenant(TenantSpec::openai("acme", &fake).line(&jwt::hs256_line("ACME_JWT_SECRET")))
        .tenant(TenantSpec::demo("globex").line(&jwt::hs256_line("GLOBEX_JWT_SECRET")))
        .tenant(TenantSpec::demo("rsa").line(&jwt::rs256_line()))
        .tenant(TenantSpec::demo("ec").line(&jwt::es256_line()))
        .env("ACME_JWT_SECRET", ACME_SECRET)
        .env("GLOBEX_JWT_SECRET", GLOBEX_SECRET)
        .env("SWITCHBOARD_OPERATOR_TOKEN", OPERATOR);
    World { app: TestApp::start(config).await, fake }
}

fn acme_user(sub: &str) -> Visitor {
    as_caller("acme", &hs256(ACME_SECRET, &claims("acme", sub)))
}

async fn new_session(app: &TestApp, who: &Visitor) -> String {
    let r = app.create_session_for(who).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["session"]["id"].as_str().unwrap().to_owned()
}

async fn session_ids(app: &TestApp, who: &Visitor) -> Vec<String> {
    let r = app.get("/v1/sessions", Some(who)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

/// Every way a bearer token can be bad, each with the tenant it is sent to.
fn bad_tokens(visitor_ticket: &str) -> Vec<(&'static str, &'static str, String)> {
    let good = claims("acme", "mallory");
    let header_none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(good.to_string().as_bytes());
    let rsa_public = std::fs::read(jwt::fixture("rs256_public.pem")).unwrap();
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("rsa", "mallory"),
        &jsonwebtoken::EncodingKey::from_secret(&rsa_public),
    )
    .unwrap();
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &good,
        &jsonwebtoken::EncodingKey::from_secret(ACME_SECRET.as_bytes()),
    )
    .unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("acme", "mallory");
        f(&mut c);
        hs256(ACME_SECRET, &c)
    };
    let valid = hs256(ACME_SECRET, &good);
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered =
        format!("{}.{}.{}", parts[0], b64(claims("acme", "alice").to_string().as_bytes()), parts[2]);
    vec![
        ("alg none", "acme", format!("{header_none}.{body}.")),
        ("HS256 signed with the RS256 public key", "rsa", confused),
        ("HS384 on an HS256 tenant", "acme", hs384),
        ("RS256 on an HS256 tenant", "acme", rs256(&good)),
        ("expired", "acme", with(&|c| c["exp"] = json!(jwt::now() - 300))),
        ("not yet valid", "acme", with(&|c| c["nbf"] = json!(jwt::now() + 600))),
        ("no exp", "acme", with(&|c| drop(c.as_object_mut().unwrap().remove("exp")))),
        ("no sub", "acme", with(&|c| drop(c.as_object_mut().unwrap().remove("sub")))),
        ("empty sub", "acme", with(&|c| c["sub"] = json!(""))),
        ("neither tid nor aud", "acme", with(&|c| drop(c.as_object_mut().unwrap().remove("tid")))),
        ("another tenant's secret", "acme", hs256(GLOBEX_SECRET, &good)),
        ("tampered payload", "acme", tampered),
        ("garbage", "acme", "garbage".into()),
        ("three garbage parts", "acme", "a.b.c".into()),
        ("a role that does not exist", "acme", with(&|c| c["role"] = json!("root"))),
        (
            "an admin token living 13 h",
            "acme",
            with(&|c| {
                c["role"] = json!("admin");
                c["exp"] = json!(jwt::now() + 13 * HOUR);
            }),
        ),
        ("a ticket", "acme", visitor_ticket.to_owned()),
        ("the operator token", "acme", OPERATOR.to_owned()),
    ]
}

#[tokio::test]
async fn every_bad_token_is_auth_invalid_and_changes_nothing() {
    let w = world().await;
    let app = &w.app;
    let created = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "acme")).await;
    let session = created.body["session"]["id"].as_str().unwrap().to_owned();
    let visitor = as_caller("acme", created.body["token"].as_str().unwrap());
    let ticket = created.body["ticket"].as_str().unwrap().to_owned();
    for (what, tenant, token) in &bad_tokens(&ticket) {
        let who = as_caller(tenant, token);
        let r = app.get("/v1/sessions", Some(&who)).await;
        let err = r.assert_error(401, "auth.invalid");
        assert!(
            !err.to_string().contains("expired") && !err.to_string().contains("signature"),
            "{what}: {err}"
        );
        let chat = app.chat_raw(&who, &common::chat_body(&session, "hi")).await;
        chat.assert_error(401, "auth.invalid");
        let create = app.create_session_for(&who).await;
        create.assert_error(401, "auth.invalid");
        let ticket = app.send(app.request(Method::POST, "/v1/tickets", Some(&who))).await;
        ticket.assert_error(401, "auth.invalid");
    }
    // A tenant without JWT settings refuses user tokens.
    let plain = TestApp::start(AppConfig::new().tenant(TenantSpec::demo("plain"))).await;
    let who = as_caller("plain", &hs256(ACME_SECRET, &claims("plain", "x")));
    plain.get("/v1/sessions", Some(&who)).await.assert_error(401, "auth.invalid");

    // Nothing reached the model or the database.
    assert_eq!(w.fake.calls(), 0);
    assert!(app.messages(&visitor, &session).await.is_empty());
    assert!(session_ids(app, &acme_user("mallory")).await.is_empty());
    assert!(session_ids(app, &acme_user("alice")).await.is_empty());
    assert_eq!(session_ids(app, &visitor).await, vec![session]);
}

#[tokio::test]
async fn a_token_naming_another_tenant_is_a_context_mismatch() {
    let w = world().await;
    let app = &w.app;
    // Signed with acme's secret, but for globex.
    let for_globex = as_caller("acme", &hs256(ACME_SECRET, &claims("globex", "alice")));
    app.get("/v1/sessions", Some(&for_globex)).await.assert_error(403, "auth.context_mismatch");
    let mut aud = claims("acme", "alice");
    aud.as_object_mut().unwrap().remove("tid");
    aud["aud"] = json!(["shop-api", "globex"]);
    let aud_globex = as_caller("acme", &hs256(ACME_SECRET, &aud));
    app.get("/v1/sessions", Some(&aud_globex)).await.assert_error(403, "auth.context_mismatch");

    // Without X-Tenant-Id the token's own tid picks globex, whose key refuses it.
    let r = app
        .send(app.client.get(app.url("/v1/sessions")).bearer_auth(hs256(ACME_SECRET, &claims("globex", "a"))))
        .await;
    r.assert_error(401, "auth.invalid");

    // A good acme token while ?tenant= names another tenant.
    let alice = acme_user("alice");
    let r = app.get("/v1/sessions?tenant=globex", Some(&alice)).await;
    r.assert_error(403, "auth.context_mismatch");

    // A visitor token of acme sent to globex.
    let (_, visitor) = app.create_session("acme").await;
    let elsewhere = as_caller("globex", &visitor.token);
    app.get("/v1/sessions", Some(&elsewhere)).await.assert_error(403, "auth.context_mismatch");
    assert_eq!(w.fake.calls(), 0);
}

#[tokio::test]
async fn users_of_every_algorithm_and_audience_chat() {
    let w = world().await;
    let app = &w.app;
    for (tenant, token) in [
        ("rsa", rs256(&claims("rsa", "ruth"))),
        ("ec", es256(&claims("ec", "eve"))),
        ("acme", hs256(ACME_SECRET, &claims("acme", "hal"))),
    ] {
        let who = as_caller(tenant, &token);
        let created = app.create_session_for(&who).await;
        assert_eq!(created.status, 201, "{tenant}: {}", created.text);
        // A user gets no visitor credentials.
        assert!(
            created.body.get("token").is_none() && created.body.get("visitor_id").is_none(),
            "{}",
            created.text
        );
        let id = created.body["session"]["id"].as_str().unwrap().to_owned();
        let r = app.chat_json(&who, &id, "hello").await;
        assert_eq!(r.status, 200, "{tenant}: {}", r.text);
        assert_eq!(session_ids(app, &who).await, vec![id]);
    }

    // The same user with `aud` instead of `tid`, from another "device":
    // without X-Tenant-Id, a single audience names the tenant.
    let mut by_aud = claims("acme", "hal");
    by_aud.as_object_mut().unwrap().remove("tid");
    by_aud["aud"] = json!("acme");
    let token = hs256(ACME_SECRET, &by_aud);
    let r = app.send(app.client.get(app.url("/v1/sessions")).bearer_auth(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    by_aud["aud"] = json!(["shop-api", "acme"]);
    let who = as_caller("acme", &hs256(ACME_SECRET, &by_aud));
    assert_eq!(session_ids(app, &who).await.len(), 1);
    assert_eq!(w.fake.calls(), 1);
}

#[tokio::test]
async fn agent_tokens_live_at_most_twelve_hours() {
    let w = world().await;
    let app = &w.app;
    let mut c = claims("acme", "agent-1");
    c["role"] = json!("admin");
    c["name"] = json!("Dana");
    c["exp"] = json!(jwt::now() + 12 * HOUR);
    let ok = as_caller("acme", &hs256(ACME_SECRET, &c));
    assert_eq!(app.get("/v1/sessions", Some(&ok)).await.status, 200);
    c["exp"] = json!(jwt::now() + 12 * HOUR + 600);
    let too_long = as_caller("acme", &hs256(ACME_SECRET, &c));
    app.get("/v1/sessions", Some(&too_long)).await.assert_error(401, "auth.invalid");
    // The limit is configurable.
    let config = AppConfig::new()
        .raw("agent_token_max_ttl_secs = 3600")
        .tenant(TenantSpec::demo("acme").line(&jwt::hs256_line("ACME_JWT_SECRET")))
        .env("ACME_JWT_SECRET", ACME_SECRET);
    let short = TestApp::start(config).await;
    short.get("/v1/sessions", Some(&ok)).await.assert_error(401, "auth.invalid");
}

#[tokio::test]
async fn users_see_only_their_own_sessions() {
    let w = world().await;
    let app = &w.app;
    let alice = acme_user("alice");
    let session = new_session(app, &alice).await;
    assert_eq!(app.chat_json(&alice, &session, "mine").await.status, 200);
    let calls = w.fake.calls();

    let (_, visitor) = app.create_session("acme").await;
    let strangers = [
        ("another user", acme_user("bob")),
        ("a visitor", visitor),
        // The same sub in another tenant is another user.
        ("alice of globex", as_caller("globex", &hs256(GLOBEX_SECRET, &claims("globex", "alice")))),
    ];
    for (what, who) in &strangers {
        let path = format!("/v1/sessions/{session}");
        app.get(&path, Some(who)).await.assert_error(404, "session.not_found");
        app.messages_page(who, &session, "").await.assert_error(404, "session.not_found");
        let chat = app.chat_raw(who, &common::chat_body(&session, "intruding")).await;
        chat.assert_error(404, "session.not_found");
        app.send(app.request(Method::DELETE, &path, Some(who))).await.assert_error(404, "session.not_found");
        let bound = json!({"session_id": session});
        let r = app.send(app.request(Method::POST, "/v1/tickets", Some(who)).json(&bound)).await;
        r.assert_error(404, "session.not_found");
        assert!(!session_ids(app, who).await.contains(&session), "{what}");
    }
    assert_eq!(w.fake.calls(), calls);
    assert_eq!(app.messages(&alice, &session).await.len(), 2);
}

#[tokio::test]
async fn require_user_keeps_visitors_out() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let tenant = TenantSpec::openai("members", &fake).line(&jwt::hs256_line("MEMBERS_SECRET"));
    let config = AppConfig::new().tenant(tenant).env("MEMBERS_SECRET", ACME_SECRET);
    let mut app = TestApp::start(config).await;
    // A visitor from before the tenant required users.
    let (session, visitor) = app.create_session("members").await;
    app.config.tenants[0].lines.push("require_user = true".into());
    app.restart().await;

    let anonymous = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "members")).await;
    anonymous.assert_error(403, "auth.forbidden");
    app.create_session_for(&visitor).await.assert_error(403, "auth.forbidden");
    app.chat_raw(&visitor, &common::chat_body(&session, "hi")).await.assert_error(403, "auth.forbidden");
    // Reading what it has is still allowed; nothing was stored or sent.
    assert_eq!(session_ids(&app, &visitor).await, vec![session.clone()]);
    assert!(app.messages(&visitor, &session).await.is_empty());
    assert_eq!(fake.calls(), 0);

    let user = as_caller("members", &hs256(ACME_SECRET, &claims("members", "paying-customer")));
    let id = new_session(&app, &user).await;
    assert_eq!(app.chat_json(&user, &id, "hello").await.status, 200);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn token_mint_signs_tokens_the_server_accepts() {
    let w = world().await;
    let app = &w.app;
    let path = app.config_path();
    let mint = |args: &'static [&'static str]| {
        let path = path.clone();
        async move {
            let args: Vec<&str> = ["token", "mint"].iter().chain(args).copied().collect();
            run_cli(&path, &args, &[("ACME_JWT_SECRET", ACME_SECRET)]).await
        }
    };
    let out = mint(&["--tenant", "acme", "--sub", "zed", "--name", "Zed"]).await;
    let token = out.expect_ok("mint").trim().to_owned();
    let claims = jwt::payload(&token);
    assert_eq!(
        (claims["sub"].as_str(), claims["tid"].as_str(), claims["name"].as_str()),
        (Some("zed"), Some("acme"), Some("Zed"))
    );
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    let zed = as_caller("acme", &token);
    let id = new_session(app, &zed).await;
    assert_eq!(session_ids(app, &zed).await, vec![id]);

    let out = mint(&["--tenant", "acme", "--sub", "boss", "--role", "admin", "--ttl", "86400"]).await;
    let admin = out.expect_ok("admin mint").trim().to_owned();
    assert!(out.stderr.contains("capped"), "{}", out.stderr);
    let claims = jwt::payload(&admin);
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 43_200);
    assert_eq!(app.get("/v1/sessions", Some(&as_caller("acme", &admin))).await.status, 200);

    mint(&["--tenant", "rsa", "--sub", "x"]).await.expect_err("RS256 tenant", "private key");
    mint(&["--tenant", "nope", "--sub", "x"]).await.expect_err("unknown tenant", "unknown tenant");
    mint(&["--tenant", "acme", "--sub", "x", "--role", "root"]).await.expect_err("bad role", "root");
    let out = run_cli(&app.config_path(), &["token", "mint", "--tenant", "acme", "--sub", "x"], &[]).await;
    out.expect_err("no secret", "ACME_JWT_SECRET");
}

#[tokio::test]
async fn a_missing_key_is_a_startup_error() {
    // The secret's variable is not set: the server names it and exits.
    let dir = tempfile::tempdir().unwrap();
    let config = AppConfig::new().tenant(TenantSpec::demo("acme").line(&jwt::hs256_line("ACME_NOT_SET")));
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config.render(&dir.path().join("data").to_string_lossy())).unwrap();
    let out = run_cli(&path, &["serve"], &[]).await;
    out.expect_err("missing secret", "ACME_NOT_SET");
    let config = AppConfig::new()
        .tenant(TenantSpec::demo("acme").line("jwt = { rs256_public_key_file = \"/nonexistent/acme.pem\" }"));
    std::fs::write(&path, config.render(&dir.path().join("data").to_string_lossy())).unwrap();
    run_cli(&path, &["serve"], &[]).await.expect_err("missing key file", "/nonexistent/acme.pem");
}
