//! A tenant's webhook tools (`[[tenants.tools]]`, SPEC §16) as core's
//! `Toolbox`: each call's arguments checked against its tool's JSON Schema
//! (draft 2020-12) before anything is sent, then a signed `POST` of
//! `{type: "tool.call", …}` to the tool's URL, whose `{result, display?}`
//! answer goes back to the model and the visitor. Every failure is an error
//! result with a short reason; nothing here fails a turn.

use crate::client::{WebhookClient, WebhookRequest};
use crate::signature::SigningKeys;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::tools::{Invocation, Outcome, ToolCall, ToolSpec, Toolbox};

/// One webhook tool, ready to call.
pub struct WebhookTool {
    pub spec: ToolSpec,
    pub url: String,
    pub keys: SigningKeys,
    pub timeout: Duration,
    schema: jsonschema::Validator,
}

impl WebhookTool {
    /// Fails when `spec.parameters` is not a valid JSON Schema (the message
    /// says why, for the operator).
    pub fn new(spec: ToolSpec, url: String, keys: SigningKeys, timeout: Duration) -> Result<Self, String> {
        let schema = crate::arguments::compile(&spec.parameters)
            .map_err(|e| format!("`parameters` is not a valid JSON Schema: {e}"))?;
        Ok(Self { spec, url, keys, timeout, schema })
    }
}

/// The tools of one tenant.
pub struct WebhookToolbox {
    tenant_id: String,
    client: Arc<WebhookClient>,
    tools: Vec<WebhookTool>,
    offered: Arc<[ToolSpec]>,
}

impl WebhookToolbox {
    pub fn new(tenant_id: String, client: Arc<WebhookClient>, tools: Vec<WebhookTool>) -> Self {
        let offered = tools.iter().map(|t| t.spec.clone()).collect();
        Self { tenant_id, client, tools, offered }
    }

    /// The names of its tools, as offered.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|t| t.spec.name.as_str())
    }

    fn tool(&self, name: &str) -> Option<&WebhookTool> {
        self.tools.iter().find(|t| t.spec.name == name)
    }
}

#[async_trait::async_trait]
impl Toolbox for WebhookToolbox {
    async fn offered(&self) -> Arc<[ToolSpec]> {
        self.offered.clone()
    }

    fn check(&self, call: &ToolCall) -> Result<Value, String> {
        let tool = self.tool(&call.name).ok_or_else(|| format!("unknown tool {:?}", call.name))?;
        crate::arguments::check(&call.arguments, &tool.schema)
    }

    async fn run(&self, call: Invocation) -> Outcome {
        let Some(tool) = self.tool(&call.name) else {
            return failed(format!("unknown tool {:?}", call.name));
        };
        let body = json!({
            "type": "tool.call",
            "tenant_id": call.tenant_id,
            "session_id": call.session_id,
            "turn_id": call.turn_id,
            "call_id": call.call_id,
            "tool": call.name,
            "arguments": call.arguments,
            "subject": call.subject,
            "context": call.context,
        });
        let request = WebhookRequest {
            url: &tool.url,
            keys: &tool.keys,
            id: None,
            body: body.to_string().into(),
            timeout: tool.timeout,
            trace_id: &call.trace_id,
        };
        match self.client.call(&self.tenant_id, request).await {
            Ok(answer) => outcome_of(answer),
            Err(e) => failed(e.to_string()),
        }
    }
}

fn failed(reason: String) -> Outcome {
    Outcome { result: Err(reason), display: None }
}

/// `{result, display?}`: `result` goes to the model; `display`, when it is
/// one of the shapes the widget knows, to the visitor.
fn outcome_of(mut answer: Value) -> Outcome {
    let Some(result) = answer.get_mut("result").map(Value::take) else {
        return failed("the tool's answer has no `result`".into());
    };
    let display = answer.get_mut("display").map(Value::take).filter(valid_display);
    Outcome { result: Ok(result), display }
}

/// `{type: "products", items: [...]}`, `{type: "text", text}` or
/// `{type: "link", url, title}` (SPEC §16); anything else is not shown.
fn valid_display(display: &Value) -> bool {
    match display.get("type").and_then(Value::as_str) {
        Some("products") => display.get("items").is_some_and(Value::is_array),
        Some("text") => display.get("text").is_some_and(Value::is_string),
        Some("link") => display.get("url").is_some_and(Value::is_string),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolbox() -> WebhookToolbox {
        let spec = ToolSpec {
            name: "search_products".into(),
            description: "Search".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        };
        let keys = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let tool = WebhookTool::new(spec, "https://shop.example/tools".into(), keys, Duration::from_secs(1))
            .unwrap();
        let client = Arc::new(WebhookClient::new(Default::default()));
        WebhookToolbox::new("acme".into(), client, vec![tool])
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: "call_1".into(), name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn arguments_are_checked_against_the_schema_before_any_call() {
        let tools = toolbox();
        assert_eq!(
            tools.check(&call("search_products", r#"{"query":"shoes"}"#)),
            Ok(json!({"query": "shoes"}))
        );
        let unknown = tools.check(&call("drop_tables", "{}")).unwrap_err();
        assert!(unknown.contains("unknown tool"), "{unknown}");
        let not_json = tools.check(&call("search_products", r#"{"query":"#)).unwrap_err();
        assert!(not_json.starts_with("arguments are not valid JSON"), "{not_json}");
        let missing = tools.check(&call("search_products", "")).unwrap_err();
        assert!(missing.contains("schema") && missing.contains("query"), "{missing}");
        let wrong = tools.check(&call("search_products", r#"{"query":7}"#)).unwrap_err();
        assert!(wrong.contains("/query"), "{wrong}");
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused_at_startup() {
        let spec = ToolSpec { name: "t".into(), description: String::new(), parameters: json!({"type": 12}) };
        let keys = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(WebhookTool::new(spec, "https://x".into(), keys, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn answers_give_the_result_and_only_known_displays() {
        let products = json!({"type": "products", "items": [{"id": "p1"}]});
        let answer = outcome_of(json!({"result": {"n": 1}, "display": products}));
        assert_eq!(answer, Outcome { result: Ok(json!({"n": 1})), display: Some(products) });
        let odd = outcome_of(json!({"result": "ok", "display": {"type": "html", "html": "<b>"}}));
        assert_eq!(odd.display, None);
        assert!(outcome_of(json!({"display": {"type": "text", "text": "x"}})).result.is_err());
    }
}
