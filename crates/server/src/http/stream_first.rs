//! A connection whose first request subscribes to an event stream, served
//! without hyper. Such a connection mostly sits idle for hours with one long
//! answer on it, and hyper keeps an 8 KiB read buffer, an 8 KiB write buffer
//! and the last answer's header map for the connection's whole life — most
//! of what an idle SSE subscription cost. Here the head is read with a
//! buffer that is freed before the answer starts, the answer's head is
//! written once, and the events ready at once go out in one write (each a
//! chunk) from a buffer that lives only for that write.
//!
//! The path is taken only when it is plainly safe; anything else goes to
//! hyper untouched, because the socket is only *peeked* until the request is
//! taken: the first bytes must hold one whole `GET` head of HTTP/1.1 that
//! asks for `text/event-stream`, with no body (`Content-Length`,
//! `Transfer-Encoding`), no `Upgrade` and no `Expect`, and every header
//! valid for `http`. The answer — a stream or an error envelope from the
//! same router — closes the connection (`connection: close`), so no second
//! request is ever read here and a pipelined one cannot be misread: a
//! client sends its next request on another connection, as `EventSource`
//! does when it reconnects.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Uri, Version};
use axum::Router;
use hyper::body::Body as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// The first bytes looked at: a subscription's head fits (a browser's, with
/// its cookies, is typically under 2 KiB); a longer one goes to hyper.
const PEEK: usize = 4096;
/// Headers in a head this path takes.
const MAX_HEADERS: usize = 48;
/// Bytes gathered into one write when the body has many frames ready.
const BATCH: usize = 16 * 1024;

/// A connection's serving, boxed: what the connection's task awaits.
pub type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the first bytes of a connection ask for.
pub enum First {
    /// A subscription, served by this path.
    Stream(Serving),
    /// Anything else: the socket for hyper, read from its first byte.
    Other(TcpStream),
    /// The client sent nothing within the head timeout, or left.
    Gone,
}

/// Peeks at the socket's first bytes (waiting at most `head_timeout` for
/// them) and tells whether they are a subscription this path serves.
pub async fn first(tcp: TcpStream, peer: SocketAddr, head_timeout: Duration, router: Router) -> First {
    // On the heap, and only until the head is parsed.
    let mut buf = vec![0u8; PEEK];
    match tokio::time::timeout(head_timeout, tcp.peek(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => First::Gone,
        Ok(Ok(n)) => match parse(&buf[..n]) {
            Some((mut request, len)) => {
                request.extensions_mut().insert(ConnectInfo(peer));
                First::Stream(serve(tcp, request, len, router))
            }
            None => First::Other(tcp),
        },
    }
}

/// The request, if `bytes` begin with a whole head this path takes.
fn parse(bytes: &[u8]) -> Option<(Request<Body>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    if head.method != Some("GET") || head.version != Some(1) {
        return None;
    }
    let uri: Uri = head.path?.parse().ok()?;
    let mut request = Request::builder().method(Method::GET).uri(uri).version(Version::HTTP_11);
    let mut wants_stream = false;
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::UPGRADE, header::EXPECT]
            .contains(&name)
        {
            return None;
        }
        let value = HeaderValue::from_bytes(h.value).ok()?;
        if name == header::ACCEPT {
            wants_stream |= value.to_str().is_ok_and(|v| v.contains("text/event-stream"));
        }
        request = request.header(name, value);
    }
    if !wants_stream {
        return None;
    }
    Some((request.body(Body::empty()).ok()?, len))
}

/// Takes the head (`len` bytes, already seen) off the socket, answers the
/// request through `router` and streams the answer until its end, the
/// client's leaving or a failed write; then closes the connection. The
/// answering is boxed apart, so that neither the request, the router's
/// future nor the answer's header map stays with the stream.
fn serve(tcp: TcpStream, request: Request<Body>, len: usize, router: Router) -> Serving {
    let answering = Box::pin(answer(tcp, request, len, router));
    Box::pin(async move {
        if let Some((tcp, body, chunked)) = answering.await {
            stream(tcp, body, chunked).await;
        }
    })
}

/// Everything up to the answer's body: the head taken off the socket, the
/// router's answer, its head written. `None` if the client has gone.
async fn answer(
    mut tcp: TcpStream,
    request: Request<Body>,
    len: usize,
    router: Router,
) -> Option<(TcpStream, Body, bool)> {
    discard(&mut tcp, len).await.ok()?;
    let Ok(response) = router.oneshot(request).await;
    let (parts, body) = response.into_parts();
    let known = body.size_hint().exact();
    tcp.write_all(&head(&parts, known)).await.ok()?;
    Some((tcp, body, known.is_none()))
}

/// The answer's body, chunked or not, then the end of the connection.
async fn stream(mut tcp: TcpStream, mut body: Body, chunked: bool) {
    loop {
        let batch = tokio::select! {
            batch = std::future::poll_fn(|cx| ready_frames(&mut body, chunked, cx)) => batch,
            () = left(&tcp) => return,
        };
        let (bytes, end) = match batch {
            Batch::Bytes(bytes, end) => (bytes, end),
            // The stream failed: cut the connection without the last chunk,
            // so the client sees the answer did not end well.
            Batch::Failed => return,
        };
        if !bytes.is_empty() && tcp.write_all(&bytes).await.is_err() {
            return;
        }
        if end {
            break;
        }
    }
    if chunked && tcp.write_all(b"0\r\n\r\n").await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
}

/// What the body had ready: its bytes on the wire (and whether it ended).
enum Batch {
    Bytes(Vec<u8>, bool),
    Failed,
}

/// Every frame the body has ready now, framed for the wire, up to [`BATCH`]
/// bytes: a replay of many events goes out in few writes, a lone live event
/// in one. Pending only while nothing is ready.
fn ready_frames(body: &mut Body, chunked: bool, cx: &mut Context<'_>) -> Poll<Batch> {
    let mut out = Vec::new();
    while out.len() < BATCH {
        let data = match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers (never sent by this server) and empty frames.
                _ => continue,
            },
            Poll::Ready(Some(Err(_))) => return Poll::Ready(Batch::Failed),
            Poll::Ready(None) => return Poll::Ready(Batch::Bytes(out, true)),
            Poll::Pending if out.is_empty() => return Poll::Pending,
            Poll::Pending => break,
        };
        if chunked {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&data);
        }
    }
    Poll::Ready(Batch::Bytes(out, false))
}

/// Reads the `len` bytes of the head peeked at before.
async fn discard(tcp: &mut TcpStream, len: usize) -> std::io::Result<()> {
    let mut head = vec![0u8; len];
    tcp.read_exact(&mut head).await.map(|_| ())
}

/// The answer's head: its status and headers, a `date`, its framing (its
/// length if the body knows it, else chunked) and `connection: close`.
fn head(parts: &axum::http::response::Parts, known: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(name) {
            continue;
        }
        line(&mut out, name.as_str(), value.as_bytes());
    }
    if !parts.headers.contains_key(header::DATE) {
        line(&mut out, "date", httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    }
    match known {
        Some(n) => line(&mut out, "content-length", n.to_string().as_bytes()),
        None => line(&mut out, "transfer-encoding", b"chunked"),
    }
    line(&mut out, "connection", b"close");
    out.extend_from_slice(b"\r\n");
    out
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Resolves once the client has closed its side (or the socket failed).
/// Anything it sends meanwhile is read and dropped: a request that follows
/// a subscription on the same connection is never answered (the answer said
/// `connection: close`).
async fn left(tcp: &TcpStream) {
    let mut sink = [0u8; 64];
    loop {
        if tcp.readable().await.is_err() {
            return;
        }
        match tcp.try_read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Response;

    fn taken(head: &str) -> bool {
        parse(head.as_bytes()).is_some()
    }

    const SUB: &str = "GET /v1/sessions/x/events HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n";

    #[test]
    fn only_a_whole_bodiless_get_asking_for_a_stream_is_taken() {
        let (request, len) = parse(format!("{SUB}\r\nGET / HTTP/1.1\r\n").as_bytes()).unwrap();
        assert_eq!(len, SUB.len() + 2);
        assert_eq!(request.uri().path(), "/v1/sessions/x/events");
        assert_eq!(request.headers()["host"], "a");
        assert!(!taken(SUB), "a head not yet whole");
        assert!(!taken(&SUB.replace("GET", "POST")));
        assert!(!taken(&SUB.replace("HTTP/1.1", "HTTP/1.0")));
        assert!(!taken(&SUB.replace("text/event-stream", "application/json")));
        for extra in
            ["Content-Length: 0", "Transfer-Encoding: chunked", "Upgrade: websocket", "Expect: 100-continue"]
        {
            assert!(!taken(&format!("{SUB}{extra}\r\n\r\n")), "{extra}");
        }
        assert!(!taken(&format!("{SUB}Bad Name: x\r\n\r\n")));
        assert!(!taken("GET /a\u{7f} HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n"));
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert!(!taken(&format!("{SUB}{many}\r\n")), "more headers than the path takes");
    }

    #[test]
    fn frames_ready_together_go_out_as_one_batch_of_chunks() {
        let parts = ["a", "", "bc"].map(|p| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(p)));
        let mut body = Body::from_stream(futures_util::stream::iter(parts));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match ready_frames(&mut body, true, &mut cx) {
            Poll::Ready(Batch::Bytes(bytes, end)) => {
                assert_eq!(bytes, b"1\r\na\r\n2\r\nbc\r\n");
                assert!(end, "the body ended with them");
            }
            _ => panic!("three ready frames make one batch"),
        }
        let pending = futures_util::stream::pending::<Result<axum::body::Bytes, std::convert::Infallible>>();
        let mut idle = Body::from_stream(pending);
        assert!(
            ready_frames(&mut idle, true, &mut cx).is_pending(),
            "nothing ready: pending, not an empty write"
        );
        let mut raw = Body::from("plain");
        assert!(
            matches!(ready_frames(&mut raw, false, &mut cx), Poll::Ready(Batch::Bytes(b, _)) if b == b"plain")
        );
    }

    #[test]
    fn the_head_has_status_headers_date_framing_and_close() {
        let mut response = Response::new(());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let (parts, ()) = response.into_parts();
        let text = String::from_utf8(head(&parts, None)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: "), "{text}");
        assert!(text.ends_with("\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"), "{text}");
        assert!(!text.contains("keep-alive"));
        let text = String::from_utf8(head(&parts, Some(12))).unwrap();
        assert!(text.contains("\r\ncontent-length: 12\r\n") && !text.contains("chunked"), "{text}");
    }
}
