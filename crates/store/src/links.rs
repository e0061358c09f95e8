//! Guest-to-user links (SPEC §3): recording that a visitor became a user and
//! moving the visitor's sessions to the user in one transaction, and reading
//! the links back so every node refuses the visitor's tokens.

use crate::db::Conn;
use crate::rows::time_of;
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::store::{LinkOutcome, StoreError, VisitorLink};
use switchboard_core::time::Timestamp;

/// `$1` tenant, `$2` visitor, `$3` user, `$4` now. `ON CONFLICT DO NOTHING`:
/// the second link of a visitor changes nothing.
const INSERT_LINK: &str = "INSERT INTO visitor_links (tenant_id, visitor, user_subject, linked_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, visitor) DO NOTHING";
/// `$1` user, `$2` tenant, `$3` visitor.
const MOVE_SESSIONS: &str = "UPDATE sessions SET owner = $1 WHERE tenant_id = $2 AND owner = $3";
/// Links made since `$1`.
const LINKS_SINCE: &str = "SELECT tenant_id, visitor, user_subject, linked_at FROM visitor_links \
     WHERE linked_at >= $1 ORDER BY linked_at, tenant_id, visitor";

/// Records that `visitor` became `user` and moves the visitor's sessions
/// to the user, in one transaction.
pub async fn link(
    store: &SqlStore,
    tenant_id: &str,
    visitor: &str,
    user: &str,
    now: Timestamp,
) -> Result<LinkOutcome, StoreError> {
    let link = Arc::new((tenant_id.to_owned(), visitor.to_owned(), user.to_owned(), now));
    store
        .write(move |mut conn: Conn<'_>| {
            let link = link.clone();
            Box::pin(async move {
                let (tenant_id, visitor, user, at) = &*link;
                let params = [tenant_id.into(), visitor.into(), user.into(), at.into()];
                if conn.execute(INSERT_LINK, &params).await? == 0 {
                    return Ok(LinkOutcome::AlreadyLinked);
                }
                let sessions =
                    conn.execute(MOVE_SESSIONS, &[user.into(), tenant_id.into(), visitor.into()]).await?;
                Ok(LinkOutcome::Linked { sessions })
            })
        })
        .await
}

/// Every link made since `since`, oldest first.
pub async fn since(store: &SqlStore, since: Timestamp) -> Result<Vec<VisitorLink>, StoreError> {
    let rows: Vec<(String, String, String, i64)> = store.reader.all(LINKS_SINCE, &[(&since).into()]).await?;
    rows.into_iter()
        .map(|(tenant_id, visitor, user, at)| {
            Ok(VisitorLink { tenant_id, visitor, user, linked_at: time_of("linked_at", at)? })
        })
        .collect()
}
