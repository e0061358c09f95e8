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
        let shard_of: Vec<usize> = limits.iter().map(|l| self.shard_of(&l.key)).collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> = order.iter().map(|&s| self.lock(s)).collect();
        let guard_of = |shard: usize| order.binary_search(&shard).unwrap_or_default();
        let counters: Vec<Counter> =
            limits.iter().zip(&shard_of).map(|(l, &s)| current(&guards[guard_of(s)], l, now)).collect();

        if let Some(refused) = decide::refusal(limits, &counters, now) {
            return refused;
        }
        let (counted, admitted) = decide::admit(limits, &counters, now);
        for ((limit, &shard), counter) in limits.iter().zip(&shard_of).zip(counted) {
            let shard = &mut guards[guard_of(shard)];
            shard.counters.insert(limit.key.clone(), counter);
            shard.sweep_if_due(now);
        }
        admitted
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
