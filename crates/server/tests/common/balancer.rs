//! A tiny round-robin TCP load balancer in front of the nodes of a cluster:
//! it listens on `127.0.0.1:0`, connects each accepted connection to the
//! next backend in turn and copies bytes both ways, with `TCP_NODELAY` on
//! both sockets. It knows nothing of HTTP (no sticky sessions, no header
//! rewriting, no buffering), which is what SPEC §15 says any balancer may
//! be. It records which backend each connection went to, so a test can
//! tell which node served what. Dropping it stops it: the listener closes
//! and every connection it carries is cut.
//!
//! Included with `#[path]` by the tests that use it (it is not part of
//! `common`'s module list, so other test binaries do not compile it).
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub struct Balancer {
    addr: SocketAddr,
    backends: Vec<SocketAddr>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    /// How many connections were accepted (the next one goes to backend
    /// `next % backends.len()`).
    next: AtomicUsize,
    /// The backend index of every accepted connection, in order.
    routed: Mutex<Vec<usize>>,
}

impl Balancer {
    /// Starts balancing over `backends` (in this order).
    pub async fn start(backends: Vec<SocketAddr>) -> Self {
        assert!(!backends.is_empty(), "a balancer needs a backend");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the balancer");
        let addr = listener.local_addr().expect("balancer address");
        let shared = Arc::new(Shared { next: AtomicUsize::new(0), routed: Mutex::new(Vec::new()) });
        let task = tokio::spawn(accept_loop(listener, backends.clone(), shared.clone()));
        Self { addr, backends, shared, task }
    }

    /// Starts balancing over servers given by their `http://host:port` base URLs.
    pub async fn over(base_urls: &[&str]) -> Self {
        let backends = base_urls
            .iter()
            .map(|u| {
                let hostport = u.trim_start_matches("http://").trim_end_matches('/');
                hostport.parse().unwrap_or_else(|e| panic!("backend {u}: {e}"))
            })
            .collect();
        Self::start(backends).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` of the balancer.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn backends(&self) -> &[SocketAddr] {
        &self.backends
    }

    /// How many connections it accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.routed.lock().expect("lock").len()
    }

    /// The backend (index into `backends`) the next connection will go to.
    pub fn next_backend(&self) -> usize {
        self.shared.next.load(Ordering::SeqCst) % self.backends.len()
    }

    /// The backend the `n`th accepted connection (from 0) went to.
    pub fn backend_of(&self, n: usize) -> usize {
        let routed = self.shared.routed.lock().expect("lock");
        *routed.get(n).unwrap_or_else(|| panic!("connection #{n} was not accepted ({} so far)", routed.len()))
    }

    /// The backend of every accepted connection, in order.
    pub fn routed(&self) -> Vec<usize> {
        self.shared.routed.lock().expect("lock").clone()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // Dropping the accept loop's future drops its `JoinSet`, which
        // aborts every connection it is copying.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, backends: Vec<SocketAddr>, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else { continue };
        let n = shared.next.fetch_add(1, Ordering::SeqCst);
        let backend = n % backends.len();
        shared.routed.lock().expect("lock").push(backend);
        connections.spawn(relay(client, backends[backend]));
    }
}

/// Copies one client connection to `backend` and back until both sides
/// are done; a backend that cannot be reached closes the client's
/// connection, as a balancer without health checks would.
async fn relay(mut client: TcpStream, backend: SocketAddr) {
    let Ok(mut upstream) = TcpStream::connect(backend).await else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
