//! A `Clock` that reads tokio's time. The engine takes "now" from its `Clock`
//! for what it stores (leases, timestamps, budget days) and for its circuit
//! breakers, and measures its timeouts, checkpoint interval, retry waits and
//! reaper interval with tokio's timers. On a paused runtime both must move
//! together, so this clock is a fixed epoch plus the tokio time elapsed since
//! it was made: `tokio::time::advance` (or auto-advance) moves both at once.

use chrono::{DateTime, TimeDelta};
use switchboard_core::time::{Clock, Timestamp};
use tokio::time::Instant;

/// Where a [`TokioClock`] starts by default: 2026-11-22T10:00:00Z, mid-morning
/// UTC so that a test spanning hours stays within one budget day.
pub const EPOCH_MS: i64 = 1_795_341_600_000;

/// The instant `ms` milliseconds after [`EPOCH_MS`] (before it, if negative).
pub fn at(ms: i64) -> Timestamp {
    let epoch = DateTime::from_timestamp_millis(EPOCH_MS).unwrap_or_default();
    TimeDelta::try_milliseconds(ms).and_then(|d| epoch.checked_add_signed(d)).unwrap_or(epoch)
}

#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Instant,
    epoch: Timestamp,
}

impl TokioClock {
    /// Starts at [`EPOCH_MS`] now (call it inside the test's runtime).
    pub fn new() -> Self {
        Self::starting_at(at(0))
    }

    pub fn starting_at(epoch: Timestamp) -> Self {
        Self { base: Instant::now(), epoch: chrono::SubsecRound::trunc_subsecs(epoch, 3) }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    /// Whole milliseconds, as the stores keep them.
    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.base.elapsed().as_millis()).unwrap_or(i64::MAX);
        TimeDelta::try_milliseconds(elapsed)
            .and_then(|d| self.epoch.checked_add_signed(d))
            .unwrap_or(DateTime::<chrono::Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn moves_with_tokio_time() {
        let clock = TokioClock::new();
        assert_eq!(clock.now().timestamp_millis(), EPOCH_MS);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), at(1500));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now(), at(61_500));
        assert_eq!(at(-1000).timestamp_millis(), EPOCH_MS - 1000);
    }
}
