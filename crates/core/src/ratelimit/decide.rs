//! Turning the counters of one request's limits into a `Decision`, shared by
//! every backend (`LocalRateLimiter`, Redis, NATS) so that they answer alike:
//! the same refusing scope, the same `remaining`, `reset` and `retry_after`.
//! Pure: the backend has read the counters (as seen at `now`) and does the
//! counting.

use super::counter::{ceil_secs, Counter};
use super::{Decision, Limit, Quota};

/// The refusal for these counters, if any scope is full: the scope that
/// stays full the longest (the last one on a tie, like `Iterator::max_by_key`
/// in the local limiter).
pub fn refusal(limits: &[Limit], counters: &[Counter], now: i64) -> Option<Decision> {
    let (limit, at) = limits
        .iter()
        .zip(counters)
        .filter(|(l, c)| !c.has_room(now, l.window.limit))
        .map(|(l, c)| (l, c.next_room(now, l.window.limit)))
        .max_by_key(|(_, at)| *at)?;
    let tightest =
        Quota { scope: limit.scope, limit: limit.window.limit, remaining: 0, reset: ceil_secs(at) };
    let retry_after = u64::try_from(ceil_secs(at - now)).unwrap_or(0).max(1);
    Some(Decision::Refused { tightest, retry_after })
}

/// The counters after counting one request in each, and the admission that
/// reports the scope with the fewest requests left.
pub fn admit(limits: &[Limit], counters: &[Counter], now: i64) -> (Vec<Counter>, Decision) {
    let mut counted = Vec::with_capacity(counters.len());
    let mut tightest: Option<Quota> = None;
    for (limit, counter) in limits.iter().zip(counters) {
        let mut counter = *counter;
        counter.current = counter.current.saturating_add(1);
        let quota = quota(limit, &counter, now);
        counted.push(counter);
        let tighter = tightest.is_none_or(|t| (quota.remaining, -quota.reset) < (t.remaining, -t.reset));
        if tighter {
            tightest = Some(quota);
        }
    }
    (counted, Decision::Admitted { tightest })
}

/// Where a scope stands after counting a request.
fn quota(limit: &Limit, counter: &Counter, now: i64) -> Quota {
    let n = limit.window.limit;
    let remaining = counter.remaining(now, n);
    let reset_ms = match remaining {
        0 => counter.next_room(now, n),
        _ => counter.ages_out().unwrap_or(now),
    };
    Quota { scope: limit.scope, limit: n, remaining, reset: ceil_secs(reset_ms) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Scope;
    use crate::tenant::Window;
    use std::time::Duration;

    const W: i64 = 60_000;
    const T0: i64 = 1_700_000_040_000;

    fn per_minute(limit: u32) -> Window {
        Window { limit, window: Duration::from_secs(60) }
    }

    fn counter(previous: u64, current: u64) -> Counter {
        Counter { window_ms: W, bucket: T0 / W, previous, current }
    }

    #[test]
    fn a_full_scope_refuses_with_when_it_has_room() {
        let limits = [Limit::ip("a", "1", per_minute(3))];
        let Some(Decision::Refused { tightest, retry_after }) = refusal(&limits, &[counter(0, 3)], T0) else {
            panic!("expected a refusal");
        };
        assert_eq!((tightest.scope, tightest.remaining, retry_after), (Scope::Ip, 0, 80));
        assert!(refusal(&limits, &[counter(0, 2)], T0).is_none());
    }

    #[test]
    fn admission_counts_every_scope_and_reports_the_tightest() {
        let limits = [Limit::ip("a", "1", per_minute(3)), Limit::tenant("a", per_minute(10))];
        let (counted, decision) = admit(&limits, &[counter(0, 1), counter(0, 5)], T0);
        assert_eq!(counted.iter().map(|c| c.current).collect::<Vec<_>>(), [2, 6]);
        let q = decision.quota().unwrap();
        assert_eq!((q.scope, q.remaining), (Scope::Ip, 1));
    }
}
