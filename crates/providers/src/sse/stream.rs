//! [`decode_stream`]: the SSE decoder as a stream adapter over an HTTP body.
//! It yields events as soon as their blank line arrives and never reads ahead
//! of what the consumer asks for, so back-pressure reaches the socket.

use super::{Decoder, SseError, SseEvent};
use futures_util::stream::{self, Stream, StreamExt};
use std::collections::VecDeque;

/// Why a decoded body stream failed.
#[derive(Debug, thiserror::Error)]
pub enum SseStreamError<E> {
    /// Reading the body failed (e.g. the connection dropped).
    #[error("reading the event stream failed: {0}")]
    Body(E),
    /// The framing was unacceptable (an oversize event).
    #[error(transparent)]
    Sse(#[from] SseError),
}

struct State<S> {
    body: S,
    decoder: Decoder,
    ready: VecDeque<Result<SseEvent, SseError>>,
    scratch: Vec<SseEvent>,
    ended: bool,
}

/// Decodes a body of byte chunks into SSE events. A body error is yielded
/// once, after the events decoded before it, and ends the stream; an
/// oversize event is dropped and reported as an error after the other events
/// of the chunk it was found in, and decoding goes on.
pub fn decode_stream<S, B, E>(body: S) -> impl Stream<Item = Result<SseEvent, SseStreamError<E>>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    let state = State {
        body: Box::pin(body),
        decoder: Decoder::new(),
        ready: VecDeque::new(),
        scratch: Vec::new(),
        ended: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.ready.pop_front() {
                return Some((item.map_err(SseStreamError::Sse), st));
            }
            if st.ended {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    let result = st.decoder.push(chunk.as_ref(), &mut st.scratch);
                    st.ready.extend(st.scratch.drain(..).map(Ok));
                    if let Err(e) = result {
                        st.ready.push_back(Err(e));
                    }
                }
                Some(Err(e)) => {
                    st.ended = true;
                    return Some((Err(SseStreamError::Body(e)), st));
                }
                None => {
                    st.ended = true;
                    st.decoder.finish(&mut st.scratch);
                    st.ready.extend(st.scratch.drain(..).map(Ok));
                }
            }
        }
    })
}
