//! Lease reaping: a streaming answer whose node stopped renewing its lease is
//! marked `interrupted`, and subscribers are told (they replace by seq). The
//! tenants that want it are told too: a `turn.failed` with code
//! `turn.interrupted` (SPEC §19), written right after the reap. (Not in its
//! transaction: the store's reap knows no tenant's settings. A crash between
//! the two loses that one event; the answer itself stays `interrupted`.)

use super::Inner;
use crate::events::SessionEvent;
use crate::outbound::{EventType, NewEvent};
use crate::store::{Reaped, StoreError};
use serde_json::json;
use std::sync::Arc;

pub(super) async fn reap_own(inner: &Inner) -> Result<usize, StoreError> {
    let reaped = inner.store.reap_node_leases(&inner.config.node_id, inner.clock.now()).await?;
    announce(inner, &reaped).await;
    Ok(reaped.len())
}

pub(super) async fn run(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.reap_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match inner.store.reap_expired_leases(inner.clock.now()).await {
            Ok(reaped) => announce(&inner, &reaped).await,
            Err(e) => tracing::warn!(error = %e, "lease reaper could not reach the store"),
        }
    }
}

async fn announce(inner: &Inner, reaped: &[Reaped]) {
    for Reaped { message, .. } in reaped {
        tracing::warn!(session_id = %message.session_id, seq = message.seq, "streaming answer interrupted (lease expired)");
        inner.bus.publish(message.session_id, Arc::new(SessionEvent::Message(message.clone())));
    }
    let events = failed_events(inner, reaped);
    if !events.is_empty() {
        if let Err(e) = inner.store.enqueue_events(&events).await {
            tracing::warn!(error = %e, count = events.len(), "cannot write turn.failed for interrupted answers");
        }
    }
}

/// `turn.failed` for each reaped answer whose tenant wants it.
fn failed_events(inner: &Inner, reaped: &[Reaped]) -> Vec<NewEvent> {
    let Some(outbound_of) = &inner.config.outbound_of else { return Vec::new() };
    let now = inner.clock.now();
    reaped
        .iter()
        .filter_map(|Reaped { tenant_id, message }| {
            let events = outbound_of.outbound(tenant_id)?;
            let data = json!({"turn_id": message.turn_id, "seq": message.seq, "code": "turn.interrupted"});
            events.event(EventType::TurnFailed, tenant_id, message.session_id, now, data)
        })
        .collect()
}
