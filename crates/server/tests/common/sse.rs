//! A small, self-contained `text/event-stream` reader for the tests: CR, LF and
//! CRLF line endings (a CRLF may be split across reads), comments, multi-line
//! data, and UTF-8 characters split across network chunks.

use serde_json::Value;

/// One dispatched SSE event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field of this very event, if it carried one.
    pub id: Option<String>,
}

impl SseEvent {
    /// The data parsed as JSON; panics with the raw data when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event {} carries non-JSON data {:?}: {e}", self.event, self.data))
    }
}

/// Incremental parser: feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    skip_lf: bool,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
    /// The first line of the stream, whatever it was.
    pub first_line: Option<String>,
    /// Every `retry:` value seen.
    pub retries: Vec<String>,
    /// Every comment line (without the leading colon).
    pub comments: Vec<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.skip_lf = true;
                    self.end_line(&mut out);
                }
                b'\n' => self.end_line(&mut out),
                _ => self.buf.push(b),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.buf);
        let line = String::from_utf8(raw).unwrap_or_else(|e| panic!("SSE line is not UTF-8: {e}"));
        if self.first_line.is_none() {
            self.first_line = Some(line.clone());
        }
        if line.is_empty() {
            if self.event.is_some() || !self.data.is_empty() || self.id.is_some() {
                out.push(SseEvent {
                    event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                    data: std::mem::take(&mut self.data).join("\n"),
                    id: self.id.take(),
                });
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            self.comments.push(comment.trim_start().to_owned());
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
            None => (line.clone(), String::new()),
        };
        match field.as_str() {
            "event" => self.event = Some(value),
            "data" => self.data.push(value),
            "id" => self.id = Some(value),
            "retry" => self.retries.push(value),
            _ => {}
        }
    }
}

/// The text of all `stream_delta` events, in order.
pub fn deltas_text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.event == "stream_delta")
        .map(|e| e.json()["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The event names, in order.
pub fn kinds(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.clone()).collect()
}
