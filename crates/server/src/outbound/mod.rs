//! Outbound events (SPEC §19) on this node: the delivery worker that every
//! node runs ([`deliver`]) and the look for idle sessions ([`idle`]), one
//! background task until shutdown. The events themselves are written by
//! the changes that cause them (see `switchboard_core::outbound`).
//!
//! A round leases up to [`BATCH`] due deliveries, tries them all at once,
//! and settles each; a full batch is followed at once by the next, else the
//! task waits [`POLL`] (so an event is sent within about that long of its
//! commit, on whichever node leases it first). A node that stops mid-try
//! leaves its leases to end (30 s) or, when it starts again, ends them at
//! once: every event is sent at least once. Once an hour the node also
//! deletes deliveries kept long enough (delivered a week ago; dead or gone
//! for a month).

pub mod deliver;
pub mod idle;

use crate::state::AppState;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Deliveries leased and tried at once.
pub const BATCH: u32 = 64;
/// The wait after a round that found fewer than [`BATCH`] due.
pub const POLL: Duration = Duration::from_millis(500);
/// How long a node holds a delivery it tries.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the outbox's gauges are read again.
const GAUGES_EVERY: Duration = Duration::from_secs(15);
/// How often old deliveries are purged, and how long they are kept:
/// delivered ones a week, dead and gone ones a month (time to retry them).
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const KEEP_DELIVERED: chrono::Duration = chrono::Duration::days(7);
const KEEP_ENDED: chrono::Duration = chrono::Duration::days(30);
/// Rows one purge deletes at most, in one short transaction each.
const PURGE_BATCH: u32 = 1000;

/// Runs the worker until `stop`. A try cut by the stop is tried again.
pub fn spawn(state: AppState, node: String, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match state.store.release_deliveries(&node).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(released = n, "deliveries this node was trying when it stopped are due again")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot release this node's deliveries; their leases will end")
            }
        }
        let mut idle = idle::IdleChecks::default();
        let mut gauges_at = Instant::now();
        let mut purge_at = Instant::now();
        loop {
            let round = async {
                let tried = deliver::round(&state, &node).await;
                idle.run_due(&state).await;
                if Instant::now() >= purge_at {
                    purge(&state).await;
                    purge_at = Instant::now() + PURGE_EVERY;
                }
                if Instant::now() >= gauges_at {
                    deliver::refresh_gauges(&state).await;
                    gauges_at = Instant::now() + GAUGES_EVERY;
                }
                tried
            };
            let tried = tokio::select! {
                _ = stop.cancelled() => return,
                tried = round => tried,
            };
            if tried < BATCH as usize {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    })
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
