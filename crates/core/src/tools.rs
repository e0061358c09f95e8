//! Tools as a provider sees them (SPEC §16): what is offered with a request,
//! the calls a model makes (assembled from its stream by the provider's
//! client), and the rounds of calls and results sent back, in each vendor's
//! own format, on the next request of the same turn.

use std::sync::Arc;

/// A tool offered to the model: its name, what it does, and the JSON Schema
/// of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// One call the model made, whole: the provider's client assembles it from
/// the stream's pieces and hands it out once its arguments are complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's own id (`call_…`, `toolu_…`), or one the client made
    /// where the provider gave none.
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, not yet checked.
    pub arguments: String,
}

/// A tool call the vendor ran itself, as far as it has told (the same `id`
/// again as it fills in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTool {
    pub id: String,
    pub name: String,
    /// The arguments as the vendor reported them (JSON text when it is).
    pub arguments: String,
    /// The tool's result once known.
    pub result: Option<String>,
}

/// What goes back to the model for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub call_id: String,
    /// The result as JSON text (a string result as is); for an error, the
    /// reason.
    pub content: String,
    pub is_error: bool,
}

/// One round of a turn: the text the model said before its calls, the calls,
/// and their results, in the order the calls came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRound {
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub results: Vec<ToolResult>,
}

/// Whether the model may call tools on this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The last request after `max_tool_rounds`: the turn must end in words
    /// (OpenAI: no `tools`; Anthropic, which needs `tools` while the history
    /// holds `tool_use`: `tool_choice: {type: "none"}`).
    None,
}

/// The tools of a request and the rounds of its turn so far. Shared, so
/// retries and fallbacks resend them without copying.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    pub offered: Arc<[ToolSpec]>,
    pub rounds: Arc<[ToolRound]>,
    pub choice: ToolChoice,
}

impl ToolContext {
    /// Whether the request carries anything about tools at all.
    pub fn is_empty(&self) -> bool {
        self.offered.is_empty() && self.rounds.is_empty()
    }
}

/// A tenant's tools as the turn engine uses them: where calls run, and the
/// limits of one turn.
#[derive(Clone)]
pub struct Tooling {
    pub toolbox: Arc<dyn Toolbox>,
    /// Rounds of calls per turn; after the last the model is asked once more
    /// without tools (`max_tool_rounds`, default 4).
    pub max_rounds: u32,
    /// Calls run per model response; the rest get an error result
    /// (`max_tool_calls`, default 8).
    pub max_calls: u32,
    /// The built-in `handoff_to_human` is offered (`builtin_tools`).
    pub handoff: bool,
    /// Products that tools show are checked live (`verify_url`).
    pub verification: Option<Verification>,
    /// A user's memory is shown to the model with the built-in `remember`
    /// and `forget` (`memory = true`, SPEC §18).
    pub memory: bool,
}

/// Where shown products are checked, and how long a check may take
/// (`verify_timeout_ms`); a check that takes longer counts as failed.
#[derive(Clone)]
pub struct Verification {
    pub verifier: Arc<dyn Verifier>,
    pub timeout: std::time::Duration,
}

/// Checks products a tool showed against the shop's live data (SPEC §16).
#[async_trait::async_trait]
pub trait Verifier: Send + Sync + 'static {
    /// The live fields of the products with these ids, one object each
    /// (`{id, price, currency, availability, …}`); `Err` with a reason (for
    /// the log) when the check failed. `trace_id` is the turn's, for the
    /// check's `traceparent` ([`crate::trace::traceparent`]).
    async fn verify(
        &self,
        tenant_id: &str,
        ids: Vec<String>,
        trace_id: &str,
    ) -> Result<Vec<serde_json::Value>, String>;
}

/// The ids of the products a `display` shows (none unless it is
/// `{type: "products", items: [{id, …}]}`).
pub fn shown_products(display: Option<&serde_json::Value>) -> Vec<String> {
    let Some(display) = display.filter(|d| d["type"] == "products") else { return Vec::new() };
    let items = display["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    items.iter().filter_map(|item| item["id"].as_str().map(str::to_owned)).collect()
}

/// Merges a check's live fields into the shown products, by id (every field
/// the shop sent but `id`); true when every shown product came back.
pub fn apply_live(display: &mut serde_json::Value, live: &[serde_json::Value]) -> bool {
    let Some(items) = display.get_mut("items").and_then(serde_json::Value::as_array_mut) else {
        return false;
    };
    let mut all = true;
    for item in items.iter_mut() {
        let Some(id) = item["id"].as_str() else { continue };
        let found = live.iter().find(|l| l["id"].as_str() == Some(id)).and_then(serde_json::Value::as_object);
        let (Some(fields), Some(item)) = (found, item.as_object_mut()) else {
            all = false;
            continue;
        };
        for (key, value) in fields.iter().filter(|(key, _)| *key != "id") {
            item.insert(key.clone(), value.clone());
        }
    }
    all
}

/// The built-in tool that hands the conversation to a person (SPEC §16).
pub const HANDOFF: &str = "handoff_to_human";

/// How the model is told about [`HANDOFF`].
pub fn handoff_spec() -> ToolSpec {
    ToolSpec {
        name: HANDOFF.to_owned(),
        description: "Hand the conversation over to a person on the team, when the visitor asks for \
            a person or you cannot help. A person answers from then on."
            .to_owned(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why a person is needed, in a few words"}},
        }),
    }
}

/// The built-in tools of a user's memory (SPEC §18).
pub const REMEMBER: &str = "remember";
pub const FORGET: &str = "forget";

/// How the model is told about [`REMEMBER`] and [`FORGET`].
pub fn memory_specs() -> [ToolSpec; 2] {
    let key = serde_json::json!({"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$",
        "description": "A short lowercase name for the preference, e.g. size, likes, colour"});
    [
        ToolSpec {
            name: REMEMBER.to_owned(),
            description: "Remember a lasting preference of this user for later conversations (it replaces \
                what was remembered under the same key)."
                .to_owned(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"key": key, "value": {"type": "string", "maxLength": 200}},
                "required": ["key", "value"],
            }),
        },
        ToolSpec {
            name: FORGET.to_owned(),
            description: "Forget what is remembered about this user under a key.".to_owned(),
            parameters: serde_json::json!({"type": "object", "properties": {"key": key}, "required": ["key"]}),
        },
    ]
}

/// The reason of a [`HANDOFF`] call: its arguments must be an object whose
/// `reason`, if any, is a string.
pub fn handoff_reason(arguments: &str) -> Result<Option<String>, String> {
    let text = if arguments.trim().is_empty() { "{}" } else { arguments };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(mut args)) => match args.remove("reason") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(reason)) => Ok(Some(reason)),
            Some(_) => Err("arguments do not match the tool's schema at /reason: not a string".into()),
        },
        Ok(_) => Err("arguments do not match the tool's schema: not an object".into()),
        Err(e) => Err(format!("arguments are not valid JSON: {e}")),
    }
}

impl std::fmt::Debug for Tooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tooling")
            .field("max_rounds", &self.max_rounds)
            .field("max_calls", &self.max_calls)
            .field("handoff", &self.handoff)
            .field("verification", &self.verification.as_ref().map(|v| v.timeout))
            .field("memory", &self.memory)
            .finish()
    }
}

/// One call to run, with what the tool is told about its turn.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub tenant_id: String,
    pub session_id: uuid::Uuid,
    pub turn_id: uuid::Uuid,
    pub call_id: String,
    pub name: String,
    /// Checked against the tool's schema ([`Toolbox::check`]).
    pub arguments: serde_json::Value,
    /// `{kind: "user" | "visitor", id}` (SPEC §16).
    pub subject: serde_json::Value,
    /// The page context sent with the message, else the session's latest.
    pub context: Option<serde_json::Value>,
    /// The trace id of the request that started the turn (`traceparent`).
    pub trace_id: String,
}

/// How one call went: what goes back to the model, and what the visitor sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The result, or why there is none (a short reason the model can read).
    pub result: Result<serde_json::Value, String>,
    /// `{type: "products" | "text" | "link", …}` (SPEC §16).
    pub display: Option<serde_json::Value>,
}

/// Where a tenant's tool calls run (webhooks, MCP servers, built-ins); the
/// adapters live outside `core`.
#[async_trait::async_trait]
pub trait Toolbox: Send + Sync + 'static {
    /// The tools offered to the model.
    async fn offered(&self) -> Arc<[ToolSpec]>;
    /// The call's arguments, parsed and checked against its tool's JSON
    /// Schema; `Err` (a reason for the model) for an unknown tool or
    /// arguments that are not JSON or break the schema: such a call is
    /// never run.
    fn check(&self, call: &ToolCall) -> Result<serde_json::Value, String>;
    /// Runs one checked call, within the tool's own timeout. Never fails:
    /// a failing tool is an error result.
    async fn run(&self, invocation: Invocation) -> Outcome;
}

/// A tool call's progress, as the `tool` event and the stored entry say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ToolStatus {
    Running,
    Done,
    Error,
    Shown,
    Verified,
    Unverified,
}

/// A tool call as stored with its answer (encrypted like content). End
/// users see `call_id`, `name`, `status` and `display`; agents see it all.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolCallRecord {
    pub call_id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON when they parsed).
    pub arguments: serde_json::Value,
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub display: Option<serde_json::Value>,
    pub status: ToolStatus,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(with = "crate::time::wire")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: crate::time::Timestamp,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl ToolCallRecord {
    /// The part an end user may see (`tools` on the message).
    pub fn visible(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"call_id": self.call_id, "name": self.name, "status": self.status});
        if let Some(display) = &self.display {
            v["display"] = display.clone();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown() -> serde_json::Value {
        json!({"type": "products", "items": [
            {"id": "p1", "title": "Trail runner", "price": "89.90", "currency": "EUR", "availability": "in_stock"},
            {"id": "p2", "title": "Road racer", "price": "120.00", "currency": "EUR", "availability": "in_stock"},
        ], "total": {"amount": "209.90", "currency": "EUR"}})
    }

    #[test]
    fn only_products_with_ids_are_checked() {
        assert_eq!(shown_products(Some(&shown())), ["p1", "p2"]);
        assert!(shown_products(Some(&json!({"type": "text", "text": "p1"}))).is_empty());
        assert!(shown_products(Some(&json!({"type": "products", "items": [{"title": "no id"}]}))).is_empty());
        assert!(shown_products(None).is_empty());
    }

    #[test]
    fn live_fields_replace_the_shown_ones_by_id() {
        let mut display = shown();
        let live = [
            json!({"id": "p2", "price": "99.00", "availability": "out_of_stock"}),
            json!({"id": "p1", "price": "89.90", "currency": "EUR", "availability": "low_stock"}),
            json!({"id": "p9", "price": "1.00"}),
        ];
        assert!(apply_live(&mut display, &live));
        assert_eq!(display["items"][0]["availability"], "low_stock");
        assert_eq!(display["items"][1]["price"], "99.00");
        assert_eq!(display["items"][1]["availability"], "out_of_stock");
        assert_eq!(display["items"][1]["title"], "Road racer", "fields not sent stay");
        assert_eq!(display["items"].as_array().unwrap().len(), 2, "nothing added");
    }

    #[test]
    fn a_product_left_out_of_the_answer_is_not_verified() {
        let mut display = shown();
        assert!(!apply_live(&mut display, &[json!({"id": "p1", "price": "80.00"})]));
        assert_eq!(display["items"][0]["price"], "80.00", "what came back is still applied");
        assert!(!apply_live(&mut display, &[json!("p1"), json!({"id": "p2"})]));
    }
}
