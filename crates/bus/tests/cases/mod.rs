//! The cases of the bus conformance suite, one function per behaviour, each
//! taking the harness of the backend it runs against.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;
mod limiter;

pub use bus::*;
pub use limiter::*;
