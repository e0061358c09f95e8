//! The Messages API streaming wire format: how the events of the answer
//! become provider events (text as it comes, each `tool_use` block whole at
//! its end). Lenient about what the stream adds (pings, new event and block
//! types, unknown fields); strict about errors and about the end marker.

use crate::answer::{Flow, Wire};
use crate::http::{snippet, to_u32};
use crate::sse::SseEvent;
use serde::Deserialize;
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::{ProviderError, ProviderEvent};
use switchboard_core::tools::ToolCall;

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
    ContentBlockStart {
        #[serde(default)]
        index: u64,
        #[serde(default)]
        content_block: Option<BlockStart>,
    },
    ContentBlockDelta {
        #[serde(default)]
        index: u64,
        #[serde(default)]
        delta: Option<BlockDelta>,
    },
    ContentBlockStop {
        #[serde(default)]
        index: u64,
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
    /// `ping` and whatever comes later.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The block a `content_block_start` opens: only tool calls concern us
/// (text comes in its deltas).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        /// `{}` when streamed (the input comes in deltas); kept for servers
        /// that send it whole here instead.
        #[serde(default)]
        input: Option<serde_json::Value>,
    },
    /// Text, thinking, the vendor's own server tools, and later kinds.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// A piece of a `tool_use` block's input, JSON text cut anywhere.
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    /// Thinking, signatures, citations: not shown to the visitor for now.
    #[serde(other)]
    Other,
}

/// A `tool_use` block between its start and its stop.
#[derive(Debug)]
struct OpenCall {
    index: u64,
    call: ToolCall,
    /// The input given whole at the start, if it was not empty.
    whole: Option<serde_json::Value>,
}

impl OpenCall {
    /// The call at its block's end: its input as streamed; else as given at
    /// the start; else `{}` (a call without arguments streams none).
    fn close(self) -> ToolCall {
        let mut call = self.call;
        if call.arguments.trim().is_empty() {
            call.arguments = match self.whole {
                Some(input) => input.to_string(),
                None => "{}".to_owned(),
            };
        }
        if call.id.is_empty() {
            call.id = crate::new_call_id();
        }
        call
    }
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
    /// `tool_use` blocks started and not yet stopped (blocks come one after
    /// another, so at most one in practice).
    open: Vec<OpenCall>,
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
            StreamEvent::ContentBlockDelta { delta: Some(BlockDelta::TextDelta { text }), .. } => {
                if !text.is_empty() {
                    out.push(ProviderEvent::Delta(text));
                }
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block: Some(BlockStart::ToolUse { id, name, input }),
            } => {
                let whole = input.filter(|i| i.as_object().is_none_or(|o| !o.is_empty()));
                let call = ToolCall { id, name, arguments: String::new() };
                self.open.retain(|c| c.index != index);
                self.open.push(OpenCall { index, call, whole });
            }
            StreamEvent::ContentBlockDelta {
                index,
                delta: Some(BlockDelta::InputJsonDelta { partial_json }),
            } => {
                if let Some(open) = self.open.iter_mut().find(|c| c.index == index) {
                    open.call.arguments.push_str(&partial_json);
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let Some(at) = self.open.iter().position(|c| c.index == index) {
                    out.push(ProviderEvent::ToolCall(self.open.swap_remove(at).close()));
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
            StreamEvent::ContentBlockStart { .. }
            | StreamEvent::ContentBlockDelta { .. }
            | StreamEvent::Other => {}
        }
        Ok(Flow::More)
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
