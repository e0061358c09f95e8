//! Retention (SPEC §11.6): a tenant keeps at most `max_messages_per_session`
//! messages per session and none older than `retention_days`.
//!
//! The cap is the store's job as it writes (`BeginTurn::max_messages`): the
//! oldest messages beyond it go in the transaction that added the new ones.
//! The age rule is enforced twice: reads hide what is older than the cutoff
//! at once (`retained_messages`, and the feed's cursor check), and a sweeper
//! on every node deletes it later in small batches. The sweeper must never
//! hold the database's writer long, so it asks the store for one bounded
//! batch at a time and lets other writes in between.

use crate::model::Message;
use crate::store::{Store, StoreError};
use crate::tenant::Tenant;
use crate::time::{Clock, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often each node sweeps. Nodes sweep independently; a batch skips
/// what another node's batch holds, so running on several nodes only
/// shares the work.
pub const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// Messages (and, separately, empty sessions) deleted per store transaction.
pub const SWEEP_BATCH: u32 = 500;

/// What one sweep batch (or a whole sweep) deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub messages: u64,
    pub sessions: u64,
}

impl Purged {
    fn add(&mut self, other: Purged) {
        self.messages += other.messages;
        self.sessions += other.sessions;
    }
}

/// The oldest creation time still kept `days` after it, as of `now`.
pub fn retained_since(now: Timestamp, days: u32) -> Timestamp {
    now - chrono::Duration::days(i64::from(days))
}

/// A session's messages newest first, as `Store::list_messages` reads them,
/// without those past the tenant's retention (the sweeper may not have
/// deleted them yet). What is older sits at the end of a newest-first list,
/// so the result is still a prefix and paging by seq stays right.
pub async fn retained_messages(
    store: &dyn Store,
    tenant: &Tenant,
    now: Timestamp,
    session_id: Uuid,
    limit: u32,
    before_seq: Option<i64>,
) -> Result<Vec<Message>, StoreError> {
    let mut messages = store.list_messages(&tenant.id, session_id, limit, before_seq).await?;
    let since = retained_since(now, tenant.retention_days);
    messages.retain(|m| m.created_at >= since);
    Ok(messages)
}

/// A tenant's age limit, as the sweeper needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub tenant_id: String,
    pub days: u32,
}

impl Policy {
    pub fn of(tenant: &Tenant) -> Self {
        Self { tenant_id: tenant.id.clone(), days: tenant.retention_days }
    }
}

/// Deletes what is past each tenant's retention, batch by batch.
pub struct Sweeper {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    batch: u32,
}

impl Sweeper {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, batch: SWEEP_BATCH }
    }

    /// Sets the batch size (at least 1).
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// One sweep: for each tenant, batches until one finds less than a
    /// full batch to delete.
    pub async fn sweep(&self, policies: &[Policy]) -> Result<Purged, StoreError> {
        self.sweep_until(policies, &CancellationToken::new()).await
    }

    /// `sweep`, stopping between batches once `stop` is cancelled.
    async fn sweep_until(&self, policies: &[Policy], stop: &CancellationToken) -> Result<Purged, StoreError> {
        let now = self.clock.now();
        let mut total = Purged::default();
        for policy in policies {
            let before = retained_since(now, policy.days);
            loop {
                if stop.is_cancelled() {
                    return Ok(total);
                }
                let purged = self.store.purge_expired(&policy.tenant_id, before, self.batch).await?;
                total.add(purged);
                let limit = u64::from(self.batch);
                if purged.messages < limit && purged.sessions < limit {
                    break;
                }
                // Let the writes queued behind this batch go first.
                tokio::task::yield_now().await;
            }
        }
        Ok(total)
    }

    /// Sweeps every `every` (the first time one `every` after the start)
    /// until `stop`. `policies` is asked each time: tenants come and go.
    pub async fn run(
        self,
        every: Duration,
        policies: impl Fn() -> Vec<Policy> + Send + 'static,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.sweep_until(&policies(), &stop).await {
                Ok(purged) if purged != Purged::default() => tracing::info!(
                    messages = purged.messages,
                    sessions = purged.sessions,
                    "retention: deleted what was past its tenant's retention_days"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention sweep could not reach the store"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_millis;

    #[test]
    fn retained_since_counts_whole_days_back() {
        let now = from_millis(10 * 86_400_000 + 5).unwrap();
        assert_eq!(retained_since(now, 3), from_millis(7 * 86_400_000 + 5).unwrap());
        assert_eq!(retained_since(now, 0), now);
    }
}
