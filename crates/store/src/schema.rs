//! Getting a database ready to serve: migrations, the check that the schema is
//! current, and the key check (an encrypted canary per key id, so a node given
//! the wrong encryption keys refuses to start instead of writing content that
//! no other node can read).

use crate::crypto::{stored_kid, Aad, Cipher};
use crate::db::{Conn, Reader};
use crate::store::{Backend, SqlStore};
use crate::{postgres, sqlite, StoreOpenError};
use sqlx::migrate::Migrator;
use std::sync::Arc;
use uuid::Uuid;

const CANARY: &[u8] = b"switchboard key check v1";
/// The canary's column in its associated data.
pub(crate) const CANARY_COLUMN: &str = "keycheck";

const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success = TRUE";
const LIST_CANARIES: &str = "SELECT kid, canary FROM keycheck";
/// `$1` kid, `$2` canary, `$3` now.
const INSERT_CANARY: &str =
    "INSERT INTO keycheck (kid, canary, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING";

/// Runs the migrations (idempotent), then the key check.
pub async fn migrate(store: &SqlStore) -> Result<(), StoreOpenError> {
    match &store.backend {
        Backend::Sqlite(s) => s.run_migrations().await?,
        Backend::Postgres(p) => p.run_migrations().await?,
    }
    check_keys(store).await
}

/// Refuses a database whose schema lacks any of this build's migrations, then
/// runs the key check.
pub async fn ensure_ready(store: &SqlStore) -> Result<(), StoreOpenError> {
    let applied = applied_migrations(store).await?;
    let migrator: &Migrator = match &store.backend {
        Backend::Sqlite(_) => &sqlite::MIGRATOR,
        Backend::Postgres(_) => &postgres::MIGRATOR,
    };
    let missing = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .any(|m| !applied.contains(&m.version));
    if missing {
        return Err(StoreOpenError::NotMigrated);
    }
    check_keys(store).await
}

/// Versions of the migrations recorded as applied; empty when none ran.
async fn applied_migrations(store: &SqlStore) -> Result<Vec<i64>, StoreOpenError> {
    let exists = match &store.reader {
        Reader::Sqlite(_) => {
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Reader::Postgres(_) => "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
    };
    let (exists,): (bool,) = store.reader.one(exists, &[]).await.map_err(open_err)?;
    if !exists {
        return Ok(Vec::new());
    }
    let versions: Vec<(i64,)> = store.reader.all(APPLIED_MIGRATIONS, &[]).await.map_err(open_err)?;
    Ok(versions.into_iter().map(|(v,)| v).collect())
}

/// Every canary whose kid the keyring has must decrypt (same kid, other key
/// bytes is a misconfigured node), and when the database has canaries at
/// least one must decrypt. The current kid gets a canary the first time.
async fn check_keys(store: &SqlStore) -> Result<(), StoreOpenError> {
    let cipher = &store.cipher;
    let stored = canaries(store).await?;
    judge(&stored, cipher)?;
    let current = cipher.keyring().current_kid();
    if stored.iter().all(|(kid, _)| kid != current) {
        let canary = cipher.encrypt(&canary_place(), CANARY).map_err(|_| StoreOpenError::Crypto)?;
        add_canary(store, current, canary).await?;
        // Another node may have registered the same kid first, with its key.
        judge(&canaries(store).await?, cipher)?;
    }
    Ok(())
}

async fn canaries(store: &SqlStore) -> Result<Vec<(String, Vec<u8>)>, StoreOpenError> {
    store.reader.all(LIST_CANARIES, &[]).await.map_err(open_err)
}

/// Stores the canary unless the kid already has one.
async fn add_canary(store: &SqlStore, kid: &str, canary: Vec<u8>) -> Result<(), StoreOpenError> {
    let row = Arc::new((kid.to_owned(), canary, chrono::Utc::now()));
    store
        .write_one(move |mut conn: Conn<'_>| {
            let row = row.clone();
            Box::pin(async move {
                let (kid, canary, now) = &*row;
                conn.execute(INSERT_CANARY, &[kid.into(), canary.into(), now.into()]).await?;
                Ok(())
            })
        })
        .await
        .map_err(open_err)
}

fn open_err(e: switchboard_core::store::StoreError) -> StoreOpenError {
    StoreOpenError::Database(e.to_string())
}

/// A canary is judged by the key id inside its value, not by its row's kid:
/// `keys rotate` re-encrypts every canary under the active key, so that once
/// the old key is removed no value under it is left, and the row keeps its
/// kid only as a name.
fn judge(stored: &[(String, Vec<u8>)], cipher: &Cipher) -> Result<(), StoreOpenError> {
    let mut readable = false;
    let mut database_kids: Vec<&str> = Vec::new();
    for (row_kid, canary) in stored {
        let Some(kid) = stored_kid(canary) else {
            return Err(StoreOpenError::KeyConflict { kid: row_kid.clone() });
        };
        if !database_kids.contains(&kid) {
            database_kids.push(kid);
        }
        if cipher.keyring().key(kid).is_none() {
            continue;
        }
        match cipher.decrypt(&canary_place(), canary) {
            Ok(plain) if plain == CANARY => readable = true,
            _ => return Err(StoreOpenError::KeyConflict { kid: kid.to_owned() }),
        }
    }
    if !stored.is_empty() && !readable {
        return Err(StoreOpenError::KeysCannotDecrypt { database_kids: database_kids.join(", ") });
    }
    Ok(())
}

/// Where a canary lives, as associated data (no tenant, session or seq).
pub(crate) fn canary_place() -> Aad<'static> {
    Aad { tenant_id: "", session_id: Uuid::nil(), seq: 0, column: CANARY_COLUMN }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keyring;

    fn canary(keyring: &Keyring) -> (String, Vec<u8>) {
        let cipher = Cipher::new(keyring.clone());
        (keyring.current_kid().to_owned(), cipher.encrypt(&canary_place(), CANARY).unwrap())
    }

    #[test]
    fn judges_keyrings_against_canaries() {
        let k1 = Keyring::generate("k1");
        let rotated = k1.rotated("k2").unwrap();
        let stranger = Keyring::generate("k1");
        let other_kid = Keyring::generate("k9");
        let db = vec![canary(&k1)];
        assert!(judge(&[], &Cipher::new(stranger.clone())).is_ok());
        assert!(judge(&db, &Cipher::new(k1.clone())).is_ok());
        assert!(judge(&db, &Cipher::new(rotated.clone())).is_ok());
        let both = vec![canary(&k1), canary(&rotated)];
        assert!(judge(&both, &Cipher::new(rotated.clone())).is_ok());
        // After rotation the old key may be dropped: the new one still reads.
        let only_k2 = Keyring::parse(rotated.to_spec().split(',').next().unwrap()).unwrap();
        assert!(judge(&both, &Cipher::new(only_k2)).is_ok());
        assert!(matches!(judge(&db, &Cipher::new(stranger)), Err(StoreOpenError::KeyConflict { .. })));
        assert!(matches!(judge(&db, &Cipher::new(other_kid)), Err(StoreOpenError::KeysCannotDecrypt { .. })));
    }

    #[test]
    fn canaries_resealed_by_rotation_are_judged_by_their_value() {
        let k1 = Keyring::generate("k1");
        let rotated = k1.rotated("k2").unwrap();
        let only_k2 = Keyring::parse(rotated.to_spec().split(',').next().unwrap()).unwrap();
        // After `keys rotate`: the k1 row holds a value under k2.
        let resealed = ("k1".to_owned(), canary(&rotated).1);
        let db = vec![resealed, canary(&rotated)];
        assert!(judge(&db, &Cipher::new(rotated.clone())).is_ok());
        assert!(judge(&db, &Cipher::new(only_k2.clone())).is_ok());
        // A node still on the old key alone reads none of it, and is told so.
        let err = judge(&db, &Cipher::new(k1)).unwrap_err();
        assert!(matches!(&err, StoreOpenError::KeysCannotDecrypt { database_kids } if database_kids == "k2"));
        // k1 given with other bytes no longer matters: nothing is under k1.
        let other_k1 = format!("{},k1:{}", only_k2.to_spec(), "A".repeat(43) + "=");
        assert!(judge(&db, &Cipher::new(Keyring::parse(&other_k1).unwrap())).is_ok());
        let garbage = vec![("k2".to_owned(), vec![9u8, 1, 2])];
        assert!(matches!(judge(&garbage, &Cipher::new(rotated)), Err(StoreOpenError::KeyConflict { .. })));
    }
}
