//! `Store` for [`SqlStore`]: each method names the one function that does
//! it, in the module of its topic. A turn's hot path goes to its backend's
//! own function; everything else is the same SQL on both (`db.rs`). The
//! operations of the turn, subscription and outbox paths are timed
//! (`timing.rs`).

use crate::db::Conn;
use crate::store::{Backend, SqlStore};
use crate::timing::{timed, Op};
use crate::{
    admin, audit, conversations, erase, links, memory, messages, outbox, postgres, retention, sessions,
    sqlite, takeover, tenants, usage,
};
use switchboard_core::audit::{AuditEntry, NewAuditEntry};
use switchboard_core::model::{Message, Session};
use switchboard_core::outbound::{DeliveryStatus, NewEvent};
use switchboard_core::retention::Purged;
use switchboard_core::store::admin::{AdminSessionQuery, RuntimeSetting};
use switchboard_core::store::memory::{MemoryItem, PutMemory, PutOutcome};
use switchboard_core::store::outbox::{
    Delivery, DeliveryQuery, DeliveryRecord, IdleSession, RetryOutcome, Settle,
};
use switchboard_core::store::takeover::{AgentMessage, AgentMessageOutcome, HoldChange, HoldOutcome};
use switchboard_core::store::{
    BeginTurn, BeginTurnOutcome, Checkpoint, EraseSubject, Erased, Finish, LinkOutcome, NewSession, Reaped,
    SessionCursor, Store, StoreError, TenantRecord, VisitorLink,
};
use switchboard_core::time::Timestamp;
use switchboard_core::usage::DailyUsage;
use uuid::Uuid;

#[async_trait::async_trait]
impl Store for SqlStore {
    /// Asks both paths: readers, and the writer (on SQLite a task of its
    /// own, which could have stopped while readers answer).
    async fn ping(&self) -> Result<(), StoreError> {
        timed(Op::Ping, async {
            let _: (i32,) = self.reader.one("SELECT 1", &[]).await?;
            self.write_one(|mut conn: Conn<'_>| {
                Box::pin(async move {
                    conn.execute("SELECT 1", &[]).await?;
                    Ok(())
                })
            })
            .await
        })
        .await
    }

    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        tenants::upsert(self, tenant).await
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        tenants::get(self, id).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        tenants::list(self).await
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool, StoreError> {
        tenants::delete(self, id).await
    }

    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        timed(Op::CreateSession, sessions::create(self, new)).await
    }

    async fn get_session(&self, tenant_id: &str, id: Uuid) -> Result<Option<Session>, StoreError> {
        timed(Op::GetSession, sessions::get(self, tenant_id, id)).await
    }

    async fn session_context(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        timed(Op::SessionContext, sessions::context(self, tenant_id, id)).await
    }

    async fn list_sessions(
        &self,
        tenant_id: &str,
        owner: &str,
        limit: u32,
        after: Option<&SessionCursor>,
    ) -> Result<Vec<Session>, StoreError> {
        sessions::list(self, tenant_id, owner, limit, after).await
    }

    async fn delete_session(&self, tenant_id: &str, id: Uuid) -> Result<bool, StoreError> {
        sessions::delete(self, tenant_id, id).await
    }

    async fn list_messages(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<Vec<Message>, StoreError> {
        timed(Op::ListMessages, messages::list(self, tenant_id, session_id, limit, before_seq)).await
    }

    async fn messages_after(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        timed(Op::MessagesAfter, messages::after(self, tenant_id, session_id, after_seq, limit)).await
    }

    async fn begin_turn(&self, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
        timed(Op::BeginTurn, async {
            match &self.backend {
                Backend::Sqlite(s) => sqlite::begin_turn(self, s, turn).await,
                Backend::Postgres(_) => postgres::begin_turn(self, turn).await,
            }
        })
        .await
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
        timed(Op::Checkpoint, async {
            match &self.backend {
                Backend::Sqlite(s) => sqlite::checkpoint(self, s, checkpoint).await,
                Backend::Postgres(_) => postgres::checkpoint(self, checkpoint).await,
            }
        })
        .await
    }

    async fn finish_message(&self, finish: &Finish) -> Result<bool, StoreError> {
        timed(Op::FinishMessage, async {
            match &self.backend {
                Backend::Sqlite(s) => sqlite::finish_message(self, s, finish).await,
                Backend::Postgres(_) => postgres::finish_message(self, finish).await,
            }
        })
        .await
    }

    async fn reap_expired_leases(&self, now: Timestamp) -> Result<Vec<Reaped>, StoreError> {
        timed(Op::ReapExpiredLeases, messages::reap_expired(self, now)).await
    }

    async fn reap_node_leases(&self, node_id: &str, _now: Timestamp) -> Result<Vec<Reaped>, StoreError> {
        messages::reap_node(self, node_id).await
    }

    async fn purge_expired(
        &self,
        tenant_id: &str,
        before: Timestamp,
        limit: u32,
    ) -> Result<Purged, StoreError> {
        retention::purge_expired(self, tenant_id, before, limit).await
    }

    async fn link_visitor(
        &self,
        tenant_id: &str,
        visitor: &str,
        user: &str,
        now: Timestamp,
    ) -> Result<LinkOutcome, StoreError> {
        links::link(self, tenant_id, visitor, user, now).await
    }

    async fn linked_visitors(&self, since: Timestamp) -> Result<Vec<VisitorLink>, StoreError> {
        links::since(self, since).await
    }

    async fn daily_usage(&self, tenant_id: &str, from: i64, to: i64) -> Result<Vec<DailyUsage>, StoreError> {
        usage::daily(self, tenant_id, from, to).await
    }

    async fn append_audit(
        &self,
        entry: &NewAuditEntry,
        key_id: &str,
        key: &[u8],
    ) -> Result<AuditEntry, StoreError> {
        audit::append(self, entry, key_id, key).await
    }

    async fn audit_page(
        &self,
        tenant_id: Option<&str>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        audit::page(self, tenant_id, before, limit).await
    }

    async fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        audit::after(self, after, limit).await
    }

    async fn conversation_id(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        conversations::get(self, tenant_id, session_id, key).await
    }

    async fn set_conversation_id(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        key: &str,
        conversation_id: &str,
    ) -> Result<(), StoreError> {
        conversations::set(self, tenant_id, session_id, key, conversation_id).await
    }

    async fn admin_list_sessions(&self, query: &AdminSessionQuery) -> Result<Vec<Session>, StoreError> {
        admin::list_sessions(self, query).await
    }

    async fn close_session(
        &self,
        tenant_id: &str,
        id: Uuid,
        event: Option<&NewEvent>,
    ) -> Result<Option<Session>, StoreError> {
        admin::close_session(self, tenant_id, id, event).await
    }

    async fn runtime_setting(&self, key: &str) -> Result<Option<RuntimeSetting>, StoreError> {
        admin::runtime_setting(self, key).await
    }

    async fn put_runtime_setting(&self, setting: &RuntimeSetting) -> Result<(), StoreError> {
        admin::put_runtime_setting(self, setting).await
    }

    async fn set_takeover(&self, change: &HoldChange) -> Result<HoldOutcome, StoreError> {
        takeover::set(self, change).await
    }

    async fn add_agent_message(&self, message: &AgentMessage) -> Result<AgentMessageOutcome, StoreError> {
        timed(Op::AddAgentMessage, takeover::add_agent_message(self, message)).await
    }

    async fn list_memory(&self, tenant_id: &str, owner: &str) -> Result<Vec<MemoryItem>, StoreError> {
        memory::list(self, tenant_id, owner).await
    }

    async fn get_memory(
        &self,
        tenant_id: &str,
        owner: &str,
        key: &str,
    ) -> Result<Option<MemoryItem>, StoreError> {
        memory::get(self, tenant_id, owner, key).await
    }

    async fn put_memory(&self, put: &PutMemory) -> Result<PutOutcome, StoreError> {
        memory::put(self, put).await
    }

    async fn delete_memory(&self, tenant_id: &str, owner: &str, key: &str) -> Result<bool, StoreError> {
        memory::delete(self, tenant_id, owner, key).await
    }

    async fn clear_memory(&self, tenant_id: &str, owner: &str) -> Result<u64, StoreError> {
        memory::clear(self, tenant_id, owner).await
    }

    async fn erase_subject(&self, erase: &EraseSubject) -> Result<Erased, StoreError> {
        erase::erase(self, erase).await
    }

    async fn enqueue_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        timed(Op::EnqueueEvents, outbox::enqueue(self, events)).await
    }

    fn hand_off_deliveries(&self, handoff: switchboard_core::store::outbox::Handoff) -> bool {
        self.handoff.set(handoff).is_ok()
    }

    async fn lease_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        timed(Op::LeaseDeliveries, outbox::lease(self, node, now, until, limit)).await
    }

    async fn settle_delivery(
        &self,
        id: Uuid,
        node: &str,
        settle: &Settle,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        outbox::settle(self, id, node, settle, now).await
    }

    async fn settle_deliveries(
        &self,
        node: &str,
        settles: Vec<(Uuid, Settle)>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        timed(Op::SettleDeliveries, outbox::settle_many(self, node, settles, now)).await
    }

    async fn release_deliveries(&self, node: &str) -> Result<u64, StoreError> {
        outbox::release(self, node).await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        outbox::list(self, query).await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: Uuid,
        now: Timestamp,
    ) -> Result<RetryOutcome, StoreError> {
        outbox::retry(self, tenant_id, id, now).await
    }

    async fn resume_deliveries(&self, tenant_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        outbox::resume(self, tenant_id, now).await
    }

    async fn purge_deliveries(
        &self,
        delivered_before: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        outbox::purge(self, delivered_before, ended_before, limit).await
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError> {
        outbox::counts(self).await
    }

    async fn idle_sessions(
        &self,
        tenant_id: &str,
        since: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<IdleSession>, StoreError> {
        outbox::idle_sessions(self, tenant_id, since, before, limit).await
    }

    async fn mark_idle(&self, idle: &IdleSession, event: &NewEvent) -> Result<bool, StoreError> {
        outbox::mark_idle(self, idle, event).await
    }
}
