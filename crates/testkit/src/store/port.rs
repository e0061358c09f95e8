//! The `Store` trait over the memory store's state: each call one lock, one
//! atomic step.

use super::{ms, MemoryStore};
use switchboard_core::audit::{AuditEntry, NewAuditEntry};
use switchboard_core::memory::MemoryItem;
use switchboard_core::model::{Message, Session};
use switchboard_core::outbound::{DeliveryStatus, NewEvent};
use switchboard_core::retention::Purged;
use switchboard_core::store::admin::{AdminSessionQuery, RuntimeSetting};
use switchboard_core::store::memory::{PutMemory, PutOutcome};
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
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.lock().upsert_tenant(tenant);
        Ok(())
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.lock().tenants.get(id).cloned())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        Ok(self.lock().tenants.values().cloned().collect())
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().tenants.remove(id).is_some())
    }

    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        self.lock().create_session(new)
    }

    async fn get_session(&self, tenant_id: &str, id: Uuid) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().sessions.get(&id).filter(|s| s.tenant_id == tenant_id).cloned())
    }

    async fn session_context(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let state = self.lock();
        let in_tenant = state.sessions.get(&id).is_some_and(|s| s.tenant_id == tenant_id);
        Ok(state.contexts.get(&id).filter(|_| in_tenant).cloned())
    }

    async fn list_sessions(
        &self,
        tenant_id: &str,
        owner: &str,
        limit: u32,
        after: Option<&SessionCursor>,
    ) -> Result<Vec<Session>, StoreError> {
        Ok(self.lock().list_sessions(tenant_id, owner, limit, after))
    }

    async fn delete_session(&self, tenant_id: &str, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.lock().delete_session(tenant_id, id))
    }

    async fn list_messages(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(self.lock().list_messages(tenant_id, session_id, limit, before_seq))
    }

    async fn messages_after(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(self.lock().messages_after(tenant_id, session_id, after_seq, limit))
    }

    async fn begin_turn(&self, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
        Ok(self.lock().begin_turn(turn))
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
        Ok(self.lock().checkpoint(checkpoint))
    }

    async fn finish_message(&self, finish: &Finish) -> Result<bool, StoreError> {
        Ok(self.lock().finish_message(finish))
    }

    async fn reap_expired_leases(&self, now: Timestamp) -> Result<Vec<Reaped>, StoreError> {
        let now = ms(now);
        Ok(self.lock().reap(|lease| lease.until < now))
    }

    async fn reap_node_leases(&self, node_id: &str, _now: Timestamp) -> Result<Vec<Reaped>, StoreError> {
        Ok(self.lock().reap(|lease| lease.node_id == node_id))
    }

    async fn purge_expired(
        &self,
        tenant_id: &str,
        before: Timestamp,
        limit: u32,
    ) -> Result<Purged, StoreError> {
        Ok(self.lock().purge_expired(tenant_id, before, limit))
    }

    async fn link_visitor(
        &self,
        tenant_id: &str,
        visitor: &str,
        user: &str,
        now: Timestamp,
    ) -> Result<LinkOutcome, StoreError> {
        Ok(self.lock().link_visitor(tenant_id, visitor, user, now))
    }

    async fn linked_visitors(&self, since: Timestamp) -> Result<Vec<VisitorLink>, StoreError> {
        Ok(self.lock().linked_visitors(since))
    }

    async fn daily_usage(&self, tenant_id: &str, from: i64, to: i64) -> Result<Vec<DailyUsage>, StoreError> {
        Ok(self.lock().daily_usage(tenant_id, from, to))
    }

    async fn append_audit(
        &self,
        entry: &NewAuditEntry,
        key_id: &str,
        key: &[u8],
    ) -> Result<AuditEntry, StoreError> {
        self.lock().append_audit(entry, key_id, key)
    }

    async fn audit_page(
        &self,
        tenant_id: Option<&str>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.lock().audit_page(tenant_id, before, limit))
    }

    async fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.lock().audit_after(after, limit))
    }

    async fn conversation_id(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.lock().conversation_id(tenant_id, session_id, key))
    }

    async fn set_conversation_id(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        key: &str,
        conversation_id: &str,
    ) -> Result<(), StoreError> {
        self.lock().set_conversation_id(tenant_id, session_id, key, conversation_id);
        Ok(())
    }

    async fn admin_list_sessions(&self, query: &AdminSessionQuery) -> Result<Vec<Session>, StoreError> {
        Ok(self.lock().admin_list_sessions(query))
    }

    async fn close_session(
        &self,
        tenant_id: &str,
        id: Uuid,
        event: Option<&NewEvent>,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().close_session(tenant_id, id, event))
    }

    async fn runtime_setting(&self, key: &str) -> Result<Option<RuntimeSetting>, StoreError> {
        Ok(self.lock().settings.get(key).cloned())
    }

    async fn put_runtime_setting(&self, setting: &RuntimeSetting) -> Result<(), StoreError> {
        let kept = RuntimeSetting { updated_at: ms(setting.updated_at), ..setting.clone() };
        self.lock().settings.insert(setting.key.clone(), kept);
        Ok(())
    }

    async fn set_takeover(&self, change: &HoldChange) -> Result<HoldOutcome, StoreError> {
        Ok(self.lock().set_takeover(change))
    }

    async fn add_agent_message(&self, message: &AgentMessage) -> Result<AgentMessageOutcome, StoreError> {
        Ok(self.lock().add_agent_message(message))
    }

    async fn list_memory(&self, tenant_id: &str, owner: &str) -> Result<Vec<MemoryItem>, StoreError> {
        Ok(self.lock().list_memory(tenant_id, owner))
    }

    async fn get_memory(
        &self,
        tenant_id: &str,
        owner: &str,
        key: &str,
    ) -> Result<Option<MemoryItem>, StoreError> {
        Ok(self.lock().get_memory(tenant_id, owner, key))
    }

    async fn put_memory(&self, put: &PutMemory) -> Result<PutOutcome, StoreError> {
        Ok(self.lock().put_memory(put))
    }

    async fn delete_memory(&self, tenant_id: &str, owner: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.lock().delete_memory(tenant_id, owner, key))
    }

    async fn clear_memory(&self, tenant_id: &str, owner: &str) -> Result<u64, StoreError> {
        Ok(self.lock().clear_memory(tenant_id, owner))
    }

    async fn erase_subject(&self, erase: &EraseSubject) -> Result<Erased, StoreError> {
        Ok(self.lock().erase_subject(erase))
    }

    async fn enqueue_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let mut state = self.lock();
        events.iter().for_each(|e| state.enqueue(e));
        Ok(())
    }

    async fn lease_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.lock().lease_deliveries(node, now, until, limit))
    }

    async fn settle_delivery(
        &self,
        id: Uuid,
        node: &str,
        settle: &Settle,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.lock().settle_delivery(id, node, settle, now))
    }

    async fn settle_deliveries(
        &self,
        node: &str,
        settles: Vec<(Uuid, Settle)>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        Ok(settles.iter().map(|(id, s)| u64::from(state.settle_delivery(*id, node, s, now))).sum())
    }

    async fn release_deliveries(&self, node: &str) -> Result<u64, StoreError> {
        Ok(self.lock().release_deliveries(node))
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(self.lock().list_deliveries(query))
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: Uuid,
        now: Timestamp,
    ) -> Result<RetryOutcome, StoreError> {
        Ok(self.lock().retry_delivery(tenant_id, id, now))
    }

    async fn resume_deliveries(&self, tenant_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        Ok(self.lock().resume_deliveries(tenant_id, now))
    }

    async fn purge_deliveries(
        &self,
        delivered_before: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        Ok(self.lock().purge_deliveries(delivered_before, ended_before, limit))
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError> {
        Ok(self.lock().delivery_counts())
    }

    async fn idle_sessions(
        &self,
        tenant_id: &str,
        since: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<IdleSession>, StoreError> {
        Ok(self.lock().idle_sessions(tenant_id, since, before, limit))
    }

    async fn mark_idle(&self, idle: &IdleSession, event: &NewEvent) -> Result<bool, StoreError> {
        Ok(self.lock().mark_idle(idle, event))
    }
}
