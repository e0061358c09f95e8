//! The delivery worker (SPEC §19): up to [`IN_FLIGHT`] tries at once, each
//! a task of its own, leasing more as slots free up (so a slow endpoint
//! holds only its own slots). A 2xx is delivered; a `410` is gone and
//! disables the tenant's endpoint; an address the private-address guard
//! refuses (or a URL that is not one) is dead at once; any other failure
//! (network, the 10 s timeout, another status) waits for the schedule's
//! next delay, or the endpoint's `Retry-After` on 429 and 503, until the
//! schedule is used up and the delivery is dead. A delivery of a tenant
//! this node does not send for (it does not serve it, or has no endpoint
//! for it) is put off for another node, not tried.

use super::{IN_FLIGHT, LEASE, POLL};
use crate::state::AppState;
use metrics::{counter, gauge, histogram};
use std::time::Duration;
use switchboard_core::outbound::{after_failure, DeliveryStatus, Next, Outbound, TRY_TIMEOUT};
use switchboard_core::store::outbox::{Delivery, Settle};
use switchboard_core::time::Timestamp;
use switchboard_tools::{CallError, SigningKeys, WebhookRequest};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a delivery this node cannot send waits for another node.
const POSTPONE: chrono::Duration = chrono::Duration::seconds(30);

/// Ended tries wait at most this long to be settled together…
const SETTLE_AFTER: Duration = Duration::from_millis(100);
/// …or until this many have ended.
const SETTLE_BATCH: usize = IN_FLIGHT / 2;

/// Tries until `stop`; tries still running then are cut (their leases are
/// released by the caller). Two sources: the events this node's own writes
/// just committed, handed over already leased (`handed`, tried at once),
/// and the outbox itself (retries, holds resumed, events of other nodes or
/// from before a restart), looked at every [`POLL`], or again at once
/// while a look finds as many due as it could take. Ended tries are
/// settled together, in one transaction, within [`SETTLE_AFTER`]: on a
/// busy outbox a few writes for many events, not one for each.
pub async fn run(
    state: &AppState,
    node: &str,
    mut handed: mpsc::Receiver<Delivery>,
    stop: &CancellationToken,
) {
    let mut tries: JoinSet<(Uuid, Settle)> = JoinSet::new();
    let mut ended = Vec::new();
    let mut settle_at: Option<Instant> = None;
    let (mut look_at, mut more_due) = (Instant::now(), false);
    loop {
        while let Some(done) = tries.try_join_next() {
            ended.extend(done.ok());
        }
        if !ended.is_empty() {
            let at = *settle_at.get_or_insert_with(|| Instant::now() + SETTLE_AFTER);
            if ended.len() >= SETTLE_BATCH || Instant::now() >= at || stop.is_cancelled() {
                settle(state, node, std::mem::take(&mut ended)).await;
                settle_at = None;
            }
        }
        while tries.len() < IN_FLIGHT {
            let Ok(delivery) = handed.try_recv() else { break };
            start_handed(&mut tries, state, delivery);
        }
        let may_look = |tries: &JoinSet<_>| IN_FLIGHT - tries.len() >= IN_FLIGHT / 4 || tries.is_empty();
        if (more_due || Instant::now() >= look_at) && may_look(&tries) {
            let free = IN_FLIGHT - tries.len();
            let leased = lease(state, node, free).await;
            more_due = free > 0 && leased.len() == free;
            look_at = Instant::now() + POLL;
            for delivery in leased {
                start(&mut tries, state, delivery);
            }
        }
        if stop.is_cancelled() {
            break;
        }
        // Wake for the next settle, and for the next look if one could run.
        let look = (may_look(&tries) && !more_due).then_some(look_at);
        let wake = [settle_at, look].into_iter().flatten().min();
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(done) = tries.join_next(), if !tries.is_empty() => ended.extend(done.ok()),
            Some(delivery) = handed.recv(), if tries.len() < IN_FLIGHT => start_handed(&mut tries, state, delivery),
            () = sleep_until(wake), if wake.is_some() => {}
        }
    }
    // Whatever is still handed is this node's lease: released by the caller.
    handed.close();
    while let Some(done) = tries.try_join_next() {
        ended.extend(done.ok());
    }
    settle(state, node, ended).await;
    tries.abort_all();
    while tries.join_next().await.is_some() {}
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Starts a try of a delivery handed over by this node's write — unless
/// it waited so long for a free slot that its lease (from its write) could
/// end before the try does: a look takes it once the lease has ended.
fn start_handed(tries: &mut JoinSet<(Uuid, Settle)>, state: &AppState, delivery: Delivery) {
    if lease_left_for_a_try(&delivery, state.clock.now()) {
        start(tries, state, delivery);
    }
}

/// Whether at least half the lease a handed delivery got with its write is
/// left at `now`: room for a whole try (at most [`TRY_TIMEOUT`]) before it ends.
fn lease_left_for_a_try(delivery: &Delivery, now: Timestamp) -> bool {
    const _: () = assert!(LEASE.as_secs() / 2 >= TRY_TIMEOUT.as_secs(), "a try must fit in half a lease");
    let half = chrono::Duration::from_std(LEASE / 2).unwrap_or_default();
    now < delivery.created_at + half
}

fn start(tries: &mut JoinSet<(Uuid, Settle)>, state: &AppState, delivery: Delivery) {
    let state = state.clone();
    tries.spawn(async move { (delivery.id, try_once(&state, delivery).await) });
}

/// Records how the ended tries went, in one transaction.
async fn settle(state: &AppState, node: &str, ended: Vec<(Uuid, Settle)>) {
    if ended.is_empty() {
        return;
    }
    let count = ended.len() as u64;
    match state.store.settle_deliveries(node, ended, state.clock.now()).await {
        Ok(n) if n == count => {}
        Ok(n) => tracing::warn!(lost = count - n, "deliveries' leases ended before their tries did"),
        Err(e) => tracing::warn!(error = %e, "cannot settle deliveries; they will be tried again"),
    }
}

async fn lease(state: &AppState, node: &str, free: usize) -> Vec<Delivery> {
    let now = state.clock.now();
    let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let limit = u32::try_from(free).unwrap_or(u32::MAX);
    match state.store.lease_deliveries(node, now, until, limit).await {
        Ok(leased) => leased,
        Err(e) => {
            tracing::warn!(error = %e, "cannot lease outbound deliveries; will try again");
            Vec::new()
        }
    }
}

/// One try; what it came to, for [`settle`].
async fn try_once(state: &AppState, delivery: Delivery) -> Settle {
    let settle = match state.tenants.get(&delivery.tenant_id).and_then(|t| t.events.clone()) {
        Some(events) => send(state, &events, &delivery).await,
        None => Settle::Postpone {
            at: state.clock.now() + POSTPONE,
            why: "a node without this tenant's events endpoint put it off".into(),
        },
    };
    let outcome = match &settle {
        Settle::Delivered { .. } => "delivered",
        Settle::Retry { .. } => "failed",
        Settle::Postpone { .. } => "postponed",
        Settle::Dead { .. } => "dead",
        Settle::Gone => "gone",
    };
    counter!("switchboard_outbound_deliveries_total", "outcome" => outcome).increment(1);
    let now = state.clock.now();
    if matches!(settle, Settle::Delivered { .. }) {
        let waited = (now - delivery.created_at).to_std().unwrap_or_default();
        histogram!("switchboard_outbound_delivery_seconds").record(waited.as_secs_f64());
    }
    settle
}

/// One signed `POST` of the event's body, with its id as `webhook-id`.
async fn send(state: &AppState, events: &Outbound, delivery: &Delivery) -> Settle {
    let keys = match SigningKeys::parse(&events.secret) {
        Ok(keys) => keys,
        Err(e) => return Settle::Dead { status: None, error: format!("the signing secret: {e}") },
    };
    let id = delivery.id.to_string();
    let request = WebhookRequest {
        url: &events.url,
        keys: &keys,
        id: Some(&id),
        body: delivery.body.clone().into(),
        timeout: TRY_TIMEOUT,
        trace_id: "",
    };
    let client = crate::tenancy::tools::webhook_client();
    match client.deliver(&delivery.tenant_id, request).await {
        Ok(status) => Settle::Delivered { status },
        Err(CallError::Status { status: 410, .. }) => Settle::Gone,
        Err(e @ (CallError::NotAllowed | CallError::InvalidUrl)) => {
            Settle::Dead { status: None, error: e.to_string() }
        }
        Err(e) => {
            let (status, retry_after) = match &e {
                CallError::Status { status, retry_after } if matches!(status, 429 | 503) => {
                    (Some(*status), *retry_after)
                }
                CallError::Status { status, .. } | CallError::Redirect { status } => (Some(*status), None),
                _ => (None, None),
            };
            let jitter = rand::random::<f64>() * 2.0 - 1.0;
            let failed = delivery.attempts + 1;
            match after_failure(&events.retry_schedule, failed, retry_after, state.clock.now(), jitter) {
                Next::At(at) => Settle::Retry { at, status, error: e.to_string() },
                Next::Dead => Settle::Dead { status, error: e.to_string() },
            }
        }
    }
}

/// `switchboard_outbox_deliveries{status}`: the outbox's rows by status,
/// but delivered ones.
pub async fn refresh_gauges(state: &AppState) {
    match state.store.delivery_counts().await {
        Ok(counts) => {
            // Delivered rows are not counted: their rate is the counter's.
            for status in DeliveryStatus::ALL.into_iter().filter(|s| *s != DeliveryStatus::Delivered) {
                let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                gauge!("switchboard_outbox_deliveries", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot count the outbox's deliveries"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed(created_at: Timestamp) -> Delivery {
        Delivery {
            id: Uuid::now_v7(),
            tenant_id: "acme".into(),
            kind: "turn.completed".into(),
            body: "{}".into(),
            attempts: 0,
            created_at,
        }
    }

    #[test]
    fn a_handed_delivery_is_tried_only_while_half_its_lease_is_left() {
        let written = chrono::Utc::now();
        let delivery = handed(written);
        let after = |secs: i64| written + chrono::Duration::seconds(secs);
        assert!(lease_left_for_a_try(&delivery, written));
        assert!(lease_left_for_a_try(&delivery, after(14)));
        // Half of the 30 s lease gone: a try of up to 10 s could outlast it,
        // and another node could take the row meanwhile; a look takes it.
        assert!(!lease_left_for_a_try(&delivery, after(15)));
        assert!(!lease_left_for_a_try(&delivery, after(29)));
    }
}
