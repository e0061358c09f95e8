//! An answer body held in memory, read exactly as a provider reads one from
//! the network (the shared SSE decoder below the vendor's wire format). The
//! way in for the fuzz targets and for tests of the stream parsers; it does
//! no I/O and never waits.

use crate::answer;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use switchboard_core::provider::{ProviderError, ProviderEvent};

/// A vendor's streaming format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// Chat Completions (OpenAI and compatible servers).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Dify's chat-messages, for a request that sent
    /// [`DIFY_SENT_CONVERSATION`].
    Dify,
}

/// What a provider makes of a body that arrives as `chunks`: its events, in
/// order, up to and including the first error.
pub fn read_answer(format: WireFormat, chunks: Vec<Bytes>) -> Vec<Result<ProviderEvent, ProviderError>> {
    let body = futures_util::stream::iter(chunks.into_iter().map(Ok::<Bytes, reqwest::Error>));
    let events = match format {
        WireFormat::OpenAi => answer::stream(body, crate::openai::wire::ChatWire::default()),
        WireFormat::Anthropic => answer::stream(body, crate::anthropic::wire::MessagesWire::default()),
        WireFormat::Dify => answer::stream(body, crate::dify::wire::DifyWire::new(DIFY_SENT_CONVERSATION)),
    };
    // An in-memory body is always ready, so one poll reads it all; a stream
    // that waited anyway would be a bug, shown as an answer cut short.
    events.collect::<Vec<_>>().now_or_never().unwrap_or_else(|| {
        vec![Err(ProviderError::Unavailable("an in-memory answer body was not ready".into()))]
    })
}

/// The conversation id a replayed Dify request is taken to have sent.
pub const DIFY_SENT_CONVERSATION: &str = "conv-sent";
