//! The Chat Completions streaming wire format: how the chunks of the answer
//! become provider events (text as it comes, tool calls whole before the
//! finish). Lenient about what compatible servers add or omit (unknown
//! fields, `usage: null`, usage on the finish chunk, chunks without choices,
//! no finish before `[DONE]`); strict about errors.

use super::tool_calls::{CallFragment, ToolCalls};
use crate::answer::{Flow, Wire};
use crate::http::{snippet, to_u32};
use crate::sse::SseEvent;
use serde::Deserialize;
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::{ProviderError, ProviderEvent};

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<CallFragment>>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "stop" => FinishReason::Stop,
        // Whatever else a compatible server says when it is done (`eos`, …).
        other => {
            tracing::debug!(finish_reason = other, "unknown finish_reason taken as stop");
            FinishReason::Stop
        }
    }
}

/// The message of an upstream `{"error": …}` object, or the whole JSON.
fn error_text(error: &serde_json::Value) -> String {
    match error.get("message").and_then(|m| m.as_str()).or(error.as_str()) {
        Some(message) => snippet(message),
        None => snippet(&error.to_string()),
    }
}

/// Whether an in-stream error names a passing condition (the server's
/// fault or load) by its `type` or `code`, as a name (OpenAI) or an HTTP
/// status number (vLLM and other compatible servers).
fn transient(error: &serde_json::Value) -> bool {
    ["type", "code", "status"].iter().filter_map(|k| error.get(*k)).any(|v| match v {
        serde_json::Value::String(name) => matches!(
            name.as_str(),
            "server_error" | "internal_error" | "overloaded" | "overloaded_error" | "rate_limit_exceeded"
        ),
        serde_json::Value::Number(n) => n.as_u64().is_some_and(|status| status == 429 || status >= 500),
        _ => false,
    })
}

/// An upstream error as the right failure: transient or not.
fn upstream_error(context: &str, error: &serde_json::Value) -> ProviderError {
    let message = format!("{context}: {}", error_text(error));
    if transient(error) {
        ProviderError::Transient(message)
    } else {
        ProviderError::Unavailable(message)
    }
}

/// The Chat Completions stream: ends at `[DONE]`; a body that closes
/// after the finish chunk is complete too (some servers skip `[DONE]`).
#[derive(Debug, Default)]
pub(crate) struct ChatWire {
    finished: bool,
    calls: ToolCalls,
}

impl ChatWire {
    /// Ends the answer: its tool calls, whole, then why it ended. Only the
    /// first finish counts, whatever a server repeats.
    fn finish(&mut self, reason: Option<FinishReason>, out: &mut Vec<ProviderEvent>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let called = !self.calls.is_empty();
        out.extend(self.calls.drain().map(ProviderEvent::ToolCall));
        let reason = match reason {
            // Some compatible servers say `stop` (or nothing) after calling
            // tools; the calls still wait for their results.
            Some(FinishReason::Stop) | None if called => Some(FinishReason::ToolCalls),
            reason => reason,
        };
        out.extend(reason.map(ProviderEvent::Finish));
    }
}

impl Wire for ChatWire {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<ProviderEvent>) -> Result<Flow, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            // No finish came: calls made so far are all there will be.
            if !self.calls.is_empty() {
                self.finish(None, out);
            }
            return Ok(Flow::Done);
        }
        if event.event.as_deref() == Some("error") {
            let body: serde_json::Value = serde_json::from_str(data).unwrap_or_else(|_| data.into());
            return Err(upstream_error("upstream error event", body.get("error").unwrap_or(&body)));
        }
        if data.is_empty() {
            return Ok(Flow::More); // e.g. `event: ping`
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            ProviderError::Unavailable(format!("unparseable stream chunk ({e}): {}", snippet(data)))
        })?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            return Err(upstream_error("upstream error mid-stream", &error));
        }
        // Only the first choice: we never ask for more than one (`n` unset).
        if let Some(choice) = chunk.choices.and_then(|choices| choices.into_iter().next()) {
            if let Some(delta) = choice.delta {
                // Moved, not copied: the text path allocates once, in serde.
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push(ProviderEvent::Delta(text));
                }
                // Fragments after the finish would come after the calls were
                // handed out: the answer is over.
                if let Some(fragments) = delta.tool_calls.filter(|_| !self.finished) {
                    self.calls.add(fragments);
                }
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish(Some(finish_reason(reason)), out);
            }
        }
        if let Some(usage) = chunk.usage {
            let usage = Usage::new(to_u32(usage.prompt_tokens), to_u32(usage.completion_tokens), false);
            out.push(ProviderEvent::Usage(usage));
        }
        Ok(Flow::More)
    }

    fn complete_without_end_marker(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
