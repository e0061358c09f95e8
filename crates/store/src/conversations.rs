//! Vendors' own conversation ids per session (SPEC §13: Dify keeps the
//! history by it). Read once before a turn calls such a vendor, written when
//! the vendor names a new one. The SQL is the same on both backends;
//! `impl_conversations!` expands it for each, as `impl_links!` does.

pub const GET: &str = "SELECT c.conversation_id FROM provider_conversations c \
     JOIN sessions s ON s.id = c.session_id \
     WHERE c.session_id = $1 AND c.provider_key = $2 AND s.tenant_id = $3";
/// The session may have been deleted meanwhile: then nothing is written.
pub const PUT: &str = "INSERT INTO provider_conversations (session_id, provider_key, conversation_id) \
     SELECT id, $2, $3 FROM sessions WHERE id = $1 AND tenant_id = $4 \
     ON CONFLICT (session_id, provider_key) DO UPDATE SET conversation_id = excluded.conversation_id";

/// `impl_conversations!(Type, conn = Connection)`: inherent
/// `conversation_id_in_db` and `set_conversation_id_in_db`, which the `Store`
/// impl calls.
macro_rules! impl_conversations {
    ($store:ty, conn = $conn:ty) => {
        impl $store {
            async fn conversation_id_in_db(
                &self,
                tenant_id: &str,
                session_id: uuid::Uuid,
                key: &str,
            ) -> Result<Option<String>, switchboard_core::store::StoreError> {
                sqlx::query_scalar($crate::conversations::GET)
                    .bind(session_id.to_string())
                    .bind(key)
                    .bind(tenant_id)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err($crate::rows::db_err)
            }

            async fn set_conversation_id_in_db(
                &self,
                tenant_id: &str,
                session_id: uuid::Uuid,
                key: &str,
                conversation_id: &str,
            ) -> Result<(), switchboard_core::store::StoreError> {
                let row = std::sync::Arc::new((
                    session_id.to_string(),
                    key.to_owned(),
                    conversation_id.to_owned(),
                    tenant_id.to_owned(),
                ));
                self.write(move |conn: &mut $conn| {
                    let row = row.clone();
                    Box::pin(async move {
                        let (session_id, key, conversation_id, tenant_id) = &*row;
                        sqlx::query($crate::conversations::PUT)
                            .bind(session_id)
                            .bind(key)
                            .bind(conversation_id)
                            .bind(tenant_id)
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
            }
        }
    };
}
pub(crate) use impl_conversations;
