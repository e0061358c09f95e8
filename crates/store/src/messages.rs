//! Reading a session's messages (a page back in time, a replay's page
//! forward) and ending answers whose node stopped renewing their lease.

use crate::db::{Conn, Dialect};
use crate::rows::{decode_messages, message_columns, message_rows_from_json, MessageRow};
use crate::store::SqlStore;
use switchboard_core::model::Message;
use switchboard_core::store::{Reaped, StoreError};
use switchboard_core::time::Timestamp;
use uuid::Uuid;

/// Session `$1` of tenant `$2`, before seq `$3`, newest first, `$4` at most.
const LIST: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE session_id = $1 AND tenant_id = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"
);

/// A replay's page: session `$1` of tenant `$2` after seq `$3`, oldest
/// first, `$4` at most.
const AFTER: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE session_id = $1 AND tenant_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
);
/// The same page packed by SQLite into one JSON value (one hand-over from
/// sqlx's thread, not one a row), content and tools in hex (no tools: NULL).
const AFTER_PACKED: &str = "SELECT json_group_array(json_array(seq, role, hex(content), author, \
     status, created_at, token_count, client_message_id, turn_id, meta, nullif(hex(tools), '')) ORDER BY seq) \
     FROM (SELECT * FROM messages WHERE session_id = $1 AND tenant_id = $2 AND seq > $3 \
     ORDER BY seq LIMIT $4)";

/// Answers still streaming whose lease ran out before `$1`.
const REAP_EXPIRED: &str = concat!(
    "UPDATE messages SET status = 'interrupted', lease_node = NULL, lease_until = NULL \
     WHERE status = 'streaming' AND lease_until < $1 RETURNING ",
    message_columns!()
);
/// Answers still streaming on node `$1`.
const REAP_NODE: &str = concat!(
    "UPDATE messages SET status = 'interrupted', lease_node = NULL, lease_until = NULL \
     WHERE status = 'streaming' AND lease_node = $1 RETURNING ",
    message_columns!()
);

pub async fn list(
    store: &SqlStore,
    tenant_id: &str,
    session_id: Uuid,
    limit: u32,
    before_seq: Option<i64>,
) -> Result<Vec<Message>, StoreError> {
    let params =
        [session_id.into(), tenant_id.into(), before_seq.unwrap_or(i64::MAX).into(), i64::from(limit).into()];
    let rows: Vec<MessageRow> = store.reader.all(LIST, &params).await?;
    decode_messages(rows, &store.cipher)
}

pub async fn after(
    store: &SqlStore,
    tenant_id: &str,
    session_id: Uuid,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    let session = session_id.to_string();
    let params = [(&session).into(), tenant_id.into(), after_seq.into(), i64::from(limit).into()];
    let rows = match store.dialect() {
        Dialect::Sqlite => {
            let (json,): (String,) = store.reader.one(AFTER_PACKED, &params).await?;
            message_rows_from_json(&json, &session, tenant_id)?
        }
        Dialect::Postgres => store.reader.all(AFTER, &params).await?,
    };
    decode_messages(rows, &store.cipher)
}

pub async fn reap_expired(store: &SqlStore, now: Timestamp) -> Result<Vec<Reaped>, StoreError> {
    let rows = store
        .write_one(move |mut conn: Conn<'_>| {
            Box::pin(async move { Ok(conn.all::<MessageRow>(REAP_EXPIRED, &[(&now).into()]).await?) })
        })
        .await?;
    reaped(rows, &store.cipher)
}

pub async fn reap_node(store: &SqlStore, node_id: &str) -> Result<Vec<Reaped>, StoreError> {
    let node_id = std::sync::Arc::new(node_id.to_owned());
    let rows = store
        .write_one(move |mut conn: Conn<'_>| {
            let node_id = node_id.clone();
            Box::pin(async move { Ok(conn.all::<MessageRow>(REAP_NODE, &[node_id.as_str().into()]).await?) })
        })
        .await?;
    reaped(rows, &store.cipher)
}

/// Reaped rows with their tenants.
fn reaped(rows: Vec<MessageRow>, cipher: &crate::crypto::Cipher) -> Result<Vec<Reaped>, StoreError> {
    let mut keys = cipher.keys();
    rows.into_iter()
        .map(|row| {
            let tenant_id = row.tenant_id.clone();
            Ok(Reaped { tenant_id, message: row.decode(&mut keys)? })
        })
        .collect()
}
