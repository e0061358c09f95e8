//! The script's exact arithmetic against the Rust counter, on stored counters
//! far larger than any test could reach by counting requests, and on the
//! edges where plain double arithmetic would answer wrongly.

use super::*;
use redis::AsyncCommands;
use std::time::Duration;
use switchboard_core::tenant::Window;
use switchboard_core::time::{from_millis, ManualClock};

const T0: i64 = 1_700_000_040_123;

struct Setup {
    clock: Arc<ManualClock>,
    limiter: RedisRateLimiter,
    conn: ConnectionManager,
    /// xorshift state: the rounds are the same on every run.
    state: u64,
}

impl Setup {
    async fn new() -> Option<Self> {
        let url = switchboard_testkit::services::service_url(switchboard_testkit::services::REDIS)?;
        let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        let clock = Arc::new(ManualClock::new(from_millis(T0).unwrap()));
        let limiter =
            RedisRateLimiter::connect(&format!("{url}?prefix={prefix}"), clock.clone()).await.unwrap();
        let conn = limiter.conn.clone();
        Some(Self { clock, limiter, conn, state: 0x2545_f491_4f6c_dd1d })
    }

    fn next(&mut self, bound: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % bound.max(1)
    }

    /// Stores `stored`, checks one request against `limit` and compares the
    /// script's answer with the counter's; returns whether it was admitted.
    async fn compare(&mut self, round: usize, stored: Counter, limit: u32) -> bool {
        let now = self.clock.now().timestamp_millis();
        let window = Duration::from_millis(u64::try_from(stored.window_ms).unwrap());
        let l = Limit::user("acme", &format!("u{round}"), Window { limit, window });
        let key = self.limiter.key(&l);
        let fields = [
            ("w", stored.window_ms),
            ("b", stored.bucket),
            ("p", i64::try_from(stored.previous).unwrap()),
            ("c", i64::try_from(stored.current).unwrap()),
        ];
        let () = self.conn.hset_multiple(&key, &fields).await.unwrap();
        let () = self.conn.pexpire(&key, 60_000).await.unwrap();
        let seen = stored.at(now);
        let decision = self.limiter.check(std::slice::from_ref(&l)).await.unwrap();
        assert_eq!(decision.is_admitted(), seen.has_room(now, limit), "{seen:?} limit {limit} at {now}");
        let () = self.conn.del(&key).await.unwrap();
        decision.is_admitted()
    }
}

#[tokio::test]
async fn script_has_room_matches_the_counter_on_large_values() {
    let Some(mut t) = Setup::new().await else { return };
    let mut outcomes = [0; 2];
    for round in 0..200 {
        let window = [1_000_i64, 60_000, 86_400_000, 1 << 40][round % 4];
        let bucket = T0.div_euclid(window) - i64::try_from(t.next(2)).unwrap();
        let limit = [1, 20, 100_000_000, u32::MAX][(round / 4) % 4];
        let cap = u64::from(limit) + 2;
        let stored = Counter { window_ms: window, bucket, previous: t.next(cap), current: t.next(cap) };
        outcomes[usize::from(t.compare(round, stored, limit).await)] += 1;
    }
    assert!(outcomes.iter().all(|&n| n > 40), "{outcomes:?}");
}

/// Counters where `previous × rest` lies a few units above a multiple of the
/// window, both products far above 2^53: a double cannot tell them apart
/// from the multiple, the script's limbs can.
#[tokio::test]
async fn script_is_exact_where_doubles_are_not() {
    let Some(mut t) = Setup::new().await else { return };
    let mut outcomes = [0; 2];
    for round in 0..300 {
        let w = [86_400_000_i64, 1 << 40][round % 2];
        let step = t.next(u64::try_from(w).unwrap());
        t.clock.advance(Duration::from_millis(step));
        let now = t.clock.now().timestamp_millis();
        let rest = w - now.rem_euclid(w);
        // previous × rest ≡ g (mod w), g = gcd(rest, w): previous is g's
        // multiple of rest/g's inverse modulo w/g, plus any multiple of w/g.
        let g = gcd(rest, w);
        let m = w / g;
        let base = inverse(rest / g, m);
        let spread = u64::try_from((1_i64 << 31) / m).unwrap();
        let previous = base + m * i64::try_from(t.next(spread)).unwrap();
        let q = i128::from(previous) * i128::from(rest) / i128::from(w);
        // Room needs q + delta ≥ previous × rest / w: only delta = 1 has it.
        let delta = [-1_i128, 0, 1][round % 3];
        let Ok(limit) = u32::try_from(q + delta + 1) else { continue };
        let stored = Counter {
            window_ms: w,
            bucket: now.div_euclid(w),
            previous: previous.unsigned_abs(),
            current: 0,
        };
        outcomes[usize::from(t.compare(round, stored, limit).await)] += 1;
    }
    assert!(outcomes.iter().all(|&n| n > 50), "{outcomes:?}");
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `a`'s inverse modulo `m` (they are coprime).
fn inverse(a: i64, m: i64) -> i64 {
    let (mut r0, mut r1, mut s0, mut s1) = (i128::from(m), i128::from(a.rem_euclid(m)), 0_i128, 1_i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (s0, s1) = (s1, s0 - q * s1);
    }
    i64::try_from(s0.rem_euclid(i128::from(m))).unwrap()
}
