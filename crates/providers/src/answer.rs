//! An answer body read as a provider stream: the shared SSE decoder below a
//! vendor's [`Wire`], which says what each event means. Ends at the vendor's
//! end marker, at the first error, or when the body ends; never reads ahead
//! of what the turn engine asks for.

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
    /// The body ended without [`Flow::Done`]: complete, or cut short?
    fn ended(&self) -> Result<(), ProviderError>;
}

type Events = BoxStream<'static, Result<SseEvent, SseStreamError<reqwest::Error>>>;

struct Answer<W> {
    /// `None` once the body is no longer ours to read.
    events: Option<Events>,
    wire: W,
    pending: VecDeque<Result<ProviderEvent, ProviderError>>,
    scratch: Vec<ProviderEvent>,
}

impl<W: Wire> Answer<W> {
    async fn next(&mut self) -> Option<Result<ProviderEvent, ProviderError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let events = self.events.as_mut()?;
            let failure = match events.next().await {
                Some(Ok(event)) => {
                    let flow = self.wire.event(&event, &mut self.scratch);
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
                    Some(ProviderError::Unavailable(format!("stream broke off: {cause}")))
                }
                None => self.wire.ended().err(),
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
    let answer = Answer { events: Some(events), wire, pending: VecDeque::new(), scratch: Vec::new() };
    stream::unfold(answer, |mut answer| async move { answer.next().await.map(|item| (item, answer)) }).boxed()
}
