//! The least SSE parsing that timing needs: find the lines that mark the first
//! token, the end and a failure, across arbitrary network chunk splits. It does
//! not decode JSON or join multi-line data; correctness of the stream is the
//! tests' business, not the benchmark's.

/// Which stream is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Switchboard's events: `event: stream_delta`, `event: stream_end`, `event: error`.
    Switchboard,
    /// OpenAI Chat Completions chunks: a `delta.content` chunk, then `data: [DONE]`.
    Upstream,
}

/// What has been seen so far on one stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    pub token: bool,
    pub end: bool,
    /// The data of an `error` event (or a marker when it had none yet).
    pub error: Option<String>,
}

/// Feeds network chunks in, keeps the unfinished last line between them.
pub struct Scanner {
    wire: Wire,
    partial: Vec<u8>,
    after_error_event: bool,
    progress: Progress,
}

impl Scanner {
    pub fn new(wire: Wire) -> Self {
        Self { wire, partial: Vec::new(), after_error_event: false, progress: Progress::default() }
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Scans one chunk; lines end in LF or CRLF (what both servers send).
    pub fn feed(&mut self, chunk: &[u8]) -> &Progress {
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(at);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line);
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                self.line(&joined);
            }
        }
        self.partial.extend_from_slice(rest);
        &self.progress
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.wire {
            Wire::Switchboard => self.switchboard_line(line),
            Wire::Upstream => self.upstream_line(line),
        }
    }

    fn switchboard_line(&mut self, line: &[u8]) {
        if let Some(name) = field(line, b"event:") {
            self.after_error_event = name == b"error";
            match name {
                b"stream_delta" => self.progress.token = true,
                b"stream_end" => self.progress.end = true,
                b"error" => self.progress.error = Some("error event".to_owned()),
                _ => {}
            }
        } else if self.after_error_event {
            if let Some(data) = field(line, b"data:") {
                self.progress.error = Some(String::from_utf8_lossy(data).into_owned());
                self.after_error_event = false;
            }
        }
    }

    fn upstream_line(&mut self, line: &[u8]) {
        let Some(data) = field(line, b"data:") else { return };
        if data == b"[DONE]" {
            self.progress.end = true;
        } else if contains(data, br#""delta":{"content":"#) {
            self.progress.token = true;
        } else if data.starts_with(br#"{"error""#) {
            self.progress.error = Some(String::from_utf8_lossy(data).into_owned());
        }
    }
}

/// The value of an SSE field line (`name:` with an optional single space).
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value = line.strip_prefix(name)?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCHBOARD: &[u8] = b"retry: 2000\n\nevent: message\ndata: {\"seq\":1}\n\n\
        event: stream_start\ndata: {}\n\nevent: stream_delta\r\ndata: {\"text\":\"hi\"}\r\n\r\n\
        event: stream_end\nid: 2\ndata: {}\n\n";

    fn scan_split(wire: Wire, bytes: &[u8], size: usize) -> Vec<Progress> {
        let mut scanner = Scanner::new(wire);
        bytes.chunks(size).map(|c| scanner.feed(c).clone()).collect()
    }

    #[test]
    fn finds_token_and_end_at_every_split_size() {
        for size in 1..=SWITCHBOARD.len() {
            let seen = scan_split(Wire::Switchboard, SWITCHBOARD, size);
            let last = seen.last().unwrap();
            assert!(last.token && last.end && last.error.is_none(), "split {size}");
            let first_token = seen.iter().position(|p| p.token).unwrap();
            let first_end = seen.iter().position(|p| p.end).unwrap();
            assert!(first_token <= first_end);
        }
    }

    #[test]
    fn the_token_is_not_seen_before_its_line_is_complete() {
        let mut scanner = Scanner::new(Wire::Switchboard);
        assert!(!scanner.feed(b"event: stream_del").token);
        assert!(scanner.feed(b"ta\n").token);
    }

    #[test]
    fn keeps_the_data_of_an_error_event() {
        let mut scanner = Scanner::new(Wire::Switchboard);
        let p = scanner.feed(b"event: error\ndata: {\"error\":{\"code\":\"llm.timeout\"}}\n\n");
        assert_eq!(p.error.as_deref(), Some("{\"error\":{\"code\":\"llm.timeout\"}}"));
        assert!(!p.end);
    }

    #[test]
    fn upstream_role_chunk_is_not_a_token_but_a_content_chunk_is() {
        let mut scanner = Scanner::new(Wire::Upstream);
        let p =
            scanner.feed(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n");
        assert!(!p.token);
        let p = scanner.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"I'm\"}}]}\n\n");
        assert!(p.token && !p.end);
        assert!(scanner.feed(b"data: [DONE]\n\n").end);
    }
}
