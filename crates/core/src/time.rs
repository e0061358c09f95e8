//! Time as the domain sees it: a `Clock` that tests can move, and the wire
//! format of timestamps (RFC 3339, UTC, milliseconds).

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use std::sync::{Mutex, PoisonError};

pub type Timestamp = DateTime<Utc>;

/// The source of "now" for code that reasons about time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that only moves when told to, for tests. It keeps whole
/// milliseconds, as the stores do, and stops at the last instant a
/// [`Timestamp`] can hold rather than run past it.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start.trunc_subsecs(3)))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now = TimeDelta::try_milliseconds(ms)
            .and_then(|by| now.checked_add_signed(by))
            .unwrap_or(DateTime::<Utc>::MAX_UTC.trunc_subsecs(3));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        // A timestamp is written whole under the lock: a poisoned one is intact.
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A count of milliseconds since the epoch that no [`Timestamp`] can hold
/// (beyond about ±262,000 years): a corrupt stored value or a forged input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} ms since the epoch is outside the range of timestamps")]
pub struct OutOfRange(pub i64);

/// Milliseconds since the epoch back to a timestamp.
pub fn from_millis(ms: i64) -> Result<Timestamp, OutOfRange> {
    DateTime::from_timestamp_millis(ms).ok_or(OutOfRange(ms))
}

/// The wire form: `2026-11-22T03:04:05.678Z`.
pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// serde adapter writing timestamps in the wire form.
pub mod wire {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        from_millis(ms).unwrap()
    }

    #[test]
    fn wire_format_has_millis_and_z() {
        assert_eq!(format(&at(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
        assert_eq!(format(&at(1_700_000_000_000)), "2023-11-14T22:13:20.000Z");
        assert_eq!(format(&at(-1)), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn millis_beyond_the_range_of_timestamps_are_an_error_not_1970() {
        let last = DateTime::<Utc>::MAX_UTC.timestamp_millis();
        let first = DateTime::<Utc>::MIN_UTC.timestamp_millis();
        assert_eq!(from_millis(last).map(|t| t.timestamp_millis()), Ok(last));
        assert_eq!(from_millis(first).map(|t| t.timestamp_millis()), Ok(first));
        for ms in [last + 1, first - 1, i64::MAX, i64::MIN] {
            assert_eq!(from_millis(ms), Err(OutOfRange(ms)));
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(at(1000));
        assert_eq!(c.now(), at(1000));
        c.advance(std::time::Duration::from_millis(1500));
        assert_eq!(c.now(), at(2500));
    }

    #[test]
    fn manual_clock_keeps_whole_millis_and_stops_at_the_end_of_time() {
        let start = at(1000) + TimeDelta::microseconds(999);
        let c = ManualClock::new(start);
        assert_eq!(c.now(), at(1000));
        c.advance(std::time::Duration::from_micros(1999));
        assert_eq!(c.now(), at(1001));
        c.advance(std::time::Duration::MAX);
        let end = c.now();
        assert_eq!(end.timestamp_millis(), DateTime::<Utc>::MAX_UTC.timestamp_millis());
        c.advance(std::time::Duration::from_secs(1));
        assert_eq!(c.now(), end);
    }
}
