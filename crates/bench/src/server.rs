//! Runs the real `switchboard` binary the way a user would: a config file in a
//! fresh temporary directory, port 0, its stdout read for the bound address, and
//! SIGTERM (then a kill) at the end. It must not reach into the server's crates:
//! the benchmark sees only the process and its HTTP API (and, for memory, its
//! `/proc` entry). The binary is started through `sh` so its open-files limit
//! can be raised to the hard limit first (there is no libc here). `run`
//! starts this binary's relay (`relay.rs`) the same way beside it.

use crate::error::{Context, Result};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The line the server prints on stdout once it is bound.
const LISTENING: &str = "switchboard listening on ";
/// Long enough for migrations and key generation on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Graceful shutdown drains turns; past this the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The tenant every request names.
pub const TENANT: &str = "bench";
/// The Origin the load generator sends, as a widget in a browser would.
pub const ORIGIN: &str = "http://bench.localhost";
/// Environment variable naming the (unused) upstream API key.
const API_KEY_ENV: &str = "BENCH_OPENAI_API_KEY";

/// What one benchmark adds to the base config and environment. Lines are TOML
/// `key = value` pairs for their place: the top level, `[connections]`, and
/// the tenant.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub top: Vec<String>,
    pub connections: Vec<String>,
    pub tenant: Vec<String>,
    pub env: Vec<(String, String)>,
    pub keep_data: bool,
}

pub struct Server {
    child: Child,
    base_url: String,
    dir: PathBuf,
    /// Deleted on drop unless the user asked to keep it.
    temp: Option<tempfile::TempDir>,
    /// What the process prints before its URL once it is bound.
    listening: &'static str,
}

fn temp_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("switchboard-bench-").tempdir().context("creating a temp dir")
}

impl Server {
    /// Writes the config, starts the binary and waits for its listening line.
    pub async fn spawn(bin: &Path, upstream: SocketAddr, keep_data: bool) -> Result<Self> {
        Self::spawn_with(bin, upstream, &Setup { keep_data, ..Setup::default() }).await
    }

    /// `spawn` with a benchmark's additions to the config and environment.
    pub async fn spawn_with(bin: &Path, upstream: SocketAddr, setup: &Setup) -> Result<Self> {
        let temp = temp_dir()?;
        let config_path = temp.path().join("switchboard.toml");
        std::fs::write(&config_path, config(&temp.path().join("data"), upstream, setup)?)
            .context("writing the config")?;
        let args = ["serve".into(), "--config".into(), config_path.into_os_string()];
        Self::launch(bin, &args, LISTENING, temp, setup).await
    }

    /// The relay (`relay.rs`), this very binary, in place of `switchboard`.
    pub async fn spawn_relay(upstream: SocketAddr, keep_data: bool) -> Result<Self> {
        let bin = std::env::current_exe().context("finding this binary")?;
        let args = ["relay".into(), "--upstream".into(), format!("http://{upstream}/v1").into()];
        let setup = Setup { keep_data, ..Setup::default() };
        Self::launch(&bin, &args, crate::relay::LISTENING, temp_dir()?, &setup).await
    }

    /// Starts `bin args` in `temp` and waits for its line `listening` + URL.
    async fn launch(
        bin: &Path,
        args: &[OsString],
        listening: &'static str,
        temp: tempfile::TempDir,
        setup: &Setup,
    ) -> Result<Self> {
        let keep_data = setup.keep_data;
        let dir = temp.path().to_path_buf();
        let log = std::fs::File::create(dir.join("server.log")).context("creating the server log")?;

        // The child runs in the temp dir, so a relative path must be resolved here.
        let bin = std::fs::canonicalize(bin).context(&format!("finding {}", bin.display()))?;
        // `exec` keeps the pid, so `pid()` is the server's own.
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"ulimit -n "$(ulimit -H -n)" 2>/dev/null; exec "$0" "$@""#)
            .arg(&bin)
            .args(args)
            // A relative default (e.g. `./data`) then also lands in the temp dir.
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        // The run must not depend on whoever ran it: the file is the whole config,
        // and the server logs at its own defaults.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(&name);
            }
        }
        command.env_remove("RUST_LOG").env(API_KEY_ENV, "sk-bench");
        command.envs(setup.env.iter().map(|(k, v)| (k, v)));
        let child = command.spawn().context(&format!("starting {}", bin.display()))?;

        let mut server = Self { child, base_url: String::new(), dir, temp: Some(temp), listening };
        if keep_data {
            if let Some(temp) = server.temp.take() {
                let _ = temp.keep();
            }
        }
        match tokio::time::timeout(START_TIMEOUT, server.read_listening_line()).await {
            Ok(Ok(url)) => {
                server.base_url = url;
                Ok(server)
            }
            Ok(Err(e)) => Err(server.fail_start(e.to_string()).await),
            Err(_) => Err(server.fail_start(format!("no listening line within {START_TIMEOUT:?}")).await),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Reads stdout up to the listening line, then keeps draining it into a file
    /// so a chatty server never blocks on a full pipe.
    async fn read_listening_line(&mut self) -> Result<String> {
        let stdout = self.child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next_line().await.context("reading the server's stdout")?;
            let line = line.context("the server exited before printing its listening line")?;
            if let Some(at) = line.find(self.listening) {
                let url = line[at + self.listening.len()..].trim().trim_end_matches('/').to_owned();
                let out = self.dir.join("server.stdout.log");
                tokio::spawn(async move {
                    let Ok(mut file) = tokio::fs::File::create(out).await else { return };
                    let mut rest = lines.into_inner();
                    let _ = tokio::io::copy(&mut rest, &mut file).await;
                });
                return Ok(url);
            }
        }
    }

    async fn fail_start(&mut self, why: String) -> crate::error::Error {
        let _ = self.stop().await;
        self.print_log_tail(40);
        format!("switchboard did not start: {why}").into()
    }

    /// SIGTERM, a bounded wait, then SIGKILL. Safe to call more than once.
    pub async fn stop(&mut self) -> Result<()> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        if let Some(pid) = self.child.id() {
            // std has no SIGTERM; `kill` is everywhere the server runs.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the server")?;
                if !status.success() {
                    eprintln!("switchboard exited with {status} after SIGTERM");
                }
                Ok(())
            }
            Err(_) => {
                eprintln!("switchboard still running {STOP_TIMEOUT:?} after SIGTERM: killing it");
                self.child.kill().await.context("killing the server")
            }
        }
    }

    /// Startup warnings that change what was measured (a gate configured but not
    /// enforced yet), so the report never hides them.
    pub fn caveats(&self) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.dir.join("server.log")) else { return Vec::new() };
        text.lines().filter(|l| l.contains("not enforced")).map(strip_ansi).collect()
    }

    /// The end of the server's log, for a run that failed.
    pub fn print_log_tail(&self, lines: usize) {
        let Ok(text) = std::fs::read_to_string(self.dir.join("server.log")) else { return };
        let all: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of {} ---", self.dir.join("server.log").display());
        for line in &all[all.len().saturating_sub(lines)..] {
            eprintln!("{line}");
        }
    }
}

/// Drops terminal colour sequences (`ESC [ … letter`) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// The config of SPEC §17: one OpenAI-kind tenant on the fake upstream, SQLite
/// and encryption at their defaults. Rate limits and budgets are raised because
/// the load comes from one IP and one day; everything else stays default so the
/// measured path is the one users get.
fn config(data_dir: &Path, upstream: SocketAddr, setup: &Setup) -> Result<String> {
    let data_dir = data_dir.to_str().context("the temp dir path is not UTF-8")?;
    // A JSON string is a valid TOML basic string for any path.
    let data_dir = serde_json::to_string(data_dir).context("quoting the data dir")?;
    let lines = |l: &[String]| l.iter().map(|l| format!("{l}\n")).collect::<String>();
    let top = lines(&setup.top);
    let connections = if setup.connections.is_empty() {
        String::new()
    } else {
        format!("\n[connections]\n{}", lines(&setup.connections))
    };
    let tenant = lines(&setup.tenant);
    Ok(format!(
        r#"listen = "127.0.0.1:0"
data_dir = {data_dir}
{top}{connections}
[[tenants]]
id = "{TENANT}"
name = "Benchmark"
allowed_origins = ["{ORIGIN}"]
{tenant}
[tenants.provider]
kind = "openai"
base_url = "http://{upstream}/v1"
model = "bench"
api_key_env = "{API_KEY_ENV}"

[tenants.rate_limits]
ip = {{ limit = 100000000, window_secs = 60 }}
user = {{ limit = 100000000, window_secs = 60 }}
tenant = {{ limit = 100000000, window_secs = 60 }}

[tenants.budget]
daily_tokens = 4000000000
daily_cost_usd = 1000000.0
per_subject_daily_tokens = 4000000000
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_tenant_and_the_upstream() {
        let text =
            config(Path::new("/tmp/x \"y\"/data"), "127.0.0.1:4000".parse().unwrap(), &Setup::default())
                .unwrap();
        assert!(text.contains(r#"data_dir = "/tmp/x \"y\"/data""#));
        assert!(text.contains(r#"base_url = "http://127.0.0.1:4000/v1""#));
        assert!(text.contains(r#"id = "bench""#));
        assert!(!text.contains("[connections]"));
    }

    #[test]
    fn additions_land_in_their_tables() {
        let setup = Setup {
            top: vec!["heartbeat_secs = 1".into()],
            connections: vec!["max_total = 20000".into()],
            tenant: vec!["max_connections_per_subject = 200".into()],
            ..Setup::default()
        };
        let text = config(Path::new("/tmp/d"), "127.0.0.1:4000".parse().unwrap(), &setup).unwrap();
        let value: toml::Table = text.parse().unwrap();
        assert_eq!(value["heartbeat_secs"].as_integer(), Some(1));
        assert_eq!(value["connections"]["max_total"].as_integer(), Some(20000));
        let tenant = &value["tenants"].as_array().unwrap()[0];
        assert_eq!(tenant["max_connections_per_subject"].as_integer(), Some(200));
        assert_eq!(tenant["provider"]["kind"].as_str(), Some("openai"));
    }

    #[test]
    fn colour_codes_are_stripped_from_log_lines() {
        let line = "\u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m configured but not enforced";
        assert_eq!(strip_ansi(line), "2026  WARN configured but not enforced");
    }
}
