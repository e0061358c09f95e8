//! Configuration loading (SPEC §17): unknown keys at any level stop the
//! process with a non-zero exit and a message naming the key.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestApp;
use std::time::Duration;

/// Runs `serve` on this config text; returns the exit code and stderr.
async fn run_to_exit(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = dir.path().join("config.toml");
    let text = format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{config}", data.display());
    std::fs::write(&path, text).unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = TestApp::command(&path, log).spawn().unwrap();
    let status = match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(s) => s.unwrap(),
        Err(_) => {
            let _ = child.start_kill();
            panic!("the server started despite a bad config:\n{config}");
        }
    };
    (status.code(), std::fs::read_to_string(log_path).unwrap_or_default())
}

#[tokio::test]
async fn unknown_keys_are_rejected_by_name() {
    let cases = [
        ("top level", "bogus_top_key = 1\n", "bogus_top_key"),
        ("tenant", "[[tenants]]\nid = \"acme\"\nname = \"Acme\"\nbogus_tenant_key = true\n", "bogus_tenant_key"),
        (
            "provider",
            "[[tenants]]\nid = \"acme\"\nname = \"Acme\"\n[tenants.provider]\nkind = \"demo\"\nmodel = \"demo\"\ntemprature = 0.3\n",
            "temprature",
        ),
    ];
    for (case, config, key) in cases {
        let (code, stderr) = run_to_exit(config).await;
        assert!(code.is_some_and(|c| c != 0), "{case}: exit code {code:?}");
        assert!(stderr.contains(key), "{case}: stderr does not name {key}:\n{stderr}");
    }
}

/// A log format that is neither `text` nor `json` stops the start, named.
#[tokio::test]
async fn an_unknown_log_format_is_refused() {
    let (code, stderr) = run_to_exit("log_format = \"yaml\"\n").await;
    assert!(code.is_some_and(|c| c != 0), "exit code {code:?}");
    assert!(stderr.contains("log_format") && stderr.contains("yaml"), "{stderr}");
}

/// An `otlp_endpoint` that is not an http(s) URL stops the start, named.
#[tokio::test]
async fn an_otlp_endpoint_that_is_not_a_url_is_refused() {
    for bad in ["127.0.0.1:4318", "grpc://127.0.0.1:4317"] {
        let (code, stderr) = run_to_exit(&format!("otlp_endpoint = \"{bad}\"\n")).await;
        assert!(code.is_some_and(|c| c != 0), "{bad}: exit code {code:?}");
        assert!(stderr.contains("otlp_endpoint") && stderr.contains(bad), "{bad}: {stderr}");
    }
}

/// `[[tenants.tools]]` is checked at start: a secret variable that is not
/// set, a schema that is not one, or a name models refuse stop the server
/// with a message naming the tool or key.
#[tokio::test]
async fn tools_that_cannot_work_stop_the_start() {
    let tool = |extra: &str| {
        format!(
            "[[tenants]]\nid = \"acme\"\n[[tenants.tools]]\nname = \"search\"\nurl = \"https://shop.example/t\"\n\
             secret_env = \"SWITCHBOARD_TEST_UNSET_TOOL_SECRET\"\n{extra}"
        )
    };
    let cases = [
        ("secret variable unset", tool(""), "SWITCHBOARD_TEST_UNSET_TOOL_SECRET"),
        ("schema", tool("parameters = { type = 12 }"), "search"),
        ("name", tool("").replace("name = \"search\"", "name = \"search products\""), "tools[0].name"),
        ("limits", tool("[tenants.tooling]\nmax_tool_rounds = 0"), "max_tool_rounds"),
        (
            "private list",
            format!("tool_allow_private = [\"not a host!\"]\n{}", tool("")),
            "tool_allow_private",
        ),
    ];
    for (case, config, says) in cases {
        let (code, stderr) = run_to_exit(&config).await;
        assert!(code.is_some_and(|c| c != 0), "{case}: exit code {code:?}");
        assert!(stderr.contains(says), "{case}: stderr does not name {says}:\n{stderr}");
    }
}
