//! One server's tools as they are offered: the `tools/list` answer filtered
//! by `allow`, renamed `<server>__<tool>`, each with its compiled input
//! schema. A tool that cannot be offered safely (a name the providers
//! refuse, a schema that is not one) is left out with a warning: one odd
//! tool must not break every turn of the tenant.

use crate::arguments;
use rmcp::model::Tool;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_core::tools::ToolSpec;

/// Between a server's name and its tool's in the offered name.
pub const SEPARATOR: &str = "__";

/// What OpenAI and Anthropic both accept as a tool name.
const MAX_NAME_LEN: usize = 64;

pub(super) struct Listing {
    pub offered: Arc<[ToolSpec]>,
    /// By bare name (as `tools/call` wants it).
    schemas: HashMap<String, jsonschema::Validator>,
}

impl Listing {
    pub fn empty() -> Self {
        Self { offered: Arc::from([]), schemas: HashMap::new() }
    }

    /// `allow`: the bare names offered; `None` for all.
    pub fn build(tenant: &str, server: &str, tools: Vec<Tool>, allow: Option<&[String]>) -> Self {
        let mut offered = Vec::new();
        let mut schemas = HashMap::new();
        for tool in tools {
            let bare = tool.name.as_ref();
            if allow.is_some_and(|allow| !allow.iter().any(|a| a == bare)) || schemas.contains_key(bare) {
                continue;
            }
            let name = format!("{server}{SEPARATOR}{bare}");
            if !is_tool_name(&name) {
                tracing::warn!(
                    tenant,
                    server,
                    tool = bare,
                    "an MCP tool whose name providers refuse is not offered"
                );
                continue;
            }
            let parameters = Value::Object(tool.input_schema.as_ref().clone());
            let schema = match arguments::compile(&parameters) {
                Ok(schema) => schema,
                Err(error) => {
                    tracing::warn!(tenant, server, tool = bare, %error, "an MCP tool whose inputSchema is not a valid JSON Schema is not offered");
                    continue;
                }
            };
            let description = tool.description.map(|d| d.into_owned()).or(tool.title).unwrap_or_default();
            offered.push(ToolSpec { name, description, parameters });
            schemas.insert(bare.to_owned(), schema);
        }
        Self { offered: offered.into(), schemas }
    }

    pub fn schema(&self, bare: &str) -> Option<&jsonschema::Validator> {
        self.schemas.get(bare)
    }
}

/// `^[A-Za-z0-9_-]{1,64}$`.
fn is_tool_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A server's name can be a prefix: letters, digits, `-` and `_`, with no
/// `__` inside or at its end, so `<server>__<tool>` splits one way only.
pub(super) fn is_server_name(name: &str) -> bool {
    !name.is_empty() && is_tool_name(name) && !name.contains(SEPARATOR) && !name.ends_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, schema: Value) -> Tool {
        let Value::Object(schema) = schema else { panic!("a schema object") };
        Tool::new(name.to_owned(), format!("does {name}"), Arc::new(schema))
    }

    fn object() -> Value {
        json!({"type": "object", "properties": {"id": {"type": "string"}}})
    }

    #[test]
    fn names_are_prefixed_and_allow_filters() {
        let tools = vec![tool("search", object()), tool("get_order", object()), tool("refund", object())];
        let allow = ["search".to_owned(), "get_order".to_owned()];
        let listing = Listing::build("acme", "shop", tools, Some(&allow));
        let names: Vec<&str> = listing.offered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["shop__search", "shop__get_order"]);
        assert_eq!(listing.offered[0].description, "does search");
        assert_eq!(listing.offered[0].parameters, object());
        assert!(listing.schema("search").is_some() && listing.schema("refund").is_none());
    }

    #[test]
    fn tools_that_cannot_be_offered_are_left_out() {
        let long = "x".repeat(60);
        let tools = vec![
            tool("ok", object()),
            tool("has.dot", object()),
            tool(&long, object()),
            tool("bad_schema", json!({"type": 12})),
            tool("ok", json!({"type": "object"})),
        ];
        let listing = Listing::build("acme", "shop", tools, None);
        let names: Vec<&str> = listing.offered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["shop__ok"]);
        assert_eq!(listing.offered[0].parameters, object());
    }

    #[test]
    fn server_names_split_one_way() {
        for good in ["shop", "acme-shop", "acme_shop", "s3"] {
            assert!(is_server_name(good), "{good}");
        }
        for bad in ["", "a__b", "shop_", "has space", "shop.example", "__x"] {
            assert!(!is_server_name(bad), "{bad}");
        }
    }
}
