//! Tests of the in-process limiter: time moves by a `ManualClock`, never by
//! sleeping.

use super::*;
use crate::time::{from_millis, Clock, ManualClock};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A minute boundary, so the arithmetic below starts at a bucket's start.
const T0: i64 = 1_700_000_040_000;

fn setup() -> (Arc<ManualClock>, LocalRateLimiter) {
    let clock = Arc::new(ManualClock::new(from_millis(T0).unwrap()));
    let limiter = LocalRateLimiter::new(clock.clone());
    (clock, limiter)
}

fn per_minute(limit: u32) -> Window {
    Window { limit, window: Duration::from_secs(60) }
}

fn admitted(d: Decision) -> Quota {
    match d {
        Decision::Admitted { tightest: Some(q) } => q,
        other => panic!("expected an admission with a quota, got {other:?}"),
    }
}

fn refused(d: Decision) -> (Quota, u64) {
    match d {
        Decision::Refused { tightest, retry_after } => (tightest, retry_after),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn keys_are_namespaced_by_scope_and_tenant() {
    let w = per_minute(1);
    assert_eq!(Limit::ip("acme", "203.0.113.7", w).key, "ip:acme:203.0.113.7");
    assert_eq!(Limit::user("acme", "visitor:abc", w).key, "user:acme:visitor:abc");
    assert_eq!(Limit::tenant("acme", w).key, "tenant:acme");
    let limits = RateLimits { ip: Some(w), user: None, tenant: Some(w) };
    let scopes: Vec<Scope> = Limit::for_request("acme", &limits, Some("1.2.3.4"), Some("user:x"))
        .iter()
        .map(|l| l.scope)
        .collect();
    assert_eq!(scopes, [Scope::Ip, Scope::Tenant]);
    assert_eq!(Limit::for_request("acme", &RateLimits::default(), None, None).len(), 1);
}

#[test]
fn under_and_over_one_scope() {
    let (_, limiter) = setup();
    let ip = [Limit::ip("acme", "1.2.3.4", per_minute(3))];
    for left in [2, 1, 0] {
        let q = admitted(limiter.decide(&ip));
        assert_eq!((q.scope, q.limit, q.remaining), (Scope::Ip, 3, left));
    }
    let (q, retry_after) = refused(limiter.decide(&ip));
    assert_eq!((q.scope, q.limit, q.remaining), (Scope::Ip, 3, 0));
    // Three at the start of a bucket weigh 3 × (60 − e)/60 in the next one:
    // room for one at e = 20 s, 80 s from now.
    assert_eq!(retry_after, 80);
    assert_eq!(q.reset, T0 / 1000 + 80);
    // Another address of the same tenant, and the same address of another
    // tenant, have counters of their own.
    admitted(limiter.decide(&[Limit::ip("acme", "1.2.3.5", per_minute(3))]));
    admitted(limiter.decide(&[Limit::ip("other", "1.2.3.4", per_minute(3))]));
}

#[test]
fn reset_of_a_scope_with_room_is_when_its_counts_age_out() {
    let (clock, limiter) = setup();
    clock.advance(Duration::from_millis(1500));
    let q = admitted(limiter.decide(&[Limit::tenant("acme", per_minute(10))]));
    assert_eq!(q.remaining, 9);
    // Counted in the bucket starting at T0: weighed until two buckets later.
    assert_eq!(q.reset, T0 / 1000 + 120);
}

#[test]
fn the_most_restrictive_scope_is_reported() {
    let (_, limiter) = setup();
    let limits = [
        Limit::ip("acme", "1.2.3.4", per_minute(10)),
        Limit::user("acme", "visitor:a", per_minute(2)),
        Limit::tenant("acme", per_minute(100)),
    ];
    let q = admitted(limiter.decide(&limits));
    assert_eq!((q.scope, q.limit, q.remaining), (Scope::User, 2, 1));
    let q = admitted(limiter.decide(&limits));
    assert_eq!((q.scope, q.remaining), (Scope::User, 0));
    let (q, _) = refused(limiter.decide(&limits));
    assert_eq!((q.scope, q.limit), (Scope::User, 2));
    // Without the user scope the address is the tightest (8 left).
    let q = admitted(limiter.decide(&[limits[0].clone(), limits[2].clone()]));
    assert_eq!((q.scope, q.limit, q.remaining), (Scope::Ip, 10, 7));
}

#[test]
fn refused_requests_are_counted_nowhere() {
    let (_, limiter) = setup();
    let ip = Limit::ip("acme", "1.2.3.4", per_minute(5));
    let user = Limit::user("acme", "visitor:a", per_minute(1));
    let tenant = Limit::tenant("acme", per_minute(50));
    admitted(limiter.decide(&[ip.clone(), user.clone(), tenant.clone()]));
    for _ in 0..20 {
        let (q, _) = refused(limiter.decide(&[ip.clone(), user.clone(), tenant.clone()]));
        assert_eq!(q.scope, Scope::User);
    }
    assert_eq!(limiter.remaining(&ip), 4);
    assert_eq!(limiter.remaining(&tenant), 49);
    assert_eq!(limiter.remaining(&user), 0);
}

#[test]
fn the_window_resets_as_the_clock_moves() {
    let (clock, limiter) = setup();
    let ip = [Limit::ip("acme", "1.2.3.4", per_minute(3))];
    for _ in 0..3 {
        admitted(limiter.decide(&ip));
    }
    let (_, retry_after) = refused(limiter.decide(&ip));
    clock.advance(Duration::from_millis(retry_after * 1000 - 1));
    refused(limiter.decide(&ip));
    clock.advance(Duration::from_millis(1));
    let q = admitted(limiter.decide(&ip));
    assert_eq!(q.remaining, 0);
    // Two windows after the last request, everything has aged out.
    clock.advance(Duration::from_secs(120));
    assert_eq!(admitted(limiter.decide(&ip)).remaining, 2);
}

#[test]
fn a_refusal_reports_the_scope_that_stays_full_longest() {
    let (clock, limiter) = setup();
    let ip = Limit::ip("acme", "1.2.3.4", per_minute(1));
    let user = Limit::user("acme", "visitor:a", Window { limit: 1, window: Duration::from_secs(1) });
    admitted(limiter.decide(&[ip.clone(), user.clone()]));
    clock.advance(Duration::from_millis(10));
    let (q, retry_after) = refused(limiter.decide(&[user.clone(), ip.clone()]));
    assert_eq!(q.scope, Scope::Ip);
    assert!(retry_after > 60, "{retry_after}");
}

#[test]
fn no_limits_admit_with_nothing_to_report() {
    let (_, limiter) = setup();
    assert_eq!(limiter.decide(&[]), Decision::Admitted { tightest: None });
}

#[test]
fn aged_out_keys_are_dropped() {
    let (clock, limiter) = setup();
    for i in 0..3000 {
        admitted(limiter.decide(&[Limit::ip(
            "acme",
            &format!("10.0.{}.{}", i / 256, i % 256),
            per_minute(5),
        )]));
    }
    assert_eq!(limiter.tracked_keys(), 3000);
    clock.advance(Duration::from_secs(180));
    // Each shard sweeps on its next write once its interval has passed.
    for i in 0..2000 {
        admitted(limiter.decide(&[Limit::ip("acme", &format!("fresh-{i}"), per_minute(5))]));
    }
    assert_eq!(limiter.tracked_keys(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_exceed_a_limit() {
    let (_, limiter) = setup();
    let limiter = Arc::new(limiter);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let limits = [
                Limit::ip("acme", "1.2.3.4", per_minute(50)),
                Limit::user("acme", &format!("visitor:{t}"), per_minute(3)),
                Limit::tenant("acme", per_minute(1000)),
            ];
            let mut admitted = 0;
            for _ in 0..20 {
                if limiter.check(&limits).await.unwrap().is_admitted() {
                    admitted += 1;
                }
                tokio::task::yield_now().await;
            }
            admitted
        }));
    }
    let mut per_task = Vec::new();
    for t in tasks {
        per_task.push(t.await.unwrap());
    }
    assert!(per_task.iter().all(|&n| n <= 3), "{per_task:?}");
    // 32 × 3 subjects could take 96; the shared address stops at exactly 50.
    assert_eq!(per_task.iter().sum::<u32>(), 50);
    assert_eq!(limiter.remaining(&Limit::tenant("acme", per_minute(1000))), 950);
}

/// One step of a random run: move the clock, then send a request in some of
/// three scopes.
#[derive(Debug, Clone)]
struct Step {
    advance_ms: u64,
    scopes: [bool; 3],
}

fn step() -> impl Strategy<Value = Step> {
    (prop_oneof![Just(0u64), 0u64..2_000, 0u64..30_000], any::<[bool; 3]>())
        .prop_map(|(advance_ms, scopes)| Step { advance_ms, scopes })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Admitted exactly when every scope has room; an admission takes one
    /// from every scope and reports the smallest remainder; a refusal takes
    /// nothing, and waiting `retry_after` is always enough.
    #[test]
    fn decisions_follow_the_scopes(
        limits in (1u32..6, 1u32..6, 1u32..12),
        windows in (1u64..5, 1u64..90, 1u64..90),
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let (clock, limiter) = setup();
        let all = [
            Limit::ip("t", "1.2.3.4", Window { limit: limits.0, window: Duration::from_secs(windows.0) }),
            Limit::user("t", "visitor:a", Window { limit: limits.1, window: Duration::from_secs(windows.1) }),
            Limit::tenant("t", Window { limit: limits.2, window: Duration::from_secs(windows.2) }),
        ];
        for s in steps {
            clock.advance(Duration::from_millis(s.advance_ms));
            let chosen: Vec<Limit> = all.iter().zip(s.scopes).filter(|(_, on)| *on).map(|(l, _)| l.clone()).collect();
            let before: Vec<u32> = chosen.iter().map(|l| limiter.remaining(l)).collect();
            let decision = limiter.decide(&chosen);
            let after: Vec<u32> = chosen.iter().map(|l| limiter.remaining(l)).collect();
            match decision {
                Decision::Admitted { tightest } => {
                    prop_assert!(before.iter().all(|&n| n >= 1), "admitted without room: {before:?}");
                    let expected: Vec<u32> = before.iter().map(|n| n - 1).collect();
                    prop_assert_eq!(&after, &expected);
                    prop_assert_eq!(tightest.map(|q| q.remaining), after.iter().copied().min());
                }
                Decision::Refused { tightest, retry_after } => {
                    prop_assert!(before.contains(&0), "refused with room: {before:?}");
                    prop_assert_eq!(&after, &before);
                    prop_assert_eq!(tightest.remaining, 0);
                    prop_assert!(retry_after >= 1);
                    let at = clock.now().timestamp();
                    prop_assert!(tightest.reset >= at && tightest.reset <= at + retry_after as i64 + 1);
                    // Time alone makes room: after `retry_after`, it passes.
                    clock.advance(Duration::from_secs(retry_after));
                    prop_assert!(limiter.decide(&chosen).is_admitted());
                }
            }
        }
    }

    /// Whatever the timing, one key never admits more than its limit within
    /// one window-aligned bucket.
    #[test]
    fn a_bucket_never_admits_more_than_the_limit(
        limit in 1u32..8,
        gaps in proptest::collection::vec(0u64..3_000, 1..300),
    ) {
        let (clock, limiter) = setup();
        let key = [Limit::ip("t", "1.2.3.4", Window { limit, window: Duration::from_secs(10) })];
        let mut per_bucket = std::collections::HashMap::<i64, u32>::new();
        for gap in gaps {
            clock.advance(Duration::from_millis(gap));
            if limiter.decide(&key).is_admitted() {
                *per_bucket.entry(clock.now().timestamp_millis().div_euclid(10_000)).or_default() += 1;
            }
        }
        prop_assert!(per_bucket.values().all(|&n| n <= limit), "{per_bucket:?}");
    }
}
