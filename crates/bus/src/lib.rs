//! Switchboard's bus: fan-out of session events and cluster-wide notices
//! (core's `Bus` port), and rate-limit counters shared across nodes (core's
//! `RateLimiter` port). `bus_url` picks the backend: empty for one process
//! (`LocalBus`, `LocalRateLimiter`), `redis://…` or `nats://…` for a cluster.
//!
//! A cluster URL may end in `?prefix=NAME` (default `switchboard`; 1 to 64
//! of `A-Z a-z 0-9 _ -`): every channel, subject, key and bucket of a
//! deployment starts with it, so several deployments, or tests, can share
//! one Redis or NATS. It is removed before the URL reaches the client
//! library; other query parameters are passed on.
//!
//! What goes where: Redis channels `{prefix}:s:{session_id}` and
//! `{prefix}:notice`, counters `{prefix}:rl:{tenant}:…`; NATS subjects
//! `{prefix}.s.{session_id}` and `{prefix}.notice`, counters in the
//! key-value bucket `{prefix}_ratelimit`.

mod cluster;
mod local;
mod nats_bus;
mod ratelimit;
mod redis_bus;
mod url;

pub use local::LocalBus;
pub use nats_bus::NatsBus;
pub use ratelimit::{NatsRateLimiter, RedisRateLimiter, NATS_MAX_WINDOW};
pub use redis_bus::RedisBus;
pub use url::DEFAULT_PREFIX;

use std::sync::Arc;
use switchboard_core::bus::{Bus, Notice};
use switchboard_core::ratelimit::{LocalRateLimiter, RateLimiter};
use switchboard_core::time::Clock;
use url::Scheme;

/// Why a bus or limiter could not be set up. Messages never hold passwords.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid bus_url: {0}")]
    InvalidUrl(String),
    #[error("cannot connect the bus: {0}")]
    Connect(String),
    /// A cluster node needs an id of its own to tell its frames from others'.
    #[error("a cluster bus needs a non-empty node_id")]
    MissingNodeId,
}

/// The bus `bus_url` names, connected and (for a cluster) subscribed.
/// `node_id` tells this node's frames from the others'; every node of a
/// cluster must have its own.
pub async fn connect(bus_url: &str, node_id: &str) -> Result<Arc<dyn Bus>, BusError> {
    if bus_url.is_empty() {
        return Ok(Arc::new(LocalBus::new()));
    }
    Ok(match url::parse(bus_url)?.scheme {
        Scheme::Redis => Arc::new(RedisBus::connect(bus_url, node_id).await?),
        Scheme::Nats => Arc::new(NatsBus::connect(bus_url, node_id).await?),
    })
}

/// Tells every node of the cluster `bus_url` names, from a short-lived
/// process (the CLI): connects, sends the notice, and returns once it has
/// left for the server. Without a cluster (`""`) there is nobody to tell.
pub async fn announce(bus_url: &str, notice: Notice) -> Result<(), BusError> {
    if bus_url.is_empty() {
        return Ok(());
    }
    let node = format!("announce-{}", uuid::Uuid::new_v4().simple());
    let sent = match url::parse(bus_url)?.scheme {
        Scheme::Redis => {
            let bus = RedisBus::connect(bus_url, &node).await?;
            bus.notify(notice);
            bus.flush(ANNOUNCE_WITHIN).await
        }
        Scheme::Nats => {
            let bus = NatsBus::connect(bus_url, &node).await?;
            bus.notify(notice);
            bus.flush(ANNOUNCE_WITHIN).await
        }
    };
    match sent {
        true => Ok(()),
        false => Err(BusError::Connect("the notice did not leave in time".into())),
    }
}

/// How long `announce` waits for its notice to leave.
const ANNOUNCE_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// The rate limiter `bus_url` names: in-process for an empty URL, otherwise
/// counters shared through the same Redis or NATS (and prefix) as the bus.
pub async fn connect_limiter(bus_url: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn RateLimiter>, BusError> {
    if bus_url.is_empty() {
        return Ok(Arc::new(LocalRateLimiter::new(clock)));
    }
    Ok(match url::parse(bus_url)?.scheme {
        Scheme::Redis => Arc::new(RedisRateLimiter::connect(bus_url, clock).await?),
        Scheme::Nats => Arc::new(NatsRateLimiter::connect(bus_url, clock).await?),
    })
}
