//! `AppState`: the cheap handles every handler shares.

use crate::config::Config;
use crate::tokens::Signer;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, PoisonError, RwLock};
use switchboard_core::lifecycle::SessionLifecycle;
use switchboard_core::ratelimit::RateLimiter;
use switchboard_core::store::Store;
use switchboard_core::tenant::Tenant;
use switchboard_core::time::Clock;
use switchboard_core::turn::TurnEngine;

/// The tenants this node serves, by id.
pub type TenantMap = HashMap<String, Arc<Tenant>>;

/// The tenants this node serves: a snapshot swapped whole when the database
/// changes (`tenancy::reload`), so a request reads one consistent map and the
/// lock is held only for a lookup, never across an await.
#[derive(Default)]
pub struct Tenants {
    current: RwLock<Arc<TenantMap>>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants").finish_non_exhaustive()
    }
}

/// The reaper's `turn.failed` reads each tenant's events as they are now.
impl switchboard_core::turn::OutboundOf for Tenants {
    fn outbound(&self, tenant_id: &str) -> Option<Arc<switchboard_core::outbound::Outbound>> {
        self.get(tenant_id)?.events.clone()
    }
}

impl Tenants {
    pub fn from_map(map: TenantMap) -> Self {
        Self { current: RwLock::new(Arc::new(map)) }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Tenant>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// Whether any tenant satisfies `f` (a preflight names no tenant).
    pub fn any(&self, f: impl Fn(&Tenant) -> bool) -> bool {
        self.snapshot().values().any(|t| f(t))
    }

    /// The current map, as of now.
    pub fn snapshot(&self) -> Arc<TenantMap> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Serves `map` from now on.
    pub fn replace(&self, map: TenantMap) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
    }
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub tenants: Arc<Tenants>,
    pub store: Arc<dyn Store>,
    pub engine: TurnEngine,
    pub signer: Arc<Signer>,
    /// Seals the admin audit log (`SWITCHBOARD_AUDIT_KEY`, else generated
    /// into the data directory); the first key seals, every key verifies.
    pub audit_keys: Arc<switchboard_store::Keyring>,
    pub clock: Arc<dyn Clock>,
    /// Rate-limit counters (SPEC §10): in-process today, shared across nodes later.
    pub limiter: Arc<dyn RateLimiter>,
    /// The global kill switch as it is now: starts at the configured value;
    /// the admin API may flip it at run time.
    pub kill_switch: Arc<AtomicBool>,
    /// Tenants' user-JWT keys and revoked visitors (SPEC §3).
    pub identity: Arc<crate::identity::Identity>,
    /// Open SSE subscriptions and WebSockets of this node.
    pub connections: Arc<crate::realtime::connections::Connections>,
    /// The widget, demo page and console (SPEC §14), loaded once at start.
    pub web: Arc<crate::web::Assets>,
}

impl AppState {
    /// A session's lifecycle (delete, close, takeover, release, agent
    /// messages), on this node's engine.
    pub fn lifecycle(&self) -> SessionLifecycle {
        SessionLifecycle::new(self.engine.clone())
    }
}
