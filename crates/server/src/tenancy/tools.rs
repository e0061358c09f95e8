//! A tenant's tools as its turns use them: the webhook tools and MCP
//! servers of its configuration, with their secrets read from the
//! environment, on the process's one webhook client and one MCP client
//! (pooled, guarded against private addresses by the operator's
//! `tool_allow_private`), and the built-in tools it lists.

use crate::config::TenantConfig;
use std::sync::{Arc, OnceLock};
use switchboard_core::tools::{ToolSpec, Toolbox, Tooling, Verification};
use switchboard_tools::{
    ListingIntervals, McpClient, McpServer, McpServerConfig, PrivateAllowList, SigningKeys, ToolSet,
    WebhookClient, WebhookTool, WebhookToolbox, WebhookVerifier,
};

static CLIENT: OnceLock<Arc<WebhookClient>> = OnceLock::new();
static MCP: OnceLock<McpClient> = OnceLock::new();

/// Sets what tools may reach on private addresses; once, at start, before
/// any tenant is built. Without it nothing private is allowed.
pub fn init(allow: PrivateAllowList) {
    let mcp = MCP.set(McpClient::new(allow.clone()));
    if CLIENT.set(Arc::new(WebhookClient::new(allow))).is_err() || mcp.is_err() {
        tracing::warn!("the tools' webhook client was set up twice; the first one stays");
    }
}

/// The process's one webhook client (tools, verification, outbound events).
pub(crate) fn webhook_client() -> Arc<WebhookClient> {
    CLIENT.get_or_init(|| Arc::new(WebhookClient::new(PrivateAllowList::default()))).clone()
}

/// The demo shop's own client for the built-in demo tenant (allowed to
/// reach the server's own address, and only that: see `demo_shop`), else
/// the shared one.
fn own_or_shared_client(config: &TenantConfig) -> Arc<WebhookClient> {
    crate::demo_shop::client_for(&config.tools).unwrap_or_else(webhook_client)
}

fn mcp_client() -> &'static McpClient {
    MCP.get_or_init(|| McpClient::new(PrivateAllowList::default()))
}

/// `None` for a tenant without tools. Fails when a tool's secret variable
/// is not set or holds no valid `whsec_` secret, or its schema is not one,
/// or an MCP server's token variable is not set or its address is private
/// and not allowed. An MCP server that is down fails nothing: its tools are
/// offered once it answers.
pub fn tooling(config: &TenantConfig) -> Result<Option<Tooling>, String> {
    let builtin = config.tooling.handoff || config.tooling.memory;
    if config.tools.is_empty() && config.mcp.is_empty() && !builtin {
        return Ok(None);
    }
    let mut tools = Vec::with_capacity(config.tools.len());
    for t in &config.tools {
        let name = &t.name;
        let keys = signing_keys(&format!("tools `{name}`"), &t.secret_env)?;
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
    let tools_client = own_or_shared_client(config);
    let verification = match &config.tooling.verify {
        Some(v) => {
            let keys = signing_keys("tooling.verify_url", &v.secret_env)?;
            // Never the demo shop's own client for another URL: it may reach
            // the server's own address.
            let own = crate::demo_shop::client_for_url(&v.url);
            let verifier =
                WebhookVerifier::new(own.unwrap_or_else(webhook_client), v.url.clone(), keys, v.timeout);
            Some(Verification { verifier: Arc::new(verifier), timeout: v.timeout })
        }
        None => None,
    };
    let webhooks = WebhookToolbox::new(config.id.clone(), tools_client, tools);
    let servers = mcp_servers(config)?;
    let toolbox: Arc<dyn Toolbox> =
        if servers.is_empty() { Arc::new(webhooks) } else { Arc::new(ToolSet::new(webhooks, servers)?) };
    Ok(Some(Tooling {
        toolbox,
        max_rounds: config.tooling.max_rounds,
        max_calls: config.tooling.max_calls,
        handoff: config.tooling.handoff,
        verification,
        memory: config.tooling.memory,
    }))
}

/// The `whsec_` secret(s) in the variable `var`; `what` names the setting
/// in the error.
fn signing_keys(what: &str, var: &str) -> Result<SigningKeys, String> {
    let secret = std::env::var(var).map_err(|_| format!("{what}: the variable {var} is not set"))?;
    SigningKeys::parse(&secret).map_err(|e| format!("{what}: {var}: {e}"))
}

fn mcp_servers(config: &TenantConfig) -> Result<Vec<McpServer>, String> {
    let mut servers = Vec::with_capacity(config.mcp.len());
    for m in &config.mcp {
        let bearer_token = match &m.bearer_token_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| format!("mcp `{}`: the variable {var} is not set", m.name))?
                    .into(),
            ),
            None => None,
        };
        let server = McpServerConfig {
            tenant_id: config.id.clone(),
            name: m.name.clone(),
            url: m.url.clone(),
            bearer_token,
            allow: m.allow.clone(),
            timeout: m.timeout,
            intervals: ListingIntervals::default(),
        };
        servers.push(McpServer::new(server, mcp_client()).map_err(|e| format!("mcp `{}`: {e}", m.name))?);
    }
    Ok(servers)
}
