//! Our answer in place of hyper's to a request head it cannot parse. hyper
//! refuses such a head (a bad or doubled `Content-Length`, a bare CR, an
//! obs-fold line, too many or too large headers, a URL over 64 KiB) before
//! any service runs, by writing a bare `400`/`431`/`414` of its own. The
//! socket hyper writes to swaps those bytes for the SPEC §8 envelope, with a
//! trace id and the security headers.
//!
//! It must never touch any other byte. hyper writes its refusal only while
//! it answers no request and has nothing else left to send, and that is the
//! one state in which this socket replaces a write: no request is in the
//! service, the last answer's body has ended, and hyper has flushed the
//! socket since (hyper flushes only once its own buffer is empty, so every
//! byte of that answer has left). A write at any other moment passes
//! untouched, as does everything after an upgrade.

use super::{trace, ApiError};
use axum::body::Bytes;
use axum::http::{Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use switchboard_core::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// No request in the service, and every byte of earlier answers sent.
const IDLE: u8 = 0;
/// A request is being answered.
const BUSY: u8 = 1;
/// The answer's body has ended; its last bytes may still wait in hyper.
const ENDED: u8 = 2;
/// Upgraded (or something unexpected was written): never replace again.
const PASS: u8 = 3;

/// What one connection's socket, its service and its answers share.
#[derive(Clone)]
pub struct Exchange(Arc<Shared>);

struct Shared {
    state: AtomicU8,
    /// The trace id of the refusal written in hyper's place.
    refused: OnceLock<String>,
}

impl Exchange {
    pub fn new() -> Self {
        Self(Arc::new(Shared { state: AtomicU8::new(IDLE), refused: OnceLock::new() }))
    }

    /// The socket hyper reads and writes.
    pub fn socket(&self, tcp: TcpStream) -> Socket {
        Socket { tcp, shared: self.0.clone(), refusal: None }
    }

    /// A request head was parsed and goes to the service.
    pub fn begin(&self) {
        let _ =
            self.0.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| (s != PASS).then_some(BUSY));
    }

    /// The service's answer (to a `CONNECT` request or not), its body
    /// watched for its end. An answer on which hyper hands the socket over
    /// (hyper's own rule: a 101, or a 2xx to `CONNECT`) hands it over for
    /// good: from then on it carries a WebSocket, not HTTP.
    pub fn answer(&self, response: Response<axum::body::Body>, to_connect: bool) -> Response<Answer> {
        let status = response.status();
        if status == StatusCode::SWITCHING_PROTOCOLS || (to_connect && status.is_success()) {
            self.0.state.store(PASS, Ordering::Release);
        }
        response.map(|body| Answer { body, shared: self.0.clone() })
    }

    /// The trace id of the refusal this connection got in hyper's place.
    pub fn refused(&self) -> Option<&str> {
        self.0.refused.get().map(String::as_str)
    }
}

/// A response body that marks the end of its answer when hyper drops it
/// (after its last bytes were put in hyper's buffer).
pub struct Answer {
    body: axum::body::Body,
    shared: Arc<Shared>,
}

impl Drop for Answer {
    fn drop(&mut self) {
        let _ = self.shared.state.compare_exchange(BUSY, ENDED, Ordering::AcqRel, Ordering::Acquire);
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The TCP stream, with hyper's own refusals replaced.
pub struct Socket {
    tcp: TcpStream,
    shared: Arc<Shared>,
    /// Our refusal, and how much of it is written.
    refusal: Option<(Box<[u8]>, usize)>,
}

impl Socket {
    /// `Some(n)`: the write (of `n` bytes) is hyper's refusal, or comes after
    /// it, and is dropped; `None`: it goes to the socket as it is.
    fn intercept(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        if self.refusal.is_some() {
            return Some(len);
        }
        if self.shared.state.load(Ordering::Acquire) != IDLE {
            return None;
        }
        let Some(code) = refused_code(bufs) else {
            // Not a refusal we know: leave this connection alone from now on.
            self.shared.state.store(PASS, Ordering::Release);
            return None;
        };
        let trace_id = self.shared.refused.get_or_init(trace::fresh).clone();
        self.refusal = Some((refusal(code, trace_id).into_boxed_slice(), 0));
        Some(len)
    }

    /// Writes what is left of our refusal.
    fn write_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((bytes, written)) = &mut self.refusal else { return Poll::Ready(Ok(())) };
        while *written < bytes.len() {
            match ready!(Pin::new(&mut self.tcp).poll_write(cx, &bytes[*written..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => *written += n,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The code of hyper's refusal from its status line (`HTTP/1.1 431 …`).
fn refused_code(bufs: &[IoSlice<'_>]) -> Option<ErrorCode> {
    let mut head = [0u8; 12];
    let mut filled = 0;
    for b in bufs {
        let n = b.len().min(head.len() - filled);
        head[filled..filled + n].copy_from_slice(&b[..n]);
        filled += n;
    }
    if filled < head.len() || !head.starts_with(b"HTTP/1.") || head[8] != b' ' {
        return None;
    }
    match &head[9..12] {
        b"400" => Some(ErrorCode::RequestInvalid),
        b"414" => Some(ErrorCode::UriTooLong),
        b"431" => Some(ErrorCode::HeadersTooLarge),
        _ => None,
    }
}

/// The whole HTTP answer for `code`: the envelope, its trace id, the
/// security headers, and the end of the connection.
fn refusal(code: ErrorCode, trace_id: String) -> Vec<u8> {
    let error = match code {
        ErrorCode::RequestInvalid => ApiError::invalid_field("request", "is not valid HTTP/1.1"),
        code => ApiError::new(code),
    };
    let body = trace::with_id(trace_id.clone(), || error.envelope_json());
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-trace-id: {trace_id}\r\n",
        body.len()
    );
    for (name, value) in trace::SECURITY_HEADERS {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(n) = self.intercept(&[IoSlice::new(buf)]) {
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(n) = self.intercept(bufs) {
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.write_refusal(cx))?;
        ready!(Pin::new(&mut self.tcp).poll_flush(cx))?;
        // hyper flushes the socket only once its buffer is empty: an answer
        // that had ended is now wholly sent.
        let _ = self.shared.state.compare_exchange(ENDED, IDLE, Ordering::AcqRel, Ordering::Acquire);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.write_refusal(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_refusals_are_recognised() {
        let code = |parts: &[&[u8]]| refused_code(&parts.iter().map(|p| IoSlice::new(p)).collect::<Vec<_>>());
        assert_eq!(code(&[b"HTTP/1.1 400 Bad Request\r\n"]), Some(ErrorCode::RequestInvalid));
        assert_eq!(
            code(&[b"HTTP/1.1 4", b"31 Request Header Fields Too Large\r\n"]),
            Some(ErrorCode::HeadersTooLarge)
        );
        assert_eq!(code(&[b"HTTP/1.0 414 URI Too Long\r\n"]), Some(ErrorCode::UriTooLong));
        for other in [&b"HTTP/1.1 200 OK\r\n"[..], b"HTTP/1.1 40", b"0\r\n\r\n", b"data: HTTP/1.1 400 x"] {
            assert_eq!(code(&[other]), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn the_refusal_is_a_whole_answer_with_the_envelope() {
        let text = String::from_utf8(refusal(ErrorCode::HeadersTooLarge, "ab12".into())).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        for line in ["connection: close", "x-trace-id: ab12", "x-content-type-options: nosniff"] {
            assert!(head.contains(line), "{head}");
        }
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request.headers_too_large");
        assert_eq!(v["error"]["http_status"], 431);
        assert_eq!(v["error"]["trace_id"], "ab12");
    }
}
