//! Frames of published events, rendered once per worker thread: every
//! subscriber of a session hands out the same published `Arc`, so 100
//! subscribers need one serialisation, not 100. The cache holds `Weak`s,
//! which keep the allocation (not the event) alive, so an address in it
//! cannot be reused by another event while it is there.

use axum::body::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use switchboard_core::events::SessionEvent;

/// The wire forms a frame is cached in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Sse,
    WebSocket,
}

/// Frames remembered per thread.
const RECENT: usize = 16;

type Entry = (Weak<SessionEvent>, Form, Bytes);

thread_local! {
    static FRAMES: RefCell<VecDeque<Entry>> = RefCell::new(VecDeque::with_capacity(RECENT));
}

/// The frame of `event` in `form`, rendered by `render` if this thread has
/// not rendered it yet.
pub fn frame(event: &Arc<SessionEvent>, form: Form, render: impl FnOnce() -> Bytes) -> Bytes {
    FRAMES.with(|frames| {
        let mut frames = frames.borrow_mut();
        let found =
            frames.iter().find(|(w, f, _)| *f == form && std::ptr::eq(w.as_ptr(), Arc::as_ptr(event)));
        if let Some((_, _, bytes)) = found {
            return bytes.clone();
        }
        let bytes = render();
        if frames.len() == RECENT {
            frames.pop_front();
        }
        frames.push_back((Arc::downgrade(event), form, bytes.clone()));
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::events::Who;

    fn render(e: &SessionEvent) -> Bytes {
        Bytes::from(e.payload_json())
    }

    #[test]
    fn a_frame_is_the_event_s_own_whatever_was_cached_before() {
        let a = Arc::new(SessionEvent::Typing { who: Who::Assistant, active: true });
        assert_eq!(frame(&a, Form::Sse, || render(&a)), render(&a));
        assert_eq!(frame(&a, Form::Sse, || Bytes::from_static(b"not rendered again")), render(&a));
        assert_eq!(frame(&a, Form::WebSocket, || Bytes::from_static(b"ws")), Bytes::from_static(b"ws"));
        for i in 0..40 {
            // Freed events, new ones (possibly at reused addresses), evictions.
            let b = Arc::new(SessionEvent::ResumeCursor { last_event_id: i, latest_seq: i });
            assert_eq!(frame(&b, Form::Sse, || render(&b)), render(&b));
        }
        assert_eq!(frame(&a, Form::Sse, || render(&a)), render(&a));
    }
}
