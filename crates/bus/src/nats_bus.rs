//! `NatsBus`: the cluster bus over core NATS. Events go to subject
//! `{prefix}.s.{session_id}`, notices to `{prefix}.notice`; each node listens
//! with one wildcard subscription `{prefix}.s.*` (see `cluster` for why).
//!
//! The NATS client reconnects by itself, with backoff, and renews the
//! subscriptions; this module only logs the outage once when it starts and
//! once when it ends. Frames published while the link is down wait in the
//! client's buffer until it is full, then are dropped (at most once).

use crate::cluster::{Backoff, ClusterBus, Inbox, Link, Names, Outbound, Topic, Wiring};
use crate::url::{self, ClusterUrl};
use crate::BusError;
use async_nats::{Client, ConnectOptions, Event, PublishErrorKind, RequestErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long connecting (and each JetStream request) may take.
pub(crate) const NATS_TIMEOUT: Duration = Duration::from_secs(2);

pub struct NatsBus {
    inner: ClusterBus,
}

impl NatsBus {
    /// Connects to the NATS of `bus_url` (`nats://…[?prefix=NAME]`) and
    /// returns once the server has confirmed this node's subscriptions.
    pub async fn connect(bus_url: &str, node_id: &str) -> Result<Self, BusError> {
        ClusterBus::check_node_id(node_id)?;
        let url = url::parse(bus_url)?;
        let client = connect_client(&url, "NATS bus connection").await?;
        let fail =
            |e: &dyn std::fmt::Display| BusError::Connect(format!("NATS at {}: {e}", url::redact(bus_url)));
        let subjects = Names::new(&url.prefix, '.');
        let events = client.subscribe(subjects.all_sessions()).await.map_err(|e| fail(&e))?;
        let notices = client.subscribe(subjects.of(Topic::Notice)).await.map_err(|e| fail(&e))?;
        round_trip(&client, &subjects).await.map_err(|e| fail(&e))?;

        let (inner, Wiring { inbox, outbox, stop }) = ClusterBus::new(node_id, "nats");
        tokio::spawn(send_loop(client, outbox, node_id.into(), subjects));
        tokio::spawn(receive_loop(events, notices, inbox, stop));
        Ok(Self { inner })
    }
}

crate::cluster::backed_by_cluster!(NatsBus);

/// Returns once the server has processed everything this client sent
/// before, subscriptions included, so a frame published from then on reaches
/// this node. (`flush` only empties the client's write buffer.) A request
/// nobody answers makes the round trip: "no responders" is the answer.
async fn round_trip(client: &Client, subjects: &Names) -> Result<(), async_nats::RequestError> {
    match client.request(subjects.named("sync"), Bytes::new()).await {
        Err(e) if e.kind() != RequestErrorKind::NoResponders => Err(e),
        _ => Ok(()),
    }
}

/// A client that logs its outages once each way, reconnecting forever with
/// our backoff.
pub(crate) async fn connect_client(url: &ClusterUrl, what: &'static str) -> Result<Client, BusError> {
    let link = Arc::new(Mutex::new(Link::new(what, "nats")));
    let backoff = Arc::new(Mutex::new(Backoff::new()));
    let options = ConnectOptions::new()
        .connection_timeout(NATS_TIMEOUT)
        .request_timeout(Some(NATS_TIMEOUT))
        .reconnect_delay_callback(move |attempt| {
            let mut backoff = backoff.lock().unwrap_or_else(PoisonError::into_inner);
            if attempt <= 1 {
                backoff.reset();
            }
            backoff.step()
        })
        .event_callback(move |event| {
            let link = link.clone();
            async move {
                let mut link = link.lock().unwrap_or_else(PoisonError::into_inner);
                match event {
                    Event::Disconnected => {
                        link.failed(&"disconnected");
                    }
                    Event::Connected => {
                        link.working();
                    }
                    other => tracing::debug!(event = %other, "bus: NATS client event"),
                }
            }
        });
    options
        .connect(url.client_url.as_str())
        .await
        .map_err(|e| BusError::Connect(format!("NATS at {}: {e}", url::redact(&url.client_url))))
}

/// Publishes frames in publication order. Ends when the bus is dropped.
async fn send_loop(client: Client, mut outbox: mpsc::Receiver<Outbound>, node: Arc<str>, subjects: Names) {
    while let Some(out) = outbox.recv().await {
        let (topic, payload) = match out.encode(&node) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                if let Outbound::Flush(done) = out {
                    // Everything published before is written to the server.
                    if client.flush().await.is_ok() {
                        let _ = done.send(());
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "bus: could not encode a frame");
                continue;
            }
        };
        // The client queues the frame and writes it in the background; an
        // error here is about this frame, not the link (which the client's
        // events report).
        if let Err(e) = client.publish(subjects.of(topic), payload.into()).await {
            match e.kind() {
                PublishErrorKind::MaxPayloadExceeded => {
                    tracing::warn!(error = %e, "bus: a frame exceeds the NATS server's max_payload; dropped");
                }
                _ => tracing::debug!(error = %e, "bus: could not publish a frame"),
            }
        }
    }
}

/// Routes frames from both subscriptions to local subscribers until the bus
/// is dropped (the client renews the subscriptions across reconnects).
async fn receive_loop(
    mut events: async_nats::Subscriber,
    mut notices: async_nats::Subscriber,
    inbox: Inbox,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            msg = events.next() => match msg {
                Some(msg) => inbox.event_frame(&msg.payload),
                None => return,
            },
            msg = notices.next() => match msg {
                Some(msg) => inbox.notice_frame(&msg.payload),
                None => return,
            },
        }
    }
}
