//! `NatsRateLimiter`: counters shared by every node in a JetStream key-value
//! bucket `{prefix}_ratelimit`, one entry per limit key, updated by
//! compare-and-swap on the entry's revision and retried on conflict.
//!
//! JetStream (2.9) cannot write several entries atomically, so a request's
//! scopes are counted one after the other: each write succeeds only if its
//! entry is unchanged since it was read, so no scope ever counts past its
//! limit. If a later scope's write loses a race, the earlier ones are taken
//! back and the whole check runs again. Meanwhile a concurrent check may see
//! the taken-back count and be refused: under contention across scopes this
//! limiter errs towards refusing, never towards admitting.
//!
//! Entries expire through the bucket's `max_age` (the server has no per-key
//! expiry before 2.11), which is why windows are limited to `MAX_WINDOW`: an
//! entry is last written at most two windows before its counts age out.

use crate::nats_bus::connect_client;
use crate::url;
use crate::BusError;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::future::try_join_all;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::ratelimit::counter::{window_ms, Counter};
use switchboard_core::ratelimit::decide;
use switchboard_core::ratelimit::{Decision, Limit, RateLimitError, RateLimiter};
use switchboard_core::time::Clock;

/// The longest window this limiter supports.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Attempts of one check before contention counts as a failure.
const MAX_ATTEMPTS: u32 = 64;
/// Keys longer than this once escaped are replaced by their hash.
const MAX_KEY_LEN: usize = 256;

pub struct NatsRateLimiter {
    kv: kv::Store,
    clock: Arc<dyn Clock>,
}

/// Why counting stopped short.
enum CountError {
    /// An entry changed since it was read: read again and retry.
    Conflict,
    Backend(String),
}

impl NatsRateLimiter {
    /// Connects to the NATS of `bus_url` (`nats://…[?prefix=NAME]`) and opens
    /// (or creates) the bucket.
    pub async fn connect(bus_url: &str, clock: Arc<dyn Clock>) -> Result<Self, BusError> {
        let url = url::parse(bus_url)?;
        let client = connect_client(&url, "NATS rate-limit connection").await?;
        let js = jetstream::new(client);
        let bucket = bucket_name(&url.prefix);
        let kv = match js.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => {
                // Made by hand: async-nats' `create_key_value` first reads the
                // account info, whose reply from a 2.9 server it cannot parse.
                // Either way a second node creating it at once is harmless.
                let created = js.create_stream(bucket_stream(&bucket)).await;
                js.get_key_value(&bucket).await.map_err(|e| {
                    let why = created.err().map_or_else(|| e.to_string(), |c| c.to_string());
                    BusError::Connect(format!("NATS key-value bucket {bucket}: {why}"))
                })?
            }
        };
        Ok(Self { kv, clock })
    }

    /// The entry of a key and its revision (0: none, so the write creates it),
    /// as seen at `now`.
    async fn read(&self, key: &str, window_ms: i64, now: i64) -> Result<(Counter, u64), RateLimitError> {
        let entry = self.kv.entry(key).await.map_err(backend)?;
        let revision = entry.as_ref().map_or(0, |e| e.revision);
        let counter = entry
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| decode(&e.value))
            .filter(|c| c.window_ms == window_ms)
            .map_or_else(|| Counter::new(window_ms, now), |c| c.at(now));
        Ok((counter, revision))
    }

    /// Writes the counted counters one by one; on a lost race takes back
    /// those already written.
    async fn count(&self, keys: &[String], counted: &[Counter], revisions: &[u64]) -> Result<(), CountError> {
        for (i, ((key, counter), &revision)) in keys.iter().zip(counted).zip(revisions).enumerate() {
            // A key given twice was read twice from one revision: written once.
            if keys[..i].contains(key) {
                continue;
            }
            let written = self.kv.update(key, encode(counter), revision).await;
            if let Err(e) = written {
                for (j, (key, counter)) in keys.iter().zip(counted).enumerate().take(i) {
                    if !keys[..j].contains(key) {
                        self.take_back(key, counter).await;
                    }
                }
                return Err(match e.kind() {
                    kv::UpdateErrorKind::WrongLastRevision => CountError::Conflict,
                    _ => CountError::Backend(e.to_string()),
                });
            }
        }
        Ok(())
    }

    /// Removes one request counted in `written`'s bucket. Best effort: if it
    /// cannot, the request stays counted, which only ever refuses more.
    async fn take_back(&self, key: &str, written: &Counter) {
        for _ in 0..MAX_ATTEMPTS {
            let Ok(Some(entry)) = self.kv.entry(key).await else { break };
            let Some(mut stored) = decode(&entry.value).filter(|c| c.window_ms == written.window_ms) else {
                break;
            };
            if stored.bucket == written.bucket {
                stored.current = stored.current.saturating_sub(1);
            } else if stored.bucket == written.bucket + 1 {
                stored.previous = stored.previous.saturating_sub(1);
            } else {
                break;
            }
            match self.kv.update(key, encode(&stored), entry.revision).await {
                Ok(_) => return,
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(_) => break,
            }
        }
        tracing::warn!(key, "rate limit: could not take back a request counted for a refused check");
    }
}

#[async_trait::async_trait]
impl RateLimiter for NatsRateLimiter {
    async fn check(&self, limits: &[Limit]) -> Result<Decision, RateLimitError> {
        if limits.is_empty() {
            return Ok(Decision::Admitted { tightest: None });
        }
        let windows: Vec<i64> = limits.iter().map(|l| window_ms(l.window.window)).collect();
        if limits.iter().any(|l| l.window.window > MAX_WINDOW) {
            return Err(RateLimitError(format!(
                "the NATS rate limiter supports windows up to {} s",
                MAX_WINDOW.as_secs()
            )));
        }
        let keys: Vec<String> = limits.iter().map(|l| entry_key(&l.key)).collect();
        for attempt in 0..MAX_ATTEMPTS {
            let now = self.clock.now().timestamp_millis();
            let reads = keys.iter().zip(&windows).map(|(k, &w)| self.read(k, w, now));
            let (counters, revisions): (Vec<Counter>, Vec<u64>) =
                try_join_all(reads).await?.into_iter().unzip();
            if let Some(refused) = decide::refusal(limits, &counters, now) {
                return Ok(refused);
            }
            let (counted, admitted) = decide::admit(limits, &counters, now);
            match self.count(&keys, &counted, &revisions).await {
                Ok(()) => return Ok(admitted),
                Err(CountError::Backend(e)) => return Err(RateLimitError(format!("NATS key-value: {e}"))),
                Err(CountError::Conflict) => {
                    // Spread the retries of racing checks apart.
                    let jitter = rand::random::<u64>() % (u64::from(attempt.min(10)) + 1);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
            }
        }
        Err(RateLimitError("NATS key-value: too many concurrent updates of one counter".to_owned()))
    }
}

fn backend(e: impl std::fmt::Display) -> RateLimitError {
    RateLimitError(format!("NATS key-value: {e}"))
}

/// The stream behind the bucket, as a key-value bucket of history 1 is made.
fn bucket_stream(bucket: &str) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some("Switchboard rate-limit counters".to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: MAX_WINDOW * 2,
        // Counters are hot and short-lived: losing them with the server only
        // restarts their windows.
        storage: jetstream::stream::StorageType::Memory,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    }
}

/// `{prefix}_ratelimit`: the prefix keeps to characters bucket names accept.
fn bucket_name(prefix: &str) -> String {
    format!("{prefix}_ratelimit")
}

/// A KV key for a limit key. KV keys allow `[-/_=.A-Za-z0-9]` with `.` as a
/// token separator; limit keys hold `:`, addresses and arbitrary subjects.
/// Every other byte becomes `=XX` (`=` included), which keeps distinct keys
/// distinct; a key too long that way is replaced by `h.` and its SHA-256,
/// which cannot collide with an escaped key because those never hold a `.`.
fn entry_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(char::from(b)),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    match out.len() > MAX_KEY_LEN {
        true => format!("h.{}", hex::encode(Sha256::digest(key.as_bytes()))),
        false => out,
    }
}

/// An entry's value: `window_ms bucket previous current`.
fn encode(c: &Counter) -> Bytes {
    Bytes::from(format!("{} {} {} {}", c.window_ms, c.bucket, c.previous, c.current))
}

fn decode(value: &[u8]) -> Option<Counter> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(' ');
    let counter = Counter {
        window_ms: parts.next()?.parse().ok().filter(|w| *w > 0)?,
        bucket: parts.next()?.parse().ok()?,
        previous: parts.next()?.parse().ok()?,
        current: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_keep_to_the_kv_charset_and_stay_distinct() {
        assert_eq!(entry_key("ip:acme:2001:db8::/64"), "ip=3Aacme=3A2001=3Adb8=3A=3A=2F64");
        assert_eq!(entry_key("user:acme:visitor:a.b=c"), "user=3Aacme=3Avisitor=3Aa=2Eb=3Dc");
        assert_ne!(entry_key("a=3A"), entry_key("a:"));
        let long = entry_key(&format!("user:acme:{}", "é".repeat(100)));
        assert!(long.starts_with("h.") && long.len() == 66, "{long}");
        for key in ["tenant:acme", "user:x:ü", &"x".repeat(300)] {
            let k = entry_key(key);
            assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b)), "{k}");
        }
    }

    #[test]
    fn values_round_trip_and_garbage_is_none() {
        let c = Counter { window_ms: 60_000, bucket: 28_333_334, previous: 3, current: 9 };
        assert_eq!(decode(&encode(&c)), Some(c));
        for bad in ["", "1 2 3", "1 2 3 4 5", "0 1 1 1", "a b c d", "1 2 -3 4"] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
