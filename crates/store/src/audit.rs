//! The audit log's table (SPEC §12): one append at a time across nodes
//! (PostgreSQL takes a transaction-scoped advisory lock; SQLite's one writer
//! already runs writes one at a time), each entry sealed inside the
//! transaction that reads the seal before it. The same SQL on both backends.

const COLUMNS: &str = "seq, at, actor, actor_name, tenant_id, action, target, detail, key_id, prev_mac, mac";

pub const LAST: &str = "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1";
pub const INSERT: &str = "INSERT INTO audit_log \
     (seq, at, actor, actor_name, tenant_id, action, target, detail, key_id, prev_mac, mac) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

pub fn page_sql(tenant: bool) -> String {
    let filter = if tenant { "tenant_id = $3 AND " } else { "" };
    format!("SELECT {COLUMNS} FROM audit_log WHERE {filter}seq < $1 ORDER BY seq DESC LIMIT $2")
}

pub fn after_sql() -> String {
    format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
}

pub type Row = (i64, i64, String, String, Option<String>, String, String, String, String, String, String);

pub fn entry(row: Row) -> Result<switchboard_core::audit::AuditEntry, switchboard_core::store::StoreError> {
    let (seq, at, actor, actor_name, tenant_id, action, target, detail, key_id, prev_mac, mac) = row;
    Ok(switchboard_core::audit::AuditEntry {
        seq,
        entry: switchboard_core::audit::NewAuditEntry {
            at: crate::rows::time_of("at", at)?,
            actor,
            actor_name,
            tenant_id,
            action,
            target,
            detail,
        },
        key_id,
        prev_mac,
        mac,
    })
}

/// `impl_audit!(Type, conn = Connection, lock = SQL)`: inherent methods the
/// `Store` impl calls; `lock` serialises appends across nodes.
macro_rules! impl_audit {
    ($store:ty, conn = $conn:ty, lock = $lock:expr) => {
        impl $store {
            async fn append_audit_in_db(
                &self,
                new: &switchboard_core::audit::NewAuditEntry,
                key_id: &str,
                key: &[u8],
            ) -> Result<switchboard_core::audit::AuditEntry, switchboard_core::store::StoreError> {
                let shared = std::sync::Arc::new((new.clone(), key_id.to_owned(), key.to_vec()));
                self.write(move |conn: &mut $conn| {
                    let shared = shared.clone();
                    Box::pin(async move {
                        let (new, key_id, key) = &*shared;
                        sqlx::query($lock).execute(&mut *conn).await?;
                        let last: Option<(i64, String)> =
                            sqlx::query_as($crate::audit::LAST).fetch_optional(&mut *conn).await?;
                        let (prev_seq, prev_mac) =
                            last.unwrap_or((0, switchboard_core::audit::GENESIS.to_owned()));
                        let seq = prev_seq + 1;
                        let mac = switchboard_core::audit::seal(key, key_id, seq, new, &prev_mac)
                            .map_err(|e| switchboard_core::store::StoreError::Crypto(e.to_string()))?;
                        sqlx::query($crate::audit::INSERT)
                            .bind(seq)
                            .bind($crate::rows::millis(&new.at))
                            .bind(&new.actor)
                            .bind(&new.actor_name)
                            .bind(&new.tenant_id)
                            .bind(&new.action)
                            .bind(&new.target)
                            .bind(&new.detail)
                            .bind(key_id)
                            .bind(&prev_mac)
                            .bind(&mac)
                            .execute(&mut *conn)
                            .await?;
                        Ok(switchboard_core::audit::AuditEntry {
                            seq,
                            entry: new.clone(),
                            key_id: key_id.clone(),
                            prev_mac,
                            mac,
                        })
                    })
                })
                .await
            }

            async fn audit_page_in_db(
                &self,
                tenant_id: Option<&str>,
                before: i64,
                limit: u32,
            ) -> Result<Vec<switchboard_core::audit::AuditEntry>, switchboard_core::store::StoreError> {
                let sql = $crate::audit::page_sql(tenant_id.is_some());
                let mut query =
                    sqlx::query_as::<_, $crate::audit::Row>(&sql).bind(before).bind(i64::from(limit));
                if let Some(t) = tenant_id {
                    query = query.bind(t);
                }
                let rows = query.fetch_all(&self.reader).await.map_err($crate::rows::db_err)?;
                rows.into_iter().map($crate::audit::entry).collect()
            }

            async fn audit_after_in_db(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<switchboard_core::audit::AuditEntry>, switchboard_core::store::StoreError> {
                let sql = $crate::audit::after_sql();
                let rows = sqlx::query_as::<_, $crate::audit::Row>(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await
                    .map_err($crate::rows::db_err)?;
                rows.into_iter().map($crate::audit::entry).collect()
            }
        }
    };
}
pub(crate) use impl_audit;
