//! WebSocket client frames: the first frame must be a `hello`, later ones a
//! client frame; what is accepted has only its type's fields, a message is
//! 1 to 10000 characters once trimmed (as a chat body's), and a resume
//! cursor is a non-negative integer.

use serde_json::{Map, Value};
use switchboard_server::fuzz as server;

/// The fields each frame type may carry besides `type`.
fn known(kind: &str) -> &'static [&'static str] {
    match kind {
        "hello" => &["token", "session_id", "last_event_id", "context"],
        "message" => &["session_id", "content", "client_message_id", "context"],
        "typing" => &["session_id", "active"],
        "subscribe" => &["session_id", "last_event_id"],
        "ping" => &["ts"],
        _ => &[],
    }
}

pub fn ws_frame(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let first = pick & 1 == 1;
    let Ok(accepted) = server::ws_frame(text, first) else { return };
    let sent: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        other => panic!("accepted a frame that is not an object: {other:?}"),
    };
    let kind = sent.get("type").and_then(Value::as_str).unwrap_or_default();
    assert_eq!(accepted["type"].as_str(), Some(kind), "the frame's type changed");
    assert!(!first || kind == "hello", "a first frame that is not a hello");
    let fields = known(kind);
    // A later `hello` is refused by the connection, whatever its fields.
    if kind != "hello" || first {
        assert!(sent.keys().all(|k| k == "type" || fields.contains(&k.as_str())), "{kind}: {sent:?}");
    }
    if let Some(cursor) = accepted.get("last_event_id").filter(|c| !c.is_null()) {
        assert!(cursor.as_i64().is_some_and(|c| c >= 0), "a cursor {cursor}");
    }
    if kind == "message" {
        let content = accepted["content"].as_str().unwrap_or_default();
        let n = content.chars().count();
        assert!((1..=10_000).contains(&n) && content == content.trim(), "content {content:.100?}");
    }
}
