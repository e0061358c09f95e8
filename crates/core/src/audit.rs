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

/// Why an entry could not be sealed. Neither happens with the types above and
/// HMAC (which takes keys of any length), but a seal over the wrong bytes would
/// be worse than no entry: the append (or the check) fails instead.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot serialise the audit entry to seal it: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the audit key was refused by HMAC")]
    Key,
}

/// Why [`verify`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain breaks here: an entry was changed, inserted or removed, or
    /// sealed with a key this server does not have.
    #[error("the audit chain breaks at entry {}: {}", .0.seq, .0.reason)]
    Broken(Broken),
    /// An entry's seal could not be computed again: nothing is known about
    /// the chain from here on.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// The seal of entry `seq` following `prev_mac`, hex.
pub fn seal(
    key: &[u8],
    key_id: &str,
    seq: i64,
    entry: &NewAuditEntry,
    prev_mac: &str,
) -> Result<String, SealError> {
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
    let bytes = serde_json::to_vec(&sealed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| SealError::Key)?;
    mac.update(&bytes);
    Ok(hex::encode(mac.finalize().into_bytes()))
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
) -> Result<(i64, String), VerifyError> {
    for e in entries {
        let broken = |reason| Err(VerifyError::Broken(Broken { seq: e.seq, reason }));
        if e.seq != last.0 + 1 {
            return broken("an entry is missing before this one");
        }
        if e.prev_mac != last.1 {
            return broken("it does not follow the entry before");
        }
        let Some(k) = key(&e.key_id) else {
            return broken("it was sealed with a key this server does not have");
        };
        if !constant_time_eq(seal(k, &e.key_id, e.seq, &e.entry, &e.prev_mac)?.as_bytes(), e.mac.as_bytes()) {
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
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = NewAuditEntry {
                    at: crate::time::from_millis(1_700_000_000_000 + seq).unwrap(),
                    actor: "operator".into(),
                    actor_name: "operator".into(),
                    tenant_id: Some("acme".into()),
                    action: "tenant.kill_switch".into(),
                    target: "acme".into(),
                    detail: format!("{{\"enabled\":{}}}", seq % 2 == 0),
                };
                let mac = seal(KEY, "k1", seq, &entry, &prev).unwrap();
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

    fn broken_at(entries: &[AuditEntry]) -> i64 {
        match verify(entries, (0, GENESIS.into()), keys) {
            Err(VerifyError::Broken(b)) => b.seq,
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_of_tampering_is_found_where_it_happened() {
        let mut edited = chain(5);
        edited[2].entry.detail = "{\"enabled\":true}".into();
        assert_eq!(broken_at(&edited), 3);

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(broken_at(&removed), 3);

        // Re-sealing an edit without the key does not help: the next entry no longer follows.
        let mut resealed = chain(5);
        resealed[3].entry.actor = "agent:mallory".into();
        resealed[3].mac = seal(b"a guessed key", "k1", 4, &resealed[3].entry, &resealed[3].prev_mac).unwrap();
        assert_eq!(broken_at(&resealed), 4);

        let mut unknown_key = chain(2);
        unknown_key[1].key_id = "k9".into();
        assert_eq!(broken_at(&unknown_key), 2);
    }

    #[test]
    fn a_seal_that_cannot_be_computed_is_an_error_not_an_empty_seal() {
        // The two failures `seal` reports, as its callers get them.
        let from_json: SealError = serde_json::from_str::<u8>("x").unwrap_err().into();
        let seal_failed = VerifyError::from(from_json);
        assert!(seal_failed.to_string().starts_with("cannot serialise the audit entry"), "{seal_failed}");
        assert!(matches!(seal_failed, VerifyError::Seal(SealError::Serialize(_))));
        assert_eq!(SealError::Key.to_string(), "the audit key was refused by HMAC");
        // Keys of any length are taken, the empty one included: a real seal.
        let entry = &chain(1)[0].entry;
        for key in [&b""[..], b"k", &[7u8; 200]] {
            assert_eq!(seal(key, "k1", 1, entry, GENESIS).unwrap().len(), 64);
        }
        let broken = VerifyError::Broken(Broken { seq: 3, reason: "its seal does not match its content" });
        assert_eq!(
            broken.to_string(),
            "the audit chain breaks at entry 3: its seal does not match its content"
        );
    }
}
