//! The Chat Completions streaming wire format: the request body we send and
//! how the chunks of the answer become provider events. Lenient about what
//! compatible servers add or omit (unknown fields, `usage: null`, usage on the
//! finish chunk, chunks without choices); strict about errors.

use crate::answer::{Flow, Wire};
use crate::http::{snippet, to_u32};
use crate::sse::SseEvent;
use serde::{Deserialize, Serialize};
use switchboard_core::model::{FinishReason, Usage};
use switchboard_core::provider::{ChatRequest, ProviderError, ProviderEvent};

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
}

#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

/// The messages of a request: the system prompt, then the history with
/// agents' messages shown to the model as its own (the visitor saw them as
/// the assistant's side) and stored system notes left out.
pub(crate) fn messages(request: &ChatRequest) -> Vec<WireMessage<'_>> {
    let system = request.system_prompt.as_deref().map(|content| WireMessage { role: "system", content });
    let history = request
        .history
        .iter()
        .filter_map(|m| crate::chat_role(m.role).map(|role| WireMessage { role, content: &m.content }));
    system.into_iter().chain(history).collect()
}

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

/// What one `data:` payload means.
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    Events(Vec<ProviderEvent>),
    Done,
}

/// Turns one SSE event of the answer into provider events.
pub(crate) fn parse_event(event: &SseEvent) -> Result<Parsed, ProviderError> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(Parsed::Done);
    }
    if event.event.as_deref() == Some("error") {
        let body: serde_json::Value = serde_json::from_str(data).unwrap_or_else(|_| data.into());
        return Err(upstream_error("upstream error event", body.get("error").unwrap_or(&body)));
    }
    if data.is_empty() {
        return Ok(Parsed::Events(Vec::new())); // e.g. `event: ping`
    }
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
        ProviderError::Unavailable(format!("unparseable stream chunk ({e}): {}", snippet(data)))
    })?;
    if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
        return Err(upstream_error("upstream error mid-stream", &error));
    }
    let mut events = Vec::new();
    // Only the first choice: we never ask for more than one (`n` unset).
    if let Some(choice) = chunk.choices.as_deref().and_then(<[Choice]>::first) {
        if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) {
            if !text.is_empty() {
                events.push(ProviderEvent::Delta(text.to_owned()));
            }
        }
        if let Some(reason) = &choice.finish_reason {
            events.push(ProviderEvent::Finish(finish_reason(reason)));
        }
    }
    if let Some(usage) = chunk.usage {
        let usage = Usage::new(to_u32(usage.prompt_tokens), to_u32(usage.completion_tokens), false);
        events.push(ProviderEvent::Usage(usage));
    }
    Ok(Parsed::Events(events))
}

/// The Chat Completions stream: ends at `[DONE]`; a body that closes
/// after the finish chunk is complete too (some servers skip `[DONE]`).
#[derive(Debug, Default)]
pub(crate) struct ChatWire {
    finished: bool,
}

impl Wire for ChatWire {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<ProviderEvent>) -> Result<Flow, ProviderError> {
        match parse_event(event)? {
            Parsed::Done => Ok(Flow::Done),
            Parsed::Events(events) => {
                for event in events {
                    // One finish per answer, whatever a server repeats.
                    if matches!(event, ProviderEvent::Finish(_))
                        && std::mem::replace(&mut self.finished, true)
                    {
                        continue;
                    }
                    out.push(event);
                }
                Ok(Flow::More)
            }
        }
    }

    fn complete_without_end_marker(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(d: &str) -> SseEvent {
        SseEvent { event: None, data: d.into(), id: None }
    }

    fn events(d: &str) -> Vec<ProviderEvent> {
        match parse_event(&data(d)).unwrap() {
            Parsed::Events(e) => e,
            Parsed::Done => panic!("unexpected [DONE]"),
        }
    }

    #[test]
    fn role_chunk_and_empty_content_yield_nothing() {
        let d = r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#;
        assert_eq!(events(d), vec![]);
        assert_eq!(events(r#"{"choices":[{"delta":{"content":null}}]}"#), vec![]);
    }

    #[test]
    fn content_and_finish_and_usage() {
        assert_eq!(
            events(
                r#"{"choices":[{"delta":{"content":"I'm"},"finish_reason":null}],"service_tier":"default","obfuscation":"x"}"#
            ),
            vec![ProviderEvent::Delta("I'm".into())]
        );
        for (reason, expected) in [
            ("stop", FinishReason::Stop),
            ("length", FinishReason::Length),
            ("tool_calls", FinishReason::ToolCalls),
            ("function_call", FinishReason::ToolCalls),
            ("content_filter", FinishReason::ContentFilter),
            ("eos", FinishReason::Stop),
        ] {
            let d = format!(r#"{{"choices":[{{"delta":{{}},"finish_reason":"{reason}"}}]}}"#);
            assert_eq!(events(&d), vec![ProviderEvent::Finish(expected)]);
        }
        let d = r#"{"choices":[],"usage":{"prompt_tokens":14,"completion_tokens":30,"total_tokens":44,"completion_tokens_details":{"reasoning_tokens":0}}}"#;
        assert_eq!(events(d), vec![ProviderEvent::Usage(Usage::new(14, 30, false))]);
    }

    #[test]
    fn llama_cpp_usage_on_the_finish_chunk_comes_after_the_finish() {
        let d = r#"{"choices":[{"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        assert_eq!(
            events(d),
            vec![
                ProviderEvent::Delta("!".into()),
                ProviderEvent::Finish(FinishReason::Stop),
                ProviderEvent::Usage(Usage::new(3, 4, false))
            ]
        );
    }

    #[test]
    fn azure_chunks_without_choices_or_delta_are_ignored() {
        assert_eq!(events(r#"{"choices":[],"prompt_filter_results":[{"prompt_index":0}]}"#), vec![]);
        assert_eq!(events(r#"{"choices":[{"index":0,"content_filter_results":{}}]}"#), vec![]);
        assert_eq!(events(r#"{"choices":null}"#), vec![]);
    }

    #[test]
    fn errors_done_and_garbage() {
        assert_eq!(parse_event(&data(" [DONE] ")).unwrap(), Parsed::Done);
        let err = parse_event(&data(r#"{"error":{"message":"overloaded","type":"server_error"}}"#));
        assert_eq!(err, Err(ProviderError::Transient("upstream error mid-stream: overloaded".into())));
        let err = parse_event(&data(r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#));
        assert_eq!(err, Err(ProviderError::Unavailable("upstream error mid-stream: bad".into())));
        assert!(parse_event(&data("{not json")).is_err());
        assert_eq!(events(r#"{"error":null,"choices":[]}"#), vec![]);
        let ping = SseEvent { event: Some("ping".into()), data: String::new(), id: None };
        assert_eq!(parse_event(&ping).unwrap(), Parsed::Events(vec![]));
        let error = SseEvent { event: Some("error".into()), data: "boom".into(), id: None };
        assert_eq!(parse_event(&error), Err(ProviderError::Unavailable("upstream error event: boom".into())));
        let vllm = r#"{"error":{"object":"error","message":"busy","type":"InternalServerError","code":500}}"#;
        let error = SseEvent { event: Some("error".into()), data: vllm.into(), id: None };
        assert_eq!(parse_event(&error), Err(ProviderError::Transient("upstream error event: busy".into())));
        let err = parse_event(&data(r#"{"error":{"message":"slow down","code":429}}"#));
        assert_eq!(err, Err(ProviderError::Transient("upstream error mid-stream: slow down".into())));
    }
}
