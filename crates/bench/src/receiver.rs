//! The receiver `switchboard-bench events` sends outbound events to: the
//! tenant's events endpoint, in this process. Every `POST` is answered at
//! once (`410` while told to, `204` otherwise); it notes each distinct
//! `webhook-id` and when it first came, and counts requests (and any
//! without `webhook-id` or `webhook-signature`; it does not verify
//! signatures: it stands for the tenant's backend, and what is measured is
//! the runtime).

use crate::error::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often waits look at the receiver.
const POLL: Duration = Duration::from_millis(5);

/// The tenant's events endpoint: every `POST` is answered at once, `410` while
/// `gone` is set and `204` otherwise; it notes each distinct `webhook-id` and
/// when it first came.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct ReceiverState {
    gone: AtomicBool,
    log: Mutex<Log>,
}

#[derive(Default, Clone)]
pub struct Log {
    seen: HashSet<String>,
    /// When each distinct id first came, in order.
    pub arrivals: Vec<Instant>,
    pub requests: u64,
    /// Requests without `webhook-id` or `webhook-signature`.
    pub unsigned: u64,
}

impl Receiver {
    pub async fn start() -> Result<Self> {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new().route("/events", post(receive)).with_state(state.clone());
        let listen = "127.0.0.1:0".parse().context("loopback")?;
        let (addr, task) = crate::harness::serve("event receiver", listen, app, || {}).await?;
        Ok(Self { addr, state, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.state.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets what came and sets the answer.
    pub fn reset(&self, gone: bool) {
        let mut log = self.lock();
        self.state.gone.store(gone, Ordering::SeqCst);
        *log = Log::default();
    }

    pub fn distinct(&self) -> usize {
        self.lock().arrivals.len()
    }

    pub fn snapshot(&self) -> Log {
        self.lock().clone()
    }

    /// Whether `n` distinct ids came within `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.distinct() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }

    /// Whether `n` requests came within `limit`.
    pub async fn wait_requests(&self, n: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.lock().requests < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body is taken (so the connection stays usable) and not read.
async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, _body: Bytes) -> StatusCode {
    let at = Instant::now();
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok());
    let signed = id.is_some() && headers.contains_key("webhook-signature");
    {
        let mut log = state.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.requests += 1;
        if !signed {
            log.unsigned += 1;
        }
        if let Some(id) = id {
            if log.seen.insert(id.to_owned()) {
                log.arrivals.push(at);
            }
        }
    }
    if state.gone.load(Ordering::SeqCst) {
        StatusCode::GONE
    } else {
        StatusCode::NO_CONTENT
    }
}
