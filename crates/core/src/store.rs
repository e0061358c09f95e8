//! The `Store` port: everything the runtime keeps durably. Implementations
//! (SQLite, PostgreSQL) live in `switchboard-store`; they encrypt message
//! content at rest, so every value crossing this trait is plaintext.

use crate::model::{Message, MessageStatus, Session, TurnMeta};
use crate::time::Timestamp;
use async_trait::async_trait;
use uuid::Uuid;

pub mod admin;
pub mod memory;
pub mod outbox;
pub mod takeover;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(String),
    /// Stored content could not be encrypted, decrypted or sealed (wrong or
    /// missing key).
    #[error("cannot encrypt, decrypt or seal stored content: {0}")]
    Crypto(String),
    /// A stored value is not what this version expects.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// A tenant as the database keeps it. `config` is the tenant's settings as
/// JSON (secrets are referenced by environment variable name only).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    /// `"config"` for tenants owned by the configuration file, `"db"` otherwise.
    pub source: String,
    pub config: serde_json::Value,
    pub kill_switch: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub tenant_id: String,
    pub owner: String,
    pub metadata: Option<serde_json::Value>,
    pub now: Timestamp,
    /// `session.created` (SPEC §19), written with the session.
    pub event: Option<crate::outbound::NewEvent>,
}

/// Keyset position in the owner's session list (newest activity first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub last_activity_at: Timestamp,
    pub id: Uuid,
}

/// Everything needed to start a turn in one transaction: the user message is
/// committed and the assistant message created (status `streaming`, holding a
/// lease) before any provider is called.
#[derive(Debug, Clone)]
pub struct BeginTurn {
    pub tenant_id: String,
    pub session_id: Uuid,
    /// The caller; the session must be owned by it.
    pub owner: String,
    pub turn_id: Uuid,
    pub content: String,
    pub client_message_id: Option<String>,
    pub user_token_count: i64,
    pub node_id: String,
    pub lease_until: Timestamp,
    pub now: Timestamp,
    /// How many earlier messages to return as the provider's history (the new
    /// user message included).
    pub history_limit: u32,
    /// The most messages the session keeps (SPEC §11.6, at least 1): the
    /// oldest beyond it are deleted in the same transaction, never the new
    /// ones nor one still streaming.
    pub max_messages: u32,
    /// Messages created before this are past the tenant's retention: never
    /// part of the history.
    pub retained_since: Timestamp,
    /// The budget reservation (SPEC §13) a turn with an answer takes, decided
    /// in the same transaction as its messages after every other check, so
    /// no refusal but `QuotaExceeded` ever depends on it and a turn that does
    /// not start holds none. `None`: the tenant has no budget.
    pub budget: Option<crate::usage::Reserve>,
    /// The page context the message carried (SPEC §16): kept as the
    /// session's latest in the same transaction.
    pub context: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub enum BeginTurnOutcome {
    Started {
        user: Message,
        assistant: Message,
        /// Oldest first, ending with the new user message: what a provider
        /// is sent (its role and content; a backend may leave `meta` out).
        history: Vec<Message>,
        /// The session's latest page context from before this turn, when
        /// its message carried none (SPEC §16: what its tools are told).
        context: Option<serde_json::Value>,
    },
    /// The `client_message_id` was used before in this session: nothing new was
    /// written. `assistant` is that turn's answer, if it had one.
    Duplicate {
        user: Message,
        assistant: Option<Message>,
    },
    /// No such session for this tenant and owner.
    NotFound,
    Closed,
    /// The session is taken over by an agent: the user message was stored, no
    /// assistant message was created.
    Human {
        user: Message,
    },
    /// Another answer is still streaming in this session.
    InProgress,
    /// The turn's budget reservation does not fit: nothing was written.
    QuotaExceeded(crate::usage::Spent),
}

/// The text so far of a streaming message, which also renews its lease.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub tenant_id: String,
    pub session_id: Uuid,
    pub seq: i64,
    pub content: String,
    pub node_id: String,
    pub lease_until: Timestamp,
    /// The answer's tool calls so far (SPEC §16), stored encrypted with it.
    pub tools: Vec<crate::tools::ToolCallRecord>,
}

/// The final state of an assistant message.
#[derive(Debug, Clone)]
pub struct Finish {
    pub tenant_id: String,
    pub session_id: Uuid,
    pub seq: i64,
    pub content: String,
    pub status: MessageStatus,
    pub token_count: i64,
    pub meta: TurnMeta,
    pub now: Timestamp,
    /// The answer's tool calls, stored encrypted with it.
    pub tools: Vec<crate::tools::ToolCallRecord>,
    /// What the turn used, recorded with the answer in one transaction (and
    /// its budget reservation settled); `None` writes no usage.
    pub usage: Option<crate::usage::UsageRecord>,
    /// `turn.completed` or `turn.failed` (SPEC §19), written with the
    /// answer's end when the answer was still streaming.
    pub event: Option<crate::outbound::NewEvent>,
}

/// Erasing a subject of a tenant (SPEC §18): everything stored about it goes.
#[derive(Debug, Clone)]
pub struct EraseSubject {
    pub tenant_id: String,
    /// `visitor:<uuid>` or `user:<sub>`.
    pub subject: String,
    pub now: Timestamp,
}

/// What erasing a subject removed: counts only (they go into the audit
/// entry, which holds no content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub sessions: u64,
    pub messages: u64,
    pub memory: u64,
    /// Visitor links that named the subject (now bare revocations).
    pub links: u64,
}

/// An answer a reaper marked `interrupted`, and its tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    pub tenant_id: String,
    pub message: Message,
}

/// What linking a visitor to a user did (SPEC §3, guest to user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link is recorded and this many of the visitor's sessions moved to the user.
    Linked { sessions: u64 },
    /// The visitor was linked before (to this user or another): nothing changed.
    AlreadyLinked,
}

/// A recorded guest-to-user link: the visitor's tokens are revoked from then on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorLink {
    pub tenant_id: String,
    /// The visitor's subject, `visitor:<uuid>`.
    pub visitor: String,
    /// The user's subject, `user:<sub>`.
    pub user: String,
    pub linked_at: Timestamp,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database does (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError>;
    async fn get_tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError>;
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
    async fn delete_tenant(&self, id: &str) -> Result<bool, StoreError>;

    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError>;
    /// The session if it exists in that tenant (ownership is the caller's check).
    async fn get_session(&self, tenant_id: &str, id: Uuid) -> Result<Option<Session>, StoreError>;
    /// The session's latest page context (SPEC §16), kept by the turn whose
    /// message carried it; `None` when it has none or does not exist.
    async fn session_context(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<Option<serde_json::Value>, StoreError>;
    /// The owner's sessions, newest activity first (ties by id, descending),
    /// strictly after `after` when given; at most `limit`.
    async fn list_sessions(
        &self,
        tenant_id: &str,
        owner: &str,
        limit: u32,
        after: Option<&SessionCursor>,
    ) -> Result<Vec<Session>, StoreError>;
    /// Deletes the session, all its messages and its outbound events; false
    /// when there was none.
    async fn delete_session(&self, tenant_id: &str, id: Uuid) -> Result<bool, StoreError>;

    /// Messages newest first, with `seq < before_seq` when given; at most `limit`.
    async fn list_messages(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<Vec<Message>, StoreError>;

    /// Messages oldest first with `seq > after_seq`; at most `limit` (a
    /// resuming subscriber's replay).
    async fn messages_after(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Refusals come in SPEC §4's order: not found, duplicate, closed, in
    /// progress, then the budget. Concurrent turns of a tenant, on any node,
    /// decide their budget reservations one at a time, so together they
    /// cannot overshoot a budget.
    async fn begin_turn(&self, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError>;
    /// Saves the text so far and renews the lease; false when the message is no
    /// longer streaming (e.g. it was reaped).
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError>;
    /// Ends a streaming message; false when it was no longer streaming.
    async fn finish_message(&self, finish: &Finish) -> Result<bool, StoreError>;
    /// Marks `interrupted` every streaming message whose lease ended before
    /// `now`, and returns them.
    async fn reap_expired_leases(&self, now: Timestamp) -> Result<Vec<Reaped>, StoreError>;
    /// Marks `interrupted` every streaming message leased by `node_id` (a node
    /// restarting reaps its own at once), and returns them.
    async fn reap_node_leases(&self, node_id: &str, now: Timestamp) -> Result<Vec<Reaped>, StoreError>;
    /// One bounded batch of the retention sweep (SPEC §11.6), in one short
    /// transaction: deletes up to `limit` of the tenant's messages created
    /// before `before` (never one still streaming; `message_count` follows),
    /// then up to `limit` of its sessions left without messages whose last
    /// activity is before `before`. Sessions a writer holds are left for
    /// the next batch.
    async fn purge_expired(
        &self,
        tenant_id: &str,
        before: Timestamp,
        limit: u32,
    ) -> Result<crate::retention::Purged, StoreError>;

    /// Links a visitor to a user once: records the link and moves every
    /// session the visitor owns in the tenant to the user, in one transaction.
    async fn link_visitor(
        &self,
        tenant_id: &str,
        visitor: &str,
        user: &str,
        now: Timestamp,
    ) -> Result<LinkOutcome, StoreError>;
    /// Links recorded at or after `since`, of every tenant, oldest first (how a
    /// node learns of the links other nodes made).
    async fn linked_visitors(&self, since: Timestamp) -> Result<Vec<VisitorLink>, StoreError>;

    /// A tenant's usage per day, `from` to `to` (days since the epoch, both
    /// included), oldest first; days without turns are left out.
    async fn daily_usage(
        &self,
        tenant_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::usage::DailyUsage>, StoreError>;

    /// Appends an admin action to the audit log after its last entry, sealed
    /// with `key` (named `key_id`); appends are taken one at a time across nodes.
    async fn append_audit(
        &self,
        entry: &crate::audit::NewAuditEntry,
        key_id: &str,
        key: &[u8],
    ) -> Result<crate::audit::AuditEntry, StoreError>;
    /// Up to `limit` entries before seq `before`, newest first; only the
    /// tenant's when one is named.
    async fn audit_page(
        &self,
        tenant_id: Option<&str>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<crate::audit::AuditEntry>, StoreError>;
    /// Up to `limit` entries after seq `after`, oldest first (to verify the chain).
    async fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<crate::audit::AuditEntry>, StoreError>;

    /// The vendor's conversation id of a session under `key` (see
    /// `Provider::conversation_key`), if one was learned.
    async fn conversation_id(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        key: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Keeps the vendor's conversation id of a session (replacing an older
    /// one); nothing happens when the session is gone.
    async fn set_conversation_id(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        key: &str,
        conversation_id: &str,
    ) -> Result<(), StoreError>;

    /// A page of the tenant's sessions for the admin API, filtered and
    /// ordered by `query.sort` then id, strictly after `query.after`.
    async fn admin_list_sessions(&self, query: &admin::AdminSessionQuery)
        -> Result<Vec<Session>, StoreError>;
    /// Sets the session's status to `closed`; `None` when there is no such
    /// session in the tenant.
    /// `event` (`session.closed`) is written with the change, only when the
    /// session was not closed before.
    async fn close_session(
        &self,
        tenant_id: &str,
        id: Uuid,
        event: Option<&crate::outbound::NewEvent>,
    ) -> Result<Option<Session>, StoreError>;
    /// A runtime setting shared by every node, if it was ever set.
    async fn runtime_setting(&self, key: &str) -> Result<Option<admin::RuntimeSetting>, StoreError>;
    /// Writes a runtime setting (replacing the value under its key).
    async fn put_runtime_setting(&self, setting: &admin::RuntimeSetting) -> Result<(), StoreError>;

    /// An agent takes the session over or gives it back: the status, the
    /// `takeover` field and the `system` note (at the next seq) change in one
    /// transaction; refused while an answer streams.
    async fn set_takeover(&self, change: &takeover::HoldChange) -> Result<takeover::HoldOutcome, StoreError>;
    /// Stores an agent's message (at the next seq) while an agent holds the
    /// session.
    async fn add_agent_message(
        &self,
        message: &takeover::AgentMessage,
    ) -> Result<takeover::AgentMessageOutcome, StoreError>;

    /// A user's memory (SPEC §18), every entry, sorted by key.
    async fn list_memory(&self, tenant_id: &str, owner: &str) -> Result<Vec<memory::MemoryItem>, StoreError>;
    /// One entry of a user's memory, if it is there.
    async fn get_memory(
        &self,
        tenant_id: &str,
        owner: &str,
        key: &str,
    ) -> Result<Option<memory::MemoryItem>, StoreError>;
    /// Writes one entry (see [`memory::PutMemory`]): a concurrent write of
    /// the same key ends as one of the two values, never an error.
    async fn put_memory(&self, put: &memory::PutMemory) -> Result<memory::PutOutcome, StoreError>;
    /// Deletes one entry; false when there was none.
    async fn delete_memory(&self, tenant_id: &str, owner: &str, key: &str) -> Result<bool, StoreError>;
    /// Deletes every entry of a user's memory; returns how many went.
    async fn clear_memory(&self, tenant_id: &str, owner: &str) -> Result<u64, StoreError>;

    /// Erases everything stored about a subject of a tenant, in one
    /// transaction (SPEC §18): its sessions with their messages, vendor
    /// conversation ids, usage rows and pending outbound events; its memory,
    /// per-subject usage and budget reservations. Visitor links naming it
    /// keep only the visitor's side, as a revocation (the visitor's tokens
    /// stay refused); a visitor subject is itself recorded as revoked, at
    /// `now`. The tenant's daily totals stay (they name nobody).
    async fn erase_subject(&self, erase: &EraseSubject) -> Result<Erased, StoreError>;

    /// Writes events on their own (a reaped answer's `turn.failed`; tools
    /// that fill the outbox), `pending` or, while the tenant's endpoint is
    /// disabled, `held`.
    async fn enqueue_events(&self, events: &[crate::outbound::NewEvent]) -> Result<(), StoreError>;
    /// From now on, events this store's writes commit are leased to
    /// `handoff.node` and handed to its worker while it has room (see
    /// [`outbox::Handoff`]); false when this store cannot (they are then
    /// found by [`Store::lease_deliveries`] as before).
    fn hand_off_deliveries(&self, handoff: outbox::Handoff) -> bool {
        let _ = handoff;
        false
    }
    /// Leases up to `limit` pending deliveries due at `now` whose lease (if
    /// any) has ended, to `node` until `until`; on PostgreSQL rows another
    /// node is leasing are skipped, so no two nodes lease one delivery.
    async fn lease_deliveries(
        &self,
        node: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<outbox::Delivery>, StoreError>;
    /// Ends `node`'s try of a delivery it leases; false when the lease was
    /// lost (another node holds it now).
    async fn settle_delivery(
        &self,
        id: Uuid,
        node: &str,
        settle: &outbox::Settle,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Ends several of `node`'s tries in one transaction (see
    /// [`Store::settle_delivery`]); returns how many were still `node`'s.
    async fn settle_deliveries(
        &self,
        node: &str,
        settles: Vec<(Uuid, outbox::Settle)>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Ends every lease `node` holds (it restarted: its tries did not end).
    async fn release_deliveries(&self, node: &str) -> Result<u64, StoreError>;
    async fn list_deliveries(
        &self,
        query: &outbox::DeliveryQuery,
    ) -> Result<Vec<outbox::DeliveryRecord>, StoreError>;
    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: Uuid,
        now: Timestamp,
    ) -> Result<outbox::RetryOutcome, StoreError>;
    /// Enables the tenant's endpoint again and makes its held deliveries
    /// pending, due now; returns how many.
    async fn resume_deliveries(&self, tenant_id: &str, now: Timestamp) -> Result<u64, StoreError>;
    /// Deletes up to `limit` deliveries of every tenant that were delivered
    /// before `delivered_before`, or ended `dead` or `gone` and were created
    /// before `ended_before`; returns how many. Pending and held ones stay.
    async fn purge_deliveries(
        &self,
        delivered_before: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError>;
    /// How many deliveries of every tenant are in each status.
    async fn delivery_counts(&self) -> Result<Vec<(crate::outbound::DeliveryStatus, u64)>, StoreError>;
    /// Up to `limit` of the tenant's sessions, not closed, last active in
    /// `[since, before)`, that have had no `session.idle` for that activity.
    async fn idle_sessions(
        &self,
        tenant_id: &str,
        since: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<outbox::IdleSession>, StoreError>;
    /// Marks the session idle for its quiet stretch and writes `event`, in
    /// one transaction; false (nothing written) when it was active since
    /// `last_activity_at` or another node marked it first.
    async fn mark_idle(
        &self,
        idle: &outbox::IdleSession,
        event: &crate::outbound::NewEvent,
    ) -> Result<bool, StoreError>;
}
