//! An answer body read as a provider stream: the shared SSE decoder below a
//! vendor's [`Wire`], which says what each event means. Ends at the vendor's
//! end marker, at the first error, or when the body ends; never reads ahead
//! of what the turn engine asks for. A body that breaks or ends before any
//! text is a transient failure (a proxy reset, a restart), worth a retry.

use crate::sse::{decode_stream, SseEvent, SseStreamError};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::collections::VecDeque;
use switchboard_core::provider::{ProviderError, ProviderEvent, ProviderStream};

/// What an event told the reader.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read on.
    More,
    /// The answer is complete; the rest of the body is not ours to read.
    Done,
}

/// A vendor's streaming format.
pub(crate) trait Wire: Send + 'static {
    /// Turns one event into provider events (pushed onto `out`).
    fn event(&mut self, event: &SseEvent, out: &mut Vec<ProviderEvent>) -> Result<Flow, ProviderError>;
    /// Whether a body that ends here (without [`Flow::Done`]) holds a whole
    /// answer; by default only the vendor's end marker completes one.
    fn complete_without_end_marker(&self) -> bool {
        false
    }
}

type Events = BoxStream<'static, Result<SseEvent, SseStreamError<reqwest::Error>>>;

struct Answer<W> {
    /// `None` once the body is no longer ours to read.
    events: Option<Events>,
    wire: W,
    pending: VecDeque<Result<ProviderEvent, ProviderError>>,
    scratch: Vec<ProviderEvent>,
    /// Some text was read: a body that breaks now has cut an answer short,
    /// rather than failed before answering (which is worth another attempt).
    text_seen: bool,
}

impl<W: Wire> Answer<W> {
    /// The body ended wrong: an answer cut short, or (before any text) a
    /// failure that another attempt may not meet.
    fn cut(&self, message: String) -> ProviderError {
        if self.text_seen {
            ProviderError::Unavailable(message)
        } else {
            ProviderError::Transient(message)
        }
    }

    async fn next(&mut self) -> Option<Result<ProviderEvent, ProviderError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let events = self.events.as_mut()?;
            let failure = match events.next().await {
                Some(Ok(event)) => {
                    let flow = self.wire.event(&event, &mut self.scratch);
                    self.text_seen |= self.scratch.iter().any(|e| match e {
                        ProviderEvent::Delta(t) | ProviderEvent::Replace(t) => !t.is_empty(),
                        _ => false,
                    });
                    self.pending.extend(self.scratch.drain(..).map(Ok));
                    match flow {
                        Ok(Flow::More) => continue,
                        // Dropping the body here is fine for pooling: the HTTP
                        // client reads the (normally empty) rest itself.
                        Ok(Flow::Done) => None,
                        Err(e) => Some(e),
                    }
                }
                Some(Err(e)) => {
                    let cause = match &e {
                        SseStreamError::Body(body) => crate::http::error_chain(body),
                        SseStreamError::Sse(sse) => sse.to_string(),
                    };
                    Some(self.cut(format!("stream broke off: {cause}")))
                }
                None if self.wire.complete_without_end_marker() => None,
                None => Some(self.cut("stream ended early".into())),
            };
            self.events = None;
            if let Some(e) = failure {
                self.pending.push_back(Err(e));
            }
        }
    }
}

/// The provider stream of an answer body read with `wire`.
pub(crate) fn stream<B, W>(body: B, wire: W) -> ProviderStream
where
    B: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
    W: Wire,
{
    let events: Events = decode_stream(body).boxed();
    let answer = Answer {
        events: Some(events),
        wire,
        pending: VecDeque::new(),
        scratch: Vec::new(),
        text_seen: false,
    };
    stream::unfold(answer, |mut answer| async move { answer.next().await.map(|item| (item, answer)) }).boxed()
}
