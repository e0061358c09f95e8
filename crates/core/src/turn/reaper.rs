//! Lease reaping: a streaming answer whose node stopped renewing its lease is
//! marked `interrupted`, and subscribers are told (they replace by seq).

use super::Inner;
use crate::events::SessionEvent;
use crate::model::Message;
use crate::store::StoreError;
use std::sync::Arc;

pub(super) async fn reap_own(inner: &Inner) -> Result<usize, StoreError> {
    let reaped = inner.store.reap_node_leases(&inner.config.node_id, inner.clock.now()).await?;
    announce(inner, &reaped);
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
            Ok(reaped) => announce(&inner, &reaped),
            Err(e) => tracing::warn!(error = %e, "lease reaper could not reach the store"),
        }
    }
}

fn announce(inner: &Inner, reaped: &[Message]) {
    for message in reaped {
        tracing::warn!(session_id = %message.session_id, seq = message.seq, "streaming answer interrupted (lease expired)");
        inner.bus.publish(message.session_id, Arc::new(SessionEvent::Message(message.clone())));
    }
}
