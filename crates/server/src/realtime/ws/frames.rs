//! WebSocket frames (SPEC §7): one JSON object per text frame. Outgoing
//! events are `{"type", "session_id", …payload fields}`; incoming frames are
//! parsed into `ClientFrame`, with a `request.invalid` for anything else:
//! read like REST bodies (a key given twice is refused), and, like them,
//! with no field a frame's type does not know.

use crate::http::{extract, ApiError};
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;
use switchboard_core::events::{ErrorBody, SessionEvent};
use uuid::Uuid;

/// An event as a frame. `session` becomes `welcome` (with the connection's
/// id), since a WebSocket announces each subscription with one.
pub fn event(session_id: Uuid, event: &SessionEvent, connection_id: Uuid) -> String {
    let payload = event.payload_json();
    let kind = match event {
        SessionEvent::Session { .. } => {
            return flatten(
                &format!("{{\"type\":\"welcome\",\"connection_id\":\"{connection_id}\""),
                &payload,
            )
        }
        other => other.kind(),
    };
    // A message payload starts with its own `session_id`.
    if payload.starts_with("{\"session_id\"") {
        return flatten(&format!("{{\"type\":\"{kind}\""), &payload);
    }
    flatten(&format!("{{\"type\":\"{kind}\",\"session_id\":\"{session_id}\""), &payload)
}

/// An error envelope as a frame (for a session, or for the connection).
pub fn error(session_id: Option<Uuid>, body: &ErrorBody) -> String {
    let event = SessionEvent::Error { turn_id: None, error: body.clone() };
    match session_id {
        Some(id) => flatten(&format!("{{\"type\":\"error\",\"session_id\":\"{id}\""), &event.payload_json()),
        None => flatten("{\"type\":\"error\",\"session_id\":null", &event.payload_json()),
    }
}

/// The welcome of a socket whose hello named no session (it may `subscribe`).
pub fn welcome_alone(connection_id: Uuid) -> String {
    serde_json::json!({"type": "welcome", "connection_id": connection_id, "session": null, "latest_seq": null})
        .to_string()
}

pub fn pong(ts: &Value) -> String {
    serde_json::json!({"type": "pong", "ts": ts}).to_string()
}

/// `head` (an unclosed object) followed by the fields of the object `payload`.
fn flatten(head: &str, payload: &str) -> String {
    let fields = payload.strip_prefix('{').unwrap_or("}");
    let mut out = String::with_capacity(head.len() + payload.len() + 1);
    out.push_str(head);
    if fields != "}" {
        out.push(',');
    }
    out.push_str(fields);
    out
}

/// What a client may send after `hello`.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    Message {
        session_id: Option<Uuid>,
        content: String,
        client_message_id: Option<String>,
        context: Option<Value>,
    },
    Typing {
        session_id: Option<Uuid>,
        active: bool,
    },
    Subscribe {
        session_id: Uuid,
        last_event_id: Option<Value>,
    },
    Ping {
        ts: Value,
    },
    Hello,
}

/// The fields of a `hello`.
#[derive(Debug, Default)]
pub struct Hello {
    pub token: Option<String>,
    pub session_id: Option<Uuid>,
    pub last_event_id: Option<Value>,
    pub context_tenant: Option<String>,
}

/// Parses one text frame into its type and fields.
pub fn object(text: &str) -> Result<(String, Map<String, Value>), ApiError> {
    let mut map = match crate::http::json::parse(text.as_bytes()) {
        Ok(Value::Object(map)) => map,
        Err(crate::http::json::JsonProblem::Duplicate { path }) => {
            return Err(ApiError::invalid_field(&path, extract::DUPLICATE))
        }
        _ => return Err(ApiError::invalid_field("frame", "must be one JSON object")),
    };
    match map.remove("type") {
        Some(Value::String(t)) => Ok((t, map)),
        _ => Err(ApiError::invalid_field("type", "is required (a string)")),
    }
}

/// The fields of a `hello` (its `context` may carry more than `tenant_id`:
/// it is the page's context, like a message's).
pub fn hello(mut map: Map<String, Value>) -> Result<Hello, ApiError> {
    let token = optional_string(&mut map, "token")?;
    let session_id = match map.remove("session_id") {
        None | Some(Value::Null) => None,
        v => Some(uuid_field("session_id", v)?),
    };
    let context_tenant = match map.remove("context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(mut c)) => optional_string(&mut c, "tenant_id")?,
        Some(_) => return Err(ApiError::invalid_field("context", "must be an object")),
    };
    let last_event_id = map.remove("last_event_id");
    no_other_fields(&map)?;
    Ok(Hello { token, session_id, last_event_id, context_tenant })
}

/// A frame after `hello`. Each type takes only its own fields; every problem
/// with them is listed at once, as for `POST /v1/chat`.
pub fn client(kind: &str, mut map: Map<String, Value>) -> Result<ClientFrame, ApiError> {
    use crate::handlers::chat_body;
    let mut problems = Vec::new();
    let p = &mut problems;
    let frame = match kind {
        "message" => {
            let session_id = check(p, "session_id", optional_session(map.remove("session_id")));
            let content = check(p, "content", chat_body::message(map.remove("content")));
            let client_message_id =
                check(p, "client_message_id", chat_body::client_message_id(map.remove("client_message_id")));
            let context = check(p, "context", chat_body::context(map.remove("context")));
            match (session_id, content, client_message_id, context) {
                (Some(session_id), Some(content), Some(client_message_id), Some(context)) => {
                    Some(ClientFrame::Message { session_id, content, client_message_id, context })
                }
                _ => None,
            }
        }
        "typing" => {
            let session_id = check(p, "session_id", optional_session(map.remove("session_id")));
            let active = match map.remove("active") {
                Some(Value::Bool(active)) => Some(active),
                _ => check(p, "active", Err::<bool, _>("is required (true or false)")),
            };
            match (session_id, active) {
                (Some(session_id), Some(active)) => Some(ClientFrame::Typing { session_id, active }),
                _ => None,
            }
        }
        "subscribe" => {
            let id = check(p, "session_id", chat_body::session_id(map.remove("session_id")));
            let last_event_id = map.remove("last_event_id");
            id.map(|session_id| ClientFrame::Subscribe { session_id, last_event_id })
        }
        "ping" => Some(ClientFrame::Ping { ts: map.remove("ts").unwrap_or(Value::Null) }),
        "hello" => return Ok(ClientFrame::Hello),
        _ => return Err(ApiError::invalid_field("type", "is not a known frame type")),
    };
    problems.extend(extract::unknown_fields(&map));
    match frame {
        Some(frame) if problems.is_empty() => Ok(frame),
        _ => Err(ApiError::invalid(problems)),
    }
}

/// The value, or `None` with the problem noted.
fn check<T>(problems: &mut Vec<FieldProblem>, field: &str, outcome: Result<T, &str>) -> Option<T> {
    outcome.map_err(|problem| problems.push(FieldProblem::new(field, problem))).ok()
}

fn optional_session(v: Option<Value>) -> Result<Option<Uuid>, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(None),
        v => crate::handlers::chat_body::session_id(v).map(Some),
    }
}

/// `request.invalid` naming each field left in `map`.
fn no_other_fields(map: &Map<String, Value>) -> Result<(), ApiError> {
    let unknown = extract::unknown_fields(map);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(unknown))
    }
}

fn optional_string(map: &mut Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_field(field, "must be a string")),
    }
}

fn uuid_field(field: &str, v: Option<Value>) -> Result<Uuid, ApiError> {
    crate::handlers::chat_body::session_id(v).map_err(|p| ApiError::invalid_field(field, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchboard_core::events::Who;

    fn parsed(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn events_are_flat_objects_with_type_and_session() {
        let sid = Uuid::new_v4();
        let f = parsed(&event(sid, &SessionEvent::Typing { who: Who::Assistant, active: true }, Uuid::nil()));
        assert_eq!(
            f,
            json!({"type": "typing", "session_id": sid.to_string(), "who": "assistant", "active": true})
        );
        let resume = SessionEvent::ResumeCursor { last_event_id: 3, latest_seq: 5 };
        assert_eq!(parsed(&event(sid, &resume, Uuid::nil()))["last_event_id"], 3);
    }

    #[test]
    fn errors_carry_the_envelope() {
        let body = switchboard_core::turn::error_body(switchboard_core::ErrorCode::AuthInvalid, "t1");
        let f = parsed(&error(None, &body));
        assert_eq!(f["type"], "error");
        assert_eq!(f["session_id"], Value::Null);
        assert_eq!(f["error"]["code"], "auth.invalid");
        assert_eq!(f["error"]["http_status"], 401);
    }

    #[test]
    fn client_frames_are_validated() {
        let (kind, map) =
            object(r#"{"type":"message","content":"  hi ","client_message_id":"c-1"}"#).unwrap();
        assert_eq!(
            client(&kind, map).unwrap(),
            ClientFrame::Message {
                session_id: None,
                content: "hi".into(),
                client_message_id: Some("c-1".into()),
                context: None,
            }
        );
        for bad in [r#"[1]"#, r#"{"content":"x"}"#, "not json", r#"{"type":7}"#] {
            assert!(object(bad).is_err(), "{bad}");
        }
        for bad in [
            r#"{"type":"message","content":""}"#,
            r#"{"type":"typing"}"#,
            r#"{"type":"subscribe","session_id":"nope"}"#,
            r#"{"type":"dance"}"#,
        ] {
            let (kind, map) = object(bad).unwrap();
            assert!(client(&kind, map).is_err(), "{bad}");
        }
    }

    fn refused_fields(text: &str) -> Vec<String> {
        let refusal = object(text).and_then(|(kind, map)| match kind.as_str() {
            "hello" => hello(map).map(|_| ()),
            _ => client(&kind, map).map(|_| ()),
        });
        refusal.err().map(|e| e.problem_fields()).unwrap_or_default()
    }

    #[test]
    fn every_frame_type_refuses_fields_it_does_not_know() {
        let sid = Uuid::new_v4();
        for (text, fields) in [
            (r#"{"type":"message","content":"hi","colour":"red"}"#.to_owned(), vec!["colour"]),
            (r#"{"type":"message","content":"","b":1,"a":2}"#.to_owned(), vec!["content", "a", "b"]),
            (r#"{"type":"typing","active":true,"who":"agent"}"#.to_owned(), vec!["who"]),
            (format!(r#"{{"type":"subscribe","session_id":"{sid}","since":1}}"#), vec!["since"]),
            (r#"{"type":"ping","ts":1,"pad":"x"}"#.to_owned(), vec!["pad"]),
            (r#"{"type":"hello","context":{"tenant_id":"a"},"ticket":"t"}"#.to_owned(), vec!["ticket"]),
        ] {
            assert_eq!(refused_fields(&text), fields, "{text}");
        }
        // What each type knows is accepted, a message's context included.
        for text in [
            format!(
                r#"{{"type":"message","content":"hi","session_id":"{sid}","client_message_id":"c","context":{{"page":"/x"}}}}"#
            ),
            format!(r#"{{"type":"typing","active":false,"session_id":"{sid}"}}"#),
            format!(r#"{{"type":"subscribe","session_id":"{sid}","last_event_id":"3"}}"#),
            r#"{"type":"ping","ts":1}"#.to_owned(),
            format!(
                r#"{{"type":"hello","token":"t","session_id":"{sid}","last_event_id":"1","context":{{"tenant_id":"a","page":"/"}}}}"#
            ),
        ] {
            assert!(refused_fields(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn a_key_given_twice_is_refused_by_name() {
        let sid = Uuid::new_v4();
        let other = Uuid::new_v4();
        let text =
            format!(r#"{{"type":"message","content":"hi","session_id":"{sid}","session_id":"{other}"}}"#);
        assert_eq!(refused_fields(&text), vec!["session_id"]);
        let text = r#"{"type":"message","content":"hi","context":{"page":"a","page":"b"}}"#;
        assert_eq!(refused_fields(text), vec!["context.page"]);
        assert_eq!(refused_fields(r#"{"type":"ping","type":"message"}"#), vec!["type"]);
    }
}
