//! `TestApp`: the real `switchboard` binary on port 0 with a temporary data
//! directory, driven over HTTP like a user would. The child is killed on drop;
//! when a test panics, the tail of the server's log is printed.

use super::config::AppConfig;
use super::fake_openai::FAKE_API_KEY;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a fresh process may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the running process.
    pub base_url: String,
    pub client: reqwest::Client,
    pub config: AppConfig,
    dir: TempDir,
    child: Option<Child>,
    starts: u32,
}

impl TestApp {
    /// Writes the config and starts the server; panics if it does not come up.
    pub async fn start(config: AppConfig) -> Self {
        let dir = tempfile::Builder::new().prefix("switchboard-test-").tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        // The built-in demo tenant is browser-only: speak as its own page.
        let mut headers = reqwest::header::HeaderMap::new();
        if config.tenants.is_empty() {
            headers.insert("origin", reqwest::header::HeaderValue::from_static("http://127.0.0.1:8080"));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let mut app = Self { base_url: String::new(), client, config, dir, child: None, starts: 0 };
        app.write_config();
        app.spawn().await;
        app
    }

    /// A client-only handle on a server this test does not run (a load
    /// balancer in front of nodes, say): every request helper speaks to
    /// `base_url` through `client`; there is no process to kill and no log.
    pub fn remote(base_url: &str, client: reqwest::Client) -> Self {
        let dir = tempfile::Builder::new().prefix("switchboard-remote-").tempdir().expect("tempdir");
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self { base_url, client, config: AppConfig::new(), dir, child: None, starts: 0 }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn write_config(&self) {
        let data = self.data_dir();
        let text = self.config.render(&data.to_string_lossy());
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// The command line that starts the server on this app's config.
    pub fn command(config_path: &Path, log: std::fs::File) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("serve").arg("--config").arg(config_path);
        for (key, _) in std::env::vars() {
            if key.starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("SWITCHBOARD_TEST_FAKE_API_KEY", FAKE_API_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        cmd
    }

    async fn spawn(&mut self) {
        self.starts += 1;
        let mut log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        use std::io::Write;
        let _ = writeln!(log, "===== test harness: start #{} =====", self.starts);
        let mut command = Self::command(&self.config_path(), log);
        command.envs(self.config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = command.spawn().expect("spawn switchboard");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("switchboard listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_owned());
                    }
                } else {
                    eprintln!("[switchboard stdout] {line}");
                }
            }
        });
        let url = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                let status = child.wait().await;
                panic!("switchboard exited before listening ({status:?}); log:\n{}", self.log());
            }
            Err(_) => panic!(
                "switchboard did not print its listening line within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            ),
        };
        assert!(url.starts_with("http://127.0.0.1:"), "unexpected listening line: {url}");
        self.base_url = url.trim_end_matches('/').to_owned();
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    /// SIGTERM; waits at most `within` for the exit. Returns the status and how
    /// long the exit took; panics (after a SIGKILL) if it did not exit in time.
    pub async fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        self.signal("-TERM", within).await
    }

    /// Like [`Self::terminate`], with SIGINT.
    pub async fn interrupt(&mut self, within: Duration) -> (ExitStatus, Duration) {
        self.signal("-INT", within).await
    }

    async fn signal(&mut self, signal: &str, within: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("the server is not running");
        let pid = child.id().expect("the server already exited");
        let started = Instant::now();
        let sent = std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status();
        assert!(sent.map(|s| s.success()).unwrap_or(false), "could not send {signal} to {pid}");
        match tokio::time::timeout(within, child.wait()).await {
            Ok(Ok(status)) => (status, started.elapsed()),
            Ok(Err(e)) => panic!("waiting for the server failed: {e}"),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                panic!("the server did not exit within {within:?} of {signal}; log:\n{}", self.log());
            }
        }
    }

    /// Starts the server again on the same config and data directory (killing
    /// the running one first, if any). The port changes.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.write_config();
        self.spawn().await;
    }

    /// Every file under the data directory, recursively.
    pub fn data_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir(), &mut out);
        out
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() && self.starts > 0 {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(150)..].join("\n");
            eprintln!("----- switchboard log (last {} lines) -----\n{tail}\n-----", lines.len().min(150));
        }
    }
}
