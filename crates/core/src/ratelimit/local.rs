//! `LocalRateLimiter`: the counters of one node, in memory. Keys are spread
//! over sharded mutexes; a request locks only the shards its keys live in
//! (in index order, so two requests never wait on each other in a cycle),
//! for a few arithmetic operations, never across an await. Keys whose counts
//! have aged out are dropped by a sweep that runs per shard, amortised.

use super::counter::{window_ms, Counter};
use super::{decide, Decision, Limit, RateLimitError, RateLimiter};
use crate::time::Clock;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

const SHARDS: usize = 64;
/// A shard drops its aged-out keys at least this often…
const SWEEP_EVERY_MS: i64 = 10_000;
/// …and whenever it has doubled since its last sweep (never below this), so
/// a flood of new keys costs amortised O(1) per request and memory stays
/// within twice the keys that still count something.
const MIN_HIGH_WATER: usize = 1024;

#[derive(Default)]
struct Shard {
    counters: HashMap<String, Counter>,
    next_sweep: i64,
    high_water: usize,
}

impl Shard {
    fn sweep_if_due(&mut self, now: i64) {
        if now < self.next_sweep && self.counters.len() < self.high_water {
            return;
        }
        self.counters.retain(|_, c| !c.is_stale(now));
        self.next_sweep = now + SWEEP_EVERY_MS;
        self.high_water = (self.counters.len() * 2).max(MIN_HIGH_WATER);
    }
}

pub struct LocalRateLimiter {
    clock: Arc<dyn Clock>,
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl LocalRateLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, hasher: RandomState::new(), shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard cannot leave a counter half-written
        // (each is replaced whole), so a poisoned lock is still usable.
        self.shards[shard].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// How many more requests `limit`'s scope admits now, counting nothing.
    pub fn remaining(&self, limit: &Limit) -> u32 {
        let now = self.now();
        let counter = current(&self.lock(self.shard_of(&limit.key)), limit, now);
        counter.remaining(now, limit.window.limit)
    }

    /// Keys currently held (aged-out ones linger until their shard sweeps).
    pub fn tracked_keys(&self) -> usize {
        (0..SHARDS).map(|s| self.lock(s).counters.len()).sum()
    }

    /// The whole decision, synchronously: the shards of all keys are held
    /// together, so the check and the counting are one step.
    pub fn decide(&self, limits: &[Limit]) -> Decision {
        if limits.is_empty() {
            return Decision::Admitted { tightest: None };
        }
        let now = self.now();
        let (mut guards, guard_of) = self.lock_all(limits);
        let counters: Vec<Counter> =
            limits.iter().zip(&guard_of).map(|(l, &g)| current(&guards[g], l, now)).collect();

        if let Some(refused) = decide::refusal(limits, &counters, now) {
            return refused;
        }
        let (counted, admitted) = decide::admit(limits, &counters, now);
        for ((limit, &g), counter) in limits.iter().zip(&guard_of).zip(counted) {
            let shard = &mut guards[g];
            shard.counters.insert(limit.key.clone(), counter);
            shard.sweep_if_due(now);
        }
        admitted
    }

    /// Locks the shards of all `limits`, each once and in index order, and
    /// says which guard holds each limit's key: `guards[guard_of[i]]` is
    /// `limits[i]`'s shard. Built in one pass, so there is no lookup that
    /// could miss.
    fn lock_all(&self, limits: &[Limit]) -> (Vec<MutexGuard<'_, Shard>>, Vec<usize>) {
        let mut by_shard: Vec<(usize, usize)> =
            limits.iter().enumerate().map(|(i, l)| (self.shard_of(&l.key), i)).collect();
        by_shard.sort_unstable();
        let mut guards: Vec<MutexGuard<'_, Shard>> = Vec::with_capacity(by_shard.len());
        let mut guard_of = vec![0; limits.len()];
        let mut locked = None;
        for (shard, i) in by_shard {
            if locked != Some(shard) {
                guards.push(self.lock(shard));
                locked = Some(shard);
            }
            guard_of[i] = guards.len() - 1;
        }
        (guards, guard_of)
    }
}

/// The key's counter as seen at `now`; a fresh one if it is unknown or was
/// kept for another window (the tenant's settings changed).
fn current(shard: &Shard, limit: &Limit, now: i64) -> Counter {
    let w = window_ms(limit.window.window);
    match shard.counters.get(&limit.key) {
        Some(c) if c.window_ms == w => c.at(now),
        _ => Counter::new(w, now),
    }
}

#[async_trait::async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, limits: &[Limit]) -> Result<Decision, RateLimitError> {
        Ok(self.decide(limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Window;
    use crate::time::{from_millis, ManualClock};
    use std::collections::BTreeSet;
    use std::time::Duration;

    #[test]
    fn each_limit_is_counted_in_its_own_shard_when_shards_are_shared() {
        let clock = Arc::new(ManualClock::new(from_millis(1_700_000_040_000).unwrap()));
        let limiter = LocalRateLimiter::new(clock);
        let w = Window { limit: 5, window: Duration::from_secs(60) };
        // Far more keys than shards, in no order: many share a shard.
        let limits: Vec<Limit> = (0..200).rev().map(|i| Limit::ip("t", &format!("10.0.{i}.1"), w)).collect();
        let shards: BTreeSet<usize> = limits.iter().map(|l| limiter.shard_of(&l.key)).collect();
        let (guards, guard_of) = limiter.lock_all(&limits);
        assert_eq!(guards.len(), shards.len(), "each shard is locked once");
        assert!(guard_of.iter().all(|&g| g < guards.len()));
        drop(guards);

        assert!(limiter.decide(&limits).is_admitted());
        // `remaining` finds each key by its own shard: every one was counted once, where it lives.
        for l in &limits {
            assert_eq!(limiter.remaining(l), 4, "{}", l.key);
        }
        assert_eq!(limiter.tracked_keys(), limits.len());
    }
}
