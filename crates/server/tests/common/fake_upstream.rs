//! What the fake vendor upstreams share, whatever wire format they speak: a
//! free port to serve on, the mode of each call (queued ones first, then a
//! default), a record of the calls and requests, and response bodies streamed
//! step by step that count whether they were read to their end or dropped by
//! the client. Each fake derefs to its [`Upstream`], so its tests call these
//! methods on the fake itself.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Serves `app` on a free local port; the port.
pub async fn serve(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake upstream");
    let port = listener.local_addr().expect("fake addr").port();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// One step of a streamed response body.
pub enum Step {
    /// Sends these bytes as one write.
    Bytes(Bytes),
    Sleep(Duration),
    /// Waits until the gate is open.
    Wait(watch::Receiver<bool>),
    /// Never sends another byte.
    Hang,
    /// Breaks the connection.
    Fail,
}

/// The calls of one fake: their modes, their requests (`R`), and how their
/// bodies ended.
pub struct Upstream<M, R> {
    calls: AtomicUsize,
    requests: Mutex<Vec<R>>,
    queue: Mutex<VecDeque<M>>,
    default: Mutex<M>,
    bodies: Arc<Bodies>,
}

#[derive(Default)]
struct Bodies {
    completed: AtomicUsize,
    dropped: AtomicUsize,
}

impl<M: Clone, R: Clone> Upstream<M, R> {
    /// No calls yet; `default` is the mode of every call.
    pub fn new(default: M) -> Self {
        Self {
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            bodies: Arc::default(),
        }
    }

    /// Counts a call and keeps its request.
    pub fn record(&self, request: R) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().expect("lock").push(request);
    }

    /// The mode of this call: the first queued one, else the default.
    pub fn next_mode(&self) -> M {
        let queued = self.queue.lock().expect("lock").pop_front();
        queued.unwrap_or_else(|| self.default.lock().expect("lock").clone())
    }

    /// Sets the mode of every later call (after any queued ones).
    pub fn set_mode(&self, mode: M) {
        *self.default.lock().expect("lock") = mode;
    }

    /// Queues a mode for the next call that has no earlier queued mode.
    pub fn push_mode(&self, mode: M) {
        self.queue.lock().expect("lock").push_back(mode);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<R> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn last_request(&self) -> R {
        self.requests().pop().expect("the fake upstream received no request")
    }

    /// Response bodies streamed to their end.
    pub fn completed(&self) -> usize {
        self.bodies.completed.load(Ordering::SeqCst)
    }

    /// Response bodies the client dropped before their end.
    pub fn dropped(&self) -> usize {
        self.bodies.dropped.load(Ordering::SeqCst)
    }

    /// A 200 response with these headers whose body runs `steps`; counted
    /// as completed when they ran out (or broke the connection on purpose),
    /// as dropped when the client let go first.
    pub fn stream(&self, headers: &[(&str, &str)], steps: Vec<Step>) -> Response {
        let tracker = Tracker { bodies: self.bodies.clone(), steps: steps.into(), finished: false };
        let stream = futures_util::stream::unfold(tracker, |mut t| async move {
            loop {
                let Some(step) = t.steps.pop_front() else {
                    t.finished = true;
                    drop(t);
                    return None;
                };
                match step {
                    Step::Bytes(b) => return Some((Ok::<Bytes, std::io::Error>(b), t)),
                    Step::Sleep(d) => tokio::time::sleep(d).await,
                    Step::Wait(mut gate) => {
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    Step::Hang => std::future::pending::<()>().await,
                    Step::Fail => {
                        t.finished = true;
                        return Some((Err(std::io::Error::other("connection dropped on purpose")), t));
                    }
                }
            }
        });
        let response = Response::builder().status(StatusCode::OK);
        let response = headers.iter().fold(response, |r, (name, value)| r.header(*name, *value));
        response.body(Body::from_stream(stream)).expect("fake response")
    }
}

/// Counts a body as completed when its steps ran out, as dropped otherwise.
struct Tracker {
    bodies: Arc<Bodies>,
    steps: VecDeque<Step>,
    finished: bool,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let counter = if self.finished { &self.bodies.completed } else { &self.bodies.dropped };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}
