//! The cases of the bus conformance suite, one function per behaviour, each
//! taking the harness of the backend it runs against.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;
mod limiter;

pub use bus::*;
pub use limiter::*;
