//! The Messages API streaming wire format: the request body we send (with
//! the history reshaped into the strict user/assistant alternation the API
//! demands) and how the events of the answer become provider events.
//! Lenient about what the stream adds (pings, new event and block types,
//! unknown fields); strict about errors and about the end marker.

use crate::answer::{Flow, Wire};
use crate::http::{snippet, to_u32};
use crate::sse::SseEvent;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::{HistoryMessage, ProviderError, ProviderEvent};

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
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    /// Borrowed unless neighbours of one role had to be merged.
    pub content: Cow<'a, str>,
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
            Some(last) if last.role == role => {
                let merged = last.content.to_mut();
                merged.push_str("\n\n");
                merged.push_str(&m.content);
            }
            _ => out.push(WireMessage { role, content: Cow::Borrowed(&m.content) }),
        }
    }
    out
}

/// One event of the stream, told apart by its `type` (the `event:` line
/// repeats it but is optional to us). Event types we do not know are
/// tolerated, as the API promises to add some.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        #[serde(default)]
        message: Option<MessageStart>,
    },
    ContentBlockDelta {
        #[serde(default)]
        delta: Option<BlockDelta>,
    },
    MessageDelta {
        #[serde(default)]
        delta: Option<MessageDelta>,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        #[serde(default)]
        error: Option<WireError>,
    },
    /// `ping`, `content_block_start`, `content_block_stop` and whatever
    /// comes later.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// Tool input (`input_json_delta`), thinking, signatures, citations:
    /// not shown to the visitor for now.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Token counts; every field may be absent or null.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        // The context window filled up: cut short like `max_tokens`.
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // `pause_turn` and whatever comes later: the answer still ended.
        other => {
            tracing::debug!(stop_reason = other, "unknown stop_reason taken as stop");
            FinishReason::Stop
        }
    }
}

/// An in-stream error: the server's load or fault is worth another attempt,
/// anything else (a bad request, a refused key) would fail again.
fn stream_error(error: Option<WireError>, data: &str) -> ProviderError {
    let Some(error) = error else {
        return ProviderError::Unavailable(format!("upstream error mid-stream: {}", snippet(data)));
    };
    let kind = error.kind.unwrap_or_default();
    let message = format!(
        "upstream error mid-stream: {}: {}",
        snippet(&kind),
        snippet(error.message.as_deref().unwrap_or_default())
    );
    match kind.as_str() {
        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error" => {
            ProviderError::Transient(message)
        }
        _ => ProviderError::Unavailable(message),
    }
}

/// The Messages stream: complete only at `message_stop`. Counts are kept
/// as they come (output counts are cumulative, so the last one wins) and
/// reported once at the end.
#[derive(Debug, Default)]
pub(crate) struct MessagesWire {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    /// Whether any counts came at all: without them the engine estimates.
    counted: bool,
    finished: bool,
}

impl MessagesWire {
    /// Takes the counts an event carries; absent ones keep their value.
    fn count(&mut self, usage: WireUsage) {
        let fields = [
            (usage.input_tokens, &mut self.input_tokens),
            (usage.cache_creation_input_tokens, &mut self.cache_creation_input_tokens),
            (usage.cache_read_input_tokens, &mut self.cache_read_input_tokens),
            (usage.output_tokens, &mut self.output_tokens),
        ];
        for (value, slot) in fields {
            if let Some(value) = value {
                *slot = value;
                self.counted = true;
            }
        }
    }

    fn usage(&self) -> Usage {
        // Cached prompt tokens are prompt tokens too, only billed differently.
        let prompt = self
            .input_tokens
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens);
        Usage::new(to_u32(prompt), to_u32(self.output_tokens), false)
    }
}

impl Wire for MessagesWire {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<ProviderEvent>) -> Result<Flow, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            // An event without data has no `type` to go by, only its name.
            if event.event.as_deref() == Some("error") {
                return Err(ProviderError::Unavailable("upstream error event without data".into()));
            }
            return Ok(Flow::More);
        }
        let parsed: StreamEvent = serde_json::from_str(data).map_err(|e| {
            ProviderError::Unavailable(format!("unparseable stream event ({e}): {}", snippet(data)))
        })?;
        match parsed {
            StreamEvent::MessageStart { message } => {
                if let Some(usage) = message.and_then(|m| m.usage) {
                    self.count(usage);
                }
            }
            StreamEvent::ContentBlockDelta { delta: Some(BlockDelta::TextDelta { text }) } => {
                if !text.is_empty() {
                    out.push(ProviderEvent::Delta(text));
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.count(usage);
                }
                if let Some(reason) = delta.and_then(|d| d.stop_reason) {
                    // One finish per answer, whatever the stream repeats.
                    if !std::mem::replace(&mut self.finished, true) {
                        out.push(ProviderEvent::Finish(finish_reason(&reason)));
                    }
                }
            }
            StreamEvent::MessageStop => {
                if self.counted {
                    out.push(ProviderEvent::Usage(self.usage()));
                }
                return Ok(Flow::Done);
            }
            StreamEvent::Error { error } => return Err(stream_error(error, data)),
            StreamEvent::ContentBlockDelta { .. } | StreamEvent::Other => {}
        }
        Ok(Flow::More)
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
