//! The retention sweep's batches (SPEC §11.6): a tenant's messages created
//! before its cutoff, then its sessions left empty and idle since before it.
//! The per-session cap is not here: it is part of `begin_turn`'s writes.
//!
//! One batch is one short transaction. Messages go session by session, each
//! session's row taken first: a turn locks its session row and then deletes
//! the oldest messages over the cap, so taking rows in the same order keeps
//! the two from deadlocking on PostgreSQL, and a session a turn holds is
//! skipped (`SKIP LOCKED`) and left for the next batch. SQLite has one writer,
//! so there nothing can hold a row and its statements just leave the lock out.
//! `impl_retention!` expands the batch for each backend, like `impl_links!`.

/// Sessions of tenant `$1` holding the oldest messages created before `$2`
/// (among the first `$3` such messages), so a batch reads a bounded slice of
/// the `(tenant_id, created_at)` index.
pub const EXPIRED_SESSIONS: &str = "SELECT DISTINCT session_id FROM (SELECT session_id FROM messages \
     WHERE tenant_id = $1 AND created_at < $2 AND status <> 'streaming' ORDER BY created_at LIMIT $3) \
     AS expired ORDER BY session_id";
/// Up to `$3` of session `$1`'s messages created before `$2`, oldest first.
pub const DELETE_EXPIRED: &str = "DELETE FROM messages WHERE session_id = $1 AND seq IN \
     (SELECT seq FROM messages WHERE session_id = $1 AND created_at < $2 AND status <> 'streaming' \
     ORDER BY seq LIMIT $3)";
/// `$2` messages of session `$1` were deleted.
pub const UNCOUNT: &str = "UPDATE sessions SET message_count = \
     CASE WHEN message_count > $2 THEN message_count - $2 ELSE 0 END WHERE id = $1";

/// What differs: whether a row can be held by another writer.
pub mod sqlite {
    /// Session `$1` of tenant `$2`, if it still exists.
    pub const TAKE_SESSION: &str = "SELECT 1 FROM sessions WHERE id = $1 AND tenant_id = $2";
    /// Up to `$3` of tenant `$1`'s sessions without messages, idle since before `$2`.
    pub const DELETE_EMPTY: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions s \
         WHERE s.tenant_id = $1 AND s.last_activity_at < $2 \
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id) \
         ORDER BY s.last_activity_at LIMIT $3)";
}

pub mod postgres {
    /// Session `$1` of tenant `$2`, locked, unless a writer holds it.
    pub const TAKE_SESSION: &str =
        "SELECT 1 FROM sessions WHERE id = $1 AND tenant_id = $2 FOR UPDATE SKIP LOCKED";
    /// As on SQLite, each row locked first. A turn that committed meanwhile
    /// moved `last_activity_at`, which the lock re-checks on the new row.
    pub const DELETE_EMPTY: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions s \
         WHERE s.tenant_id = $1 AND s.last_activity_at < $2 \
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id) \
         ORDER BY s.last_activity_at LIMIT $3 FOR UPDATE SKIP LOCKED)";
}

/// `impl_retention!(Type, conn = Connection, dialect = module)`: inherent
/// `purge_expired_in_db`, which the `Store` impl calls.
macro_rules! impl_retention {
    ($store:ty, conn = $conn:ty, dialect = $dialect:path) => {
        impl $store {
            async fn purge_expired_in_db(
                &self,
                tenant_id: &str,
                before: switchboard_core::time::Timestamp,
                limit: u32,
            ) -> Result<switchboard_core::retention::Purged, switchboard_core::store::StoreError> {
                use $crate::retention as r;
                use $dialect as dialect;
                let shared = std::sync::Arc::new(tenant_id.to_owned());
                let before = $crate::rows::millis(&before);
                let limit = i64::from(limit);
                self.write(move |conn: &mut $conn| {
                    let tenant_id = shared.clone();
                    Box::pin(async move {
                        let mut purged = switchboard_core::retention::Purged::default();
                        let sessions: Vec<String> = sqlx::query_scalar(r::EXPIRED_SESSIONS)
                            .bind(tenant_id.as_str())
                            .bind(before)
                            .bind(limit)
                            .fetch_all(&mut *conn)
                            .await?;
                        for session_id in &sessions {
                            let left = limit - i64::try_from(purged.messages).unwrap_or(limit);
                            if left <= 0 {
                                break;
                            }
                            let taken: Option<i32> = sqlx::query_scalar(dialect::TAKE_SESSION)
                                .bind(session_id)
                                .bind(tenant_id.as_str())
                                .fetch_optional(&mut *conn)
                                .await?;
                            if taken.is_none() {
                                continue;
                            }
                            let deleted = sqlx::query(r::DELETE_EXPIRED)
                                .bind(session_id)
                                .bind(before)
                                .bind(left)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            if deleted > 0 {
                                sqlx::query(r::UNCOUNT)
                                    .bind(session_id)
                                    .bind(i64::try_from(deleted).unwrap_or(i64::MAX))
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            purged.messages += deleted;
                        }
                        purged.sessions = sqlx::query(dialect::DELETE_EMPTY)
                            .bind(tenant_id.as_str())
                            .bind(before)
                            .bind(limit)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        Ok(purged)
                    })
                })
                .await
            }
        }
    };
}
pub(crate) use impl_retention;
