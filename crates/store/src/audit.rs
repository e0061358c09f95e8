//! The audit log's table (SPEC §12): one append at a time across nodes
//! (PostgreSQL takes a transaction-scoped advisory lock; SQLite's one writer
//! already runs writes one at a time), each entry sealed inside the
//! transaction that reads the seal before it. The same SQL on both backends.

use crate::db::{Conn, Dialect};
use crate::rows::time_of;
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::audit::{AuditEntry, NewAuditEntry, GENESIS};
use switchboard_core::store::StoreError;

/// Audit appends of every node queue here, until their transaction ends
/// (SQLite's one writer needs no lock).
const LOCK_POSTGRES: &str = "SELECT pg_advisory_xact_lock(7369617564697400)";

const COLUMNS: &str = "seq, at, actor, actor_name, tenant_id, action, target, detail, key_id, prev_mac, mac";

const LAST: &str = "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1";
const INSERT: &str = "INSERT INTO audit_log \
     (seq, at, actor, actor_name, tenant_id, action, target, detail, key_id, prev_mac, mac) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

fn page_sql(tenant: bool) -> String {
    let filter = if tenant { "tenant_id = $3 AND " } else { "" };
    format!("SELECT {COLUMNS} FROM audit_log WHERE {filter}seq < $1 ORDER BY seq DESC LIMIT $2")
}

fn after_sql() -> String {
    format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
}

type Row = (i64, i64, String, String, Option<String>, String, String, String, String, String, String);

fn entry(row: Row) -> Result<AuditEntry, StoreError> {
    let (seq, at, actor, actor_name, tenant_id, action, target, detail, key_id, prev_mac, mac) = row;
    Ok(AuditEntry {
        seq,
        entry: NewAuditEntry { at: time_of("at", at)?, actor, actor_name, tenant_id, action, target, detail },
        key_id,
        prev_mac,
        mac,
    })
}

/// Seals `new` after the last entry and appends it.
pub async fn append(
    store: &SqlStore,
    new: &NewAuditEntry,
    key_id: &str,
    key: &[u8],
) -> Result<AuditEntry, StoreError> {
    let shared = Arc::new((new.clone(), key_id.to_owned(), key.to_vec()));
    store
        .write(move |mut conn: Conn<'_>| {
            let shared = shared.clone();
            Box::pin(async move {
                let (new, key_id, key) = &*shared;
                if conn.dialect() == Dialect::Postgres {
                    conn.execute(LOCK_POSTGRES, &[]).await?;
                }
                let last: Option<(i64, String)> = conn.optional(LAST, &[]).await?;
                let (prev_seq, prev_mac) = last.unwrap_or((0, GENESIS.to_owned()));
                let seq = prev_seq + 1;
                let mac = switchboard_core::audit::seal(key, key_id, seq, new, &prev_mac)
                    .map_err(|e| StoreError::Crypto(e.to_string()))?;
                let params = [
                    seq.into(),
                    (&new.at).into(),
                    (&new.actor).into(),
                    (&new.actor_name).into(),
                    (&new.tenant_id).into(),
                    (&new.action).into(),
                    (&new.target).into(),
                    (&new.detail).into(),
                    key_id.into(),
                    (&prev_mac).into(),
                    (&mac).into(),
                ];
                conn.execute(INSERT, &params).await?;
                Ok(AuditEntry { seq, entry: new.clone(), key_id: key_id.clone(), prev_mac, mac })
            })
        })
        .await
}

/// Newest first, before seq `before`; one tenant's or all.
pub async fn page(
    store: &SqlStore,
    tenant_id: Option<&str>,
    before: i64,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut params = vec![before.into(), i64::from(limit).into()];
    if let Some(t) = tenant_id {
        params.push(t.into());
    }
    let rows: Vec<Row> = store.reader.all(&page_sql(tenant_id.is_some()), &params).await?;
    rows.into_iter().map(entry).collect()
}

/// Oldest first, after seq `after`.
pub async fn after(store: &SqlStore, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    let rows: Vec<Row> = store.reader.all(&after_sql(), &[after.into(), i64::from(limit).into()]).await?;
    rows.into_iter().map(entry).collect()
}
