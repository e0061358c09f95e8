//! The Dify chat-messages streaming wire format: the request body we send and
//! how the chunks of the answer become provider events. Every chunk is a
//! `data:` JSON object naming its own `event`; only the few events that carry
//! answer text, the end, an error or an agent's tool use matter here, and any
//! other (files, speech, chatflow progress, events added later) is tolerated
//! and skipped.

use crate::answer::{Flow, Wire};
use crate::http::{snippet, to_u32};
use crate::sse::SseEvent;
use serde::{Deserialize, Serialize};
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::{ProviderError, ProviderEvent};

/// The body of `POST {base_url}/chat-messages`. Dify keeps the history (and
/// the app's own prompt) server-side by `conversation_id`, so only this
/// turn's text travels.
#[derive(Debug, Serialize)]
pub(crate) struct RequestBody<'a> {
    /// The app's input variables; none are sent, so an app that requires
    /// some refuses with `invalid_param`.
    pub inputs: Inputs,
    pub query: &'a str,
    pub response_mode: &'static str,
    /// Empty starts a new conversation.
    pub conversation_id: &'a str,
    /// Dify scopes conversations to this end-user id.
    pub user: &'a str,
}

/// Serialises as `{}`.
#[derive(Debug, Serialize)]
pub(crate) struct Inputs {}

/// What one chunk of the answer says, with the conversation id it carries.
#[derive(Debug, PartialEq)]
pub(crate) enum Chunk {
    /// `message` or `agent_message`: more answer text.
    Text { conversation_id: Option<String>, answer: String },
    /// `message_replace`: all text so far is replaced (output moderation).
    Replace { conversation_id: Option<String>, answer: String },
    /// `message_end`: the answer is complete, with Dify's counts if given.
    End { conversation_id: Option<String>, usage: Option<Usage> },
    /// `agent_thought` naming a tool: Dify's agent ran (or runs) it.
    Thought { conversation_id: Option<String>, tool: switchboard_core::tools::RemoteTool },
    /// `error`: the stream ends with this failure.
    Error(ProviderError),
    /// Anything else, including keep-alives.
    Other { conversation_id: Option<String> },
}

#[derive(Debug, Deserialize)]
struct TextChunk {
    #[serde(default)]
    answer: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EndChunk {
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Only the counts: prices come as decimal strings and latencies as floats,
/// neither of which we use, so they are left unparsed.
#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ErrorChunk {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<serde_json::Value>,
}

/// A JSON value as log text: strings without their quotes.
fn text(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The HTTP-like status of an error event, a number or a string of digits.
fn status(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An in-stream error as a provider error. Dify gives each one the status
/// its HTTP form would have had, which says best whether it will pass: 429
/// and 5xx (overload, an internal failure) may, while the 400s (quota spent,
/// provider not set up, a bad parameter, a model error) will repeat.
fn error(chunk: &ErrorChunk) -> ProviderError {
    let code = text(chunk.code.as_ref());
    let message = format!("upstream error mid-stream: {code}: {}", snippet(&text(chunk.message.as_ref())));
    let transient = match status(chunk.status.as_ref()) {
        Some(status) => status == 429 || status >= 500,
        // Dify always sends a status; without one only its catch-all code
        // for unexpected failures reads as passing.
        None => code == "internal_server_error",
    };
    if transient {
        ProviderError::Transient(message)
    } else {
        ProviderError::Unavailable(message)
    }
}

fn unparseable(e: &serde_json::Error, data: &str) -> ProviderError {
    ProviderError::Unavailable(format!("unparseable stream chunk ({e}): {}", snippet(data)))
}

/// Reads one `data:` payload. The event name decides which fields are read,
/// so an event we skip can never fail the stream by its shape.
pub(crate) fn parse_chunk(data: &str) -> Result<Chunk, ProviderError> {
    let value: serde_json::Value = serde_json::from_str(data).map_err(|e| unparseable(&e, data))?;
    let Some(event) = value.get("event").and_then(serde_json::Value::as_str) else {
        return Err(ProviderError::Unavailable(format!("stream chunk without an event: {}", snippet(data))));
    };
    let conversation_id = value
        .get("conversation_id")
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let read = |value: &serde_json::Value| -> Result<TextChunk, ProviderError> {
        TextChunk::deserialize(value).map_err(|e| unparseable(&e, data))
    };
    Ok(match event {
        "message" | "agent_message" => {
            Chunk::Text { conversation_id, answer: read(&value)?.answer.unwrap_or_default() }
        }
        "message_replace" => {
            Chunk::Replace { conversation_id, answer: read(&value)?.answer.unwrap_or_default() }
        }
        "message_end" => {
            let end = EndChunk::deserialize(&value).map_err(|e| unparseable(&e, data))?;
            let usage = end.metadata.and_then(|m| m.usage).and_then(|u| {
                if u.prompt_tokens.is_none() && u.completion_tokens.is_none() {
                    return None;
                }
                let count = |n: Option<u64>| to_u32(n.unwrap_or(0));
                Some(Usage::new(count(u.prompt_tokens), count(u.completion_tokens), false))
            });
            Chunk::End { conversation_id, usage }
        }
        "agent_thought" => match thought(&value) {
            Some(tool) => Chunk::Thought { conversation_id, tool },
            None => Chunk::Other { conversation_id },
        },
        "error" => {
            let chunk = ErrorChunk::deserialize(&value).map_err(|e| unparseable(&e, data))?;
            Chunk::Error(error(&chunk))
        }
        _ => Chunk::Other { conversation_id },
    })
}

/// The tool an `agent_thought` reports, if it names one (a thought without
/// a tool is the agent's reasoning, not shown). `tool_input` is the JSON text
/// Dify gives; `observation`, once not empty, is the tool's result.
fn thought(value: &serde_json::Value) -> Option<switchboard_core::tools::RemoteTool> {
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str).unwrap_or_default();
    let (id, name) = (text("id"), text("tool"));
    if id.is_empty() || name.is_empty() {
        return None;
    }
    let observation = text("observation");
    Some(switchboard_core::tools::RemoteTool {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments: text("tool_input").to_owned(),
        result: (!observation.is_empty()).then(|| observation.to_owned()),
    })
}

/// The Dify answer stream: ends at `message_end`; a body that closes before
/// it was cut short.
#[derive(Debug)]
pub(crate) struct DifyWire {
    /// The conversation id this request sent (empty for a new one).
    sent_conversation: String,
    /// A chunk has carried a conversation id already.
    conversation_seen: bool,
    /// Dify's moderation replaced the answer.
    replaced: bool,
}

impl DifyWire {
    pub(crate) fn new(sent_conversation: &str) -> Self {
        Self { sent_conversation: sent_conversation.to_owned(), conversation_seen: false, replaced: false }
    }

    /// Reports the conversation id once, from the first chunk that carries
    /// one, and only when it is news: every chunk repeats it, and the engine
    /// already keeps the one it sent.
    fn conversation(&mut self, id: Option<String>, out: &mut Vec<ProviderEvent>) {
        let Some(id) = id else { return };
        if std::mem::replace(&mut self.conversation_seen, true) {
            return;
        }
        if id != self.sent_conversation {
            out.push(ProviderEvent::Conversation(id));
        }
    }
}

impl Wire for DifyWire {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<ProviderEvent>) -> Result<Flow, ProviderError> {
        let data = event.data.trim();
        // `event: ping` keep-alives have no data; the JSON carries the real
        // event name, so the SSE `event:` field is not consulted otherwise.
        if data.is_empty() {
            return Ok(Flow::More);
        }
        match parse_chunk(data)? {
            Chunk::Text { conversation_id, answer } => {
                self.conversation(conversation_id, out);
                if !answer.is_empty() {
                    out.push(ProviderEvent::Delta(answer));
                }
                Ok(Flow::More)
            }
            Chunk::Replace { conversation_id, answer } => {
                self.conversation(conversation_id, out);
                self.replaced = true;
                // Even an empty replacement counts: it clears what was shown.
                out.push(ProviderEvent::Replace(answer));
                Ok(Flow::More)
            }
            Chunk::End { conversation_id, usage } => {
                self.conversation(conversation_id, out);
                // Dify only replaces an answer when its output moderation
                // flagged it, so the turn reports that rather than a plain stop.
                let reason = if self.replaced { FinishReason::ContentFilter } else { FinishReason::Stop };
                out.push(ProviderEvent::Finish(reason));
                out.extend(usage.map(ProviderEvent::Usage));
                Ok(Flow::Done)
            }
            Chunk::Thought { conversation_id, tool } => {
                self.conversation(conversation_id, out);
                out.push(ProviderEvent::RemoteTool(tool));
                Ok(Flow::More)
            }
            Chunk::Error(e) => Err(e),
            Chunk::Other { conversation_id } => {
                self.conversation(conversation_id, out);
                Ok(Flow::More)
            }
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
