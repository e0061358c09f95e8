//! A small SSE decoder for the realtime benchmarks: whole events (name and
//! data) and comment lines, across arbitrary network chunk splits. Unlike
//! `sse::Scanner` it keeps the data, since these benchmarks need a delta's
//! seq and text; it still decodes no JSON itself.

/// One thing a stream said.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// An event, complete at its blank line (`event:` name, `data:` lines
    /// joined with `\n`; `id:` and `retry:` are dropped).
    Event { name: &'a str, data: &'a [u8] },
    /// A comment line (e.g. `: heartbeat`).
    Comment,
}

#[derive(Default)]
pub struct Decoder {
    partial: Vec<u8>,
    name: String,
    data: Vec<u8>,
    /// Whether the current event has a field yet (a blank line ends only those).
    open: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk; `on` sees each event or comment completed by it.
    pub fn feed(&mut self, chunk: &[u8], mut on: impl FnMut(Item<'_>)) {
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(at);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line, &mut on);
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                self.line(&joined, &mut on);
                joined.clear();
                self.partial = joined;
            }
        }
        self.partial.extend_from_slice(rest);
    }

    fn line(&mut self, line: &[u8], on: &mut impl FnMut(Item<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.open {
                on(Item::Event { name: &self.name, data: &self.data });
            }
            self.name.clear();
            self.data.clear();
            self.open = false;
            return;
        }
        if line[0] == b':' {
            on(Item::Comment);
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(at) => (&line[..at], line[at + 1..].strip_prefix(b" ").unwrap_or(&line[at + 1..])),
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.name = String::from_utf8_lossy(value).into_owned();
                self.open = true;
            }
            b"data" => {
                if self.open && !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.open = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"retry: 2000\n\nevent: session\nid: 0\ndata: {\"a\":1}\n\n: heartbeat\n\n\
        event: stream_delta\r\ndata: {\"text\":\"hi\"}\r\n\r\n";

    fn decode(bytes: &[u8], size: usize) -> Vec<String> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(size) {
            decoder.feed(chunk, |item| {
                out.push(match item {
                    Item::Event { name, data } => format!("{name} {}", String::from_utf8_lossy(data)),
                    Item::Comment => "comment".to_owned(),
                })
            });
        }
        out
    }

    #[test]
    fn events_and_comments_at_every_split() {
        for size in 1..=STREAM.len() {
            assert_eq!(
                decode(STREAM, size),
                vec!["session {\"a\":1}", "comment", "stream_delta {\"text\":\"hi\"}"],
                "split {size}"
            );
        }
    }
}
