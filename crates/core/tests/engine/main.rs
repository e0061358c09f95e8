//! The turn engine in-process, on tokio's paused clock: the memory store,
//! the in-process bus and scripted providers from `switchboard-testkit`, so
//! retries, breakers, fallbacks, timeouts, checkpoints, cancellation and the
//! lease reaper are tested in virtual time — exact instants, no sleeping, a
//! few milliseconds a test. What only the binary proves (config, HTTP, the
//! vendors' wire formats) stays in `crates/server/tests`.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod breaker;
mod budgets;
mod cancel;
mod checkpoints;
mod fallbacks;
mod joined;
mod reaper;
mod retries;
mod timeouts;
mod tools;
mod verify;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::bus::Bus;
use switchboard_core::events::{SessionEvent, StreamEnd};
use switchboard_core::ids::Subject;
use switchboard_core::tenant::ProviderSettings;
use switchboard_core::turn::{AfterFailure, SendOutcome, TurnObserver, TurnStream};
use switchboard_core::upstream::Route;
use switchboard_testkit::{drain, settings, text_of, Harness, ScriptedProvider};
use tokio::time::Instant;
use uuid::Uuid;

/// A route to `provider` with its settings as `tune` leaves them.
fn route(provider: &Arc<ScriptedProvider>, tune: impl FnOnce(&mut ProviderSettings)) -> Route {
    use switchboard_core::provider::Provider as _;
    let mut s = settings(provider.model());
    tune(&mut s);
    Route::new(s, provider.clone())
}

/// Starts a turn that must start.
async fn start(h: &Harness, session: Uuid, subject: &Subject, content: &str) -> TurnStream {
    match h.send(session, subject, content).await.unwrap() {
        SendOutcome::Streaming(stream) => stream,
        _ => panic!("the turn did not start"),
    }
}

/// A whole turn as its client saw it.
struct Done {
    events: Vec<Arc<SessionEvent>>,
    text: String,
    /// Virtual time from sending to the last event.
    took: Duration,
    /// The answer's seq.
    seq: i64,
}

impl Done {
    /// The `stream_end`, if the turn ended with one.
    fn end(&self) -> Option<&StreamEnd> {
        self.events.iter().find_map(|e| match &**e {
            SessionEvent::StreamEnd(end) => Some(&**end),
            _ => None,
        })
    }

    /// The error code the turn ended with, if it failed.
    fn error(&self) -> Option<&'static str> {
        self.events.iter().find_map(|e| match &**e {
            SessionEvent::Error { error, .. } => Some(error.code),
            _ => None,
        })
    }
}

/// Sends, and follows the turn to its end.
async fn turn(h: &Harness, session: Uuid, subject: &Subject, content: &str) -> Done {
    let started = Instant::now();
    let stream = start(h, session, subject, content).await;
    let seq = stream.seq();
    let events = drain(stream).await;
    Done { text: text_of(&events), took: started.elapsed(), events, seq }
}

/// `took` is `expected`, give or take the timer wheel's millisecond.
#[track_caller]
fn assert_took(took: Duration, expected: Duration) {
    assert!(
        took >= expected && took <= expected + Duration::from_millis(1),
        "took {took:?}, expected {expected:?}"
    );
}

/// Records what the engine reports of failed provider calls (the server's
/// `switchboard_provider_failures_total`).
#[derive(Debug, Default)]
struct Failures(Mutex<Vec<AfterFailure>>);

impl Failures {
    fn count(&self, then: AfterFailure) -> usize {
        self.0.lock().unwrap().iter().filter(|f| **f == then).count()
    }
}

impl TurnObserver for Failures {
    fn provider_failed(&self, _provider: &str, then: AfterFailure) {
        self.0.lock().unwrap().push(then);
    }
}

fn pieces(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i} ")).collect()
}

fn refs(pieces: &[String]) -> Vec<&str> {
    pieces.iter().map(String::as_str).collect()
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}
