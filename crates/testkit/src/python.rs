//! The official Standard Webhooks library for Python, for tests that check
//! what the server signs (SPEC §16, §19) the way a tenant's backend would.
//! It lives in the venv `scripts/python-deps` fills (`SWITCHBOARD_PYTHON_VENV`,
//! default `~/.cache/switchboard/venv`); without it a test is skipped like
//! one whose service is missing (and fails when services are required).

use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const VENV: &str = "SWITCHBOARD_PYTHON_VENV";

/// The venv's Python when it has the library; `None` (the test is noted as
/// skipped and should return) otherwise.
///
/// # Panics
///
/// When the library is missing and `SWITCHBOARD_TEST_REQUIRE_SERVICES=1`.
pub fn official_library() -> Option<PathBuf> {
    let venv = std::env::var_os(VENV).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/switchboard/venv")
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
    crate::services::skip(VENV, "the standardwebhooks package is not installed (run scripts/python-deps)");
    None
}

/// Runs the tools crate's `tests/python/interop.py` with `request` on stdin
/// (`{"op": "verify", "secrets", "headers", "body"}` or `{"op": "sign", …}`)
/// and returns its JSON answer, or why it could not.
pub fn run(python: &Path, request: &Value) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/tests/python/interop.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run interop.py: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("interop.py has no stdin")?;
    stdin.write_all(request.to_string().as_bytes()).map_err(|e| format!("writing to interop.py: {e}"))?;
    drop(stdin);
    let output = child.wait_with_output().map_err(|e| format!("waiting for interop.py: {e}"))?;
    if !output.status.success() {
        return Err(format!("interop.py failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("interop.py's answer: {e}"))
}
