//! The Chat Completions request body: the system prompt, the history, the
//! tools offered and this turn's rounds of tool calls and results, in the
//! API's own shapes. With no tools and no rounds the body is exactly the
//! plain chat request (compatible servers without tool support still take it).

use serde::Serialize;
use std::borrow::Cow;
use switchboard_core::provider::ChatRequest;
use switchboard_core::tools::{ToolChoice, ToolRound, ToolSpec};

#[derive(Debug, Serialize)]
pub(crate) struct RequestBody<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub stream_options: StreamOptions,
    pub messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<WireTool<'a>>>,
}

impl<'a> RequestBody<'a> {
    /// The body of a streamed answer to `request`.
    pub fn new(
        model: &'a str,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
        request: &'a ChatRequest,
    ) -> Self {
        Self {
            model,
            stream: true,
            stream_options: StreamOptions { include_usage: true },
            messages: messages(request),
            max_tokens,
            temperature,
            tools: tools(request),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    /// `None` (`null`) only on an assistant message of tool calls without
    /// text; owned only for an error result wrapped in JSON.
    pub content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
}

impl<'a> WireMessage<'a> {
    fn text(role: &'static str, content: &'a str) -> Self {
        Self { role, content: Some(Cow::Borrowed(content)), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A call as the assistant message of the next request repeats it.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct WireCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunctionCall<'a>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct WireFunctionCall<'a> {
    pub name: &'a str,
    /// As the model wrote them, valid JSON or not: it is the model's own
    /// message being repeated.
    pub arguments: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireFunction<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters: &'a serde_json::Value,
}

/// The tools to offer: none when none are, and none on the last request
/// after the round limit (`ToolChoice::None`), so the model must answer in
/// words; the API takes tool calls in the history without `tools`.
fn tools(request: &ChatRequest) -> Option<Vec<WireTool<'_>>> {
    let offered: &[ToolSpec] = &request.tools.offered;
    if offered.is_empty() || request.tools.choice == ToolChoice::None {
        return None;
    }
    let tool = |spec| WireTool { kind: "function", function: function(spec) };
    Some(offered.iter().map(tool).collect())
}

fn function(spec: &ToolSpec) -> WireFunction<'_> {
    WireFunction { name: &spec.name, description: &spec.description, parameters: &spec.parameters }
}

/// The messages of a request: the system prompt, then the history with
/// agents' messages shown to the model as its own (the visitor saw them as
/// the assistant's side) and stored system notes left out, then this turn's
/// rounds of tool calls and results.
fn messages(request: &ChatRequest) -> Vec<WireMessage<'_>> {
    let system = request.system_prompt.as_deref().map(|content| WireMessage::text("system", content));
    let history = request
        .history
        .iter()
        .filter_map(|m| crate::chat_role(m.role).map(|role| WireMessage::text(role, &m.content)));
    let mut out: Vec<_> = system.into_iter().chain(history).collect();
    for round in request.tools.rounds.iter() {
        push_round(round, &mut out);
    }
    out
}

/// One round: the assistant message with its calls, then one `tool`
/// message per result, in the order of the calls.
fn push_round<'a>(round: &'a ToolRound, out: &mut Vec<WireMessage<'a>>) {
    let call = |c: &'a switchboard_core::tools::ToolCall| WireCall {
        id: &c.id,
        kind: "function",
        function: WireFunctionCall { name: &c.name, arguments: &c.arguments },
    };
    out.push(WireMessage {
        role: "assistant",
        content: (!round.text.is_empty()).then_some(Cow::Borrowed(round.text.as_str())),
        tool_calls: round.calls.iter().map(call).collect(),
        tool_call_id: None,
    });
    out.extend(round.results.iter().map(|result| {
        // The API has no error flag on tool messages: the error is told in
        // the content, as JSON so the model reads it like any result (and
        // serde_json so the reason's quotes and newlines are escaped).
        let content = if result.is_error {
            Cow::Owned(serde_json::json!({ "error": result.content }).to_string())
        } else {
            Cow::Borrowed(result.content.as_str())
        };
        WireMessage {
            role: "tool",
            content: Some(content),
            tool_calls: Vec::new(),
            tool_call_id: Some(&result.call_id),
        }
    }));
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
