//! Everything of the memory store off the turn's path: tenants, sessions and
//! their lists, guest-to-user links, vendors' conversation ids, the admin
//! list and settings, takeovers and agents' messages, the audit chain.

use super::{ms, State};
use std::cmp::Ordering;
use switchboard_core::audit::{seal, AuditEntry, NewAuditEntry, GENESIS};
use switchboard_core::model::{Message, MessageStatus, Role, Session, SessionStatus};
use switchboard_core::outbound::NewEvent;
use switchboard_core::store::admin::AdminSessionQuery;
use switchboard_core::store::takeover::{
    decide, AgentMessage, AgentMessageOutcome, HoldChange, HoldDecision, HoldOutcome,
};
use switchboard_core::store::{
    LinkOutcome, NewSession, SessionCursor, StoreError, TenantRecord, VisitorLink,
};
use switchboard_core::time::Timestamp;
use uuid::Uuid;

impl State {
    pub(super) fn upsert_tenant(&mut self, t: &TenantRecord) {
        let created_at = self.tenants.get(&t.id).map_or(ms(t.created_at), |old| old.created_at);
        let record = TenantRecord { created_at, updated_at: ms(t.updated_at), ..t.clone() };
        self.tenants.insert(t.id.clone(), record);
    }

    pub(super) fn create_session(&mut self, new: &NewSession) -> Result<Session, StoreError> {
        if self.sessions.contains_key(&new.id) {
            return Err(StoreError::Database(format!("a session {} exists already", new.id)));
        }
        let session = Session {
            id: new.id,
            tenant_id: new.tenant_id.clone(),
            status: SessionStatus::Active,
            created_at: ms(new.now),
            last_activity_at: ms(new.now),
            message_count: 0,
            admin_assisted: false,
            latest_seq: 0,
            takeover: None,
            owner: new.owner.clone(),
        };
        self.sessions.insert(new.id, session.clone());
        if let Some(event) = &new.event {
            self.enqueue(event);
        }
        Ok(session)
    }

    pub(super) fn list_sessions(
        &self,
        tenant_id: &str,
        owner: &str,
        limit: u32,
        after: Option<&SessionCursor>,
    ) -> Vec<Session> {
        let position = |s: &Session| (s.last_activity_at.timestamp_millis(), s.id);
        let cursor = after.map(|c| (c.last_activity_at.timestamp_millis(), c.id));
        let mut found: Vec<Session> = self
            .sessions
            .values()
            .filter(|s| s.tenant_id == tenant_id && s.owner == owner)
            .filter(|s| cursor.is_none_or(|c| position(s) < c))
            .cloned()
            .collect();
        found.sort_by_key(|s| std::cmp::Reverse(position(s)));
        found.truncate(limit as usize);
        found
    }

    pub(super) fn delete_session(&mut self, tenant_id: &str, id: Uuid) -> bool {
        if self.session_mut(tenant_id, id).is_none() {
            return false;
        }
        self.remove_session(id);
        self.forget_events_of(&[id]);
        true
    }

    /// The session's messages in the tenant, oldest first.
    fn messages_of(&self, tenant_id: &str, session_id: Uuid) -> impl DoubleEndedIterator<Item = &Message> {
        let tenant_id = tenant_id.to_owned();
        self.messages
            .get(&session_id)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(move |r| r.tenant_id == tenant_id)
            .map(|r| &r.message)
    }

    pub(super) fn list_messages(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Vec<Message> {
        let before = before_seq.unwrap_or(i64::MAX);
        let newest_first = self.messages_of(tenant_id, session_id).rev();
        newest_first.filter(|m| m.seq < before).take(limit as usize).cloned().collect()
    }

    pub(super) fn messages_after(
        &self,
        tenant_id: &str,
        session_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Vec<Message> {
        let oldest_first = self.messages_of(tenant_id, session_id);
        oldest_first.filter(|m| m.seq > after_seq).take(limit as usize).cloned().collect()
    }

    pub(super) fn link_visitor(
        &mut self,
        tenant_id: &str,
        visitor: &str,
        user: &str,
        now: Timestamp,
    ) -> LinkOutcome {
        let key = (tenant_id.to_owned(), visitor.to_owned());
        if self.links.contains_key(&key) {
            return LinkOutcome::AlreadyLinked;
        }
        let link = VisitorLink {
            tenant_id: tenant_id.to_owned(),
            visitor: visitor.to_owned(),
            user: user.to_owned(),
            linked_at: ms(now),
        };
        self.links.insert(key, link);
        let mut sessions = 0;
        for s in self.sessions.values_mut().filter(|s| s.tenant_id == tenant_id && s.owner == visitor) {
            user.clone_into(&mut s.owner);
            sessions += 1;
        }
        LinkOutcome::Linked { sessions }
    }

    pub(super) fn linked_visitors(&self, since: Timestamp) -> Vec<VisitorLink> {
        let mut links: Vec<VisitorLink> =
            self.links.values().filter(|l| l.linked_at >= ms(since)).cloned().collect();
        links.sort_by(|a, b| {
            (a.linked_at, &a.tenant_id, &a.visitor).cmp(&(b.linked_at, &b.tenant_id, &b.visitor))
        });
        links
    }

    pub(super) fn conversation_id(&self, tenant_id: &str, session_id: Uuid, key: &str) -> Option<String> {
        self.sessions.get(&session_id).filter(|s| s.tenant_id == tenant_id)?;
        self.conversations.get(&(session_id, key.to_owned())).cloned()
    }

    /// Nothing happens when the session is gone (or another tenant's).
    pub(super) fn set_conversation_id(&mut self, tenant_id: &str, session_id: Uuid, key: &str, id: &str) {
        if self.session_mut(tenant_id, session_id).is_some() {
            self.conversations.insert((session_id, key.to_owned()), id.to_owned());
        }
    }

    pub(super) fn admin_list_sessions(&self, q: &AdminSessionQuery) -> Vec<Session> {
        let position = |s: &Session| (q.sort.key_of(s), s.id);
        let order = |a: &Session, b: &Session| {
            let o = position(a).cmp(&position(b));
            if q.descending {
                o.reverse()
            } else {
                o
            }
        };
        let after = |s: &Session| {
            q.after.is_none_or(|k| {
                let o = position(s).cmp(&(k.key, k.id));
                o == if q.descending { Ordering::Less } else { Ordering::Greater }
            })
        };
        let mut found: Vec<Session> = self
            .sessions
            .values()
            .filter(|s| s.tenant_id == q.tenant_id)
            .filter(|s| q.owner.as_ref().is_none_or(|o| &s.owner == o))
            .filter(|s| q.status.is_none_or(|st| s.status == st))
            .filter(|s| q.admin_assisted.is_none_or(|a| s.admin_assisted == a))
            .filter(|s| q.created_from.is_none_or(|from| millis(s.created_at) >= millis(from)))
            .filter(|s| q.created_to.is_none_or(|to| millis(s.created_at) <= millis(to)))
            .filter(|s| after(s))
            .cloned()
            .collect();
        found.sort_by(order);
        found.truncate(q.limit as usize);
        found
    }

    pub(super) fn close_session(
        &mut self,
        tenant_id: &str,
        id: Uuid,
        event: Option<&NewEvent>,
    ) -> Option<Session> {
        let session = self.session_mut(tenant_id, id)?;
        let was_open = session.status != SessionStatus::Closed;
        session.status = SessionStatus::Closed;
        session.takeover = None;
        let session = session.clone();
        if let (true, Some(event)) = (was_open, event) {
            self.enqueue(event);
        }
        Some(session)
    }

    pub(super) fn set_takeover(&mut self, change: &HoldChange) -> HoldOutcome {
        let streaming = self.streaming(change.session_id);
        let Some(session) = self.session_mut(&change.tenant_id, change.session_id) else {
            return HoldOutcome::NotFound;
        };
        match decide(session.status, session.takeover.as_ref(), streaming, change) {
            HoldDecision::Refuse(refusal) => return refusal.into(),
            HoldDecision::Unchanged => return HoldOutcome::Unchanged { session: session.clone() },
            HoldDecision::Write => {}
        }
        let latest_seq = session.latest_seq;
        let note =
            note_message(change.session_id, latest_seq + 1, Role::System, None, &change.note, 0, change.now);
        let removed = self.purge_over_cap(change.session_id, change.max_messages, latest_seq, 1);
        let Some(session) = self.session_mut(&change.tenant_id, change.session_id) else {
            return HoldOutcome::NotFound;
        };
        let taking = change.takeover.is_some();
        session.status = change.status();
        // Kept as the SQL backends keep it: to the millisecond.
        session.takeover = change.takeover.clone().map(|mut t| {
            t.since = ms(t.since);
            t
        });
        session.admin_assisted |= taking;
        session.latest_seq = note.seq;
        session.message_count += 1 - removed;
        session.last_activity_at = session.last_activity_at.max(ms(change.now));
        let session = session.clone();
        self.insert(&change.tenant_id, note.clone(), None);
        if let Some(event) = &change.event {
            self.enqueue(event);
        }
        HoldOutcome::Changed { session, note }
    }

    pub(super) fn add_agent_message(&mut self, m: &AgentMessage) -> AgentMessageOutcome {
        let Some(session) = self.session_mut(&m.tenant_id, m.session_id) else {
            return AgentMessageOutcome::NotFound;
        };
        match session.status {
            SessionStatus::Closed => return AgentMessageOutcome::Closed,
            SessionStatus::Active | SessionStatus::Waiting => return AgentMessageOutcome::NotHuman,
            SessionStatus::Human => {}
        }
        let latest_seq = session.latest_seq;
        let author = Some(m.author.clone());
        let stored =
            note_message(m.session_id, latest_seq + 1, Role::Agent, author, &m.content, m.token_count, m.now);
        let removed = self.purge_over_cap(m.session_id, m.max_messages, latest_seq, 1);
        if let Some(session) = self.session_mut(&m.tenant_id, m.session_id) {
            session.latest_seq = stored.seq;
            session.message_count += 1 - removed;
            session.last_activity_at = session.last_activity_at.max(ms(m.now));
        }
        self.insert(&m.tenant_id, stored.clone(), None);
        AgentMessageOutcome::Stored(stored)
    }

    pub(super) fn append_audit(
        &mut self,
        entry: &NewAuditEntry,
        key_id: &str,
        key: &[u8],
    ) -> Result<AuditEntry, StoreError> {
        let (prev_seq, prev_mac) =
            self.audit.last().map_or((0, GENESIS.to_owned()), |last| (last.seq, last.mac.clone()));
        let seq = prev_seq + 1;
        let mac = seal(key, key_id, seq, entry, &prev_mac).map_err(|e| StoreError::Crypto(e.to_string()))?;
        let appended = AuditEntry { seq, entry: entry.clone(), key_id: key_id.to_owned(), prev_mac, mac };
        let stored =
            AuditEntry { entry: NewAuditEntry { at: ms(entry.at), ..entry.clone() }, ..appended.clone() };
        self.audit.push(stored);
        Ok(appended)
    }

    pub(super) fn audit_page(&self, tenant_id: Option<&str>, before: i64, limit: u32) -> Vec<AuditEntry> {
        let newest_first = self.audit.iter().rev();
        newest_first
            .filter(|e| e.seq < before)
            .filter(|e| tenant_id.is_none_or(|t| e.entry.tenant_id.as_deref() == Some(t)))
            .take(limit as usize)
            .cloned()
            .collect()
    }

    pub(super) fn audit_after(&self, after: i64, limit: u32) -> Vec<AuditEntry> {
        self.audit.iter().filter(|e| e.seq > after).take(limit as usize).cloned().collect()
    }
}

fn millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// A complete message written by the system or an agent.
fn note_message(
    session_id: Uuid,
    seq: i64,
    role: Role,
    author: Option<String>,
    content: &str,
    token_count: i64,
    now: Timestamp,
) -> Message {
    Message {
        tool_calls: Vec::new(),
        session_id,
        seq,
        role,
        content: content.to_owned(),
        author,
        status: MessageStatus::Complete,
        created_at: ms(now),
        token_count,
        client_message_id: None,
        tools: Vec::new(),
        turn_id: None,
        meta: None,
    }
}
