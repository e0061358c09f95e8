//! The Messages API request body: the history reshaped into the strict
//! user/assistant alternation the API demands, the tools offered, and this
//! turn's rounds as `tool_use` and `tool_result` blocks. With no tools and
//! no rounds the body is exactly the plain chat request.

use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use switchboard_core::provider::{ChatRequest, HistoryMessage};
use switchboard_core::tools::{ToolChoice, ToolRound};

#[derive(Debug, Serialize)]
pub(crate) struct RequestBody<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    pub stream: bool,
    /// Top level: the Messages API has no `system` role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    pub messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<WireToolChoice>,
}

impl<'a> RequestBody<'a> {
    /// The body of a streamed answer to `request`.
    pub fn new(model: &'a str, max_tokens: u32, temperature: Option<f32>, request: &'a ChatRequest) -> Self {
        let tools = &request.tools;
        let mut messages = messages(&request.history);
        for round in tools.rounds.iter() {
            push_round(round, &mut messages);
        }
        let offered = (!tools.offered.is_empty()).then(|| {
            let tool = |spec: &'a switchboard_core::tools::ToolSpec| WireTool {
                name: &spec.name,
                description: &spec.description,
                input_schema: &spec.parameters,
            };
            tools.offered.iter().map(tool).collect()
        });
        // Unlike OpenAI, the API refuses a history holding `tool_use` blocks
        // without `tools`: to end in words the tools stay and are forbidden.
        let tool_choice = (offered.is_some() && tools.choice == ToolChoice::None)
            .then_some(WireToolChoice { kind: "none" });
        Self {
            model,
            max_tokens,
            stream: true,
            system: system(request.system_prompt.as_deref()),
            temperature,
            messages,
            tools: offered,
            tool_choice,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    pub content: Content<'a>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum Content<'a> {
    /// The history's messages: plain text, borrowed unless neighbours of
    /// one role had to be merged.
    Text(Cow<'a, str>),
    /// A round: the assistant's text and calls, or the results of them.
    Blocks(Vec<Block<'a>>),
}

#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Debug, Serialize)]
pub(crate) struct WireTool<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub input_schema: &'a Value,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireToolChoice {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The system prompt, unless it is blank (the API rejects blank text).
pub(crate) fn system(prompt: Option<&str>) -> Option<&str> {
    prompt.filter(|p| !p.trim().is_empty())
}

/// The history as the API accepts it: roles alternating, starting with the
/// user. Agents' messages sit on the assistant's side (the visitor saw them
/// there); system notes are left out; blank messages are skipped (the API
/// rejects blank text); neighbours of one role are joined by a blank line,
/// which also heals the gaps the dropped messages leave; assistant messages
/// before the first user message (a greeting, or a history window that
/// starts mid-conversation) are dropped.
pub(crate) fn messages(history: &[HistoryMessage]) -> Vec<WireMessage<'_>> {
    let mut out: Vec<WireMessage<'_>> = Vec::with_capacity(history.len());
    for m in history {
        let Some(role) = crate::chat_role(m.role) else { continue };
        if m.content.trim().is_empty() || (out.is_empty() && role == "assistant") {
            continue;
        }
        match out.last_mut() {
            Some(WireMessage { role: last, content: Content::Text(text) }) if *last == role => {
                let merged = text.to_mut();
                merged.push_str("\n\n");
                merged.push_str(&m.content);
            }
            _ => out.push(WireMessage { role, content: Content::Text(Cow::Borrowed(&m.content)) }),
        }
    }
    out
}

/// One round after the history (which ends with the user's message): the
/// assistant's turn of its text and `tool_use` blocks, then a user turn of
/// only `tool_result` blocks (a text block after them has been seen to
/// bring empty answers).
fn push_round<'a>(round: &'a ToolRound, out: &mut Vec<WireMessage<'a>>) {
    // Blank text is refused, as in the history.
    let text = (!round.text.trim().is_empty()).then_some(Block::Text { text: &round.text });
    let uses =
        round.calls.iter().map(|c| Block::ToolUse { id: &c.id, name: &c.name, input: input(&c.arguments) });
    out.push(WireMessage {
        role: "assistant",
        content: Content::Blocks(text.into_iter().chain(uses).collect()),
    });
    let results = round.results.iter().map(|r| Block::ToolResult {
        tool_use_id: &r.call_id,
        content: &r.content,
        is_error: r.is_error,
    });
    out.push(WireMessage { role: "user", content: Content::Blocks(results.collect()) });
}

/// A call's arguments as the object `input` must be: what the model wrote
/// when that is a JSON object, else `{}` (the engine answered such a call
/// with an error result, which tells the model what was wrong).
fn input(arguments: &str) -> Value {
    Value::Object(serde_json::from_str::<Map<String, Value>>(arguments).unwrap_or_default())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
