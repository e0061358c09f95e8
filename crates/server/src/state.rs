//! `AppState`: the cheap handles every handler shares.

use crate::config::Config;
use crate::tokens::Signer;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_core::ratelimit::RateLimiter;
use switchboard_core::store::Store;
use switchboard_core::tenant::Tenant;
use switchboard_core::time::Clock;
use switchboard_core::turn::TurnEngine;

/// The tenants this node serves, by id.
#[derive(Default)]
pub struct Tenants {
    by_id: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    pub fn new(tenants: impl IntoIterator<Item = Tenant>) -> Self {
        Self { by_id: tenants.into_iter().map(|t| (t.id.clone(), Arc::new(t))).collect() }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Tenant>> {
        self.by_id.get(id).cloned()
    }

    /// Whether any tenant satisfies `f` (a preflight names no tenant).
    pub fn any(&self, f: impl Fn(&Tenant) -> bool) -> bool {
        self.by_id.values().any(|t| f(t))
    }
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub tenants: Arc<Tenants>,
    pub store: Arc<dyn Store>,
    pub engine: TurnEngine,
    pub signer: Arc<Signer>,
    pub clock: Arc<dyn Clock>,
    /// Rate-limit counters (SPEC §10): in-process today, shared across nodes later.
    pub limiter: Arc<dyn RateLimiter>,
}
