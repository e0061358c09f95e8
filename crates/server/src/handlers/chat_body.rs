//! The `POST /v1/chat` body (SPEC §4), validated field by field so a client
//! learns every problem at once.

use crate::http::ApiError;
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;
use uuid::Uuid;

pub const MAX_MESSAGE_CHARS: usize = 10_000;

#[derive(Debug, PartialEq)]
pub struct ChatBody {
    pub session_id: Uuid,
    /// Trimmed.
    pub message: String,
    pub stream: bool,
    pub client_message_id: Option<String>,
}

pub fn parse(mut body: Map<String, Value>) -> Result<ChatBody, ApiError> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, text: &str| problems.push(FieldProblem::new(field, text));
    let session_id = match body.remove("session_id") {
        None | Some(Value::Null) => None.tap(|| problem("session_id", "is required")),
        Some(Value::String(s)) => {
            Uuid::parse_str(&s).ok().or_else(|| None.tap(|| problem("session_id", "must be a UUID")))
        }
        Some(_) => None.tap(|| problem("session_id", "must be a string (a UUID)")),
    };
    let message = match body.remove("message") {
        None | Some(Value::Null) => None.tap(|| problem("message", "is required")),
        Some(Value::String(s)) => {
            let trimmed = s.trim();
            let chars = trimmed.chars().count();
            if chars == 0 {
                None.tap(|| problem("message", "must not be empty"))
            } else if chars > MAX_MESSAGE_CHARS {
                None.tap(|| problem("message", "must be at most 10000 characters"))
            } else {
                Some(trimmed.to_owned())
            }
        }
        Some(_) => None.tap(|| problem("message", "must be a string")),
    };
    let stream = match body.remove("stream") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => true.tap(|| problem("stream", "must be a boolean")),
    };
    let client_message_id = match body.remove("client_message_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if valid_client_message_id(&s) => Some(s),
        Some(Value::String(_)) => {
            None.tap(|| problem("client_message_id", "must be 1-64 characters of A-Z a-z 0-9 _ -"))
        }
        Some(_) => None.tap(|| problem("client_message_id", "must be a string")),
    };
    let mut unknown: Vec<_> = body.keys().cloned().collect();
    unknown.sort();
    for field in unknown {
        problem(&field, "unknown field");
    }
    match (session_id, message) {
        (Some(session_id), Some(message)) if problems.is_empty() => {
            Ok(ChatBody { session_id, message, stream, client_message_id })
        }
        _ => Err(ApiError::invalid(problems)),
    }
}

fn valid_client_message_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Runs a side effect and yields the value: keeps each match arm one line.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce()) -> Self {
        f();
        self
    }
}

impl<T> Tap for T {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<String> {
        let map = v.as_object().unwrap().clone();
        match parse(map) {
            Ok(_) => vec![],
            Err(e) => e
                .details
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["field"].as_str().unwrap().to_owned())
                .collect(),
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
                client_message_id: Some("a_B-9".into())
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
}
