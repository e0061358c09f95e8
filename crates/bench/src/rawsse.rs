//! An SSE subscription read straight from its TCP socket: the request written
//! by hand, the response head checked, the chunked body undone and decoded in
//! the task that reads the socket. An HTTP client library hands each body
//! chunk from its connection task to the reader through a channel, a thread
//! wake-up per event that cost the load generator more than the server spent
//! on a replay; timing deliveries needs the arrival on the reading side only.

use crate::api::Visitor;
use crate::error::{Context, Result};
use crate::events::{Decoder, Item};
use crate::server::{ORIGIN, TENANT};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read at a time.
const READ_SIZE: usize = 16 * 1024;
/// A response head longer than this is not Switchboard's.
const MAX_HEAD: usize = 16 * 1024;

pub struct SseConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Body bytes that came with the head, not yet decoded.
    pending: Vec<u8>,
    body: Dechunk,
    decoder: Decoder,
}

impl SseConn {
    /// `GET /v1/sessions/{id}/events` as the visitor (from `cursor` if
    /// given), up to the end of a 200 response's head.
    pub async fn open(base: &str, visitor: &Visitor, cursor: Option<u64>) -> Result<Self> {
        let host = base.strip_prefix("http://").context("the server URL is not http://")?;
        let mut stream = TcpStream::connect(host).await.context("connecting for a subscription")?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let cursor = cursor.map_or_else(String::new, |c| format!("Last-Event-ID: {c}\r\n"));
        let request = format!(
            "GET /v1/sessions/{}/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {}\r\nX-Tenant-Id: {TENANT}\r\nOrigin: {ORIGIN}\r\n{cursor}\r\n",
            visitor.session_id, visitor.token
        );
        stream.write_all(request.as_bytes()).await.context("sending the subscription request")?;
        let mut head = Vec::with_capacity(1024);
        let end = loop {
            if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if head.len() > MAX_HEAD {
                return Err("the subscription's response head is too long".into());
            }
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.context("reading the subscription's response")?;
            if n == 0 {
                return Err("the server closed the subscription before answering".into());
            }
            head.extend_from_slice(&chunk[..n]);
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let status = text.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            let body = String::from_utf8_lossy(&head[end..]).into_owned();
            return Err(
                format!("GET …/events: HTTP {status}: {}", crate::api::snippet(body.as_bytes())).into()
            );
        }
        let body = if text.contains("\r\ntransfer-encoding: chunked") {
            Dechunk::new()
        } else {
            Dechunk::identity()
        };
        Ok(Self {
            stream,
            buf: vec![0u8; READ_SIZE],
            pending: head[end..].to_vec(),
            body,
            decoder: Decoder::new(),
        })
    }

    /// One read from the socket: each event or comment it completes, with the
    /// time the read returned. False once the stream has ended.
    pub async fn read(&mut self, mut on: impl FnMut(Instant, Item<'_>)) -> Result<bool> {
        let Self { stream, buf, pending, body, decoder } = self;
        if !pending.is_empty() {
            let at = Instant::now();
            let data = std::mem::take(pending);
            body.feed(&data, |part| decoder.feed(part, |item| on(at, item)))?;
            return Ok(true);
        }
        let n = stream.read(buf).await.context("reading a subscription")?;
        let at = Instant::now();
        if n == 0 {
            return Ok(false);
        }
        let more = body.feed(&buf[..n], |part| decoder.feed(part, |item| on(at, item)))?;
        Ok(more)
    }
}

/// Undoes `Transfer-Encoding: chunked` across arbitrary read boundaries.
#[derive(Debug)]
struct Dechunk {
    state: State,
    line: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not chunked: everything is data.
    Identity,
    Size,
    Data(usize),
    /// The CRLF after a chunk's data.
    AfterData,
    Done,
}

impl Dechunk {
    fn new() -> Self {
        Self { state: State::Size, line: Vec::new() }
    }

    fn identity() -> Self {
        Self { state: State::Identity, line: Vec::new() }
    }

    /// Hands the data in `input` to `out`; false once the last chunk was seen.
    fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<bool> {
        while !input.is_empty() {
            match self.state {
                State::Identity => {
                    out(input);
                    return Ok(true);
                }
                State::Size | State::AfterData => {
                    let Some(at) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        return Ok(true);
                    };
                    self.line.extend_from_slice(&input[..at]);
                    input = &input[at + 1..];
                    let line = std::mem::take(&mut self.line);
                    if self.state == State::AfterData {
                        self.state = State::Size;
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    let size = text.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size, 16).context("a chunk size")?;
                    self.state = if size == 0 { State::Done } else { State::Data(size) };
                }
                State::Data(left) => {
                    let take = left.min(input.len());
                    out(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left { State::AfterData } else { State::Data(left - take) };
                }
                State::Done => return Ok(false),
            }
        }
        Ok(self.state != State::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"d\r\nretry: 2000\n\n\r\n18\r\nevent: a\ndata: {\"x\":1}\n\n\r\n0\r\n\r\n";

    #[test]
    fn undoes_chunking_at_every_split() {
        for size in 1..=BODY.len() {
            let mut d = Dechunk::new();
            let (mut data, mut more) = (Vec::new(), true);
            for part in BODY.chunks(size) {
                more = d.feed(part, |bytes| data.extend_from_slice(bytes)).unwrap();
            }
            assert_eq!(data, b"retry: 2000\n\nevent: a\ndata: {\"x\":1}\n\n", "split {size}");
            assert!(!more);
        }
    }

    #[test]
    fn a_bad_size_is_an_error() {
        assert!(Dechunk::new().feed(b"zz\r\n", |_| {}).is_err());
    }
}
