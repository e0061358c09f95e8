//! Cases of the `RateLimiter` contract for the shared limiters: the same
//! decisions as `LocalRateLimiter` for the same requests at the same
//! (manual) times, counts shared between instances, and no overshoot under
//! concurrency. Time moves by `ManualClock`, never by sleeping.

use crate::common::{Harness, Kind};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::ratelimit::{Decision, Limit, LocalRateLimiter, RateLimiter};
use switchboard_core::tenant::Window;
use switchboard_core::time::{from_millis, ManualClock};

/// A minute boundary.
const T0: i64 = 1_700_000_040_000;

fn window(limit: u32, secs: u64) -> Window {
    Window { limit, window: Duration::from_secs(secs) }
}

/// Runs the same checks, with the same clock moves, on the harness's limiter
/// and on a local one, and asserts they decide alike; returns the decisions.
struct Twin {
    clock: Arc<ManualClock>,
    shared: Arc<dyn RateLimiter>,
    local_clock: Arc<ManualClock>,
    local: LocalRateLimiter,
}

impl Twin {
    async fn new(h: &Harness) -> Self {
        let clock = Arc::new(ManualClock::new(from_millis(T0).unwrap()));
        let local_clock = Arc::new(ManualClock::new(from_millis(T0).unwrap()));
        let shared = h.limiter(clock.clone()).await;
        Self { clock, shared, local: LocalRateLimiter::new(local_clock.clone()), local_clock }
    }

    fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
        self.local_clock.advance(Duration::from_millis(ms));
    }

    async fn check(&self, limits: &[Limit]) -> Decision {
        let shared = self.shared.check(limits).await.unwrap();
        assert_eq!(shared, self.local.decide(limits), "for {limits:?}");
        shared
    }
}

pub async fn decides_like_the_local_limiter(h: &mut Harness) {
    let twin = Twin::new(h).await;
    let ip = [Limit::ip("acme", "203.0.113.7", window(3, 60))];
    for left in [2, 1, 0] {
        assert_eq!(twin.check(&ip).await.quota().unwrap().remaining, left);
    }
    // Three at the start of a bucket: room for one again 80 s from now.
    let Decision::Refused { tightest, retry_after } = twin.check(&ip).await else {
        panic!("expected a refusal")
    };
    assert_eq!((retry_after, tightest.reset), (80, T0 / 1000 + 80));
    twin.advance(79_999);
    assert!(!twin.check(&ip).await.is_admitted());
    twin.advance(1);
    assert!(twin.check(&ip).await.is_admitted());
    assert!(twin.check(&[]).await.is_admitted());
}

/// A refused request counts in no scope; the scope that stays full longest
/// is reported.
pub async fn a_refused_request_counts_nowhere(h: &mut Harness) {
    let twin = Twin::new(h).await;
    let tenant = Limit::tenant("acme", window(10, 60));
    let both = [Limit::ip("acme", "198.51.100.1", window(1, 60)), tenant.clone()];
    assert!(twin.check(&both).await.is_admitted());
    assert!(!twin.check(&both).await.is_admitted());
    let q = twin.check(std::slice::from_ref(&tenant)).await.quota().unwrap();
    assert_eq!(q.remaining, 8, "the refused request was counted");
}

/// Several hundred pseudo-random steps over scopes, tenants, windows (some
/// keys changing window midway) and clock moves.
pub async fn random_sequences_decide_like_the_local_limiter(h: &mut Harness) {
    let twin = Twin::new(h).await;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut outcomes = [0; 2];
    for _ in 0..400 {
        let tenant = ["acme", "beta"][next(2) as usize];
        // Each key mostly keeps its window; now and then one changes, which
        // starts its counter afresh.
        let changed = next(25) == 0;
        let mut limits = Vec::new();
        if next(3) > 0 {
            let a = next(2) as usize;
            let w = [window(2, 60), window(3, 1)][a ^ usize::from(changed)];
            limits.push(Limit::ip(tenant, ["2001:db8::/64", "192.0.2.1"][a], w));
        }
        if next(2) > 0 {
            let v = next(3) as usize;
            let secs = [60, 3600, 86_400][(v + usize::from(changed)) % 3];
            limits.push(Limit::user(tenant, &format!("visitor:{v}"), window(3, secs)));
        }
        if next(2) > 0 {
            limits.push(Limit::tenant(tenant, window(8, if changed { 3600 } else { 60 })));
        }
        outcomes[usize::from(twin.check(&limits).await.is_admitted())] += 1;
        twin.advance([0, 0, 0, 10, 250, 1_500, 20_000, 65_000][next(8) as usize]);
    }
    assert!(outcomes.iter().all(|&n| n > 50), "{outcomes:?}");
}

/// Two instances on one prefix (two nodes) share the counts.
pub async fn two_instances_share_counts(h: &mut Harness) {
    if h.skip_local("in-process counters belong to one process") {
        return;
    }
    let clock = Arc::new(ManualClock::new(from_millis(T0).unwrap()));
    let (one, two) = (h.limiter(clock.clone()).await, h.limiter(clock).await);
    let limit = [Limit::user("acme", "user:shared", window(5, 60))];
    let mut admitted = 0;
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &one } else { &two };
        let d = limiter.check(&limit).await.unwrap();
        admitted += usize::from(d.is_admitted());
        assert_eq!(d.is_admitted(), i < 5, "check {i}: {d:?}");
    }
    assert_eq!(admitted, 5);
}

/// 20 concurrent checks against a limit of 10 (split over two instances on
/// a cluster) admit exactly 10, alone or beside another scope.
pub async fn concurrent_checks_admit_exactly_the_limit(h: &mut Harness) {
    let clock = Arc::new(ManualClock::new(from_millis(T0).unwrap()));
    let first = h.limiter(clock.clone()).await;
    // In one process there is one instance; on a cluster, two nodes' worth.
    let limiters = [first.clone(), if h.is_local() { first } else { h.limiter(clock).await }];
    for (round, with_user_scope) in [false, true].into_iter().enumerate() {
        let tenant = Limit::tenant(&format!("t{round}"), window(10, 60));
        let mut tasks = Vec::new();
        for i in 0..20_usize {
            let limiter = limiters[i % 2].clone();
            let mut limits = vec![tenant.clone()];
            if with_user_scope {
                limits
                    .insert(0, Limit::user(&format!("t{round}"), &format!("user:{}", i % 4), window(6, 60)));
            }
            tasks.push(tokio::spawn(async move { limiter.check(&limits).await.unwrap().is_admitted() }));
        }
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert_eq!(admitted, 10, "with a user scope: {with_user_scope}");
    }
}

/// Redis: every counter key the limiter wrote expires when its counts age
/// out, so nothing is left behind.
pub async fn counter_keys_expire(h: &mut Harness) {
    if h.kind != Kind::Redis {
        println!("skipped: the key-value bucket's max_age (NATS) and memory sweeps (local) expire counters");
        return;
    }
    let clock = Arc::new(ManualClock::new(from_millis(T0 + 30_000).unwrap()));
    let limiter = h.limiter(clock).await;
    let limits = [Limit::ip("acme", "192.0.2.9", window(5, 60)), Limit::tenant("acme", window(50, 3600))];
    assert!(limiter.check(&limits).await.unwrap().is_admitted());
    let client = redis::Client::open(h.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:rl:*", h.prefix)).query_async(&mut conn).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        // Counted now, a request weighs until two buckets on.
        let w: i64 = if key.contains(":ip:") { 60_000 } else { 3_600_000 };
        let now = T0 + 30_000;
        let expected = (now.div_euclid(w) + 2) * w - now;
        assert!(ttl > expected - 5_000 && ttl <= expected, "{key}: {ttl}");
        assert!(key.starts_with(&format!("{}:rl:{{acme}}:", h.prefix)), "{key}");
    }
}
