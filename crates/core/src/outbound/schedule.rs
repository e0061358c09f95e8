//! When a delivery is tried next (SPEC §19), and when a tenant wants no
//! `session.idle` at all. Pure functions of their inputs, so the schedule is
//! tested without a clock or a network.

use crate::time::Timestamp;
use chrono::Timelike;
use std::time::Duration;

/// The longest a `Retry-After` may put a try off.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How far each delay is moved, up or down, at random.
pub const JITTER: f64 = 0.10;

/// What follows a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    At(Timestamp),
    /// No try is left: the delivery is dead.
    Dead,
}

/// What follows the `failed`-th failed try (1 for the first): the next
/// delay of `schedule` (each failed try uses the next one), or the
/// endpoint's `Retry-After` (on 429 and 503; at most an hour) in its place;
/// dead once the schedule is used up. `jitter` in `[-1, 1]` moves the delay
/// by up to ±[`JITTER`] (not a `Retry-After`, which the endpoint chose).
pub fn after_failure(
    schedule: &[Duration],
    failed: u32,
    retry_after: Option<Duration>,
    now: Timestamp,
    jitter: f64,
) -> Next {
    let Some(delay) = (failed as usize).checked_sub(1).and_then(|i| schedule.get(i)) else {
        return Next::Dead;
    };
    let delay = match retry_after {
        Some(asked) => asked.min(MAX_RETRY_AFTER),
        None => delay.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0)),
    };
    match chrono::Duration::from_std(delay).ok().and_then(|d| now.checked_add_signed(d)) {
        Some(at) => Next::At(at),
        None => Next::Dead,
    }
}

/// `quiet_hours = "21-08"`: from the start hour up to the end hour, local
/// time, across midnight when the start is the later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: u32,
    end: u32,
}

impl QuietHours {
    /// `"HH-HH"`, hours 0 to 23, start and end different.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not HH-HH (hours 0 to 23, e.g. \"21-08\")");
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let hour = |s: &str| s.trim().parse::<u32>().ok().filter(|h| *h < 24 && !s.trim().is_empty());
        let (start, end) = (hour(start).ok_or_else(bad)?, hour(end).ok_or_else(bad)?);
        if start == end {
            return Err(format!("`{text}`: the start and end hours are the same"));
        }
        Ok(Self { start, end })
    }

    /// Whether the local time is within the quiet hours.
    pub fn contains<T: Timelike>(&self, local: T) -> bool {
        let hour = local.hour();
        if self.start < self.end {
            (self.start..self.end).contains(&hour)
        } else {
            hour >= self.start || hour < self.end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_millis;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    fn at(ms: i64) -> Timestamp {
        from_millis(ms).unwrap()
    }

    #[test]
    fn each_failed_try_uses_the_next_delay_then_the_delivery_is_dead() {
        let schedule = secs(&[60, 300]);
        assert_eq!(after_failure(&schedule, 1, None, at(0), 0.0), Next::At(at(60_000)));
        assert_eq!(after_failure(&schedule, 2, None, at(0), 0.0), Next::At(at(300_000)));
        assert_eq!(after_failure(&schedule, 3, None, at(0), 0.0), Next::Dead);
        assert_eq!(after_failure(&[], 1, None, at(0), 0.0), Next::Dead);
    }

    #[test]
    fn jitter_moves_a_delay_by_at_most_ten_percent() {
        let schedule = secs(&[100]);
        assert_eq!(after_failure(&schedule, 1, None, at(0), 1.0), Next::At(at(110_000)));
        assert_eq!(after_failure(&schedule, 1, None, at(0), -1.0), Next::At(at(90_000)));
        assert_eq!(after_failure(&schedule, 1, None, at(0), 7.0), Next::At(at(110_000)));
    }

    #[test]
    fn retry_after_replaces_the_delay_up_to_an_hour_but_not_the_count() {
        let schedule = secs(&[60]);
        let asked = Some(Duration::from_secs(5));
        assert_eq!(after_failure(&schedule, 1, asked, at(0), 1.0), Next::At(at(5_000)));
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(after_failure(&schedule, 1, huge, at(0), 0.0), Next::At(at(3_600_000)));
        assert_eq!(after_failure(&schedule, 2, asked, at(0), 0.0), Next::Dead);
    }

    #[test]
    fn quiet_hours_wrap_around_midnight() {
        let night = QuietHours::parse("21-08").unwrap();
        let day = QuietHours::parse("12-14").unwrap();
        let hour = |h| chrono::NaiveTime::from_hms_opt(h, 30, 0).unwrap();
        assert!(night.contains(hour(21)) && night.contains(hour(0)) && night.contains(hour(7)));
        assert!(!night.contains(hour(8)) && !night.contains(hour(20)));
        assert!(day.contains(hour(12)) && day.contains(hour(13)) && !day.contains(hour(14)));
        for bad in ["21", "21-21", "24-08", "a-b", "-08", "21-"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }
}
