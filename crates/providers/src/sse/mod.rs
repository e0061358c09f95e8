//! The one Server-Sent Events decoder every provider shares: incremental and
//! byte-level, so network chunk boundaries (a CRLF or a UTF-8 character split
//! across reads) never change what is decoded. It only frames events; what the
//! data means is each provider's business.

mod stream;

pub use stream::{decode_stream, SseStreamError};

/// The largest event accepted by default (its data, name and id together).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` when absent or empty, which SSE treats as
    /// the default type `message`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`; empty for an event without data.
    pub data: String,
    /// The `id:` field of this event only (see [`Decoder::last_event_id`] for
    /// the id that persists across events as browsers track it).
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event grew past the limit; it was dropped and decoding resumed at
    /// the next blank line.
    #[error("SSE event larger than {limit} bytes")]
    EventTooLarge { limit: usize },
}

/// Incremental decoder. Feed it bytes as they arrive with [`Decoder::push`]
/// and call [`Decoder::finish`] when the body ends.
///
/// Memory stays bounded by the current event: bytes are buffered only up to
/// the end of the current line, and a line plus the event it belongs to may
/// not exceed the limit. Lines are decoded as UTF-8 only once complete, so a
/// character split across chunks is never mangled; invalid UTF-8 is replaced
/// (lossy) rather than failing the stream.
#[derive(Debug)]
pub struct Decoder {
    max_event_bytes: usize,
    /// Bytes of the current, unterminated line.
    line: Vec<u8>,
    /// The current line has at least one byte (tracked apart from `line`
    /// because an oversized line is dropped rather than buffered).
    line_started: bool,
    /// The last byte seen was a CR: an LF right after it is the same line end.
    after_cr: bool,
    /// Dropping everything up to the next blank line after an oversize event.
    discarding: bool,
    /// Nothing decoded yet: a leading byte-order mark is skipped.
    at_start: bool,
    pending: Pending,
    last_event_id: Option<String>,
}

/// The fields of the event being assembled.
#[derive(Debug, Default)]
struct Pending {
    event: Option<String>,
    data: String,
    has_data: bool,
    has_event: bool,
    id: Option<String>,
    bytes: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            line_started: false,
            after_cr: false,
            discarding: false,
            at_start: true,
            pending: Pending::default(),
            last_event_id: None,
        }
    }

    /// The id most recently set by an `id:` field, kept across events (what a
    /// reconnecting client would send as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Decodes one chunk, appending every completed event to `out`. On an
    /// oversize event the error is returned after the whole chunk has been
    /// decoded, so events before and after the dropped one are still in `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if chunk.is_empty() {
            // Nothing to see, and a CR at the end of the last chunk must
            // still meet the LF that may start the next one.
            return Ok(());
        }
        let mut overflow = None;
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        // memchr scans a word (or a vector) at a time: every byte an upstream
        // sends passes here.
        while let Some(pos) = memchr::memchr2(b'\r', b'\n', rest) {
            if let Err(e) = self.append(&rest[..pos]) {
                overflow = Some(e);
            }
            if let Err(e) = self.end_line(out) {
                overflow = Some(e);
            }
            let is_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        if let Err(e) = self.append(rest) {
            overflow = Some(e);
        }
        overflow.map_or(Ok(()), Err)
    }

    /// Ends the stream. An unterminated last line is taken as complete and a
    /// pending event with data or a name is emitted: servers that close right
    /// after `data: [DONE]` without the final blank line are common enough
    /// that dropping it (as browsers do) would only cause spurious errors.
    /// A last event found oversize here is dropped without a report: the
    /// body is over, there is nothing left to resume.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if self.line_started {
            let _ = self.end_line(out);
        }
        let _ = self.end_line(out);
        self.after_cr = false;
        self.discarding = false;
    }

    /// Buffers bytes of the current line, enforcing the event size limit.
    fn append(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.line_started = true;
        if self.discarding {
            return Ok(());
        }
        if self.pending.bytes + self.line.len() + bytes.len() > self.max_event_bytes {
            self.discarding = true;
            self.line = Vec::new();
            self.pending = Pending::default();
            return Err(SseError::EventTooLarge { limit: self.max_event_bytes });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Handles a complete line (its terminator already consumed).
    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let blank = !self.line_started;
        self.line_started = false;
        if self.discarding {
            if blank {
                self.discarding = false;
            }
            return Ok(());
        }
        let mut raw = std::mem::take(&mut self.line);
        if self.at_start {
            self.at_start = false;
            if raw.starts_with(BOM) {
                raw.drain(..BOM.len());
            }
        }
        if raw.is_empty() {
            // A blank line (or a line that held only the BOM) ends the event.
            self.dispatch(out);
            return Ok(());
        }
        // Valid UTF-8 (nearly every line) takes the validator's word-at-a-time
        // path; the lossy decoder walks each byte even when nothing is wrong.
        let text = match std::str::from_utf8(&raw) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&raw),
        };
        // Each invalid byte becomes U+FFFD, three bytes: a line whose raw
        // bytes kept within the limit may not once decoded.
        if self.pending.bytes + text.len() > self.max_event_bytes {
            self.discarding = true;
            self.line = Vec::new();
            self.pending = Pending::default();
            return Err(SseError::EventTooLarge { limit: self.max_event_bytes });
        }
        self.field(&text);
        // Reuse the allocation for the next line rather than growing anew.
        raw.clear();
        self.line = raw;
        Ok(())
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        let p = &mut self.pending;
        match name {
            "data" => {
                if p.has_data {
                    p.data.push('\n');
                }
                p.data.push_str(value);
                p.has_data = true;
                p.bytes += value.len() + 1;
            }
            "event" => {
                p.bytes += value.len();
                p.event = (!value.is_empty()).then(|| value.to_owned());
                p.has_event = true;
            }
            // An id holding NUL is ignored, as the SSE standard says.
            "id" if !value.contains('\0') => {
                p.bytes += value.len();
                p.id = Some(value.to_owned());
                self.last_event_id = Some(value.to_owned());
            }
            _ => {} // retry and unknown fields
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let p = std::mem::take(&mut self.pending);
        if p.has_data || p.has_event {
            out.push(SseEvent { event: p.event, data: p.data, id: p.id });
        }
    }
}

#[cfg(test)]
mod tests;
