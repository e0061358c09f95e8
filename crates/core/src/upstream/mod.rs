//! The providers a tenant's turns may use and how hard to lean on each: a
//! [`Route`] is one provider with its settings and circuit breaker; a tenant
//! has its primary route first and its fallbacks after it (SPEC §13).

mod backoff;
mod breaker;

pub use backoff::{backoff, Jitter};
pub use breaker::{Admission, Breaker, Circuit, TrialId};

use crate::provider::Provider;
use crate::tenant::ProviderSettings;
use std::sync::Arc;

/// One provider a turn may call.
pub struct Route {
    pub settings: ProviderSettings,
    pub provider: Arc<dyn Provider>,
    /// Shared by every turn of the tenant on this node.
    pub breaker: Breaker,
}

impl Route {
    pub fn new(settings: ProviderSettings, provider: Arc<dyn Provider>) -> Self {
        let breaker = Breaker::new(settings.breaker);
        Self { settings, provider, breaker }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("kind", &self.settings.kind)
            .field("model", &self.settings.model)
            .finish_non_exhaustive()
    }
}
