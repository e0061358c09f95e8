//! A tool call's arguments as the model wrote them, parsed and checked
//! against the tool's JSON Schema (draft 2020-12) before anything is sent.
//! Every tool source judges a call here, so a bad call gets the same error
//! result whether it was meant for a webhook or an MCP server.

use serde_json::Value;

/// Compiles a tool's schema; the error says why it is not one.
pub(crate) fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::new(schema).map_err(|e| e.to_string())
}

/// The arguments, parsed and valid against `schema`; else a reason the
/// model can read.
pub(crate) fn check(arguments: &str, schema: &jsonschema::Validator) -> Result<Value, String> {
    // An empty argument string is what some models send for no arguments.
    let text = if arguments.trim().is_empty() { "{}" } else { arguments };
    let arguments: Value =
        serde_json::from_str(text).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
    if let Some(error) = schema.iter_errors(&arguments).next() {
        let at = error.instance_path().to_string();
        let at = if at.is_empty() { String::new() } else { format!(" at {at}") };
        return Err(format!("arguments do not match the tool's schema{at}: {error}"));
    }
    Ok(arguments)
}
