//! The one implementation of the `Store` trait, expanded for each backend.
//! sqlx's connection types differ per database but are used the same way and
//! the SQL is shared (`sql.rs`), so a macro keeps the backends from drifting
//! apart. A backend provides a `reader` pool, a `cipher: Arc<Cipher>`,
//! `write(work)`, which runs a re-runnable unit of work (`write.rs`) inside
//! a transaction on its `$conn` connection type, and `write_one(work)` for
//! work of a single statement, which needs no transaction of its own.
//!
//! Writes encrypt before and decrypt after `write`, never inside it: on SQLite
//! every write of the process passes through one connection.

/// `impl_store!(Type, conn = Connection, dialect = sql::module, begin_turn = fn,
/// checkpoint = fn, finish_message = fn, messages_after = fn)`: `dialect`
/// holds the backend's own statements; `begin_turn`, `checkpoint` and
/// `finish_message` are the backend's own, the hot path of every turn, which
/// each does in its fewest round trips
/// (`async fn(&Type, &BeginTurn) -> Result<BeginTurnOutcome, StoreError>`,
/// `async fn(&Type, &Checkpoint) -> Result<bool, StoreError>`,
/// `async fn(&Type, &Finish) -> Result<bool, StoreError>`).
macro_rules! impl_store {
    (
        $store:ty,
        conn = $conn:ty,
        dialect = $dialect:path,
        begin_turn = $begin_turn:path,
        checkpoint = $checkpoint:path,
        finish_message = $finish_message:path,
        messages_after = $messages_after:path
    ) => {
        // The block scopes these imports and helpers to the expansion.
        const _: () = {
            use std::sync::Arc;
            use switchboard_core::model::{Message, Session, SessionStatus};
            use switchboard_core::store::{
                BeginTurn, BeginTurnOutcome, Checkpoint, Finish, NewSession, SessionCursor, StoreError,
                TenantRecord,
            };
            use switchboard_core::time::Timestamp;
            use uuid::Uuid;
            use $crate::crypto::Aad;
            use $crate::rows::{
                crypto_err, db_err, decode_messages, millis, to_json, MessageRow, SessionRow, TenantRow,
                METADATA,
            };
            use $crate::sql;
            use $dialect as dialect;

            #[async_trait::async_trait]
            impl switchboard_core::store::Store for $store {
                /// Asks both paths: readers, and the writer (on SQLite a task
                /// of its own, which could have stopped while readers answer).
                async fn ping(&self) -> Result<(), StoreError> {
                    sqlx::query(sql::PING).execute(&self.reader).await.map_err(db_err)?;
                    self.write_one(|conn: &mut $conn| {
                        Box::pin(async move {
                            sqlx::query(sql::PING).execute(&mut *conn).await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
                    let tenant = Arc::new((tenant.clone(), to_json(&tenant.config)?));
                    self.write_one(move |conn: &mut $conn| {
                        let tenant = tenant.clone();
                        Box::pin(async move {
                            let (t, config) = &*tenant;
                            sqlx::query(sql::UPSERT_TENANT)
                                .bind(&t.id)
                                .bind(&t.name)
                                .bind(&t.source)
                                .bind(config)
                                .bind(t.kill_switch)
                                .bind(millis(&t.created_at))
                                .bind(millis(&t.updated_at))
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn get_tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
                    let row: Option<TenantRow> = sqlx::query_as(sql::GET_TENANT)
                        .bind(id)
                        .fetch_optional(&self.reader)
                        .await
                        .map_err(db_err)?;
                    row.map(TenantRow::decode).transpose()
                }

                async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
                    let rows: Vec<TenantRow> =
                        sqlx::query_as(sql::LIST_TENANTS).fetch_all(&self.reader).await.map_err(db_err)?;
                    rows.into_iter().map(TenantRow::decode).collect()
                }

                async fn delete_tenant(&self, id: &str) -> Result<bool, StoreError> {
                    let id = id.to_owned();
                    self.write_one(move |conn: &mut $conn| {
                        let id = id.clone();
                        Box::pin(async move {
                            let done = sqlx::query(sql::DELETE_TENANT).bind(id).execute(&mut *conn).await?;
                            Ok(done.rows_affected() > 0)
                        })
                    })
                    .await
                }

                async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
                    let metadata = match &new.metadata {
                        Some(value) => {
                            let at = Aad {
                                tenant_id: &new.tenant_id,
                                session_id: new.id,
                                seq: 0,
                                column: METADATA,
                            };
                            Some(self.cipher.encrypt_str(&at, &to_json(value)?).map_err(crypto_err)?)
                        }
                        None => None,
                    };
                    let row = Arc::new((new.clone(), metadata));
                    self.write_one(move |conn: &mut $conn| {
                        let row = row.clone();
                        Box::pin(async move {
                            let (new, metadata) = &*row;
                            sqlx::query(sql::INSERT_SESSION)
                                .bind(new.id.to_string())
                                .bind(&new.tenant_id)
                                .bind(&new.owner)
                                .bind(millis(&new.now))
                                .bind(metadata)
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .await?;
                    Ok(Session {
                        id: new.id,
                        tenant_id: new.tenant_id.clone(),
                        status: SessionStatus::Active,
                        created_at: new.now,
                        last_activity_at: new.now,
                        message_count: 0,
                        admin_assisted: false,
                        latest_seq: 0,
                        takeover: None,
                        owner: new.owner.clone(),
                    })
                }

                async fn get_session(
                    &self,
                    tenant_id: &str,
                    id: Uuid,
                ) -> Result<Option<Session>, StoreError> {
                    let row: Option<SessionRow> = sqlx::query_as(sql::GET_SESSION)
                        .bind(id.to_string())
                        .bind(tenant_id)
                        .fetch_optional(&self.reader)
                        .await
                        .map_err(db_err)?;
                    row.map(SessionRow::decode).transpose()
                }

                async fn list_sessions(
                    &self,
                    tenant_id: &str,
                    owner: &str,
                    limit: u32,
                    after: Option<&SessionCursor>,
                ) -> Result<Vec<Session>, StoreError> {
                    // No cursor: start above every real position.
                    let (at, id) = after.map_or((i64::MAX, String::new()), |c| {
                        (millis(&c.last_activity_at), c.id.to_string())
                    });
                    let rows: Vec<SessionRow> = sqlx::query_as(sql::LIST_SESSIONS)
                        .bind(tenant_id)
                        .bind(owner)
                        .bind(at)
                        .bind(id)
                        .bind(i64::from(limit))
                        .fetch_all(&self.reader)
                        .await
                        .map_err(db_err)?;
                    rows.into_iter().map(SessionRow::decode).collect()
                }

                async fn delete_session(&self, tenant_id: &str, id: Uuid) -> Result<bool, StoreError> {
                    let key = Arc::new((tenant_id.to_owned(), id.to_string()));
                    self.write(move |conn: &mut $conn| {
                        let key = key.clone();
                        Box::pin(async move {
                            let (tenant_id, id) = &*key;
                            sqlx::query(sql::DELETE_SESSION_MESSAGES)
                                .bind(id)
                                .bind(tenant_id)
                                .execute(&mut *conn)
                                .await?;
                            let done = sqlx::query(sql::DELETE_SESSION)
                                .bind(id)
                                .bind(tenant_id)
                                .execute(&mut *conn)
                                .await?;
                            Ok(done.rows_affected() > 0)
                        })
                    })
                    .await
                }

                async fn list_messages(
                    &self,
                    tenant_id: &str,
                    session_id: Uuid,
                    limit: u32,
                    before_seq: Option<i64>,
                ) -> Result<Vec<Message>, StoreError> {
                    let rows: Vec<MessageRow> = sqlx::query_as(sql::LIST_MESSAGES)
                        .bind(session_id.to_string())
                        .bind(tenant_id)
                        .bind(before_seq.unwrap_or(i64::MAX))
                        .bind(i64::from(limit))
                        .fetch_all(&self.reader)
                        .await
                        .map_err(db_err)?;
                    decode_messages(rows, &self.cipher)
                }

                async fn messages_after(
                    &self,
                    tenant_id: &str,
                    session_id: Uuid,
                    after_seq: i64,
                    limit: u32,
                ) -> Result<Vec<Message>, StoreError> {
                    $messages_after(self, tenant_id, session_id, after_seq, limit).await
                }

                async fn begin_turn(&self, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
                    $begin_turn(self, turn).await
                }

                async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
                    $checkpoint(self, checkpoint).await
                }

                async fn finish_message(&self, finish: &Finish) -> Result<bool, StoreError> {
                    $finish_message(self, finish).await
                }

                async fn reap_expired_leases(&self, now: Timestamp) -> Result<Vec<Message>, StoreError> {
                    let now = millis(&now);
                    let rows = self
                        .write_one(move |conn: &mut $conn| {
                            Box::pin(async move {
                                let rows: Vec<MessageRow> =
                                    sqlx::query_as(sql::REAP_EXPIRED).bind(now).fetch_all(&mut *conn).await?;
                                Ok(rows)
                            })
                        })
                        .await?;
                    decode_messages(rows, &self.cipher)
                }

                async fn reap_node_leases(
                    &self,
                    node_id: &str,
                    _now: Timestamp,
                ) -> Result<Vec<Message>, StoreError> {
                    let node_id = node_id.to_owned();
                    let rows = self
                        .write_one(move |conn: &mut $conn| {
                            let node_id = node_id.clone();
                            Box::pin(async move {
                                let rows: Vec<MessageRow> = sqlx::query_as(sql::REAP_NODE)
                                    .bind(node_id)
                                    .fetch_all(&mut *conn)
                                    .await?;
                                Ok(rows)
                            })
                        })
                        .await?;
                    decode_messages(rows, &self.cipher)
                }

                async fn purge_expired(
                    &self,
                    tenant_id: &str,
                    before: Timestamp,
                    limit: u32,
                ) -> Result<switchboard_core::retention::Purged, StoreError> {
                    self.purge_expired_in_db(tenant_id, before, limit).await
                }

                async fn link_visitor(
                    &self,
                    tenant_id: &str,
                    visitor: &str,
                    user: &str,
                    now: Timestamp,
                ) -> Result<switchboard_core::store::LinkOutcome, StoreError> {
                    self.link_visitor_in_db(tenant_id, visitor, user, now).await
                }

                async fn linked_visitors(
                    &self,
                    since: Timestamp,
                ) -> Result<Vec<switchboard_core::store::VisitorLink>, StoreError> {
                    self.linked_visitors_in_db(since).await
                }

                async fn conversation_id(
                    &self,
                    tenant_id: &str,
                    session_id: Uuid,
                    key: &str,
                ) -> Result<Option<String>, StoreError> {
                    self.conversation_id_in_db(tenant_id, session_id, key).await
                }

                async fn set_conversation_id(
                    &self,
                    tenant_id: &str,
                    session_id: Uuid,
                    key: &str,
                    conversation_id: &str,
                ) -> Result<(), StoreError> {
                    self.set_conversation_id_in_db(tenant_id, session_id, key, conversation_id).await
                }

                async fn admin_list_sessions(
                    &self,
                    query: &switchboard_core::store::admin::AdminSessionQuery,
                ) -> Result<Vec<Session>, StoreError> {
                    self.admin_list_sessions_in_db(query).await
                }

                async fn close_session(
                    &self,
                    tenant_id: &str,
                    id: Uuid,
                ) -> Result<Option<Session>, StoreError> {
                    self.close_session_in_db(tenant_id, id).await
                }

                async fn runtime_setting(
                    &self,
                    key: &str,
                ) -> Result<Option<switchboard_core::store::admin::RuntimeSetting>, StoreError> {
                    self.runtime_setting_in_db(key).await
                }

                async fn put_runtime_setting(
                    &self,
                    setting: &switchboard_core::store::admin::RuntimeSetting,
                ) -> Result<(), StoreError> {
                    self.put_runtime_setting_in_db(setting).await
                }

                async fn set_takeover(
                    &self,
                    change: &switchboard_core::store::takeover::HoldChange,
                ) -> Result<switchboard_core::store::takeover::HoldOutcome, StoreError> {
                    self.set_takeover_in_db(change).await
                }

                async fn add_agent_message(
                    &self,
                    message: &switchboard_core::store::takeover::AgentMessage,
                ) -> Result<switchboard_core::store::takeover::AgentMessageOutcome, StoreError> {
                    self.add_agent_message_in_db(message).await
                }

                async fn daily_usage(
                    &self,
                    tenant_id: &str,
                    from: i64,
                    to: i64,
                ) -> Result<Vec<switchboard_core::usage::DailyUsage>, StoreError> {
                    self.daily_usage_in_db(tenant_id, from, to).await
                }

                async fn append_audit(
                    &self,
                    entry: &switchboard_core::audit::NewAuditEntry,
                    key_id: &str,
                    key: &[u8],
                ) -> Result<switchboard_core::audit::AuditEntry, StoreError> {
                    self.append_audit_in_db(entry, key_id, key).await
                }

                async fn audit_page(
                    &self,
                    tenant_id: Option<&str>,
                    before: i64,
                    limit: u32,
                ) -> Result<Vec<switchboard_core::audit::AuditEntry>, StoreError> {
                    self.audit_page_in_db(tenant_id, before, limit).await
                }

                async fn audit_after(
                    &self,
                    after: i64,
                    limit: u32,
                ) -> Result<Vec<switchboard_core::audit::AuditEntry>, StoreError> {
                    self.audit_after_in_db(after, limit).await
                }
            }

            $crate::links::impl_links!($store, conn = $conn);
            $crate::conversations::impl_conversations!($store, conn = $conn);
            $crate::admin::impl_admin!($store, conn = $conn);
            $crate::takeover::impl_takeover!($store, conn = $conn);
            $crate::usage::impl_usage!($store);
            $crate::audit::impl_audit!($store, conn = $conn, lock = dialect::LOCK_AUDIT);
        };
    };
}
pub(crate) use impl_store;
