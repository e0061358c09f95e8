//! The resume cursor a client sends (SPEC §6): `Last-Event-ID`, else
//! `?last_event_id=` (SSE), or `last_event_id` in a WebSocket frame (an
//! integer, or a string of digits). Only plain decimal digits are a cursor;
//! anything else is answered with 410 `chat.cursor_invalid`.

use crate::edge::query_param;
use crate::http::ApiError;
use axum::http::HeaderMap;
use serde_json::Value;
use switchboard_core::ErrorCode;

/// The cursor of an SSE request; `None` when it sent none (or an empty one,
/// which is what a browser that saw no id yet would send).
pub fn from_request(headers: &HeaderMap, query: Option<&str>) -> Result<Option<i64>, ApiError> {
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::new(ErrorCode::CursorInvalid))?.to_owned()),
        None => query_param(query, "last_event_id"),
    };
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => parse(s).map(Some),
    }
}

/// The cursor of a WebSocket frame's `last_event_id`.
pub fn from_json(value: Option<&Value>) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 0).map(Some).ok_or(invalid()),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse(s).map(Some),
        Some(_) => Err(invalid()),
    }
}

fn parse(s: &str) -> Result<i64, ApiError> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    s.parse().map_err(|_| invalid())
}

fn invalid() -> ApiError {
    ApiError::new(ErrorCode::CursorInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn code(r: Result<Option<i64>, ApiError>) -> Result<Option<i64>, ErrorCode> {
        r.map_err(|e| e.code)
    }

    #[test]
    fn only_plain_decimal_digits_are_cursors() {
        let q = |s: &str| code(from_request(&HeaderMap::new(), Some(s)));
        assert_eq!(q("last_event_id=12"), Ok(Some(12)));
        assert_eq!(q("last_event_id=0"), Ok(Some(0)));
        assert_eq!(q("last_event_id=007"), Ok(Some(7)));
        assert_eq!(q("last_event_id="), Ok(None));
        assert_eq!(q("x=1"), Ok(None));
        for bad in ["-1", "+1", "1.0", "1e3", "abc", "0x10", "99999999999999999999", "1%200"] {
            assert_eq!(q(&format!("last_event_id={bad}")), Err(ErrorCode::CursorInvalid), "{bad}");
        }
    }

    #[test]
    fn the_header_wins_over_the_query() {
        let mut h = HeaderMap::new();
        h.insert("last-event-id", HeaderValue::from_static("5"));
        assert_eq!(code(from_request(&h, Some("last_event_id=9"))), Ok(Some(5)));
    }

    #[test]
    fn frames_take_integers_or_digit_strings() {
        assert_eq!(code(from_json(Some(&json!(3)))), Ok(Some(3)));
        assert_eq!(code(from_json(Some(&json!("3")))), Ok(Some(3)));
        assert_eq!(code(from_json(None)), Ok(None));
        for bad in [json!(-1), json!(1.5), json!("x"), json!([1]), json!(true)] {
            assert_eq!(code(from_json(Some(&bad))), Err(ErrorCode::CursorInvalid), "{bad}");
        }
    }
}
