//! The SSE decoder every provider shares: the same bytes give the same
//! events, the same last id and the same verdict on oversize events however
//! they are cut into reads, and no decoded field holds a line break the
//! framing should have consumed.

use crate::layout::{flag, layout};
use switchboard_providers::sse::{Decoder, SseEvent};

/// An event limit small enough for fuzzed inputs to cross it.
const SMALL_LIMIT: usize = 64;

struct Decoded {
    events: Vec<SseEvent>,
    last_id: Option<String>,
    oversize: bool,
}

fn decode(limit: usize, chunks: &[&[u8]]) -> Decoded {
    let mut decoder = Decoder::with_max_event_bytes(limit);
    let mut events = Vec::new();
    let mut oversize = false;
    for chunk in chunks {
        oversize |= decoder.push(chunk, &mut events).is_err();
    }
    decoder.finish(&mut events);
    Decoded { events, last_id: decoder.last_event_id().map(str::to_owned), oversize }
}

pub fn sse(data: &[u8]) {
    let input = layout(data);
    let limit = if flag(data) { SMALL_LIMIT } else { switchboard_providers::sse::DEFAULT_MAX_EVENT_BYTES };
    let whole = decode(limit, &[input.body]);
    let split = decode(limit, &input.chunks);
    assert_eq!(whole.events, split.events, "events differ when the body is split");
    assert_eq!(whole.last_id, split.last_id, "last event id differs when the body is split");
    assert_eq!(whole.oversize, split.oversize, "oversize verdict differs when the body is split");
    for event in &whole.events {
        assert!(!event.data.contains('\r'), "a CR left in data: {event:?}");
        let name = event.event.as_deref().unwrap_or("x");
        let id = event.id.as_deref().unwrap_or("");
        assert!(!name.is_empty(), "an empty event name is the default type: {event:?}");
        assert!(!name.contains(['\r', '\n']) && !id.contains(['\r', '\n', '\0']), "{event:?}");
        assert!(event.data.len() <= limit, "an event past the limit: {} bytes", event.data.len());
    }
}
