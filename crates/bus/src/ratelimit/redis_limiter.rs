//! `RedisRateLimiter`: counters shared by every node, one Redis script per
//! check (`check.lua`, sent by hash with `EVALSHA` and loaded on demand), so
//! the check and the counting are one atomic step across all of a request's
//! scopes. Keys are `{prefix}:rl:{tenant}:<limit key>`: the braces are a
//! hash tag, so one request's keys (always of one tenant) share a cluster
//! slot. Every counted key gets a `PEXPIRE` for when its counts age out.

use crate::redis_bus::{manager_config, open_client, REDIS_TIMEOUT};
use crate::url;
use crate::BusError;
use redis::aio::ConnectionManager;
use redis::Script;
use std::sync::Arc;
use switchboard_core::ratelimit::counter::{window_ms, Counter};
use switchboard_core::ratelimit::decide;
use switchboard_core::ratelimit::{Decision, Limit, RateLimitError, RateLimiter};
use switchboard_core::time::Clock;

pub struct RedisRateLimiter {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    clock: Arc<dyn Clock>,
}

impl RedisRateLimiter {
    /// Connects to the Redis of `bus_url` (`redis://…[?prefix=NAME]`).
    pub async fn connect(bus_url: &str, clock: Arc<dyn Clock>) -> Result<Self, BusError> {
        let url = url::parse(bus_url)?;
        let client = open_client(&url)?;
        let conn = client
            .get_connection_manager_with_config(manager_config())
            .await
            .map_err(|e| BusError::Connect(format!("Redis at {}: {e}", url::redact(bus_url))))?;
        Ok(Self { conn, script: Script::new(include_str!("check.lua")), prefix: url.prefix, clock })
    }

    fn key(&self, limit: &Limit) -> String {
        // Every limit key is `<scope>:<tenant>[:…]` (see `Limit`).
        let tenant = limit.key.split(':').nth(1).unwrap_or_default();
        format!("{}:rl:{{{tenant}}}:{}", self.prefix, limit.key)
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, limits: &[Limit]) -> Result<Decision, RateLimitError> {
        if limits.is_empty() {
            return Ok(Decision::Admitted { tightest: None });
        }
        let now = self.clock.now().timestamp_millis();
        let windows: Vec<i64> = limits.iter().map(|l| window_ms(l.window.window)).collect();
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now);
        for (limit, w) in limits.iter().zip(&windows) {
            invocation.key(self.key(limit)).arg(*w).arg(limit.window.limit);
        }
        let mut conn = self.conn.clone();
        // Bounded as a whole: while Redis is unreachable a command first
        // waits for the reconnection, which the response timeout misses.
        let reply: Vec<i64> = tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| RateLimitError("Redis rate-limit script: timed out".to_owned()))?
            .map_err(|e| RateLimitError(format!("Redis rate-limit script: {e}")))?;
        decision_from(limits, &windows, &reply, now)
    }
}

/// The decision from the script's reply: whether it counted the request, and
/// each counter as it saw it.
fn decision_from(
    limits: &[Limit],
    windows: &[i64],
    reply: &[i64],
    now: i64,
) -> Result<Decision, RateLimitError> {
    let malformed = || RateLimitError(format!("Redis rate-limit script: unexpected reply {reply:?}"));
    let (&admitted, rest) = reply.split_first().ok_or_else(malformed)?;
    if rest.len() != 3 * limits.len() {
        return Err(malformed());
    }
    let counters: Vec<Counter> = rest
        .chunks_exact(3)
        .zip(windows)
        .map(|(c, &window_ms)| Counter {
            window_ms,
            bucket: c[0],
            previous: u64::try_from(c[1]).unwrap_or(0),
            current: u64::try_from(c[2]).unwrap_or(0),
        })
        .collect();
    match (admitted, decide::refusal(limits, &counters, now)) {
        (1, None) => Ok(decide::admit(limits, &counters, now).1),
        (0, Some(refused)) => Ok(refused),
        // The script and the counter disagree on "has room": a bug, never a
        // decision to guess at.
        _ => Err(RateLimitError(format!(
            "Redis rate-limit script and counter disagree (admitted {admitted}) on {counters:?} at {now}"
        ))),
    }
}

#[cfg(test)]
mod tests;
