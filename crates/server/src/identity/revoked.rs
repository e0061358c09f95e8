//! Visitors linked to a user, whose tokens are refused from then on. Checked
//! on every request, so it lives in memory: loaded at start, updated at once
//! by a link made on this node, and refreshed from the store every few
//! seconds for links made on other nodes. A link is forgotten once every
//! token of its visitor has expired (visitor tokens older than the configured
//! TTL are refused anyway, see `identity::visitor`), which bounds the set.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use switchboard_core::store::{Store, StoreError, VisitorLink};
use switchboard_core::time::{Clock, Timestamp};
use switchboard_core::Subject;
use uuid::Uuid;

/// How often links made on other nodes are picked up.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// Each refresh reads back this far before the previous one, for writes that
/// committed late and for clocks of nodes that disagree a little.
const OVERLAP: Duration = Duration::from_secs(60);

type ByTenant = HashMap<String, HashMap<Uuid, Timestamp>>;

pub struct RevokedVisitors {
    links: RwLock<ByTenant>,
    /// How long a link is kept: the visitor token lifetime plus leeway.
    retain: Duration,
}

impl RevokedVisitors {
    pub fn new(retain: Duration) -> Self {
        Self { links: RwLock::new(HashMap::new()), retain }
    }

    /// Whether this visitor of this tenant was linked to a user.
    pub fn contains(&self, tenant: &str, visitor: Uuid) -> bool {
        self.links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .is_some_and(|v| v.contains_key(&visitor))
    }

    pub fn insert(&self, tenant: &str, visitor: Uuid, linked_at: Timestamp) {
        let mut links = self.links.write().unwrap_or_else(PoisonError::into_inner);
        links.entry(tenant.to_owned()).or_default().insert(visitor, linked_at);
    }

    /// Adds links read from the store (subjects that are not visitors are skipped).
    pub fn absorb(&self, found: &[VisitorLink]) {
        if found.is_empty() {
            return;
        }
        let mut links = self.links.write().unwrap_or_else(PoisonError::into_inner);
        for link in found {
            if let Some(Subject::Visitor(id)) = Subject::parse(&link.visitor) {
                links.entry(link.tenant_id.clone()).or_default().insert(id, link.linked_at);
            }
        }
    }

    /// Forgets links older than the retention: their visitors' tokens have expired.
    pub fn prune(&self, now: Timestamp) {
        let Some(horizon) = self.horizon(now) else { return };
        let mut links = self.links.write().unwrap_or_else(PoisonError::into_inner);
        links.retain(|_, visitors| {
            visitors.retain(|_, at| *at >= horizon);
            !visitors.is_empty()
        });
    }

    fn horizon(&self, now: Timestamp) -> Option<Timestamp> {
        chrono::Duration::from_std(self.retain).ok().and_then(|d| now.checked_sub_signed(d))
    }

    pub fn count(&self) -> usize {
        self.links.read().unwrap_or_else(PoisonError::into_inner).values().map(HashMap::len).sum()
    }

    /// Loads the links that still matter (made within the retention).
    pub async fn load(&self, store: &dyn Store, now: Timestamp) -> Result<(), StoreError> {
        let since = self.horizon(now).unwrap_or_default();
        self.absorb(&store.linked_visitors(since).await?);
        Ok(())
    }

    /// Keeps picking up links made on other nodes, every `REFRESH_EVERY`,
    /// until the process ends (it only reads, so it needs no draining).
    pub fn spawn_refresher(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        loaded_at: Timestamp,
    ) {
        tokio::spawn(async move {
            let mut since = loaded_at - OVERLAP;
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let began = clock.now();
                match store.linked_visitors(since).await {
                    Ok(found) => {
                        self.absorb(&found);
                        self.prune(began);
                        since = began - OVERLAP;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot refresh linked visitors; will retry"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::time::from_millis;

    const DAY_MS: i64 = 86_400_000;

    fn link(tenant: &str, visitor: Uuid, at_ms: i64) -> VisitorLink {
        VisitorLink {
            tenant_id: tenant.into(),
            visitor: format!("visitor:{visitor}"),
            user: "user:u".into(),
            linked_at: from_millis(at_ms).unwrap(),
        }
    }

    #[test]
    fn links_are_per_tenant_and_expire_with_the_tokens() {
        let revoked = RevokedVisitors::new(Duration::from_secs(30 * 86_400));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        revoked.insert("acme", a, from_millis(10 * DAY_MS).unwrap());
        revoked.absorb(&[
            link("globex", b, 20 * DAY_MS),
            VisitorLink { visitor: "user:not-a-visitor".into(), ..link("acme", b, 0) },
        ]);
        assert!(revoked.contains("acme", a));
        assert!(!revoked.contains("globex", a));
        assert!(revoked.contains("globex", b));
        assert!(!revoked.contains("acme", b));
        assert_eq!(revoked.count(), 2);
        revoked.prune(from_millis(39 * DAY_MS).unwrap());
        assert_eq!(revoked.count(), 2);
        revoked.prune(from_millis(41 * DAY_MS).unwrap());
        assert!(!revoked.contains("acme", a));
        assert!(revoked.contains("globex", b));
        revoked.prune(from_millis(51 * DAY_MS).unwrap());
        assert_eq!(revoked.count(), 0);
    }
}
