//! Tenants as this node serves them: declared in the configuration file or
//! created at run time (CLI, admin API) and kept in the database.
//! Both kinds are validated by one path (`config::validate_tenant`); a
//! database record is the same shape as a `[[tenants]]` entry, with secrets
//! only named by environment variable. `reload` keeps a running node in step
//! with the database.

pub mod catalog;
pub mod edit;
pub mod records;
pub mod reload;
pub mod tools;

use crate::config::TenantConfig;
use switchboard_core::tenant::{ProviderSettings, Tenant};
use switchboard_core::upstream::Route;

/// `TenantRecord.source` of a tenant the configuration file owns.
pub const SOURCE_CONFIG: &str = "config";
/// `TenantRecord.source` of a tenant created at run time.
pub const SOURCE_DB: &str = "db";

/// The runtime tenant: validated settings plus a provider client. Fails when
/// the provider cannot be built (an API key variable that is not set, say).
pub fn build(config: &TenantConfig, source: &str, kill_switch: bool) -> Result<Tenant, String> {
    let route = |settings: &ProviderSettings| {
        switchboard_providers::build(settings).map(|provider| Route::new(settings.clone(), provider))
    };
    let primary = route(&config.provider).map_err(|e| format!("provider: {e}"))?;
    let fallbacks = (config.fallbacks.iter().enumerate())
        .map(|(i, s)| route(s).map_err(|e| format!("fallbacks[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tenant {
        events: events(config)?,
        id: config.id.clone(),
        name: config.name.clone(),
        allowed_origins: config.allowed_origins.clone(),
        allow_no_origin: config.allow_no_origin,
        on_disconnect: config.on_disconnect,
        retention_days: config.retention_days,
        max_messages_per_session: config.max_messages_per_session,
        max_connections_per_subject: config.max_connections_per_subject,
        require_user: config.require_user,
        kill_switch,
        jwt: config.jwt.clone(),
        rate_limits: config.rate_limits,
        budget: config.budget,
        source: source.to_owned(),
        primary: std::sync::Arc::new(primary),
        fallbacks: fallbacks.into(),
        tools: tools::tooling(config)?,
    })
}

/// The tenant's outbound events with their secret read from the
/// environment; fails when the variable is not set or holds no valid
/// `whsec_` secret.
fn events(
    config: &TenantConfig,
) -> Result<Option<std::sync::Arc<switchboard_core::outbound::Outbound>>, String> {
    let Some(events) = &config.events else { return Ok(None) };
    let var = &events.secret_env;
    let secret =
        std::env::var(var).map_err(|_| format!("events.secret_env: the variable {var} is not set"))?;
    switchboard_tools::SigningKeys::parse(&secret).map_err(|e| format!("events.secret_env: {var}: {e}"))?;
    let mut outbound = events.outbound.clone();
    outbound.secret = secret;
    Ok(Some(std::sync::Arc::new(outbound)))
}
