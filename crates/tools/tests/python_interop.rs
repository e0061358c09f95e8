//! Our signatures against the official Standard Webhooks library for Python
//! (pinned in tests/python/requirements.txt, installed by
//! `scripts/python-deps`): what we sign, it verifies, and what it signs, we
//! verify. That is the promise of SPEC §16: a tenant checks our calls with
//! the official library of its language.
//!
//! The library lives in the venv at `SWITCHBOARD_PYTHON_VENV` (default
//! `~/.cache/switchboard/venv`). Without it the tests are skipped the way
//! service tests are (a `SKIPPED` line, and a line under
//! `SWITCHBOARD_TEST_SKIPPED_DIR` that `scripts/test` sums up), and
//! `SWITCHBOARD_TEST_REQUIRE_SERVICES=1` makes that a failure.

// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_tools::signature::{
    message_id, SigningKeys, DEFAULT_TOLERANCE, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};

const VENV: &str = "SWITCHBOARD_PYTHON_VENV";
const BODY: &str = r#"{"type":"tool.call","tool":"search_products","arguments":{"query":"café shoes"}}"#;

#[test]
fn python_verifies_what_we_sign_with_each_secret_of_a_rotation() {
    let Some(python) = official_library() else { return };
    let (old, new) = (secret(3), secret(4));
    let keys = SigningKeys::parse(&format!("{new} {old}")).unwrap();
    let (id, timestamp) = (message_id(), now());
    let headers = json!({
        WEBHOOK_ID: id,
        WEBHOOK_TIMESTAMP: timestamp.to_string(),
        WEBHOOK_SIGNATURE: keys.sign(&id, timestamp, BODY.as_bytes()),
    });
    let answer =
        run(&python, &json!({"op": "verify", "secrets": [old, new], "headers": headers, "body": BODY}));
    assert_eq!(answer["verified"], json!([true, true]), "{answer}");

    // Not a vacuous pass: the same headers over another body are refused.
    let tampered = BODY.replace("shoes", "boots");
    let answer =
        run(&python, &json!({"op": "verify", "secrets": [old], "headers": headers, "body": tampered}));
    assert_eq!(answer["verified"], json!(["No matching signature found"]), "{answer}");
}

#[test]
fn we_verify_what_python_signs() {
    let Some(python) = official_library() else { return };
    let (theirs, other) = (secret(5), secret(6));
    let (id, timestamp) = (message_id(), now());
    let request = json!({"op": "sign", "secret": theirs, "id": id, "timestamp": timestamp, "body": BODY});
    let signature = run(&python, &request)["signature"].as_str().unwrap().to_owned();
    let ours = SigningKeys::parse(&theirs).unwrap();
    assert_eq!(signature, ours.sign(&id, timestamp, BODY.as_bytes()), "the same bytes, the same signature");

    let mut headers = HeaderMap::new();
    headers.insert(WEBHOOK_ID, HeaderValue::from_str(&id).unwrap());
    headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(&signature).unwrap());
    let rotating = SigningKeys::parse(&format!("{other} {theirs}")).unwrap();
    assert_eq!(rotating.verify(&headers, BODY.as_bytes(), now(), DEFAULT_TOLERANCE), Ok(()));
    let stranger = SigningKeys::parse(&other).unwrap();
    assert!(stranger.verify(&headers, BODY.as_bytes(), now(), DEFAULT_TOLERANCE).is_err());
}

fn secret(byte: u8) -> String {
    format!("whsec_{}", STANDARD.encode([byte; 32]))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Runs tests/python/interop.py with `request` on stdin; its JSON answer.
fn run(python: &Path, request: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "interop.py failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The venv's Python when it has the official library; else the test is
/// noted as skipped (or fails, when services are required).
fn official_library() -> Option<PathBuf> {
    let venv = std::env::var_os(VENV).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        Path::new(&home).join(".cache/switchboard/venv")
    });
    let python = venv.join("bin/python");
    let installed = Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Some(python);
    }
    let test = current_test();
    let why = format!(
        "the standardwebhooks package is not installed in {} (run scripts/python-deps)",
        venv.display()
    );
    let required = std::env::var("SWITCHBOARD_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    assert!(!required, "{test}: {why}, and services are required (SWITCHBOARD_TEST_REQUIRE_SERVICES=1)");
    println!("SKIPPED {test}: {why}");
    if let Some(dir) = std::env::var_os("SWITCHBOARD_TEST_SKIPPED_DIR") {
        note_skipped(Path::new(&dir), &test);
    }
    None
}

/// The running test as nextest names it, as switchboard-testkit's
/// `services` module does (this crate stays free of the core crates).
fn current_test() -> String {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let binary = var("NEXTEST_BINARY_ID").or_else(|| var("CARGO_PKG_NAME")).unwrap_or_default();
    let name = var("NEXTEST_TEST_NAME")
        .or_else(|| std::thread::current().name().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!("{binary} {name}")
}

/// `<variable>\t<test>` in a file of its own, the line `scripts/test` counts.
fn note_skipped(dir: &Path, test: &str) {
    let file = dir.join(format!("{}-python-{}", std::process::id(), uuid_like()));
    if let Err(e) = std::fs::write(&file, format!("{VENV}\t{test}\n")) {
        eprintln!("cannot note the skip in {}: {e}", file.display());
    }
}

/// A name no other skipped test of this process uses.
fn uuid_like() -> String {
    message_id().trim_start_matches("msg_").to_owned()
}
