//! Assertions on the wire shapes of SPEC §2 and §5 that many tests repeat.

use super::client::SseReply;
use super::sse::SseEvent;
use serde_json::Value;

/// RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub fn assert_timestamp(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    let b = s.as_bytes();
    let ok = b.len() == 24
        && s.ends_with('Z')
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && s[20..23].bytes().all(|c| c.is_ascii_digit());
    assert!(ok, "{what} is not RFC 3339 UTC with milliseconds: {s}");
}

/// A message object has every field of SPEC §2.
pub fn assert_message_shape(m: &Value) {
    for key in [
        "session_id",
        "seq",
        "role",
        "content",
        "author",
        "status",
        "created_at",
        "token_count",
        "client_message_id",
        "tools",
    ] {
        assert!(m.get(key).is_some(), "message lacks {key}: {m}");
    }
    assert!(m["seq"].as_i64().is_some(), "seq not an integer: {m}");
    assert_timestamp(&m["created_at"], "message.created_at");
}

/// A session object has every field of SPEC §2.
pub fn assert_session_shape(s: &Value) {
    for key in [
        "id",
        "tenant_id",
        "status",
        "created_at",
        "last_activity_at",
        "message_count",
        "admin_assisted",
        "latest_seq",
        "takeover",
    ] {
        assert!(s.get(key).is_some(), "session lacks {key}: {s}");
    }
    assert_timestamp(&s["created_at"], "session.created_at");
    assert_timestamp(&s["last_activity_at"], "session.last_activity_at");
}

/// What a checked streamed turn produced.
#[derive(Debug, Clone)]
pub struct Turn {
    pub turn_id: String,
    pub user_seq: i64,
    pub seq: i64,
    pub text: String,
    pub end: Value,
}

/// Checks the deltas of one assistant message: same turn and seq, revision 0,
/// offsets contiguous in Unicode scalars. Returns their text.
pub fn check_deltas(events: &[SseEvent], turn_id: &str, seq: i64) -> String {
    let mut text = String::new();
    for d in events.iter().filter(|e| e.event == "stream_delta") {
        let v = d.json();
        assert_eq!(v["turn_id"], turn_id, "delta of another turn: {v}");
        assert_eq!(v["seq"], seq, "delta of another message: {v}");
        assert_eq!(v["revision"], 0, "unexpected revision: {v}");
        assert!(d.id.is_none(), "a delta carries an SSE id: {d:?}");
        let offset = v["offset"].as_u64().unwrap_or_else(|| panic!("delta without offset: {v}"));
        assert_eq!(offset, text.chars().count() as u64, "offsets not contiguous at {v}");
        let piece = v["text"].as_str().unwrap_or_else(|| panic!("delta without text: {v}"));
        text.push_str(piece);
    }
    text
}

/// Checks a complete, successful streamed turn (SPEC §4, §5) whose user
/// message is `message` and should get `user_seq`.
pub fn check_stream_turn(reply: &SseReply, message: &str, user_seq: i64) -> Turn {
    assert_eq!(reply.status.as_u16(), 200);
    let ct = reply.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/event-stream"), "content type {ct}");
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(reply.header("x-accel-buffering").as_deref(), Some("no"));
    assert!(reply.header("x-trace-id").is_some_and(|t| !t.is_empty()), "no X-Trace-Id");
    assert_eq!(reply.first_line.as_deref(), Some("retry: 2000"), "the stream must open with retry: 2000");

    let ev = &reply.events;
    let names: Vec<&str> = ev.iter().map(|e| e.event.as_str()).collect();
    assert!(ev.len() >= 4, "too few events: {names:?}");
    assert_eq!(&names[..3], &["message", "typing", "stream_start"], "event order: {names:?}");
    assert_eq!(names[names.len() - 1], "stream_end", "last event: {names:?} {:?}", ev.last());
    for n in &names[3..names.len() - 1] {
        assert!(*n == "stream_delta" || *n == "typing", "unexpected event {n} in {names:?}");
    }

    let user = ev[0].json();
    assert_message_shape(&user);
    assert_eq!(user["role"], "user");
    assert_eq!(user["content"], message);
    assert_eq!(user["seq"], user_seq);
    assert_eq!(user["status"], "complete");
    assert_eq!(ev[0].id.as_deref(), Some(user_seq.to_string().as_str()), "user message SSE id");

    let typing = ev[1].json();
    assert_eq!(typing["who"], "assistant");
    assert_eq!(typing["active"], true);

    let start = ev[2].json();
    let turn_id = start["turn_id"].as_str().expect("turn_id").to_owned();
    assert!(uuid::Uuid::parse_str(&turn_id).is_ok(), "turn_id not a UUID: {turn_id}");
    let seq = user_seq + 1;
    assert_eq!(start["seq"], seq);
    assert_eq!(start["user_seq"], user_seq);

    let text = check_deltas(ev, &turn_id, seq);

    let end_ev = reply.last();
    assert_eq!(end_ev.id.as_deref(), Some(seq.to_string().as_str()), "stream_end SSE id");
    let end = end_ev.json();
    assert_eq!(end["turn_id"], turn_id.as_str());
    assert_eq!(end["seq"], seq);
    let m = &end["message"];
    assert_message_shape(m);
    assert_eq!(m["seq"], seq);
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["status"], "complete");
    assert_eq!(m["content"], text.as_str(), "stream_end content differs from the deltas");
    assert!(!text.is_empty(), "empty answer");
    check_usage(&end["usage"]);
    check_latency(&end["latency_ms"]);
    assert_eq!(end["finish_reason"], "stop");
    assert!(end["provider"].as_str().is_some_and(|s| !s.is_empty()), "provider: {end}");
    assert!(end["model"].as_str().is_some_and(|s| !s.is_empty()), "model: {end}");
    Turn { turn_id, user_seq, seq, text, end }
}

pub fn check_usage(u: &Value) {
    let p = u["prompt_tokens"].as_u64().unwrap_or_else(|| panic!("usage.prompt_tokens: {u}"));
    let c = u["completion_tokens"].as_u64().unwrap_or_else(|| panic!("usage.completion_tokens: {u}"));
    let t = u["total_tokens"].as_u64().unwrap_or_else(|| panic!("usage.total_tokens: {u}"));
    assert_eq!(t, p + c, "usage total: {u}");
    assert!(c > 0, "no completion tokens counted: {u}");
    assert!(u["estimated"].is_boolean(), "usage.estimated: {u}");
}

pub fn check_latency(l: &Value) {
    let first = l["first_token"].as_u64().unwrap_or_else(|| panic!("latency_ms.first_token: {l}"));
    let total = l["total"].as_u64().unwrap_or_else(|| panic!("latency_ms.total: {l}"));
    assert!(first <= total, "first token after the total: {l}");
}

/// The `error` event that ends a failed stream, checked against SPEC §8.
pub fn check_error_event(reply: &SseReply, code: &str, status: u16) -> Value {
    let last = reply.last();
    assert_eq!(last.event, "error", "expected an error event last, got {:?}", reply.events);
    let err = last.json()["error"].clone();
    assert_eq!(err["code"], code, "{err}");
    assert_eq!(err["http_status"], status, "{err}");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{err}");
    assert_eq!(
        err["trace_id"].as_str(),
        reply.header("x-trace-id").as_deref(),
        "error event trace id vs X-Trace-Id"
    );
    assert!(reply.find("stream_end").is_none(), "both stream_end and error: {:?}", reply.events);
    err
}
