//! Test doubles for core's ports, so the turn engine can be tested in-process
//! on tokio's paused clock: an in-memory [`MemoryStore`] that keeps the
//! `Store` contract (the one the store conformance suite checks), a
//! [`ScriptedProvider`] that answers from a script, a [`TokioClock`] that reads
//! tokio's time (so the engine's `Clock` and its tokio timers move together),
//! and a [`Harness`] wiring them to a `TurnEngine` over the in-process bus.
//!
//! Also [`services`]: the PostgreSQL, Redis and NATS URLs of the tests that
//! need them, and a skip that shows in `scripts/test` when one is missing;
//! [`python`]: the official Standard Webhooks library for Python.
//!
//! Dev-only: it is a dev-dependency of the crates that test with it and never
//! a dependency of the `switchboard` binary (`publish = false`).

mod clock;
mod harness;
mod provider;
pub mod python;
pub mod services;
mod store;

pub use clock::{at, TokioClock, EPOCH_MS};
pub use harness::{drain, settings, tenant, text_of, Harness, NODE};
pub use provider::{Call, Reply, ScriptedProvider, Step};
pub use store::{Lease, MemoryStore};
pub use switchboard_bus::LocalBus;
