//! `switchboard tenant …` (SPEC §17): create, list, show, update and delete
//! tenants in the database, validated like `[[tenants]]` entries; tenants of
//! the configuration file are read-only but for their kill switch; secrets
//! are never printed; and a running server follows the changes.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cli::run_cli;
use common::{chat_body, eventually, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

/// The value of the variable that `api_key_env` names: must never be printed.
const MARKER: &str = "sk-MARKER-never-printed-7f3a";

/// How long a running server may take to follow a change made with the CLI.
const RELOAD: Duration = Duration::from_secs(10);

/// A config file with one file-owned tenant, `filed`, and a data directory.
fn workdir() -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("switchboard-cli-").tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = format!(
        "data_dir = {:?}\n[[tenants]]\nid = \"filed\"\nname = \"Filed Shop\"\nallow_no_origin = true\n",
        dir.path().join("data").to_string_lossy()
    );
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

async fn cli(config: &Path, args: &[&str]) -> common::cli::CliOutput {
    let out = run_cli(config, args, &[("ACME_TEST_KEY", MARKER)]).await;
    assert!(!out.stdout.contains(MARKER) && !out.stderr.contains(MARKER), "a secret was printed: {out:?}");
    out
}

async fn list(config: &Path) -> Vec<Value> {
    let out = cli(config, &["tenant", "list", "--json"]).await;
    let v: Value = serde_json::from_str(out.expect_ok("list --json")).unwrap();
    v.as_array().unwrap().clone()
}

async fn show(config: &Path, id: &str) -> toml::Table {
    let out = cli(config, &["tenant", "show", id]).await;
    toml::from_str(out.expect_ok("show")).unwrap()
}

#[tokio::test]
async fn create_list_show_update_delete_round_trip() {
    let (_dir, config) = workdir();
    let out = cli(
        &config,
        &[
            "tenant",
            "create",
            "--id",
            "acme",
            "--name",
            "Acme Shop",
            "--origin",
            "https://Shop.Acme.example",
            "--provider-kind",
            "openai",
            "--model",
            "gpt-test",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--api-key-env",
            "ACME_TEST_KEY",
            "--system-prompt",
            "Be brief.",
        ],
    )
    .await;
    out.expect_ok("create");

    let rows = list(&config).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["id"], "acme");
    assert_eq!(rows[0]["name"], "Acme Shop");
    assert_eq!(rows[0]["source"], "db");
    assert_eq!(rows[0]["kill_switch"], false);
    assert_eq!(rows[1]["id"], "filed");
    assert_eq!(rows[1]["source"], "config");
    let table = cli(&config, &["tenant", "list"]).await;
    let text = table.expect_ok("list");
    assert!(text.lines().next().unwrap().contains("KILL_SWITCH"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("acme") && l.contains("db") && l.ends_with("off")), "{text}");

    // `show` prints TOML usable as `--file`: the variable's name, never its value.
    let shown = show(&config, "acme").await;
    assert_eq!(shown["id"].as_str(), Some("acme"));
    assert_eq!(shown["allowed_origins"][0].as_str(), Some("https://Shop.Acme.example"), "as written");
    assert_eq!(shown["provider"]["api_key_env"].as_str(), Some("ACME_TEST_KEY"));
    assert_eq!(shown["provider"]["model"].as_str(), Some("gpt-test"));
    let json = cli(&config, &["tenant", "show", "acme", "--json"]).await;
    let json: Value = serde_json::from_str(json.expect_ok("show --json")).unwrap();
    assert_eq!(json["source"], "db");
    assert_eq!(json["settings"]["provider"]["kind"], "openai");

    // Flags change single keys and keep the rest.
    cli(&config, &["tenant", "update", "acme", "--model", "gpt-other"]).await.expect_ok("update flags");
    let shown = show(&config, "acme").await;
    assert_eq!(shown["provider"]["model"].as_str(), Some("gpt-other"));
    assert_eq!(shown["provider"]["system_prompt"].as_str(), Some("Be brief."));
    assert_eq!(shown["name"].as_str(), Some("Acme Shop"));

    // A file replaces the settings.
    let file = config.with_file_name("acme.toml");
    std::fs::write(
        &file,
        "name = \"Acme Two\"\nallowed_origins = [\"https://two.acme.example\"]\n[provider]\nkind = \"demo\"\n",
    )
    .unwrap();
    cli(&config, &["tenant", "update", "acme", "--file", file.to_str().unwrap()])
        .await
        .expect_ok("update file");
    let shown = show(&config, "acme").await;
    assert_eq!(shown["name"].as_str(), Some("Acme Two"));
    assert_eq!(shown["provider"]["kind"].as_str(), Some("demo"));
    assert!(shown["provider"].get("api_key_env").is_none(), "{shown:?}");

    cli(&config, &["tenant", "update", "acme", "--kill-switch", "on"]).await.expect_ok("kill switch on");
    assert_eq!(list(&config).await[0]["kill_switch"], true);

    cli(&config, &["tenant", "delete", "acme"]).await.expect_ok("delete");
    cli(&config, &["tenant", "show", "acme"]).await.expect_err("show deleted", "no tenant");
    cli(&config, &["tenant", "delete", "acme"]).await.expect_err("delete twice", "no tenant");
    assert_eq!(list(&config).await.len(), 1);
}

#[tokio::test]
async fn tenants_of_the_file_only_take_their_kill_switch() {
    let (_dir, config) = workdir();
    for args in [
        &["tenant", "update", "filed", "--name", "Renamed"][..],
        &["tenant", "update", "filed", "--name", "Renamed", "--kill-switch", "on"],
        &["tenant", "delete", "filed"],
    ] {
        cli(&config, args).await.expect_err(&format!("{args:?}"), "owned by the configuration file");
    }
    cli(&config, &["tenant", "create", "--id", "filed"])
        .await
        .expect_err("create over file", "already exists");

    cli(&config, &["tenant", "update", "filed", "--kill-switch", "on"]).await.expect_ok("flip on");
    let rows = list(&config).await;
    assert_eq!((rows[0]["id"].as_str(), rows[0]["kill_switch"].as_bool()), (Some("filed"), Some(true)));
    let shown = show(&config, "filed").await;
    assert_eq!(shown["kill_switch"].as_bool(), Some(true));
    assert_eq!(shown["name"].as_str(), Some("Filed Shop"));
    cli(&config, &["tenant", "update", "filed", "--kill-switch", "off"]).await.expect_ok("flip off");
    assert_eq!(list(&config).await[0]["kill_switch"], false);
}

#[tokio::test]
async fn invalid_settings_are_refused_and_nothing_is_created() {
    let (_dir, config) = workdir();
    let other = config.with_file_name("other.toml");
    std::fs::write(&other, "id = \"someone-else\"\n").unwrap();
    let unknown = config.with_file_name("unknown.toml");
    std::fs::write(&unknown, "[provider]\nkindd = \"demo\"\n").unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["tenant", "create", "--id", "Not A Slug"], "tenant id"),
        (&["tenant", "create", "--id", "a", "--origin", "*"], "allowed_origins"),
        (&["tenant", "create", "--id", "a", "--origin", "https://a.example/path"], "allowed_origins"),
        (&["tenant", "create", "--id", "a", "--provider-kind", "openai"], "model"),
        (&["tenant", "create", "--id", "a", "--file", other.to_str().unwrap()], "someone-else"),
        (&["tenant", "create", "--id", "a", "--file", unknown.to_str().unwrap()], "kindd"),
        (&["tenant", "update", "nobody", "--name", "x"], "no tenant"),
    ];
    for (args, needle) in cases {
        cli(&config, args).await.expect_err(&format!("{args:?}"), needle);
    }
    let rows = list(&config).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
}

/// How the server answers an anonymous `GET /v1/sessions` naming `tenant`: a
/// probe with no side effects that tells an unknown tenant (404), one that
/// refuses requests without Origin (403) and one that serves them (401).
async fn probe(app: &TestApp, tenant: &str) -> u16 {
    let reply = app.send(app.client.get(app.url("/v1/sessions")).header("x-tenant-id", tenant)).await;
    reply.status.as_u16()
}

/// Waits until the probe of `tenant` answers `status`.
async fn until_probe(app: &TestApp, tenant: &str, status: u16, what: &str) {
    eventually(what, RELOAD, || async { (probe(app, tenant).await == status).then_some(()) }).await;
}

#[tokio::test]
async fn a_running_server_follows_cli_changes() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::demo("filed"))).await;
    assert_eq!(probe(&app, "live").await, 404);

    let base_url = fake.base_url();
    let create = app
        .cli(&[
            "tenant",
            "create",
            "--id",
            "live",
            "--allow-no-origin",
            "on",
            "--provider-kind",
            "openai",
            "--model",
            "gpt-fake",
            "--base-url",
            &base_url,
            "--api-key-env",
            "SWITCHBOARD_TEST_FAKE_API_KEY",
        ])
        .await;
    create.expect_ok("create");
    until_probe(&app, "live", 401, "the new tenant to be served").await;

    // It answers through its own provider.
    let (session, visitor) = app.create_session("live").await;
    let reply = app.chat_stream_body(&visitor, &chat_body(&session, "hello")).await;
    assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
    assert_eq!(fake.calls(), 1);

    // An update reaches it too: first seen as the origin rule changing, then
    // as the new system prompt sent upstream.
    let update =
        ["tenant", "update", "live", "--allow-no-origin", "off", "--system-prompt", "Reloaded prompt."];
    app.cli(&update).await.expect_ok("update");
    until_probe(&app, "live", 403, "the updated settings to be served").await;
    app.cli(&["tenant", "update", "live", "--allow-no-origin", "on"]).await.expect_ok("update back");
    until_probe(&app, "live", 401, "the second update to be served").await;
    let reply = app.chat_stream_body(&visitor, &chat_body(&session, "again")).await;
    assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
    assert!(fake.last_request().body.to_string().contains("Reloaded prompt."));

    app.cli(&["tenant", "delete", "live"]).await.expect_ok("delete");
    until_probe(&app, "live", 404, "the deleted tenant to be gone").await;
    // The file's tenant was never disturbed.
    assert_eq!(probe(&app, "filed").await, 401);
    assert!(!app.log().contains(common::fake_openai::FAKE_API_KEY), "the API key reached the log");
}
