//! Outbound events (SPEC §19) on this node: the delivery worker that every
//! node runs ([`deliver`]) and its upkeep — the look for idle sessions
//! ([`idle`]), the hourly purge, the gauges — each a task of its own until
//! shutdown, so that a slow endpoint or a long look holds up nothing else.
//! The events themselves are written by the changes that cause them (see
//! `switchboard_core::outbound`).
//!
//! Events a node's own writes commit are leased to it in the same write
//! and handed to its worker, which tries them at once; the rest (retries,
//! held events resumed, other nodes' events) it finds by looking at the
//! outbox every half second.
//!
//! A node that stops mid-try leaves its leases; it ends them as it stops,
//! and when it starts again (after a kill), so they are due at once on any
//! node rather than when they run out (30 s): every event is sent at least
//! once.

pub mod deliver;
pub mod idle;

use crate::state::AppState;
use std::time::Duration;
use switchboard_core::store::outbox::Handoff;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Tries in flight at once on a node.
pub const IN_FLIGHT: usize = 64;
/// Events this node's writes hand to its worker that may wait for a slot;
/// beyond, an event is written unleased, for the next look.
const HANDED: usize = IN_FLIGHT * 4;
/// The wait after a look at the outbox that found fewer due than free slots.
pub const POLL: Duration = Duration::from_millis(500);
/// How long a node holds a delivery it tries.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the upkeep runs; each part has its own pace below.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the outbox's gauges are read again.
const GAUGES_EVERY: Duration = Duration::from_secs(15);
/// How often old deliveries are purged, and how long they are kept:
/// delivered ones a week, dead and gone ones a month (time to retry them).
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const KEEP_DELIVERED: chrono::Duration = chrono::Duration::days(7);
const KEEP_ENDED: chrono::Duration = chrono::Duration::days(30);
/// Rows one purge deletes at most, in one short transaction each.
const PURGE_BATCH: u32 = 1000;

/// Runs the worker and its upkeep until `stop`.
pub fn spawn(state: AppState, node: String, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        release(&state, &node).await;
        // Only now: the release above must not end a lease written since.
        let (tx, handed) = mpsc::channel(HANDED);
        state.store.hand_off_deliveries(Handoff { node: node.as_str().into(), lease: LEASE, tx });
        let upkeep = tokio::spawn(upkeep(state.clone(), stop.clone()));
        deliver::run(&state, &node, handed, &stop).await;
        let _ = upkeep.await;
        // The tries the stop cut: due again at once, on any node.
        release(&state, &node).await;
    })
}

async fn release(state: &AppState, node: &str) {
    match state.store.release_deliveries(node).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "deliveries this node was trying are due again"),
        Err(e) => tracing::warn!(error = %e, "cannot release this node's deliveries; their leases will end"),
    }
}

/// Idle sessions, the purge and the gauges, each at its own pace.
async fn upkeep(state: AppState, stop: CancellationToken) {
    let mut idle = idle::IdleChecks::default();
    let (mut gauges_at, mut purge_at) = (Instant::now(), Instant::now());
    loop {
        let round = async {
            idle.run_due(&state).await;
            if Instant::now() >= purge_at {
                purge(&state).await;
                purge_at = Instant::now() + PURGE_EVERY;
            }
            if Instant::now() >= gauges_at {
                deliver::refresh_gauges(&state).await;
                gauges_at = Instant::now() + GAUGES_EVERY;
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            () = round => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP_EVERY) => {}
        }
    }
}

/// Deletes the deliveries kept long enough, a batch at a time.
async fn purge(state: &AppState) {
    let now = state.clock.now();
    loop {
        match state.store.purge_deliveries(now - KEEP_DELIVERED, now - KEEP_ENDED, PURGE_BATCH).await {
            Ok(n) if n == u64::from(PURGE_BATCH) => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot purge old deliveries; will try again");
                return;
            }
        }
    }
}
