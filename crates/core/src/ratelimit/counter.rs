//! The arithmetic of one two-bucket sliding-window counter, in integer
//! milliseconds so that nothing rounds differently on another node. Pure:
//! the caller owns the counter, the clock and the locking. Public so that
//! shared limiters (Redis, NATS) decide with exactly this arithmetic.

/// Counts of one key: the window-aligned bucket `bucket` (`now / window`)
/// and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub window_ms: i64,
    pub bucket: i64,
    pub previous: u64,
    pub current: u64,
}

/// Windows are clamped to this (about 34 years), which keeps every product
/// below far inside `i64` and `u128`.
const MAX_WINDOW_MS: i64 = 1 << 40;

pub fn window_ms(window: std::time::Duration) -> i64 {
    i64::try_from(window.as_millis()).unwrap_or(MAX_WINDOW_MS).clamp(1, MAX_WINDOW_MS)
}

/// Unix milliseconds rounded up to whole seconds.
pub fn ceil_secs(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

impl Counter {
    pub fn new(window_ms: i64, now: i64) -> Self {
        Self { window_ms, bucket: now.div_euclid(window_ms), previous: 0, current: 0 }
    }

    /// The counter as seen at `now`: buckets that ended are shifted out. A
    /// clock that stepped back keeps the counts (nothing is forgotten early).
    pub fn at(mut self, now: i64) -> Self {
        let bucket = now.div_euclid(self.window_ms);
        if bucket == self.bucket + 1 {
            self.previous = self.current;
            self.current = 0;
        } else if bucket > self.bucket + 1 {
            self.previous = 0;
            self.current = 0;
        }
        self.bucket = self.bucket.max(bucket);
        self
    }

    /// Milliseconds into the current bucket.
    fn elapsed(&self, now: i64) -> i64 {
        (now - self.bucket * self.window_ms).clamp(0, self.window_ms)
    }

    /// The sliding count multiplied by the window: exact in integers.
    fn scaled(&self, now: i64) -> u128 {
        let w = self.window_ms as u128;
        let rest = (self.window_ms - self.elapsed(now)) as u128;
        u128::from(self.previous) * rest + u128::from(self.current) * w
    }

    /// Whether one more request fits under `limit` at `now`.
    pub fn has_room(&self, now: i64, limit: u32) -> bool {
        let w = self.window_ms as u128;
        self.scaled(now) + w <= u128::from(limit) * w
    }

    /// How many more requests fit at `now`.
    pub fn remaining(&self, now: i64, limit: u32) -> u32 {
        let w = self.window_ms as u128;
        let used = self.scaled(now).div_ceil(w);
        u32::try_from(u128::from(limit).saturating_sub(used)).unwrap_or(0)
    }

    /// The first millisecond at or after `now` at which one more request
    /// fits, if nothing else is counted meanwhile.
    pub fn next_room(&self, now: i64, limit: u32) -> i64 {
        if limit == 0 {
            return self.ages_out().unwrap_or(now).max(now);
        }
        let w = self.window_ms;
        let room = u128::from(limit - 1);
        let (mut bucket, mut previous, mut current, mut from) =
            (self.bucket, self.previous, self.current, now);
        // Two buckets on, everything counted now has aged out and there is room.
        for _ in 0..3 {
            if u128::from(current) <= room {
                // Need previous × (w − e) ≤ (room − current) × w.
                let slack = (room - u128::from(current)) * w as u128;
                let keep = match u128::from(previous) {
                    0 => w as u128,
                    p => (slack / p).min(w as u128),
                };
                let first = w - keep as i64;
                if first < w {
                    return (bucket * w + first).max(from);
                }
            }
            bucket += 1;
            (previous, current, from) = (current, 0, bucket * w);
        }
        from
    }

    /// When everything counted has aged out (`None`: nothing is counted).
    pub fn ages_out(&self) -> Option<i64> {
        let w = self.window_ms;
        if self.current > 0 {
            Some((self.bucket + 2) * w)
        } else if self.previous > 0 {
            Some((self.bucket + 1) * w)
        } else {
            None
        }
    }

    /// Nothing counted any more at `now`: the key can be forgotten.
    pub fn is_stale(&self, now: i64) -> bool {
        self.ages_out().is_none_or(|t| now >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 60_000;
    /// A bucket boundary, so offsets below read as "seconds into the bucket".
    const T0: i64 = 1_700_000_040_000;

    fn with(previous: u64, current: u64) -> Counter {
        Counter { window_ms: W, bucket: T0 / W, previous, current }
    }

    #[test]
    fn t0_is_a_bucket_boundary() {
        assert_eq!(T0 % W, 0);
    }

    #[test]
    fn previous_bucket_weighs_less_as_the_current_one_ages() {
        let c = with(3, 0);
        assert_eq!(c.remaining(T0, 3), 0);
        assert!(!c.has_room(T0, 3));
        // 3 × 40/60 = 2: one fits from 20 s on.
        assert!(!c.has_room(T0 + 19_999, 3));
        assert!(c.has_room(T0 + 20_000, 3));
        assert_eq!(c.remaining(T0 + 20_000, 3), 1);
        assert_eq!(c.remaining(T0 + 59_999, 3), 2);
        assert_eq!(c.next_room(T0, 3), T0 + 20_000);
    }

    #[test]
    fn a_full_current_bucket_waits_for_the_next_one() {
        let c = with(0, 3);
        assert_eq!(c.remaining(T0 + 30_000, 3), 0);
        // Next bucket: 3 × (60 − e)/60 ≤ 2 from e = 20 s.
        assert_eq!(c.next_room(T0 + 30_000, 3), T0 + W + 20_000);
        assert_eq!(c.ages_out(), Some(T0 + 2 * W));
        // A limit of one waits for the whole next bucket to pass.
        assert_eq!(with(0, 1).next_room(T0, 1), T0 + 2 * W);
    }

    #[test]
    fn room_now_is_now() {
        assert_eq!(with(1, 1).next_room(T0 + 5, 3), T0 + 5);
        assert_eq!(with(0, 0).next_room(T0 + 5, 1), T0 + 5);
    }

    #[test]
    fn rolling_shifts_or_clears() {
        let c = with(2, 3);
        assert_eq!(c.at(T0 + 10), c);
        assert_eq!(c.at(T0 + W), Counter { bucket: T0 / W + 1, previous: 3, current: 0, ..c });
        assert_eq!(c.at(T0 + 2 * W), Counter { bucket: T0 / W + 2, previous: 0, current: 0, ..c });
        // A clock that steps back changes nothing.
        assert_eq!(c.at(T0 - 5 * W), c);
        assert!(!c.is_stale(T0 + 2 * W - 1));
        assert!(c.is_stale(T0 + 2 * W));
        assert!(with(0, 0).is_stale(T0));
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(1_000), 1);
        assert_eq!(ceil_secs(1_001), 2);
        assert_eq!(ceil_secs(0), 0);
        assert_eq!(window_ms(std::time::Duration::from_secs(60)), W);
        assert_eq!(window_ms(std::time::Duration::ZERO), 1);
    }
}
