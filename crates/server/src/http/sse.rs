//! Server-sent events on the wire: one frame per event (`event:`, optional
//! `id:`, one `data:` line of JSON), written as soon as it exists.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::Stream;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
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

/// The frame of an event that many subscribers hand out (one published
/// delta reaches every subscriber of its session as the same `Arc`):
/// serialised once per thread, not once per subscriber. The cache holds
/// `Weak`s, which keep the allocation (not the event) alive, so an address in
/// it cannot be reused by another event while it is there.
pub fn shared_frame(event: &Arc<SessionEvent>) -> Bytes {
    thread_local! {
        static RECENT: RefCell<VecDeque<(Weak<SessionEvent>, Bytes)>> =
            RefCell::new(VecDeque::with_capacity(RECENT_FRAMES));
    }
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        if let Some((_, bytes)) = recent.iter().find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(event))) {
            return bytes.clone();
        }
        let bytes = frame(event);
        if recent.len() == RECENT_FRAMES {
            recent.pop_front();
        }
        recent.push_back((Arc::downgrade(event), bytes.clone()));
        bytes
    })
}

/// Frames remembered per thread by `shared_frame`.
const RECENT_FRAMES: usize = 16;

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

    #[test]
    fn shared_frames_are_the_event_s_own_whatever_was_cached_before() {
        let a = Arc::new(SessionEvent::Typing { who: Who::Assistant, active: true });
        assert_eq!(shared_frame(&a), frame(&a));
        assert_eq!(shared_frame(&a), frame(&a));
        for i in 0..40 {
            // Freed events, new ones (possibly at reused addresses), evictions.
            let b = Arc::new(SessionEvent::ResumeCursor { last_event_id: i, latest_seq: i });
            assert_eq!(shared_frame(&b), frame(&b));
        }
        assert_eq!(shared_frame(&a), frame(&a));
    }
}
