//! Rate-limit counters shared by every node (SPEC §10, §15): the Redis and
//! NATS implementations of core's `RateLimiter`. Both keep core's two-bucket
//! sliding-window counter per limit key and decide with the same arithmetic
//! as `LocalRateLimiter`, so a node gives the same answers whichever backend
//! holds the counts. Both take `now` from the injected `Clock`, so the nodes'
//! clocks must agree (as they must for tickets and tokens anyway).
//!
//! A backend that cannot answer returns `RateLimitError`; whether a request
//! then passes (fail open) or not is the caller's choice, not made here.

mod nats_limiter;
mod redis_limiter;

pub use nats_limiter::{NatsRateLimiter, MAX_WINDOW as NATS_MAX_WINDOW};
pub use redis_limiter::RedisRateLimiter;
