//! A user's memory (SPEC §18): entries `(tenant, subject, key) → value`,
//! the value encrypted at rest like message content, and the key limit kept
//! atomic on both backends.
//!
//! Where a value is sealed. [`Aad`] names a place by tenant, session uuid,
//! seq and column, and the session uuid also picks the derived key. A memory
//! entry has no session, so its place is a uuid of its own, derived from
//! tenant, subject and key ([`row_id`]): the value's associated data then
//! binds it to all three (the tenant twice, in the uuid and as itself), and
//! a value copied to another key, user or tenant does not decrypt. The
//! reader recomputes the uuid from the row's tenant, subject and key rather
//! than trusting the stored `id`; `id` is kept only so `keys rotate` can
//! page through the table and seal again at the same place. The derived
//! uuid is version 8 ("custom"): it can never equal a session's (v4 or v7),
//! so no entry shares a derived key with a conversation. (SHA-256, not a v5
//! uuid: the workspace's uuid has no v5 feature, and sha2 is here already.)
//!
//! The key limit under concurrency. The count of a memory's keys and the
//! write are one transaction. SQLite has one writer, so nothing else runs
//! between them. On PostgreSQL two nodes could each count 49 and each add
//! a 50th and 51st key, so the transaction first takes an advisory lock of
//! its (tenant, subject) (`pg_advisory_xact_lock`, released at commit): the
//! writes of one user's memory go one at a time, other users' never wait,
//! and no row needs to exist to be locked, as a first key's would. A hash
//! collision of two users only makes them wait for each other. Two devices
//! writing the same key serialise on that lock too, and the write itself is
//! an upsert, so they end with one value (the later) and no error.

use crate::crypto::Aad;
use crate::db::{Conn, Dialect};
use crate::rows::{crypto_err, millis, time_of};
use crate::store::SqlStore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use switchboard_core::memory::MemoryItem;
use switchboard_core::store::memory::{PutMemory, PutOutcome};
use switchboard_core::store::StoreError;
use uuid::Uuid;

/// The value's column in its associated data.
pub const MEMORY_VALUE: &str = "memory_value";

const ROW_ID_LABEL: &[u8] = b"switchboard/memory/row/v1";
const LOCK_LABEL: &[u8] = b"switchboard/memory/lock/v1";

/// `$1` tenant, `$2` subject.
const LIST: &str = "SELECT key, value, updated_at FROM memory WHERE tenant_id = $1 AND subject = $2 \
     ORDER BY key";
/// `$1` tenant, `$2` subject, `$3` key.
const GET: &str = "SELECT key, value, updated_at FROM memory \
     WHERE tenant_id = $1 AND subject = $2 AND key = $3";
/// PostgreSQL only: `$1` the (tenant, subject)'s lock ([`lock_key`]),
/// held until the transaction ends.
const LOCK_OWNER: &str = "SELECT pg_advisory_xact_lock($1)";
/// `$1` tenant, `$2` subject, `$3` key: how many keys the memory holds,
/// and whether `$3` is one of them.
const COUNT: &str = "SELECT count(*) AS held, count(CASE WHEN key = $3 THEN 1 END) AS present \
     FROM memory WHERE tenant_id = $1 AND subject = $2";
/// `$1` tenant, `$2` subject, `$3` key, `$4` row id, `$5` the value
/// (sealed), `$6` now.
const UPSERT: &str = "INSERT INTO memory (tenant_id, subject, key, id, value, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (tenant_id, subject, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
/// `$1` tenant, `$2` subject, `$3` key.
const DELETE: &str = "DELETE FROM memory WHERE tenant_id = $1 AND subject = $2 AND key = $3";
/// `$1` tenant, `$2` subject.
const CLEAR: &str = "DELETE FROM memory WHERE tenant_id = $1 AND subject = $2";

/// The uuid an entry's value is sealed under (see the module comment).
pub fn row_id(tenant_id: &str, subject: &str, key: &str) -> Uuid {
    let digest = framed_digest(ROW_ID_LABEL, &[tenant_id, subject, key]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The place of an entry's value: `id` is [`row_id`] of the entry.
pub fn place(tenant_id: &str, id: Uuid) -> Aad<'_> {
    Aad { tenant_id, session_id: id, seq: 0, column: MEMORY_VALUE }
}

/// The advisory lock of one user's memory: the same on every node and
/// every build, as it is a digest, not a `Hash` of this process.
fn lock_key(tenant_id: &str, subject: &str) -> i64 {
    let digest = framed_digest(LOCK_LABEL, &[tenant_id, subject]);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Each field length-prefixed, so no two different lists hash alike.
fn framed_digest(label: &[u8], fields: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(label);
    for field in fields {
        hash.update(u64::try_from(field.len()).unwrap_or(u64::MAX).to_be_bytes());
        hash.update(field.as_bytes());
    }
    hash.finalize().into()
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    key: String,
    value: Vec<u8>,
    updated_at: i64,
}

impl EntryRow {
    fn decode(self, tenant_id: &str, subject: &str, store: &SqlStore) -> Result<MemoryItem, StoreError> {
        let id = row_id(tenant_id, subject, &self.key);
        let value = store.cipher.decrypt_string(&place(tenant_id, id), &self.value).map_err(crypto_err)?;
        Ok(MemoryItem { value, updated_at: time_of("memory.updated_at", self.updated_at)?, key: self.key })
    }
}

pub async fn list(store: &SqlStore, tenant_id: &str, subject: &str) -> Result<Vec<MemoryItem>, StoreError> {
    let rows: Vec<EntryRow> = store.reader.all(LIST, &[tenant_id.into(), subject.into()]).await?;
    rows.into_iter().map(|row| row.decode(tenant_id, subject, store)).collect()
}

pub async fn get(
    store: &SqlStore,
    tenant_id: &str,
    subject: &str,
    key: &str,
) -> Result<Option<MemoryItem>, StoreError> {
    let row: Option<EntryRow> =
        store.reader.optional(GET, &[tenant_id.into(), subject.into(), key.into()]).await?;
    row.map(|row| row.decode(tenant_id, subject, store)).transpose()
}

/// Sealed before the write (a write never encrypts: on SQLite every write
/// of the process passes through one connection), then counted and written
/// in one transaction.
pub async fn put(store: &SqlStore, put: &PutMemory) -> Result<PutOutcome, StoreError> {
    let id = row_id(&put.tenant_id, &put.owner, &put.key);
    let sealed = store.cipher.encrypt_str(&place(&put.tenant_id, id), &put.value).map_err(crypto_err)?;
    let updated_at = time_of("memory.updated_at", millis(&put.now))?;
    let job = Arc::new((put.clone(), id.to_string(), sealed));
    let written = store
        .write(move |mut conn: Conn<'_>| {
            let job = job.clone();
            Box::pin(async move {
                let (put, id, sealed) = &*job;
                if conn.dialect() == Dialect::Postgres {
                    conn.execute(LOCK_OWNER, &[lock_key(&put.tenant_id, &put.owner).into()]).await?;
                }
                let entry = [(&put.tenant_id).into(), (&put.owner).into(), (&put.key).into()];
                let (held, present): (i64, i64) = conn.one(COUNT, &entry).await?;
                if present == 0 && held >= i64::from(put.max_keys) {
                    return Ok(false);
                }
                let [tenant, owner, key] = entry;
                conn.execute(UPSERT, &[tenant, owner, key, id.into(), sealed.into(), (&put.now).into()])
                    .await?;
                Ok(true)
            })
        })
        .await?;
    Ok(match written {
        true => {
            PutOutcome::Written(MemoryItem { key: put.key.clone(), value: put.value.clone(), updated_at })
        }
        false => PutOutcome::Full,
    })
}

pub async fn delete(store: &SqlStore, tenant_id: &str, subject: &str, key: &str) -> Result<bool, StoreError> {
    let entry = Arc::new([tenant_id.to_owned(), subject.to_owned(), key.to_owned()]);
    store
        .write_one(move |mut conn: Conn<'_>| {
            let entry = entry.clone();
            Box::pin(async move {
                let params = [(&entry[0]).into(), (&entry[1]).into(), (&entry[2]).into()];
                Ok(conn.execute(DELETE, &params).await? > 0)
            })
        })
        .await
}

pub async fn clear(store: &SqlStore, tenant_id: &str, subject: &str) -> Result<u64, StoreError> {
    let owner = Arc::new([tenant_id.to_owned(), subject.to_owned()]);
    store
        .write_one(move |mut conn: Conn<'_>| {
            let owner = owner.clone();
            Box::pin(async move { Ok(conn.execute(CLEAR, &[(&owner[0]).into(), (&owner[1]).into()]).await?) })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Cipher, CryptoError};
    use crate::Keyring;

    #[test]
    fn row_ids_are_stable_custom_uuids_of_all_three_fields() {
        let id = row_id("acme", "user:alice", "size");
        assert_eq!(id, row_id("acme", "user:alice", "size"));
        assert_eq!(id.get_version_num(), 8);
        for other in [
            row_id("acme2", "user:alice", "size"),
            row_id("acme", "user:alice2", "size"),
            row_id("acme", "user:alice", "size2"),
            // Framing: moving a character between fields is another place.
            row_id("acm", "euser:alice", "size"),
            row_id("acme", "user:alices", "ize"),
        ] {
            assert_ne!(id, other);
        }
        assert_ne!(lock_key("acme", "user:alice"), lock_key("acme", "user:bob"));
        assert_eq!(lock_key("acme", "user:alice"), lock_key("acme", "user:alice"));
    }

    #[test]
    fn a_value_moved_to_another_key_user_or_tenant_does_not_decrypt() {
        let cipher = Cipher::new(Keyring::generate("k1"));
        let at = |tenant, subject, key| (tenant, row_id(tenant, subject, key));
        let (tenant, id) = at("acme", "user:alice", "size");
        let sealed = cipher.encrypt_str(&place(tenant, id), "M").unwrap();
        assert_eq!(cipher.decrypt_string(&place(tenant, id), &sealed).unwrap(), "M");
        for (tenant, id) in [
            at("acme", "user:alice", "likes"),
            at("acme", "user:bob", "size"),
            at("globex", "user:alice", "size"),
        ] {
            assert_eq!(cipher.decrypt(&place(tenant, id), &sealed).unwrap_err(), CryptoError::Decrypt);
        }
        // The right uuid under another tenant name fails too.
        assert_eq!(cipher.decrypt(&place("globex", id), &sealed).unwrap_err(), CryptoError::Decrypt);
    }
}
