//! The `POST /v1/chat` body (SPEC §4), validated field by field so a client
//! learns every problem at once.

use crate::http::ApiError;
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;
use uuid::Uuid;

pub const MAX_MESSAGE_CHARS: usize = 10_000;

/// The most a message's page `context` may weigh, as JSON text (SPEC §16).
pub const MAX_CONTEXT_BYTES: usize = 4096;

#[derive(Debug, PartialEq)]
pub struct ChatBody {
    pub session_id: Uuid,
    /// Trimmed.
    pub message: String,
    pub stream: bool,
    pub client_message_id: Option<String>,
    /// The page's context (SPEC §16), passed to tools.
    pub context: Option<Value>,
}

// The body's shape in the API description: what `parse` accepts.
/// A message to send.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the description's; `parse` reads the JSON field by field
pub struct ChatRequest {
    session_id: Uuid,
    /// 1 to 10000 characters after trimming.
    #[schema(min_length = 1, max_length = 10000, pattern = "\\S")]
    message: String,
    /// Default `true`: the answer streams as SSE.
    #[schema(nullable = false)]
    stream: Option<bool>,
    /// Makes a retry safe: the same id gets the earlier turn's result.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    client_message_id: Option<String>,
    /// The page's context for tools, at most 4096 bytes as JSON.
    context: Option<Map<String, Value>>,
}

pub fn parse(mut body: Map<String, Value>) -> Result<ChatBody, ApiError> {
    let mut problems = Vec::new();
    let p = &mut problems;
    let session_id = check(p, "session_id", session_id(body.remove("session_id")));
    let message = check(p, "message", message(body.remove("message")));
    let stream = check(p, "stream", stream(body.remove("stream")));
    let client_message_id =
        check(p, "client_message_id", client_message_id(body.remove("client_message_id")));
    let context = check(p, "context", context(body.remove("context")));
    problems.extend(crate::http::extract::unknown_fields(&body));
    match (session_id, message, stream, client_message_id, context) {
        (Some(session_id), Some(message), Some(stream), Some(client_message_id), Some(context))
            if problems.is_empty() =>
        {
            Ok(ChatBody { session_id, message, stream, client_message_id, context })
        }
        _ => Err(ApiError::invalid(problems)),
    }
}

/// The value, or `None` with the problem noted.
fn check<T>(problems: &mut Vec<FieldProblem>, field: &str, outcome: Result<T, &str>) -> Option<T> {
    outcome.map_err(|problem| problems.push(FieldProblem::new(field, problem))).ok()
}

pub fn session_id(v: Option<Value>) -> Result<Uuid, &'static str> {
    match v {
        None | Some(Value::Null) => Err("is required"),
        Some(Value::String(s)) => Uuid::parse_str(&s).map_err(|_| "must be a UUID"),
        Some(_) => Err("must be a string (a UUID)"),
    }
}

pub fn message(v: Option<Value>) -> Result<String, &'static str> {
    let Some(Value::String(s)) = v else {
        return Err(if matches!(v, None | Some(Value::Null)) { "is required" } else { "must be a string" });
    };
    let trimmed = s.trim();
    match trimmed.chars().count() {
        0 => Err("must not be empty"),
        n if n > MAX_MESSAGE_CHARS => Err("must be at most 10000 characters"),
        _ => Ok(trimmed.to_owned()),
    }
}

fn stream(v: Option<Value>) -> Result<bool, &'static str> {
    match v {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err("must be a boolean"),
    }
}

pub fn client_message_id(v: Option<Value>) -> Result<Option<String>, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if valid_client_message_id(&s) => Ok(Some(s)),
        Some(Value::String(_)) => Err("must be 1-64 characters of A-Z a-z 0-9 _ -"),
        Some(_) => Err("must be a string"),
    }
}

/// The page context a widget sends with a message (`setContext`), passed
/// to the turn's tool calls (SPEC §16).
pub fn context(v: Option<Value>) -> Result<Option<Value>, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) if v.to_string().len() <= MAX_CONTEXT_BYTES => Ok(Some(v)),
        Some(Value::Object(_)) => Err("must be at most 4096 bytes as JSON"),
        Some(_) => Err("must be an object"),
    }
}

fn valid_client_message_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<String> {
        let map = v.as_object().unwrap().clone();
        match parse(map) {
            Ok(_) => vec![],
            Err(e) => e.problem_fields(),
        }
    }

    #[test]
    fn accepts_a_valid_body_and_trims() {
        let id = Uuid::new_v4();
        let body =
            json!({"session_id": id, "message": "  hi  ", "stream": false, "client_message_id": "a_B-9"});
        let parsed = parse(body.as_object().unwrap().clone()).unwrap();
        assert_eq!(
            parsed,
            ChatBody {
                session_id: id,
                message: "hi".into(),
                stream: false,
                client_message_id: Some("a_B-9".into()),
                context: None,
            }
        );
    }

    #[test]
    fn lists_every_problem() {
        assert_eq!(problems(json!({})), ["session_id", "message"]);
        assert_eq!(
            problems(
                json!({"session_id": "x", "message": 5, "stream": "yes", "client_message_id": "a b", "zz": 1, "aa": 2})
            ),
            ["session_id", "message", "stream", "client_message_id", "aa", "zz"]
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let id = Uuid::new_v4().to_string();
        assert!(problems(json!({"session_id": id, "message": "é".repeat(10_000)})).is_empty());
        assert_eq!(problems(json!({"session_id": id, "message": "é".repeat(10_001)})), ["message"]);
        assert_eq!(problems(json!({"session_id": id, "message": " \n\t "})), ["message"]);
        assert_eq!(
            problems(json!({"session_id": id, "message": "x", "client_message_id": "a".repeat(65)})),
            ["client_message_id"]
        );
        assert_eq!(
            problems(json!({"session_id": id, "message": "x", "client_message_id": ""})),
            ["client_message_id"]
        );
    }

    #[test]
    fn a_page_context_is_a_small_object() {
        let id = Uuid::new_v4().to_string();
        let page = json!({"url": "https://shop.example/p/1", "title": "Shoes", "cart": "c-9"});
        assert!(problems(json!({"session_id": id, "message": "x", "context": page})).is_empty());
        assert!(problems(json!({"session_id": id, "message": "x", "context": null})).is_empty());
        let big = json!({"note": "x".repeat(MAX_CONTEXT_BYTES)});
        for bad in [big, json!("page"), json!([1]), json!(3)] {
            assert_eq!(problems(json!({"session_id": id, "message": "x", "context": bad})), ["context"]);
        }
    }
}
