//! The backends the conformance suite runs against: in-process, Redis
//! (`SWITCHBOARD_TEST_REDIS_URL`) and NATS (`SWITCHBOARD_TEST_NATS_URL`). Each
//! harness has its own prefix, so tests never see each other's traffic or
//! counters; the NATS key-value buckets a test made are deleted with it.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod proxy;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_bus::{LocalBus, NatsBus, RedisBus};
use switchboard_core::bus::{Bus, EventReceiver, Notice, NoticeReceiver};
use switchboard_core::events::SessionEvent;
use switchboard_core::ratelimit::{LocalRateLimiter, RateLimiter};
use switchboard_core::time::Clock;
use switchboard_testkit::services::{self, service_url};

/// How long a test waits for something that should arrive.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Local,
    Redis,
    Nats,
}

pub struct Harness {
    pub kind: Kind,
    /// The service's URL, without a prefix (empty for in-process).
    pub url: String,
    pub prefix: String,
    /// Prefixes whose NATS buckets to delete at the end.
    used: Mutex<Vec<String>>,
}

pub fn fresh_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

impl Harness {
    pub fn local() -> Self {
        Self::new(Kind::Local, String::new())
    }

    pub fn redis() -> Option<Self> {
        service_url(services::REDIS).map(|url| Self::new(Kind::Redis, url))
    }

    pub fn nats() -> Option<Self> {
        service_url(services::NATS).map(|url| Self::new(Kind::Nats, url))
    }

    fn new(kind: Kind, url: String) -> Self {
        Self { kind, url, prefix: fresh_prefix(), used: Mutex::default() }
    }

    pub fn is_local(&self) -> bool {
        self.kind == Kind::Local
    }

    /// Says why a case does not apply to the in-process bus and returns true.
    pub fn skip_local(&self, why: &str) -> bool {
        if self.is_local() {
            println!("skipped for the in-process bus: {why}");
        }
        self.is_local()
    }

    /// The bus URL of `prefix` on this harness's service (through `via`, a
    /// host:port standing in for the service's, when given).
    pub fn url_for(&self, prefix: &str, via: Option<&str>) -> String {
        let base = match via {
            Some(addr) => {
                let (scheme, rest) = self.url.split_once("://").unwrap();
                let host_end = rest.find('/').unwrap_or(rest.len());
                format!("{scheme}://{addr}{}", &rest[host_end..])
            }
            None => self.url.clone(),
        };
        format!("{base}?prefix={prefix}")
    }

    /// The service's host:port.
    pub fn address(&self) -> String {
        let rest = self.url.split_once("://").unwrap().1;
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        rest[..rest.find('/').unwrap_or(rest.len())].to_owned()
    }

    /// A node of this harness's cluster.
    pub async fn node(&self, node_id: &str) -> Node {
        self.node_on(&self.prefix, node_id, None).await
    }

    /// A node of the cluster of `prefix`, connected through `via` if given.
    pub async fn node_on(&self, prefix: &str, node_id: &str, via: Option<&str>) -> Node {
        match self.kind {
            Kind::Local => Node::Local(Arc::new(LocalBus::new())),
            Kind::Redis => {
                Node::Redis(Arc::new(RedisBus::connect(&self.url_for(prefix, via), node_id).await.unwrap()))
            }
            Kind::Nats => {
                Node::Nats(Arc::new(NatsBus::connect(&self.url_for(prefix, via), node_id).await.unwrap()))
            }
        }
    }

    /// A rate limiter of this harness's cluster (a new connection each time).
    pub async fn limiter(&self, clock: Arc<dyn Clock>) -> Arc<dyn RateLimiter> {
        if self.is_local() {
            return Arc::new(LocalRateLimiter::new(clock));
        }
        self.used.lock().unwrap().push(self.prefix.clone());
        switchboard_bus::connect_limiter(&self.url_for(&self.prefix, None), clock).await.unwrap()
    }
}

impl Drop for Harness {
    /// Deletes the counters (Redis keys, NATS buckets) the test made, on a
    /// thread of its own since a destructor cannot await.
    fn drop(&mut self) {
        let prefixes = std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()));
        if prefixes.is_empty() {
            return;
        }
        let (kind, url) = (self.kind, self.url.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                for prefix in prefixes {
                    match kind {
                        Kind::Nats => delete_bucket(&url, &prefix).await,
                        Kind::Redis => delete_keys(&url, &prefix).await,
                        Kind::Local => {}
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn delete_bucket(url: &str, prefix: &str) {
    let client = async_nats::connect(url).await.unwrap();
    let _ = async_nats::jetstream::new(client).delete_key_value(format!("{prefix}_ratelimit")).await;
}

async fn delete_keys(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

/// One node's bus, with its backend's extras.
#[derive(Clone)]
pub enum Node {
    Local(Arc<LocalBus>),
    Redis(Arc<RedisBus>),
    Nats(Arc<NatsBus>),
}

impl Node {
    pub fn bus(&self) -> Arc<dyn Bus> {
        match self {
            Self::Local(b) => b.clone(),
            Self::Redis(b) => b.clone(),
            Self::Nats(b) => b.clone(),
        }
    }

    pub fn topic_count(&self) -> usize {
        match self {
            Self::Local(b) => b.topic_count(),
            Self::Redis(b) => b.topic_count(),
            Self::Nats(b) => b.topic_count(),
        }
    }

    pub fn publish(&self, session_id: uuid::Uuid, event: SessionEvent) {
        self.bus().publish(session_id, Arc::new(event));
    }

    pub fn subscribe(&self, session_id: uuid::Uuid) -> EventReceiver {
        self.bus().subscribe(session_id)
    }

    pub fn notify(&self, notice: Notice) {
        self.bus().notify(notice);
    }

    pub fn notices(&self) -> NoticeReceiver {
        self.bus().notices()
    }
}

/// The next event, or a failure after `PATIENCE`.
pub async fn next_event(rx: &mut EventReceiver) -> SessionEvent {
    let event = tokio::time::timeout(PATIENCE, rx.recv()).await.expect("no event in time");
    (*event.expect("the channel closed or lagged")).clone()
}

pub async fn next_notice(rx: &mut NoticeReceiver) -> Notice {
    tokio::time::timeout(PATIENCE, rx.recv()).await.expect("no notice in time").expect("lagged")
}

/// A recognisable event: a delta whose offset numbers it.
pub fn delta(turn_id: uuid::Uuid, n: u64) -> SessionEvent {
    SessionEvent::StreamDelta { turn_id, seq: 7, revision: 1, offset: n, text: format!("part {n} · ü") }
}

/// A marker that proves everything published before it on the same path
/// has arrived.
pub fn marker(n: i64) -> SessionEvent {
    SessionEvent::ResumeCursor { last_event_id: n, latest_seq: n }
}
