//! `MemoryStore`: the `Store` port kept in memory, for tests of the engine.
//! It keeps the contract the SQL backends keep (the store conformance suite
//! runs against it too): seqs from `latest_seq`, one streaming answer per
//! session, `client_message_id` idempotency, refusals in SPEC §4's order with
//! the budget last, reservations counted until settled or expired, leases
//! renewed by checkpoints and reaped when they end, the message cap in the
//! write that goes over it, timestamps kept to the millisecond.
//!
//! Every call takes one lock for its whole work and never awaits while
//! holding it, so each call is one atomic step, as SQLite's one writer makes
//! each write. Nothing is encrypted (nothing is at rest).

mod erase;
mod memory;
mod outbox;
mod port;
mod records;
mod turns;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use switchboard_core::audit::AuditEntry;
use switchboard_core::memory::MemoryItem;
use switchboard_core::model::{Message, Session, SessionStatus};
use switchboard_core::store::admin::RuntimeSetting;
use switchboard_core::store::{Checkpoint, TenantRecord, VisitorLink};
use switchboard_core::time::Timestamp;
use switchboard_core::usage::DailyUsage;
use uuid::Uuid;

/// The store. Cheap to share behind an `Arc`; `Default` is empty.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

/// Who holds a streaming answer, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub node_id: String,
    pub until: Timestamp,
}

#[derive(Default)]
struct State {
    tenants: BTreeMap<String, TenantRecord>,
    sessions: BTreeMap<Uuid, Session>,
    /// Messages by session, then seq.
    messages: BTreeMap<Uuid, BTreeMap<i64, Row>>,
    /// Vendors' conversation ids by session and key.
    conversations: BTreeMap<(Uuid, String), String>,
    reservations: BTreeMap<Uuid, Reservation>,
    /// Settled usage by (tenant, day).
    daily: BTreeMap<(String, i64), DailyUsage>,
    /// Settled tokens by (tenant, subject, day).
    subject_daily: BTreeMap<(String, String, i64), i64>,
    /// The answers whose usage was recorded, by (session, seq).
    usage_events: BTreeSet<(Uuid, i64)>,
    /// Guest-to-user links by (tenant, visitor).
    links: BTreeMap<(String, String), VisitorLink>,
    audit: Vec<AuditEntry>,
    settings: BTreeMap<String, RuntimeSetting>,
    /// Every checkpoint that found its answer streaming, in order.
    checkpoints: Vec<Checkpoint>,
    /// Sessions' latest page contexts.
    contexts: BTreeMap<Uuid, serde_json::Value>,
    /// Users' memories by (tenant, subject), each by key.
    memory: BTreeMap<(String, String), BTreeMap<String, MemoryItem>>,
    outbox: outbox::Outbox,
}

/// A stored message with what only the store sees.
#[derive(Debug, Clone)]
struct Row {
    message: Message,
    tenant_id: String,
    lease: Option<Lease>,
}

/// A budget reservation not yet settled.
#[derive(Debug, Clone)]
struct Reservation {
    tenant_id: String,
    subject: String,
    day: i64,
    tokens: i64,
    cost_micro_usd: i64,
    expires_at: Timestamp,
}

/// Stored times keep whole milliseconds, as the SQL backends' do.
fn ms(t: Timestamp) -> Timestamp {
    chrono::SubsecRound::trunc_subsecs(t, 3)
}

impl State {
    /// The session, if it exists in that tenant.
    fn session_mut(&mut self, tenant_id: &str, id: Uuid) -> Option<&mut Session> {
        self.sessions.get_mut(&id).filter(|s| s.tenant_id == tenant_id)
    }

    fn rows(&self, session_id: Uuid) -> impl DoubleEndedIterator<Item = &Row> {
        self.messages.get(&session_id).into_iter().flat_map(|m| m.values())
    }

    fn streaming(&self, session_id: Uuid) -> bool {
        self.rows(session_id).any(|r| r.message.status == switchboard_core::MessageStatus::Streaming)
    }

    /// The session's cap (SPEC §11.6) before `added` messages follow
    /// `latest_seq`: deletes what falls beyond the newest `max_messages`,
    /// never one of the new ones nor one streaming; returns how many went.
    fn purge_over_cap(&mut self, session_id: Uuid, max_messages: u32, latest_seq: i64, added: i64) -> i64 {
        let keep = i64::from(max_messages.max(1));
        let bound = latest_seq.saturating_add(added).saturating_sub(keep).min(latest_seq);
        let Some(rows) = self.messages.get_mut(&session_id) else { return 0 };
        let before = rows.len();
        rows.retain(|seq, r| *seq > bound || r.message.status == switchboard_core::MessageStatus::Streaming);
        i64::try_from(before - rows.len()).unwrap_or(i64::MAX)
    }

    fn insert(&mut self, tenant_id: &str, message: Message, lease: Option<Lease>) {
        let row = Row { message, tenant_id: tenant_id.to_owned(), lease };
        self.messages.entry(row.message.session_id).or_default().insert(row.message.seq, row);
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each call leaves the state whole before it can panic: a poisoned
        // lock still holds a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lease of a streaming answer (none once it ended).
    pub fn lease(&self, session_id: Uuid, seq: i64) -> Option<Lease> {
        self.lock().messages.get(&session_id)?.get(&seq)?.lease.clone()
    }

    /// A message as stored, whatever its tenant.
    pub fn message(&self, session_id: Uuid, seq: i64) -> Option<Message> {
        Some(self.lock().messages.get(&session_id)?.get(&seq)?.message.clone())
    }

    /// Every checkpoint that found its answer still streaming, oldest first.
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        self.lock().checkpoints.clone()
    }

    /// How many budget reservations of the tenant are held (settled ones are
    /// gone; expired ones stay until a later turn clears them, as in SQL).
    pub fn reservations(&self, tenant_id: &str) -> usize {
        self.lock().reservations.values().filter(|r| r.tenant_id == tenant_id).count()
    }

    /// Sets a session's status behind the store's back (what a test does
    /// with SQL to the other backends); false when there is no such session.
    pub fn set_session_status(&self, session_id: Uuid, status: SessionStatus) -> bool {
        match self.lock().sessions.get_mut(&session_id) {
            Some(session) => {
                session.status = status;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::audit::{verify, NewAuditEntry, GENESIS};
    use switchboard_core::store::Store;

    fn action(i: i64, tenant: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: crate::at(i),
            actor: "operator".into(),
            actor_name: "operator".into(),
            tenant_id: Some(tenant.into()),
            action: "tenant.kill_switch".into(),
            target: tenant.into(),
            detail: format!("{{\"n\":{i}}}"),
        }
    }

    /// The conformance suite's audit case edits rows with SQL; this is its
    /// part that stays within the trait.
    #[tokio::test]
    async fn audit_appends_form_one_chain_read_back_both_ways() {
        let store = MemoryStore::new();
        let key: &[u8] = b"audit-key";
        for i in 0..9 {
            let tenant = if i % 3 == 0 { "other" } else { "acme" };
            let entry = store.append_audit(&action(i, tenant), "k1", key).await.unwrap();
            assert_eq!(entry.seq, i + 1);
        }
        let chain = store.audit_after(0, 100).await.unwrap();
        let checked = verify(&chain, (0, GENESIS.into()), |kid| (kid == "k1").then_some(key));
        assert_eq!(checked.unwrap().0, 9);
        let page = store.audit_page(Some("acme"), i64::MAX, 4).await.unwrap();
        let seqs: Vec<i64> = page.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [9, 8, 6, 5], "newest first, the tenant's own");
        assert_eq!(store.audit_page(None, 3, 10).await.unwrap().len(), 2);
        assert_eq!(store.audit_after(7, 1).await.unwrap()[0].seq, 8);
    }
}
