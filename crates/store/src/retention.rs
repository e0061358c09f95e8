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

use crate::db::Conn;
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::retention::Purged;
use switchboard_core::store::StoreError;
use switchboard_core::time::Timestamp;

/// Sessions of tenant `$1` holding the oldest messages created before `$2`
/// (among the first `$3` such messages), so a batch reads a bounded slice of
/// the `(tenant_id, created_at)` index.
const EXPIRED_SESSIONS: &str = "SELECT DISTINCT session_id FROM (SELECT session_id FROM messages \
     WHERE tenant_id = $1 AND created_at < $2 AND status <> 'streaming' ORDER BY created_at LIMIT $3) \
     AS expired ORDER BY session_id";
/// Up to `$3` of session `$1`'s messages created before `$2`, oldest first.
const DELETE_EXPIRED: &str = "DELETE FROM messages WHERE session_id = $1 AND seq IN \
     (SELECT seq FROM messages WHERE session_id = $1 AND created_at < $2 AND status <> 'streaming' \
     ORDER BY seq LIMIT $3)";
/// `$2` messages of session `$1` were deleted.
const UNCOUNT: &str = "UPDATE sessions SET message_count = \
     CASE WHEN message_count > $2 THEN message_count - $2 ELSE 0 END WHERE id = $1";

/// Session `$1` of tenant `$2`, if it still exists.
const TAKE_SESSION: &str = "SELECT 1 FROM sessions WHERE id = $1 AND tenant_id = $2";
/// The same, locked, unless a writer holds it (PostgreSQL).
const TAKE_SESSION_SKIP_LOCKED: &str =
    "SELECT 1 FROM sessions WHERE id = $1 AND tenant_id = $2 FOR UPDATE SKIP LOCKED";
/// Up to `$3` of tenant `$1`'s sessions without messages, idle since before `$2`.
const DELETE_EMPTY: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions s \
     WHERE s.tenant_id = $1 AND s.last_activity_at < $2 \
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id) \
     ORDER BY s.last_activity_at LIMIT $3)";
/// The same, each row locked first (PostgreSQL). A turn that committed
/// meanwhile moved `last_activity_at`, which the lock re-checks on the new row.
const DELETE_EMPTY_SKIP_LOCKED: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions s \
     WHERE s.tenant_id = $1 AND s.last_activity_at < $2 \
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id) \
     ORDER BY s.last_activity_at LIMIT $3 FOR UPDATE SKIP LOCKED)";

/// One batch of tenant `tenant_id`'s sweep: at most `limit` messages created
/// before `before`, then at most `limit` sessions left empty.
pub async fn purge_expired(
    store: &SqlStore,
    tenant_id: &str,
    before: Timestamp,
    limit: u32,
) -> Result<Purged, StoreError> {
    let tenant_id = Arc::new(tenant_id.to_owned());
    let before = before.timestamp_millis();
    let limit = i64::from(limit);
    store
        .write(move |mut conn: Conn<'_>| {
            let tenant_id = tenant_id.clone();
            Box::pin(async move {
                let dialect = conn.dialect();
                let tenant = tenant_id.as_str();
                let mut purged = Purged::default();
                let sessions: Vec<(String,)> =
                    conn.all(EXPIRED_SESSIONS, &[tenant.into(), before.into(), limit.into()]).await?;
                for (session_id,) in &sessions {
                    let left = limit - i64::try_from(purged.messages).unwrap_or(limit);
                    if left <= 0 {
                        break;
                    }
                    let take = dialect.pick(TAKE_SESSION, TAKE_SESSION_SKIP_LOCKED);
                    let taken: Option<(i32,)> =
                        conn.optional(take, &[session_id.into(), tenant.into()]).await?;
                    if taken.is_none() {
                        continue;
                    }
                    let deleted = conn
                        .execute(DELETE_EXPIRED, &[session_id.into(), before.into(), left.into()])
                        .await?;
                    if deleted > 0 {
                        let count = i64::try_from(deleted).unwrap_or(i64::MAX);
                        conn.execute(UNCOUNT, &[session_id.into(), count.into()]).await?;
                    }
                    purged.messages += deleted;
                }
                let empty = dialect.pick(DELETE_EMPTY, DELETE_EMPTY_SKIP_LOCKED);
                purged.sessions = conn.execute(empty, &[tenant.into(), before.into(), limit.into()]).await?;
                Ok(purged)
            })
        })
        .await
}
