//! Erasing a subject of a tenant (SPEC §18, `DELETE /v1/me` and its admin
//! twin) in one transaction: every row that names the subject or one of
//! its sessions goes, except the tenant's daily totals (they name nobody).
//!
//! On PostgreSQL the subject's session rows are locked first, in id order:
//! a turn locks its session row before it touches messages, so taking the
//! rows in the same order keeps the erase and a late turn from deadlocking;
//! the turn then finds its session gone. SQLite has one writer, so there
//! nothing runs between the statements and the lock is left out.
//!
//! Visitor links. A link says "visitor V became user U" and makes every
//! node refuse V's tokens. Erasing U (or V) blanks the link's user side but
//! keeps the row: it no longer says who V became, only that V's tokens are
//! refused. Erasing a visitor with no link adds such a row, which is how its
//! token is revoked on every node (`identity::revoked` reads the table).

use crate::db::{Conn, Dialect};
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::store::{EraseSubject, Erased, StoreError};
use switchboard_core::Subject;

/// `$1` tenant, `$2` subject, in every statement below.
const LOCK_SESSIONS: &str =
    "SELECT id FROM sessions WHERE tenant_id = $1 AND owner = $2 ORDER BY id FOR UPDATE";
const OWNED: &str = "SELECT id FROM sessions WHERE tenant_id = $1 AND owner = $2";
/// Rows hanging off the subject's sessions, then the sessions themselves.
const DELETE_MESSAGES: &str = "DELETE FROM messages WHERE session_id IN \
     (SELECT id FROM sessions WHERE tenant_id = $1 AND owner = $2)";
const DELETE_OUTBOX: &str = "DELETE FROM outbox WHERE session_id IN \
     (SELECT id FROM sessions WHERE tenant_id = $1 AND owner = $2)";
const DELETE_CONVERSATIONS: &str = "DELETE FROM provider_conversations WHERE session_id IN \
     (SELECT id FROM sessions WHERE tenant_id = $1 AND owner = $2)";
/// Usage recorded under the subject, or in one of its sessions (a linked
/// visitor's turns were recorded under the visitor).
const DELETE_USAGE: &str = "DELETE FROM usage_events WHERE tenant_id = $1 AND (subject = $2 OR \
     session_id IN (SELECT id FROM sessions WHERE tenant_id = $1 AND owner = $2))";
const DELETE_SESSIONS: &str = "DELETE FROM sessions WHERE tenant_id = $1 AND owner = $2";
const DELETE_SUBJECT_USAGE: &str = "DELETE FROM usage_subject_daily WHERE tenant_id = $1 AND subject = $2";
const DELETE_RESERVATIONS: &str = "DELETE FROM budget_reservations WHERE tenant_id = $1 AND subject = $2";
const DELETE_MEMORY: &str = "DELETE FROM memory WHERE tenant_id = $1 AND subject = $2";
const BLANK_LINKS: &str = "UPDATE visitor_links SET user_subject = '' \
     WHERE tenant_id = $1 AND user_subject <> '' AND (user_subject = $2 OR visitor = $2)";
/// `$3` now: a visitor erased without a link is revoked from now on.
const REVOKE_VISITOR: &str = "INSERT INTO visitor_links (tenant_id, visitor, user_subject, linked_at) \
     VALUES ($1, $2, '', $3) ON CONFLICT (tenant_id, visitor) DO NOTHING";

pub async fn erase(store: &SqlStore, erase: &EraseSubject) -> Result<Erased, StoreError> {
    let erase = Arc::new(erase.clone());
    store
        .write(move |mut conn: Conn<'_>| {
            let erase = erase.clone();
            Box::pin(async move {
                let by = [(&erase.tenant_id).into(), (&erase.subject).into()];
                let sessions: Vec<(String,)> = if conn.dialect() == Dialect::Postgres {
                    conn.all(LOCK_SESSIONS, &by).await?
                } else {
                    conn.all(OWNED, &by).await?
                };
                let messages = conn.execute(DELETE_MESSAGES, &by).await?;
                conn.execute(DELETE_CONVERSATIONS, &by).await?;
                conn.execute(DELETE_OUTBOX, &by).await?;
                conn.execute(DELETE_USAGE, &by).await?;
                conn.execute(DELETE_SESSIONS, &by).await?;
                conn.execute(DELETE_SUBJECT_USAGE, &by).await?;
                conn.execute(DELETE_RESERVATIONS, &by).await?;
                let memory = conn.execute(DELETE_MEMORY, &by).await?;
                let links = conn.execute(BLANK_LINKS, &by).await?;
                if matches!(Subject::parse(&erase.subject), Some(Subject::Visitor(_))) {
                    let revoke = [(&erase.tenant_id).into(), (&erase.subject).into(), (&erase.now).into()];
                    conn.execute(REVOKE_VISITOR, &revoke).await?;
                }
                let sessions = u64::try_from(sessions.len()).unwrap_or(u64::MAX);
                Ok(Erased { sessions, messages, memory, links })
            })
        })
        .await
}
