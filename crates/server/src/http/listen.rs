//! The accept loop: each TCP connection served by hyper's HTTP/1 connection,
//! with the router as its service, until shutdown. It must not hold more per
//! connection than serving needs: an idle SSE subscription keeps its HTTP
//! connection for hours, so what the connection holds is what 10,000 of them
//! cost.
//!
//! Ours rather than `axum::serve` for that memory: `axum::serve` first reads
//! a few bytes to tell HTTP/2 from HTTP/1 (which this build does not speak)
//! and hands them back to hyper ahead of the socket, so hyper's read buffer
//! needs a second read for every request head and grows to 16 KiB for the
//! connection's life; and the service future of a request stays allocated at
//! its full size while the response streams. Here hyper reads the socket
//! itself (its 8 KiB buffer is enough for one read of a request head) and
//! the service future is boxed, so it is freed once the response has begun.
//!
//! A connection whose first request is an SSE subscription skips hyper
//! altogether ([`super::stream_first`]): hyper's two 8 KiB buffers would be
//! most of what it costs for its life.
//!
//! Each request body gets its deadline here ([`super::request_body`]), and
//! hyper's own refusals of unparseable heads are replaced by our envelope
//! ([`super::parse_refusal`]).

use super::parse_refusal::Exchange;
use super::request_body;
use super::stream_first::{self, First};
use axum::extract::ConnectInfo;
use axum::Router;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to send each part of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeouts {
    /// The head (or, on a kept-alive connection, the start of the next one):
    /// past it the connection is closed without an answer.
    pub head: Duration,
    /// The whole body, from the end of its head: past it, reading the body
    /// fails and the request is answered 408 `request.timeout`.
    pub body: Duration,
}

/// Serves `listener` until `stop` is cancelled; then accepts no more, lets
/// each connection finish the response it is writing (streams end when their
/// slots are closed), and returns once every connection has ended. A client
/// that takes longer than `timeouts.head` to send a request's head (or to
/// start its next one on a kept-alive connection), or longer than
/// `timeouts.body` to send its body, loses the connection, so slow or silent
/// clients cannot hold connections (and file descriptors) for ever.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: RequestTimeouts,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                connections.spawn(connection(tcp, peer, router.clone(), timeouts, stop.clone()));
            }
            Err(e) => accept_failed(e).await,
        }
    }
    // New clients are refused at once rather than left in the backlog.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One connection's task. A connection that opens with a subscription is
/// served without hyper; any other by hyper. Each path is boxed, so the task
/// keeps only what its own path holds (hyper's connection is much the larger).
/// A client that trickles its first head may get up to twice `timeouts.head`
/// in all: the peek waits for its first bytes, hyper's timer for the rest.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    timeouts: RequestTimeouts,
    stop: CancellationToken,
) {
    // Small SSE writes must not wait on Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    // At shutdown a connection that has not sent its first head yet is let go.
    let first = tokio::select! {
        first = Box::pin(stream_first::first(tcp, peer, timeouts.head, router.clone())) => first,
        () = stop.cancelled() => return,
    };
    match first {
        First::Stream(serving) => serving.await,
        First::Other(tcp) => Box::pin(http1_connection(tcp, peer, router, timeouts, stop)).await,
        First::Gone => {}
    }
}

/// A connection served by hyper: requests in turn (keep-alive), WebSocket
/// upgrades handed over, a graceful end at shutdown.
fn http1_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    timeouts: RequestTimeouts,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> {
    let exchange = Exchange::new();
    let answers = exchange.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        answers.begin();
        let to_connect = request.method() == hyper::Method::CONNECT;
        let mut request = request.map(|body| request_body::with_deadline(body, timeouts.body));
        // The peer address is the client's (or its proxy's), for rate limits.
        request.extensions_mut().insert(ConnectInfo(peer));
        let answers = answers.clone();
        // Boxed: hyper keeps a request's future in place for the connection's
        // life; a box is freed as soon as the response is ready.
        Box::pin(
            router
                .clone()
                .oneshot(request)
                .map(move |r| r.map(|response| answers.answer(response, to_connect))),
        )
    });
    async move {
        // Built here, not captured: a captured value moved into a local would
        // take its room in the task twice.
        // hyper times the head only with a timer; without one it waits for ever.
        let mut conn = std::pin::pin!(http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.head)
            .serve_connection(TokioIo::new(exchange.socket(tcp)), service)
            .with_upgrades());
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        match (ended, exchange.refused()) {
            (Err(e), Some(trace_id)) => {
                tracing::info!(trace_id, error = %e, "request refused by the HTTP parser");
            }
            (Err(e), None) => tracing::trace!(error = %e, "connection ended with an error"),
            (Ok(()), _) => {}
        }
    }
}

/// A failed accept: the client's own trouble (it reset or aborted) is
/// skipped; anything else (no file descriptors left) is logged and waited
/// out for a second rather than retried in a busy loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
