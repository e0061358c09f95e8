//! Keeps a running node in step with the database's tenants: every couple of
//! seconds it reads the records and swaps in a new tenant map when one
//! changed, so the CLI (or the admin API on another node) reaches it without
//! a restart. It also stops the turns of tenants whose kill switch is on
//! (SPEC §13: a kill switch stops the tenant's turns in flight).

use super::catalog::Catalog;
use crate::realtime::connections::CloseReason;
use crate::state::AppState;
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchboard_core::bus::Notice;
use switchboard_core::turn::StopReason;
use switchboard_core::Subject;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the database is asked; a change reaches every node within this.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// Runs until `stop` is cancelled.
pub fn spawn(state: AppState, mut catalog: Catalog, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; the map was just built.
        tick.tick().await;
        let mut notices = state.engine.bus().notices();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
                // Another node (or this one) changed tenants: do not wait for the poll.
                notice = notices.recv() => match notice {
                    Ok(Notice::TenantsChanged) | Err(RecvError::Lagged(_)) => {}
                    Ok(_) => continue,
                    Err(RecvError::Closed) => notices = state.engine.bus().notices(),
                },
            }
            poll(&state, &mut catalog).await;
        }
    })
}

async fn poll(state: &AppState, catalog: &mut Catalog) {
    match state.store.list_tenants().await {
        Ok(records) => {
            if let Some(map) = catalog.refresh(&records, &state.tenants.snapshot()) {
                state.tenants.replace(map);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the tenants; serving the ones known so far"),
    }
    crate::admin::kill_switch::refresh_global(state).await;
    stop_disabled(state);
    close_revoked(state);
}

/// Closes the connections of visitors linked to a user on another node
/// (this node's links close theirs at once).
fn close_revoked(state: &AppState) {
    let revoked = &state.identity.revoked;
    let closed = state.connections.close_where(CloseReason::Revoked, |(tenant, subject)| {
        matches!(Subject::parse(subject), Some(Subject::Visitor(v)) if revoked.contains(tenant, v))
    });
    if closed > 0 {
        tracing::info!(closed, "closed the connections of visitors linked to a user");
    }
}

/// Stops the running turns of every tenant whose kill switch (or the global
/// one) is on. Repeated each round, so a turn admitted just before the switch
/// flipped is caught too.
pub fn stop_disabled(state: &AppState) {
    let global = state.kill_switch.load(Ordering::Relaxed);
    if state.engine.running() == 0 && state.connections.count() == 0 {
        return;
    }
    for tenant in state.tenants.snapshot().values().filter(|t| global || t.kill_switch) {
        let closed = state.connections.close_tenant(&tenant.id, CloseReason::TenantDisabled);
        if closed > 0 {
            tracing::info!(tenant = %tenant.id, closed, "kill switch on: closed open connections");
        }
        let stopped = state.engine.stop_tenant_turns(&tenant.id, StopReason::TenantDisabled);
        if stopped > 0 {
            tracing::info!(tenant = %tenant.id, stopped, "kill switch on: stopped running turns");
        }
    }
}
