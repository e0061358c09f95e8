//! Vendors' own conversation ids per session (SPEC §13: Dify keeps the
//! history by it). Read once before a turn calls such a vendor, written when
//! the vendor names a new one.

use crate::db::Conn;
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::store::StoreError;
use uuid::Uuid;

/// `$1` session, `$2` vendor key, `$3` tenant.
const GET: &str = "SELECT c.conversation_id FROM provider_conversations c \
     JOIN sessions s ON s.id = c.session_id \
     WHERE c.session_id = $1 AND c.provider_key = $2 AND s.tenant_id = $3";
/// The session may have been deleted meanwhile: then nothing is written.
/// `$1` session, `$2` vendor key, `$3` conversation id, `$4` tenant.
const PUT: &str = "INSERT INTO provider_conversations (session_id, provider_key, conversation_id) \
     SELECT id, $2, $3 FROM sessions WHERE id = $1 AND tenant_id = $4 \
     ON CONFLICT (session_id, provider_key) DO UPDATE SET conversation_id = excluded.conversation_id";

pub async fn get(
    store: &SqlStore,
    tenant_id: &str,
    session_id: Uuid,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        store.reader.optional(GET, &[session_id.into(), key.into(), tenant_id.into()]).await?;
    Ok(row.map(|(id,)| id))
}

pub async fn set(
    store: &SqlStore,
    tenant_id: &str,
    session_id: Uuid,
    key: &str,
    conversation_id: &str,
) -> Result<(), StoreError> {
    let row = Arc::new((session_id, key.to_owned(), conversation_id.to_owned(), tenant_id.to_owned()));
    store
        .write(move |mut conn: Conn<'_>| {
            let row = row.clone();
            Box::pin(async move {
                let (session_id, key, conversation_id, tenant_id) = &*row;
                let params = [(*session_id).into(), key.into(), conversation_id.into(), tenant_id.into()];
                conn.execute(PUT, &params).await?;
                Ok(())
            })
        })
        .await
}
