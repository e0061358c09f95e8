//! Bounded polling: tests wait for a condition with a deadline, never for a
//! fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it yields `Some`, every 20 ms; panics after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
