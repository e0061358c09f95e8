//! Runs the `switchboard` binary's other subcommands (`tenant …`) the way an
//! operator would, against a config file, with a bounded wait.

use super::app::TestApp;
use super::fake_openai::FAKE_API_KEY;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// How long one CLI invocation may take (it opens and migrates the database).
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// What a CLI run printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics unless the run exited 0; returns stdout.
    pub fn expect_ok(&self, what: &str) -> &str {
        assert!(self.ok(), "{what}: exit {:?}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr);
        &self.stdout
    }

    /// Panics unless the run failed with `needle` on stderr.
    pub fn expect_err(&self, what: &str, needle: &str) {
        assert!(!self.ok(), "{what}: expected a failure, got exit 0\nstdout: {}", self.stdout);
        assert!(self.stderr.contains(needle), "{what}: stderr lacks {needle:?}: {}", self.stderr);
    }
}

/// `switchboard <args> --config <config>` with `envs` added to a clean
/// environment (no inherited `SWITCHBOARD_*` variables).
pub async fn run_cli(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args).arg("--config").arg(config);
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHBOARD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("SWITCHBOARD_TEST_FAKE_API_KEY", FAKE_API_KEY)
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("switchboard {args:?} did not exit within {CLI_TIMEOUT:?}"))
        .expect("run switchboard");
    CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl TestApp {
    /// Runs the CLI against this app's config and database.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        run_cli(&self.config_path(), args, &[]).await
    }
}
