//! The request body as handlers see it: hyper's, with a deadline. A body
//! must have arrived in full within `request_body_timeout_secs` of the end
//! of its request's head; past that, reading it fails with [`BodyTimedOut`]
//! (which the body readers answer with 408 `request.timeout`), so a client
//! that declares a body and never sends it, or trickles it, cannot hold a
//! handler and its connection. Only request bodies: it never touches a
//! response, so streams (SSE, WebSocket) are not cut.

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Reading the body took longer than its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within its deadline")]
pub struct BodyTimedOut;

/// Whether `error` (or anything in its chain of causes) is a [`BodyTimedOut`].
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// `incoming` as the body a handler reads, with its deadline. A request
/// without a body gets no timer at all (the common GET, every SSE and
/// WebSocket request).
pub fn with_deadline(incoming: Incoming, timeout: Duration) -> axum::body::Body {
    if incoming.is_end_stream() {
        return axum::body::Body::new(incoming);
    }
    axum::body::Body::new(Deadline { inner: incoming, deadline: Instant::now() + timeout, timer: None })
}

struct Deadline {
    inner: Incoming,
    deadline: Instant,
    /// Made the first time the body is waited for: a body that is already
    /// buffered when it is read never needs one.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_found_through_wrapping_errors() {
        let wrapped = axum::Error::new(Box::new(BodyTimedOut) as Box<dyn std::error::Error + Send + Sync>);
        assert!(timed_out(&wrapped));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert!(!timed_out(&other));
    }
}
