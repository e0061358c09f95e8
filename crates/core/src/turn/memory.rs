//! A user's memory in a turn (SPEC §18), with `[tenants.tooling] memory =
//! true`: what is remembered goes to the model with the system prompt, and
//! its built-in `remember` / `forget` change it, each change a `tool` event
//! the user sees. Visitors have no memory: they are offered neither.

use super::run::TurnTask;
use crate::memory::{check_key, check_value, Memory, MemoryError, MAX_KEYS};
use crate::tools::{Outcome, ToolCall, FORGET, REMEMBER};
use serde_json::{json, Value};

/// How the memory is introduced in the system prompt; the demo model reads
/// the lines that follow it (`- key: value`).
pub const MEMORY_HEADING: &str = "What you remember about this user from earlier conversations \
     (keep it up to date with the `remember` and `forget` tools):";
/// The system prompt's addition when nothing is remembered yet.
pub const MEMORY_EMPTY: &str = "You remember nothing about this user yet; when they share a lasting \
     preference, keep it with the `remember` tool.";

/// Whether `name` is one of the memory's built-in tools.
pub(super) fn is_memory_tool(name: &str) -> bool {
    name == REMEMBER || name == FORGET
}

/// The arguments of a `remember` / `forget` call, checked like a tool's
/// schema: `{key, value}` / `{key}`.
pub(super) fn memory_arguments(call: &ToolCall) -> Result<Value, String> {
    let args: Value =
        serde_json::from_str(if call.arguments.trim().is_empty() { "{}" } else { &call.arguments })
            .map_err(|e| format!("arguments are not valid JSON: {e}"))?;
    let field = |name: &str| args.get(name).and_then(Value::as_str);
    let key = field("key").ok_or("arguments do not match the tool's schema at /key: a string is required")?;
    check_key(key).map_err(|why| format!("arguments do not match the tool's schema at /key: {why}"))?;
    if call.name == FORGET {
        return Ok(json!({"key": key}));
    }
    let value =
        field("value").ok_or("arguments do not match the tool's schema at /value: a string is required")?;
    let value = check_value(value)
        .map_err(|why| format!("arguments do not match the tool's schema at /value: {why}"))?;
    Ok(json!({"key": key, "value": value}))
}

impl TurnTask {
    /// The system prompt with what is remembered about the user; a memory
    /// that cannot be read leaves the prompt as it is.
    pub(super) async fn with_memory(&self, prompt: Option<String>) -> Option<String> {
        let items = match self.memory() {
            Ok(memory) => memory.list().await,
            Err(e) => Err(e),
        };
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(session_id = %self.msg.session_id, error = %e, "could not read the user's memory");
                return prompt;
            }
        };
        let mut out = prompt.map(|p| p + "\n\n").unwrap_or_default();
        if items.is_empty() {
            out.push_str(MEMORY_EMPTY);
        } else {
            out.push_str(MEMORY_HEADING);
            for item in &items {
                out.push_str(&format!("\n- {}: {}", item.key, item.value));
            }
        }
        Some(out)
    }

    /// Runs a checked `remember` / `forget` call.
    pub(super) async fn memory_tool(&self, name: &str, arguments: &Value) -> Outcome {
        let key = arguments["key"].as_str().unwrap_or_default();
        let memory = match self.memory() {
            Ok(memory) => memory,
            Err(e) => return Outcome { result: Err(e.to_string()), display: None },
        };
        let done = if name == REMEMBER {
            let value = arguments["value"].as_str().unwrap_or_default();
            memory.put(key, value, self.inner.clock.now()).await.map(|item| {
                (
                    json!({"remembered": {"key": item.key, "value": item.value}}),
                    format!("Remembered: {key} = {}", item.value),
                )
            })
        } else {
            memory.forget(key).await.map(|()| (json!({"forgot": key}), format!("Forgot: {key}")))
        };
        match done {
            Ok((result, text)) => {
                Outcome { result: Ok(result), display: Some(json!({"type": "text", "text": text})) }
            }
            Err(MemoryError::Full) => Outcome {
                result: Err(format!("the memory holds {MAX_KEYS} keys already; forget one first")),
                display: None,
            },
            Err(MemoryError::NotFound) => {
                Outcome { result: Err(format!("nothing is remembered under `{key}`")), display: None }
            }
            Err(e) => {
                tracing::warn!(session_id = %self.msg.session_id, error = %e, "a memory tool failed");
                Outcome { result: Err("the memory is unavailable right now".into()), display: None }
            }
        }
    }

    fn memory(&self) -> Result<Memory<'_>, MemoryError> {
        Memory::of(self.inner.store.as_ref(), &self.msg.tenant.id, &self.msg.subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: "c".into(), name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn memory_calls_are_checked_like_a_schema() {
        assert_eq!(
            memory_arguments(&call(REMEMBER, r#"{"key": "size", "value": " M "}"#)),
            Ok(json!({"key": "size", "value": "M"}))
        );
        assert_eq!(memory_arguments(&call(FORGET, r#"{"key": "size"}"#)), Ok(json!({"key": "size"})));
        for bad in [r#"{"key": "Size", "value": "M"}"#, r#"{"key": "size"}"#, r#"{"value": "M"}"#, "{", "[]"]
        {
            assert!(memory_arguments(&call(REMEMBER, bad)).is_err(), "{bad}");
        }
        let long = format!(r#"{{"key": "likes", "value": "{}"}}"#, "x".repeat(201));
        assert!(memory_arguments(&call(REMEMBER, &long)).unwrap_err().contains("/value"));
    }
}
