//! `RedisBus`: the cluster bus over Redis pub/sub. Events go to channel
//! `{prefix}:s:{session_id}`, notices to `{prefix}:notice`; each node listens
//! with one `PSUBSCRIBE {prefix}:s:*` (see `cluster` for why) on a dedicated
//! connection, and publishes from one sender task over a second one.
//!
//! Both connections come back on their own after an outage: the publishing
//! one through redis' `ConnectionManager`, the subscribing one through the
//! loop below, which also pings so that a silently dead link is noticed.
//! Frames published while a link is down are lost (at most once).

use crate::cluster::{Backoff, ClusterBus, Inbox, Link, Names, Outbound, Topic, Wiring};
use crate::url::{self, ClusterUrl};
use crate::BusError;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long connecting (and each command) may take before it counts as failed.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscribing connection proves it is alive.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Frames sent in one pipeline: a burst of deltas costs one round trip.
const BATCH: usize = 256;

pub struct RedisBus {
    inner: ClusterBus,
}

/// Channel names of one prefix.
impl RedisBus {
    /// Connects to the Redis of `bus_url` (`redis://…[?prefix=NAME]`) and
    /// returns once this node's subscription is confirmed by the server.
    pub async fn connect(bus_url: &str, node_id: &str) -> Result<Self, BusError> {
        ClusterBus::check_node_id(node_id)?;
        let url = url::parse(bus_url)?;
        let client = open_client(&url)?;
        let fail =
            |e: redis::RedisError| BusError::Connect(format!("Redis at {}: {e}", url::redact(bus_url)));
        let publisher = client.get_connection_manager_with_config(manager_config()).await.map_err(fail)?;
        let channels = Names::new(&url.prefix, ':');
        let subscription = subscribe(&client, &channels).await.map_err(fail)?;

        let (inner, Wiring { inbox, outbox, stop }) = ClusterBus::new(node_id, "redis");
        let node: Arc<str> = node_id.into();
        tokio::spawn(send_loop(publisher, outbox, node, channels.clone()));
        tokio::spawn(receive_loop(client, subscription, inbox, channels, stop));
        Ok(Self { inner })
    }
}

crate::cluster::backed_by_cluster!(RedisBus);

pub(crate) fn open_client(url: &ClusterUrl) -> Result<redis::Client, BusError> {
    // The client's own message may quote the URL; ours names it redacted.
    redis::Client::open(url.client_url.as_str())
        .map_err(|_| BusError::InvalidUrl(format!("not a valid Redis URL: {}", url::redact(&url.client_url))))
}

/// Few retries per (re)connection, so that starting against an unreachable
/// Redis fails within a second or so; after an outage the next command
/// starts another round, paced by the caller.
pub(crate) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(2)
}

/// A connection subscribed to every session of the prefix and to notices;
/// returns once Redis has confirmed both.
async fn subscribe(client: &redis::Client, channels: &Names) -> redis::RedisResult<PubSub> {
    let work = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(channels.all_sessions()).await?;
        pubsub.subscribe(channels.of(Topic::Notice)).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(REDIS_TIMEOUT, work).await.unwrap_or_else(|_| Err(timed_out()))
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
}

/// Publishes frames in publication order, a queued burst per pipeline. Ends
/// when the bus is dropped (the queue closes).
async fn send_loop(
    mut conn: ConnectionManager,
    mut outbox: mpsc::Receiver<Outbound>,
    node: Arc<str>,
    channels: Names,
) {
    let mut link = Link::new("Redis publishing connection", "redis");
    let mut backoff = Backoff::new();
    let mut batch = Vec::with_capacity(BATCH);
    // Whether the last batch sent reached the server.
    let mut delivered = true;
    while outbox.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut flushes = Vec::new();
        for out in batch.drain(..) {
            match out.encode(&node) {
                Ok(Some((topic, payload))) => {
                    pipe.publish(channels.of(topic), payload).ignore();
                }
                Ok(None) => {
                    if let Outbound::Flush(done) = out {
                        flushes.push(done);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "bus: could not encode a frame"),
            }
        }
        // A batch of flushes alone sends nothing (an empty pipeline is not
        // a request Redis answers): they wait only for the batches before,
        // whose outcome is known.
        if !pipe.is_empty() {
            // A failed batch is dropped, not retried: by the time the link is
            // back its frames are stale, and subscribers recover from state.
            match pipe.exec_async(&mut conn).await {
                Ok(()) => {
                    delivered = true;
                    link.working();
                    backoff.reset();
                }
                Err(e) => {
                    delivered = false;
                    link.failed(&e);
                    // Each batch would start a reconnection: pace them. Frames
                    // meanwhile wait in the queue, or are dropped once it is full.
                    tokio::time::sleep(backoff.step()).await;
                }
            }
        }
        if delivered {
            // The frames before each flush are with the server now.
            for done in flushes {
                let _ = done.send(());
            }
        }
    }
}

/// Routes frames from the subscription to local subscribers; on a lost
/// link, subscribes again with backoff until it works or the bus is dropped.
async fn receive_loop(
    client: redis::Client,
    first: PubSub,
    inbox: Inbox,
    channels: Names,
    stop: CancellationToken,
) {
    let mut link = Link::new("Redis subscription", "redis");
    let mut backoff = Backoff::new();
    let mut pubsub = Some(first);
    let notice_channel = channels.of(Topic::Notice);
    loop {
        let connection = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&client, &channels).await {
                Ok(p) => {
                    link.working();
                    backoff.reset();
                    p
                }
                Err(e) => {
                    link.failed(&e);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff.step()) => continue,
                    }
                }
            },
        };
        let (mut sink, mut stream) = connection.split();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let lost = loop {
            tokio::select! {
                () = stop.cancelled() => return,
                msg = stream.next() => match msg {
                    Some(msg) if msg.get_channel_name() == notice_channel => {
                        inbox.notice_frame(msg.get_payload_bytes());
                    }
                    Some(msg) => inbox.event_frame(msg.get_payload_bytes()),
                    None => break "connection closed".to_owned(),
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await;
                    match pong {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break "ping timed out".to_owned(),
                    }
                }
            }
        };
        link.failed(&lost);
    }
}
