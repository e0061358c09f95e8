//! Rate limits (SPEC §10): the `RateLimiter` port that the request gate asks
//! whether a request may pass, and `LocalRateLimiter`, its in-process
//! implementation. Nothing here knows about HTTP, addresses or headers.
//!
//! One request is checked against several scopes at once (`ip`, `user`,
//! `tenant`, each with its own key and window). It is admitted only if every
//! scope has room, and only an admitted request is counted, in all of its
//! scopes, under one critical section, so concurrent requests cannot
//! overshoot a limit and a refused request costs nothing.
//!
//! **Why a two-bucket sliding-window counter.** Each key keeps two counts:
//! the requests of the current window-aligned bucket and of the one before.
//! The sliding count at a moment `e` into the current bucket is
//! `previous × (window − e) / window + current`, i.e. the previous bucket's
//! requests are assumed to be spread evenly over it. The alternative, exact
//! per-request timestamps, costs memory in proportion to the limit (a tenant
//! limit of 3000 per minute keeps 3000 timestamps; a benchmark's limit of
//! 10⁸ keeps whatever arrives in a minute), while the counter is a few words
//! per key whatever the limit. It also maps one-to-one onto Redis (two
//! counters per key, or one small hash, updated by one script), which is what
//! a shared, multi-node implementation of this trait will use. The price is
//! approximation at the edges: a burst at the very end of one bucket is
//! forgotten a little early in the next. Within one aligned bucket no key
//! ever admits more than its limit, and a refused client is told exactly when
//! this counter will admit it again.
//!
//! **What a Redis implementation needs.** `check` receives everything it
//! needs to run as one atomic script: the keys (already namespaced by scope
//! and tenant; a Redis version adds its own prefix and a `{tenant}` hash tag
//! so one tenant's keys share a cluster slot), the window and limit of each,
//! and the implementation takes `now` from its `Clock` (or the server's
//! `TIME`), so nothing else crosses the trait.

pub mod counter;
pub mod decide;
mod local;

#[cfg(test)]
mod tests;

pub use local::LocalRateLimiter;

use crate::tenant::{RateLimits, Window};

/// Which of a tenant's limits a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One client address (an IPv6 /64).
    Ip,
    /// One subject (`visitor:<uuid>` or `user:<sub>`).
    User,
    /// The whole tenant.
    Tenant,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::Tenant => "tenant",
        }
    }
}

/// One limit a request is checked against: a counter's key and its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub scope: Scope,
    /// `ip:<tenant>:<address>`, `user:<tenant>:<subject>` or `tenant:<tenant>`:
    /// the tenant is always part of the key, so tenants never share a counter
    /// (a tenant id is a slug without `:`, so keys cannot collide).
    pub key: String,
    pub window: Window,
}

impl Limit {
    pub fn ip(tenant: &str, address: &str, window: Window) -> Self {
        Self { scope: Scope::Ip, key: format!("ip:{tenant}:{address}"), window }
    }

    pub fn user(tenant: &str, subject: &str, window: Window) -> Self {
        Self { scope: Scope::User, key: format!("user:{tenant}:{subject}"), window }
    }

    pub fn tenant(tenant: &str, window: Window) -> Self {
        Self { scope: Scope::Tenant, key: format!("tenant:{tenant}"), window }
    }

    /// The limits of one request to `tenant` with `limits`: a scope whose
    /// window is `None` is unlimited, and one whose identity is unknown (no
    /// address, or no subject yet) is not checked.
    pub fn for_request(
        tenant: &str,
        limits: &RateLimits,
        address: Option<&str>,
        subject: Option<&str>,
    ) -> Vec<Limit> {
        let mut out = Vec::with_capacity(3);
        if let (Some(w), Some(a)) = (limits.ip, address) {
            out.push(Self::ip(tenant, a, w));
        }
        if let (Some(w), Some(s)) = (limits.user, subject) {
            out.push(Self::user(tenant, s, w));
        }
        if let Some(w) = limits.tenant {
            out.push(Self::tenant(tenant, w));
        }
        out
    }
}

/// Where one scope stands after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub scope: Scope,
    pub limit: u32,
    /// How many more requests this scope admits right now.
    pub remaining: u32,
    /// Unix seconds: with `remaining` 0, when the scope admits a request
    /// again; otherwise when everything it has counted has aged out.
    pub reset: i64,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Counted in every scope. `tightest` is the scope with the fewest
    /// requests left (`None` when no scope limits the request).
    Admitted { tightest: Option<Quota> },
    /// Counted nowhere. `tightest` is the refusing scope that stays full the
    /// longest; `retry_after` (seconds, at least 1) is when it has room.
    Refused { tightest: Quota, retry_after: u64 },
}

impl Decision {
    pub fn is_admitted(&self) -> bool {
        matches!(self, Self::Admitted { .. })
    }

    /// The scope to report to the client, if any.
    pub fn quota(&self) -> Option<Quota> {
        match self {
            Self::Admitted { tightest } => *tightest,
            Self::Refused { tightest, .. } => Some(*tightest),
        }
    }
}

/// A limiter that could not answer (a shared backend being unreachable).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct RateLimitError(pub String);

/// Checks and counts requests against sliding-window limits. Shared by every
/// request of a node (and, in a multi-node implementation, across nodes).
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Admits the request and counts it in every one of `limits`, or refuses
    /// it and counts it in none. No limits: admitted, nothing to report.
    async fn check(&self, limits: &[Limit]) -> Result<Decision, RateLimitError>;
}
