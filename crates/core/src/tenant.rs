//! A tenant's runtime settings, already validated: what the turn engine and the
//! request gate need to know about a site or app.

use crate::upstream::Route;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OnDisconnect {
    /// The answer completes and is there on reconnect.
    #[default]
    Continue,
    /// Stop the provider and keep the partial answer.
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProviderKind {
    Demo,
    Openai,
    Anthropic,
    Dify,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Demo => "demo",
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Dify => "dify",
        }
    }
}

/// Provider timeouts (SPEC §17, seconds in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_token: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(300),
        }
    }
}

/// Retries of a provider call before its first token (SPEC §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1: never retry).
    pub attempts: u32,
    /// The most a turn waits between attempts, all waits together.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, max_wait: Duration::from_secs(10) }
    }
}

/// The circuit breaker of one provider of a tenant (SPEC §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before one trial call is let through.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { failures: 5, open_for: Duration::from_secs(60) }
    }
}

/// How a tenant talks to its model vendor.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    pub kind: ProviderKind,
    /// Vendor SDK convention (SPEC §13); `None` means the vendor's default.
    pub base_url: Option<String>,
    pub model: String,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    pub system_prompt: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub history_messages: u32,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
}

impl ProviderSettings {
    /// Settings of `kind` and `model` with every other value its default.
    pub fn new(kind: ProviderKind, model: impl Into<String>) -> Self {
        Self {
            kind,
            base_url: None,
            model: model.into(),
            api_key_env: None,
            system_prompt: None,
            max_tokens: None,
            temperature: None,
            history_messages: 20,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
        }
    }
}

/// How the tenant's backend signs user JWTs (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// HS256 with the secret held in this environment variable.
    Hs256 { secret_env: String },
    /// RS256 with this PEM public key file.
    Rs256 { public_key_file: std::path::PathBuf },
    /// ES256 with this PEM public key file.
    Es256 { public_key_file: std::path::PathBuf },
}

/// One sliding-window limit: at most `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    pub window: Duration,
}

/// A tenant's rate limits per scope (SPEC §10); `None`: that scope is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub ip: Option<Window>,
    pub user: Option<Window>,
    pub tenant: Option<Window>,
}

impl Default for RateLimits {
    /// The specification's example values: generous for people, tight for scripts.
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            ip: Some(Window { limit: 30, window: minute }),
            user: Some(Window { limit: 20, window: minute }),
            tenant: Some(Window { limit: 3000, window: minute }),
        }
    }
}

/// A tenant as the runtime uses it: its settings and its provider client.
#[derive(Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub allow_no_origin: bool,
    pub on_disconnect: OnDisconnect,
    pub retention_days: u32,
    pub max_messages_per_session: u32,
    pub max_connections_per_subject: u32,
    pub require_user: bool,
    pub kill_switch: bool,
    pub jwt: Option<JwtKey>,
    pub rate_limits: RateLimits,
    /// Daily budgets (`[tenants.budget]`); `None`: unlimited.
    pub budget: Option<crate::usage::Budget>,
    /// `"config"` when the configuration file owns the tenant, `"db"` otherwise.
    pub source: String,
    /// The provider turns call first.
    pub primary: Arc<Route>,
    /// Tried in order when the one before failed before its first token.
    pub fallbacks: Arc<[Route]>,
    /// The tools its model may call (SPEC §16); `None`: it only talks.
    pub tools: Option<crate::tools::Tooling>,
    /// Its outbound events (`[tenants.events]`, SPEC §19); `None`: none.
    pub events: Option<Arc<crate::outbound::Outbound>>,
}

impl Tenant {
    /// The event of `kind` about `session_id`, if the tenant has events and
    /// wants that kind.
    pub fn event(
        &self,
        kind: crate::outbound::EventType,
        session_id: uuid::Uuid,
        at: crate::time::Timestamp,
        data: impl FnOnce() -> serde_json::Value,
    ) -> Option<crate::outbound::NewEvent> {
        let wanted = self.events.as_ref().is_some_and(|e| e.wants(kind));
        wanted.then(|| crate::outbound::NewEvent::new(kind, &self.id, session_id, at, data()))
    }

    /// The primary provider, then the fallbacks.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        std::iter::once(&*self.primary).chain(self.fallbacks.iter())
    }
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .field("provider", &self.primary.settings.kind)
            .finish_non_exhaustive()
    }
}
