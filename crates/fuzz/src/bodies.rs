//! JSON bodies: the strict reader refuses no JSON but a key given twice and
//! reads what it accepts as `serde_json` does; each body validator accepts
//! only what its rules allow. For `POST /v1/chat` the rules are restated in
//! full and must agree with the validator both ways, also for a message
//! stretched to either side of its length limit.

use serde_json::{Map, Value};
use switchboard_server::fuzz::{self as server, Body};
use uuid::Uuid;

mod reserved_key;

const MAX_MESSAGE_CHARS: usize = 10_000;
const MAX_CONTEXT_BYTES: usize = 4096;

/// The strict reader against `serde_json`; the object, when it is one.
fn strict_object(data: &[u8]) -> Option<Map<String, Value>> {
    let strict = server::json(data);
    let lax = serde_json::from_slice::<Value>(data);
    match (&strict, &lax) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the strict reader read it otherwise"),
        (Ok(v), Err(e)) => panic!("accepted what serde_json refuses ({e}): {v}"),
        // serde_json reads that key as the marker of raw JSON text inside.
        (Err(None), Ok(_)) if reserved_key::in_text(data) => {}
        (Err(None), Ok(v)) => panic!("refused JSON without a duplicate key: {v}"),
        // A key is refused as given twice as soon as it comes again, even
        // if the text breaks later; the empty key's path is empty.
        (Err(Some(_)), _) | (Err(None), Err(_)) => {}
    }
    match strict {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Whether a message is acceptable: 1 to 10000 characters once trimmed.
fn message_ok(v: Option<&Value>) -> bool {
    let n = v.and_then(Value::as_str).map(|s| s.trim().chars().count());
    n.is_some_and(|n| (1..=MAX_MESSAGE_CHARS).contains(&n))
}

fn client_message_id_ok(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => {
            (1..=64).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        Some(_) => false,
    }
}

fn small_object_or_null(v: Option<&Value>, max: usize) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(v @ Value::Object(_)) => v.to_string().len() <= max,
        Some(_) => false,
    }
}

fn uuid_ok(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| Uuid::parse_str(s).is_ok())
}

fn only(map: &Map<String, Value>, known: &[&str]) -> bool {
    map.keys().all(|k| known.contains(&k.as_str()))
}

/// The rules of SPEC §4 for a chat body.
fn chat_allowed(map: &Map<String, Value>) -> bool {
    only(map, &["session_id", "message", "stream", "client_message_id", "context"])
        && uuid_ok(map.get("session_id"))
        && message_ok(map.get("message"))
        && map.get("stream").is_none_or(Value::is_boolean)
        && client_message_id_ok(map.get("client_message_id"))
        && small_object_or_null(map.get("context"), MAX_CONTEXT_BYTES)
}

fn check_chat(map: &Map<String, Value>) {
    let text = Value::Object(map.clone()).to_string();
    let verdict = server::body(Body::Chat, text.as_bytes());
    assert_eq!(verdict.is_ok(), chat_allowed(map), "chat body {text:.300}: {verdict:?}");
    if let Ok(accepted) = verdict {
        let trimmed = map.get("message").and_then(Value::as_str).map(str::trim);
        assert_eq!(accepted["message"].as_str(), trimmed, "the message is kept trimmed");
        let stream = map.get("stream").and_then(Value::as_bool).unwrap_or(true);
        assert_eq!(accepted["stream"].as_bool(), Some(stream));
    } else if let Err(fields) = verdict {
        assert!(!fields.is_empty(), "a refusal that names nothing");
    }
}

pub fn chat_body(data: &[u8]) {
    let verdict = server::body(Body::Chat, data);
    let Some(map) = strict_object(data) else {
        assert!(verdict.is_err(), "accepted a body that is not one JSON object");
        return;
    };
    check_chat(&map);
    // The length limit, from both sides, with the fuzzer's characters.
    if let Some(message) = map.get("message").and_then(Value::as_str) {
        let n = message.chars().count();
        if n > 0 && n <= MAX_MESSAGE_CHARS {
            let times = MAX_MESSAGE_CHARS / n;
            for k in [times, times + 1] {
                let mut stretched = map.clone();
                stretched.insert("message".into(), Value::String(message.repeat(k)));
                check_chat(&stretched);
            }
        }
    }
}

/// Spot checks of what each other validator accepted.
fn check_accepted(kind: Body, map: &Map<String, Value>, accepted: &Value) {
    let known: &[&str] = match kind {
        Body::Chat | Body::TenantSettings => return,
        Body::SessionCreate => &["metadata"],
        Body::Ticket | Body::LiveView => &["session_id"],
        Body::Link => &["visitor_token"],
        Body::Takeover => &["content"],
        Body::KillSwitch => &["enabled", "reason"],
    };
    assert!(only(map, known), "{kind:?} accepted an unknown field: {map:?}");
    match kind {
        Body::SessionCreate => assert!(small_object_or_null(map.get("metadata"), 4096), "{map:?}"),
        Body::LiveView => assert!(uuid_ok(map.get("session_id")), "{map:?}"),
        Body::Ticket => assert!(map.get("session_id").is_none_or(|v| v.is_null() || uuid_ok(Some(v)))),
        Body::Link => {
            assert!(map.get("visitor_token").and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty()))
        }
        Body::Takeover => assert!(message_ok(map.get("content")), "{map:?}"),
        Body::KillSwitch => {
            assert!(map.get("enabled").is_some_and(Value::is_boolean));
            let reason = accepted["reason"].as_str().unwrap_or("x");
            assert!(!reason.is_empty() && reason == reason.trim() && reason.chars().count() <= 500);
        }
        Body::Chat | Body::TenantSettings => {}
    }
}

/// Every other body validator; the first byte picks which (the last choice
/// is `PUT /v1/memory/{key}`, with the key up to the first newline).
pub fn json_bodies(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let choice = usize::from(pick) % (Body::ALL.len() + 1);
    if let Some(&kind) = Body::ALL.get(choice) {
        let verdict = server::body(kind, rest);
        let Some(map) = strict_object(rest) else {
            assert!(verdict.is_err(), "{kind:?} accepted a body that is not one JSON object");
            return;
        };
        match verdict {
            Ok(accepted) => check_accepted(kind, &map, &accepted),
            Err(fields) => assert!(!fields.is_empty(), "a refusal that names nothing"),
        }
        if kind == Body::TenantSettings {
            check_tenant(rest);
        }
        return;
    }
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (key, body) = rest.split_at(split);
    let Ok(key) = std::str::from_utf8(key) else { return };
    let body = body.get(1..).unwrap_or_default();
    let map = strict_object(body);
    if let Ok(value) = server::memory_put(key, body) {
        let map = map.unwrap_or_default();
        assert!(only(&map, &["value"]), "memory accepted an unknown field");
        assert_eq!(map.get("value").and_then(Value::as_str), Some(value.as_str()));
        let key_ok = (1..=64).contains(&key.chars().count())
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        assert!(key_ok, "memory accepted the key {key:?}");
        // Kept trimmed by the memory itself, which checks it again.
        let kept = value.trim();
        let chars = kept.chars().count();
        assert!((1..=200).contains(&chars) && !kept.chars().any(char::is_control), "{value:?}");
    }
}

/// A tenant entry's origins, once accepted, are each in normal form.
fn check_tenant(body: &[u8]) {
    if let Ok(accepted) = server::body(Body::TenantSettings, body) {
        for origin in accepted["allowed_origins"].as_array().into_iter().flatten() {
            let origin = origin.as_str().unwrap_or_default();
            let normal = switchboard_core::origin::normalize(origin);
            assert_eq!(normal.as_deref(), Some(origin), "a tenant origin not in normal form");
        }
    }
}
