//! The admin audit log (SPEC §12): entries appended one at a time, each
//! sealed by an HMAC-SHA256 over its own fields and the seal of the entry
//! before it, under a key the database does not hold. Someone who can write
//! the database but not read the key cannot change, insert or remove an
//! entry without breaking the chain at that point; [`verify`] finds it.

use crate::time::Timestamp;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The seal of the (absent) entry before the first.
pub const GENESIS: &str = "";

/// An action to append: everything but its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: Timestamp,
    /// `operator`, `agent:<sub>` or `cli` (the command line).
    pub actor: String,
    pub actor_name: String,
    /// The tenant acted on, when there is one.
    pub tenant_id: Option<String>,
    pub action: String,
    pub target: String,
    /// A small JSON object, as text (what is sealed is exactly what is stored).
    pub detail: String,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub entry: NewAuditEntry,
    /// Which key sealed it (keys can rotate; old ones keep verifying).
    pub key_id: String,
    pub prev_mac: String,
    pub mac: String,
}

/// The bytes a seal covers: every field, in a fixed order, and the seal
/// before. JSON keeps the fields apart whatever they contain.
#[derive(Serialize)]
struct Sealed<'a> {
    seq: i64,
    at: i64,
    actor: &'a str,
    actor_name: &'a str,
    tenant_id: Option<&'a str>,
    action: &'a str,
    target: &'a str,
    detail: &'a str,
    key_id: &'a str,
    prev_mac: &'a str,
}

/// The seal of entry `seq` following `prev_mac`, hex.
pub fn seal(key: &[u8], key_id: &str, seq: i64, entry: &NewAuditEntry, prev_mac: &str) -> String {
    let sealed = Sealed {
        seq,
        at: entry.at.timestamp_millis(),
        actor: &entry.actor,
        actor_name: &entry.actor_name,
        tenant_id: entry.tenant_id.as_deref(),
        action: &entry.action,
        target: &entry.target,
        detail: &entry.detail,
        key_id,
        prev_mac,
    };
    let bytes = serde_json::to_vec(&sealed).unwrap_or_default();
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(&bytes);
    hex::encode(mac.finalize().into_bytes())
}

/// Where a chain first breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub seq: i64,
    pub reason: &'static str,
}

/// Walks a chain (oldest first, possibly a page at a time: pass the last
/// seq and seal seen so far). `key` finds a key by its id.
pub fn verify<'k>(
    entries: &[AuditEntry],
    mut last: (i64, String),
    key: impl Fn(&str) -> Option<&'k [u8]>,
) -> Result<(i64, String), Broken> {
    for e in entries {
        let broken = |reason| Err(Broken { seq: e.seq, reason });
        if e.seq != last.0 + 1 {
            return broken("an entry is missing before this one");
        }
        if e.prev_mac != last.1 {
            return broken("it does not follow the entry before");
        }
        let Some(k) = key(&e.key_id) else {
            return broken("it was sealed with a key this server does not have");
        };
        if !constant_time_eq(seal(k, &e.key_id, e.seq, &e.entry, &e.prev_mac).as_bytes(), e.mac.as_bytes()) {
            return broken("its seal does not match its content");
        }
        last = (e.seq, e.mac.clone());
    }
    Ok(last)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = NewAuditEntry {
                    at: crate::time::from_millis(1_700_000_000_000 + seq),
                    actor: "operator".into(),
                    actor_name: "operator".into(),
                    tenant_id: Some("acme".into()),
                    action: "tenant.kill_switch".into(),
                    target: "acme".into(),
                    detail: format!("{{\"enabled\":{}}}", seq % 2 == 0),
                };
                let mac = seal(KEY, "k1", seq, &entry, &prev);
                let e =
                    AuditEntry { seq, entry, key_id: "k1".into(), prev_mac: prev.clone(), mac: mac.clone() };
                prev = mac;
                e
            })
            .collect()
    }

    fn keys(kid: &str) -> Option<&'static [u8]> {
        (kid == "k1").then_some(KEY)
    }

    #[test]
    fn an_intact_chain_verifies_in_pages() {
        let c = chain(5);
        let mid = verify(&c[..2], (0, GENESIS.into()), keys).unwrap();
        assert_eq!(verify(&c[2..], mid, keys).unwrap().0, 5);
    }

    #[test]
    fn every_kind_of_tampering_is_found_where_it_happened() {
        let mut edited = chain(5);
        edited[2].entry.detail = "{\"enabled\":true}".into();
        assert_eq!(verify(&edited, (0, GENESIS.into()), keys).unwrap_err().seq, 3);

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify(&removed, (0, GENESIS.into()), keys).unwrap_err().seq, 3);

        // Re-sealing an edit without the key does not help: the next entry no longer follows.
        let mut resealed = chain(5);
        resealed[3].entry.actor = "agent:mallory".into();
        resealed[3].mac = seal(b"a guessed key", "k1", 4, &resealed[3].entry, &resealed[3].prev_mac);
        assert_eq!(verify(&resealed, (0, GENESIS.into()), keys).unwrap_err().seq, 4);

        let mut unknown_key = chain(2);
        unknown_key[1].key_id = "k9".into();
        assert_eq!(verify(&unknown_key, (0, GENESIS.into()), keys).unwrap_err().seq, 2);
    }
}
