//! A tenant's tools as its turns use them: the webhook tools of its
//! configuration, with their secrets read from the environment, on the one
//! webhook client of the process (pooled per tenant, guarded against private
//! addresses by the operator's `tool_allow_private`).

use crate::config::TenantConfig;
use std::sync::{Arc, OnceLock};
use switchboard_core::tools::{ToolSpec, Tooling};
use switchboard_tools::{PrivateAllowList, SigningKeys, WebhookClient, WebhookTool, WebhookToolbox};

static CLIENT: OnceLock<Arc<WebhookClient>> = OnceLock::new();

/// Sets what tools may reach on private addresses; once, at start, before
/// any tenant is built. Without it nothing private is allowed.
pub fn init(allow: PrivateAllowList) {
    if CLIENT.set(Arc::new(WebhookClient::new(allow))).is_err() {
        tracing::warn!("the tools' webhook client was set up twice; the first one stays");
    }
}

fn client() -> Arc<WebhookClient> {
    CLIENT.get_or_init(|| Arc::new(WebhookClient::new(PrivateAllowList::default()))).clone()
}

/// `None` for a tenant without tools. Fails when a tool's secret variable
/// is not set or holds no valid `whsec_` secret, or its schema is not one.
pub fn tooling(config: &TenantConfig) -> Result<Option<Tooling>, String> {
    if config.tools.is_empty() {
        return Ok(None);
    }
    let mut tools = Vec::with_capacity(config.tools.len());
    for t in &config.tools {
        let name = &t.name;
        let secret = std::env::var(&t.secret_env)
            .map_err(|_| format!("tools `{name}`: the variable {} is not set", t.secret_env))?;
        let keys =
            SigningKeys::parse(&secret).map_err(|e| format!("tools `{name}`: {}: {e}", t.secret_env))?;
        let spec = ToolSpec {
            name: name.clone(),
            description: t.description.clone(),
            parameters: t.parameters.clone(),
        };
        tools.push(
            WebhookTool::new(spec, t.url.clone(), keys, t.timeout)
                .map_err(|e| format!("tools `{name}`: {e}"))?,
        );
    }
    Ok(Some(Tooling {
        toolbox: Arc::new(WebhookToolbox::new(config.id.clone(), client(), tools)),
        max_rounds: config.tooling.max_rounds,
        max_calls: config.tooling.max_calls,
    }))
}
