//! WebSocket frames (SPEC §7): one JSON object per text frame. Outgoing
//! events are `{"type", "session_id", …payload fields}`; incoming frames are
//! parsed into `ClientFrame`, with a `request.invalid` for anything else.

use crate::http::ApiError;
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
    Message { session_id: Option<Uuid>, content: String, client_message_id: Option<String> },
    Typing { session_id: Option<Uuid>, active: bool },
    Subscribe { session_id: Uuid, last_event_id: Option<Value> },
    Ping { ts: Value },
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
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(text) else {
        return Err(ApiError::invalid_field("frame", "must be one JSON object"));
    };
    match map.remove("type") {
        Some(Value::String(t)) => Ok((t, map)),
        _ => Err(ApiError::invalid_field("type", "is required (a string)")),
    }
}

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
    Ok(Hello { token, session_id, last_event_id: map.remove("last_event_id"), context_tenant })
}

pub fn client(kind: &str, mut map: Map<String, Value>) -> Result<ClientFrame, ApiError> {
    use crate::handlers::chat_body;
    let session_id = |map: &mut Map<String, Value>| match map.remove("session_id") {
        None | Some(Value::Null) => Ok(None),
        v => uuid_field("session_id", v).map(Some),
    };
    match kind {
        "message" => {
            let session_id = session_id(&mut map)?;
            let content = chat_body::message(map.remove("content"))
                .map_err(|p| ApiError::invalid(vec![FieldProblem::new("content", p)]))?;
            let client_message_id = chat_body::client_message_id(map.remove("client_message_id"))
                .map_err(|p| ApiError::invalid(vec![FieldProblem::new("client_message_id", p)]))?;
            chat_body::context(map.remove("context"))
                .map_err(|p| ApiError::invalid(vec![FieldProblem::new("context", p)]))?;
            Ok(ClientFrame::Message { session_id, content, client_message_id })
        }
        "typing" => {
            let session_id = session_id(&mut map)?;
            match map.remove("active") {
                Some(Value::Bool(active)) => Ok(ClientFrame::Typing { session_id, active }),
                _ => Err(ApiError::invalid_field("active", "is required (true or false)")),
            }
        }
        "subscribe" => {
            let id = uuid_field("session_id", map.remove("session_id"))?;
            Ok(ClientFrame::Subscribe { session_id: id, last_event_id: map.remove("last_event_id") })
        }
        "ping" => Ok(ClientFrame::Ping { ts: map.remove("ts").unwrap_or(Value::Null) }),
        "hello" => Ok(ClientFrame::Hello),
        _ => Err(ApiError::invalid_field("type", "is not a known frame type")),
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
    #![allow(clippy::unwrap_used)]
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
                client_message_id: Some("c-1".into())
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
}
