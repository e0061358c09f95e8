//! Server-sent events on the wire: one frame per event (`event:`, optional
//! `id:`, one `data:` line of JSON), written as soon as it exists.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::Stream;
use switchboard_core::events::SessionEvent;

/// Opens every stream: tells `EventSource` to retry after 2 s.
pub const PREAMBLE: &[u8] = b"retry: 2000\n\n";
pub const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// One event as an SSE frame.
pub fn frame(event: &SessionEvent) -> Bytes {
    let payload = event.payload_json();
    let mut out = String::with_capacity(payload.len() + 48);
    out.push_str("event: ");
    out.push_str(event.kind());
    out.push('\n');
    if let Some(id) = event.sse_id() {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("data: ");
    // serde_json never writes raw newlines, so the payload is one line.
    out.push_str(&payload);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// A 200 `text/event-stream` response that writes each chunk as it comes.
pub fn response<S>(body: S) -> Response
where
    S: Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
{
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::events::Who;

    #[test]
    fn frames_have_type_optional_id_and_one_data_line() {
        let typing = SessionEvent::Typing { who: Who::Assistant, active: true };
        assert_eq!(&frame(&typing)[..], b"event: typing\ndata: {\"who\":\"assistant\",\"active\":true}\n\n");
        let resume = SessionEvent::ResumeCursor { last_event_id: 3, latest_seq: 4 };
        assert_eq!(
            &frame(&resume)[..],
            b"event: resume_cursor\ndata: {\"last_event_id\":3,\"latest_seq\":4}\n\n"
        );
    }
}
