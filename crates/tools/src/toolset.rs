//! A tenant's tools from every source as one core `Toolbox`: its webhook
//! tools (`[[tenants.tools]]`, by exact name) and its MCP servers
//! (`[[tenants.mcp]]`, by the `<server>__` prefix of the offered name).
//! Names are checked once, at start, so a name can only ever mean one tool.

use crate::mcp::{McpServer, SEPARATOR};
use crate::webhook_tools::WebhookToolbox;
use futures_util::future::join_all;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_core::tools::{Invocation, Outcome, ToolCall, ToolSpec, Toolbox};

pub struct ToolSet {
    webhooks: WebhookToolbox,
    mcp: Vec<McpServer>,
}

impl ToolSet {
    /// Fails (the message names the clash, for the operator) when two MCP
    /// servers share a name, or a webhook tool's name starts with an MCP
    /// server's prefix.
    pub fn new(webhooks: WebhookToolbox, mcp: Vec<McpServer>) -> Result<Self, String> {
        let mut names = HashSet::new();
        for server in &mcp {
            let name = server.name();
            if !names.insert(name) {
                return Err(format!("two MCP servers are named `{name}`"));
            }
            if let Some(tool) = webhooks.tool_names().find(|tool| server.bare_name(tool).is_some()) {
                return Err(format!(
                    "the webhook tool `{tool}` would be taken for a tool of the MCP server `{name}` (`{name}{SEPARATOR}…`)"
                ));
            }
        }
        Ok(Self { webhooks, mcp })
    }

    fn server(&self, name: &str) -> Option<&McpServer> {
        self.mcp.iter().find(|server| server.bare_name(name).is_some())
    }
}

#[async_trait::async_trait]
impl Toolbox for ToolSet {
    /// The webhook tools, then each server's, in configuration order. The
    /// servers are asked together, so a turn waits at most for the slowest
    /// one's timeout.
    async fn offered(&self) -> Arc<[ToolSpec]> {
        let webhooks = self.webhooks.offered().await;
        if self.mcp.is_empty() {
            return webhooks;
        }
        let servers = join_all(self.mcp.iter().map(McpServer::offered)).await;
        webhooks.iter().chain(servers.iter().flat_map(|tools| tools.iter())).cloned().collect()
    }

    fn check(&self, call: &ToolCall) -> Result<Value, String> {
        match self.server(&call.name) {
            Some(server) => server.check(call),
            None => self.webhooks.check(call),
        }
    }

    async fn run(&self, invocation: Invocation) -> Outcome {
        match self.server(&invocation.name) {
            Some(server) => server.run(invocation).await,
            None => self.webhooks.run(invocation).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::{ListingIntervals, McpClient, McpServerConfig};
    use crate::{SigningKeys, WebhookClient, WebhookTool};
    use serde_json::json;
    use std::time::Duration;

    fn config(name: &str, url: &str) -> McpServerConfig {
        McpServerConfig {
            tenant_id: "acme".into(),
            name: name.into(),
            url: url.into(),
            bearer_token: None,
            allow: None,
            timeout: Duration::from_secs(1),
            intervals: ListingIntervals::default(),
        }
    }

    fn server(name: &str) -> McpServer {
        McpServer::new(config(name, "https://mcp.acme.example/mcp"), &McpClient::new(Default::default()))
            .unwrap()
    }

    fn webhooks(names: &[&str]) -> WebhookToolbox {
        let tools = names
            .iter()
            .map(|name| {
                let spec =
                    ToolSpec { name: (*name).into(), description: String::new(), parameters: json!({}) };
                let keys = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
                WebhookTool::new(spec, "https://shop.example/tools".into(), keys, Duration::from_secs(1))
                    .unwrap()
            })
            .collect();
        WebhookToolbox::new("acme".into(), Arc::new(WebhookClient::new(Default::default())), tools)
    }

    #[test]
    fn a_name_can_mean_one_tool_only() {
        assert!(ToolSet::new(webhooks(&["search", "shopping"]), vec![server("shop"), server("crm")]).is_ok());
        let twice = ToolSet::new(webhooks(&[]), vec![server("shop"), server("shop")]).err().unwrap();
        assert!(twice.contains("two MCP servers"), "{twice}");
        let taken = ToolSet::new(webhooks(&["shop__search"]), vec![server("shop")]).err().unwrap();
        assert!(taken.contains("shop__search"), "{taken}");
    }

    #[test]
    fn calls_go_to_their_source_by_name() {
        let tools = ToolSet::new(webhooks(&["search"]), vec![server("shop")]).unwrap();
        let call = |name: &str| ToolCall { id: "call_1".into(), name: name.into(), arguments: "{}".into() };
        assert_eq!(tools.check(&call("search")), Ok(json!({})));
        // Not listed yet: the server's tools are unknown until it answers.
        let unlisted = tools.check(&call("shop__search")).unwrap_err();
        assert!(unlisted.contains("unknown tool"), "{unlisted}");
        assert!(tools.check(&call("crm__search")).is_err());
    }

    #[test]
    fn server_names_and_urls_are_checked_at_start() {
        let client = McpClient::new(Default::default());
        assert!(McpServer::new(config("a__b", "https://mcp.example/"), &client).is_err());
        assert!(McpServer::new(config("shop", "ftp://mcp.example/"), &client).is_err());
        assert!(McpServer::new(config("shop", "http://10.0.0.8/mcp"), &client).is_err());
        let zero = McpServerConfig { timeout: Duration::ZERO, ..config("shop", "https://mcp.example/") };
        assert!(McpServer::new(zero, &client).is_err());
    }
}
