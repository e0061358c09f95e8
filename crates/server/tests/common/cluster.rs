//! Two real server processes as one cluster (SPEC §15): one fresh PostgreSQL
//! database, one Redis or NATS under a prefix of their own, the same
//! encryption and signing keys, the same tenants, and a node id each.
//!
//! Services come from `SWITCHBOARD_TEST_POSTGRES_URL` and
//! `SWITCHBOARD_TEST_REDIS_URL` / `SWITCHBOARD_TEST_NATS_URL`; without them a
//! test is skipped and noted (`switchboard_testkit::services`), unless
//! `SWITCHBOARD_TEST_REQUIRE_SERVICES=1`.
//! The database is dropped and the bus prefix's keys (Redis) or rate-limit
//! bucket (NATS) deleted afterwards, also when a test panics.
//!
//! Included with `#[path]` by the tests that use it (it is not part of
//! `common`'s module list, so other test binaries do not compile it).

use crate::common::cli::{run_cli, CliOutput};
use crate::common::postgres::TestDatabase;
use crate::common::{AppConfig, TenantSpec, TestApp};
use base64::Engine;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use switchboard_testkit::services;

/// The cluster backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redis,
    Nats,
}

impl Backend {
    /// The service URL, or `None` (the test is noted as skipped) when it is
    /// not configured and services are not required.
    pub fn service_url(self) -> Option<String> {
        services::service_url(match self {
            Backend::Redis => services::REDIS,
            Backend::Nats => services::NATS,
        })
    }
}

/// `url` with `prefix=…` added to its query (and a `/` path when it has none),
/// e.g. `redis://127.0.0.1:6379/?prefix=sb1234`.
pub fn with_prefix(url: &str, prefix: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_owned(), Some(q)),
        None => (url.to_owned(), None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = if base[after_scheme..].contains('/') { base } else { format!("{base}/") };
    match query {
        Some(q) if !q.is_empty() => format!("{base}?{q}&prefix={prefix}"),
        _ => format!("{base}?prefix={prefix}"),
    }
}

/// `kid:base64(32 random bytes)`.
fn random_key(kid: &str) -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("{kid}:{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// What every node shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub database_url: String,
    pub bus_url: String,
    pub prefix: String,
    pub encryption_keys: String,
    pub signing_key: String,
}

impl Shared {
    /// The config of node `name`: shared database, bus and keys, these
    /// tenants, and `node_id = "<name>-<prefix>"`.
    pub fn node_config(&self, name: &str, tenants: &[TenantSpec]) -> AppConfig {
        let mut config = AppConfig::new()
            .database_url(&self.database_url)
            .raw(&format!("bus_url = \"{}\"", self.bus_url))
            .raw(&format!("node_id = \"{name}-{}\"", self.prefix))
            .env("SWITCHBOARD_ENCRYPTION_KEYS", &self.encryption_keys)
            .env("SWITCHBOARD_SIGNING_KEY", &self.signing_key);
        for t in tenants {
            config = config.tenant(t.clone());
        }
        config
    }

    /// The secrets every process of the cluster (CLI included) is given.
    pub fn secret_env(&self) -> [(&str, &str); 2] {
        [
            ("SWITCHBOARD_ENCRYPTION_KEYS", self.encryption_keys.as_str()),
            ("SWITCHBOARD_SIGNING_KEY", self.signing_key.as_str()),
        ]
    }
}

/// Two nodes of one cluster. Fields drop in order: the nodes are killed
/// before the bus prefix is cleaned and the database dropped.
pub struct Cluster {
    pub a: TestApp,
    pub b: TestApp,
    pub shared: Shared,
    cleanup: BusCleanup,
    db: Option<TestDatabase>,
}

impl Cluster {
    /// Starts node `a`, then node `b` (one after the other, so they do not
    /// race on the fresh database's migrations). `None` when a service is
    /// not configured (the test is skipped).
    pub async fn start(test: &str, backend: Backend, tenants: &[TenantSpec]) -> Option<Self> {
        let service = backend.service_url()?;
        let db = TestDatabase::create(test).await?;
        let prefix = format!("sb{}", uuid::Uuid::new_v4().simple());
        let shared = Shared {
            database_url: db.url.clone(),
            bus_url: with_prefix(&service, &prefix),
            prefix: prefix.clone(),
            encryption_keys: random_key("k1"),
            signing_key: random_key("s1"),
        };
        let cleanup = BusCleanup { backend, service, prefix };
        let a = TestApp::start(shared.node_config("a", tenants)).await;
        let b = TestApp::start(shared.node_config("b", tenants)).await;
        Some(Self { a, b, shared, cleanup, db: Some(db) })
    }

    /// Runs the CLI against node `a`'s config (the shared database), with the
    /// cluster's secrets.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        run_cli(&self.a.config_path(), args, &self.shared.secret_env()).await
    }

    /// Stops both nodes, then drops the database and the bus prefix's state.
    pub async fn shutdown(mut self) {
        self.a.kill().await;
        self.b.kill().await;
        self.cleanup.run();
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}

/// Deletes what a prefix left in the bus service: Redis keys `{prefix}:*`
/// (rate-limit counters, which would expire anyway) or the NATS key-value
/// bucket `{prefix}_ratelimit`. Best effort, over the plain wire protocols.
struct BusCleanup {
    backend: Backend,
    service: String,
    prefix: String,
}

impl BusCleanup {
    fn run(&mut self) {
        if self.prefix.is_empty() {
            return;
        }
        let prefix = std::mem::take(&mut self.prefix);
        let Some(addr) = host_port(&self.service) else { return };
        let Ok(mut conn) = TcpStream::connect(&addr) else { return };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
        match self.backend {
            Backend::Redis => redis_delete_prefix(&mut conn, &prefix),
            Backend::Nats => nats_delete_bucket(&mut conn, &format!("{prefix}_ratelimit")),
        }
    }
}

impl Drop for BusCleanup {
    fn drop(&mut self) {
        self.run();
    }
}

/// `host:port` of a `scheme://[user[:pass]@]host:port[/…][?…]` URL.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then(|| host.to_owned())
}

fn redis_delete_prefix(conn: &mut TcpStream, prefix: &str) {
    let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  redis.call('DEL', k) n = n + 1 end return n";
    let pattern = format!("{prefix}:*");
    let args = ["EVAL", script, "0", pattern.as_str()];
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    if conn.write_all(cmd.as_bytes()).is_ok() {
        let mut buf = [0u8; 256];
        let _ = conn.read(&mut buf);
    }
}

fn nats_delete_bucket(conn: &mut TcpStream, bucket: &str) {
    let inbox = format!("_INBOX.{}", uuid::Uuid::new_v4().simple());
    let cmd = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {inbox} 1\r\n\
         PUB $JS.API.STREAM.DELETE.KV_{bucket} {inbox} 0\r\n\r\nPING\r\n"
    );
    if conn.write_all(cmd.as_bytes()).is_err() {
        return;
    }
    // Wait (briefly) for JetStream's reply, so the request is not cut short.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline && !seen.windows(4).any(|w| w == b"MSG ") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}
