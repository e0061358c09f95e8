//! The turn's path through the memory store: starting a turn (refusals in
//! SPEC §4's order, the budget last), checkpoints, the end of an answer with
//! its usage, leases reaped, and the retention sweep's batches.

use super::{ms, Lease, Reservation, Row, State};
use switchboard_core::model::{Message, MessageStatus, Role, SessionStatus};
use switchboard_core::retention::Purged;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Finish, Reaped};
use switchboard_core::time::Timestamp;
use switchboard_core::usage::{Counted, DailyUsage, Reserve};
use uuid::Uuid;

impl State {
    pub(super) fn begin_turn(&mut self, turn: &BeginTurn) -> BeginTurnOutcome {
        let Some(session) = self.sessions.get(&turn.session_id) else { return BeginTurnOutcome::NotFound };
        if session.tenant_id != turn.tenant_id || session.owner != turn.owner {
            return BeginTurnOutcome::NotFound;
        }
        let (status, latest_seq) = (session.status, session.latest_seq);
        if let Some(duplicate) = self.duplicate(turn) {
            return duplicate;
        }
        if status == SessionStatus::Closed {
            return BeginTurnOutcome::Closed;
        }
        if self.streaming(turn.session_id) {
            return BeginTurnOutcome::InProgress;
        }
        let human = status.for_agents();
        // Only a turn with an answer spends anything, and the budget is the
        // last check of all.
        if let Some(r) = turn.budget.as_ref().filter(|_| !human) {
            if let Some(spent) = r.refused_by(&self.counted(&turn.tenant_id, r)) {
                return BeginTurnOutcome::QuotaExceeded(spent);
            }
        }
        let added = if human { 1 } else { 2 };
        let removed = self.purge_over_cap(turn.session_id, turn.max_messages, latest_seq, added);
        if let Some(session) = self.sessions.get_mut(&turn.session_id) {
            session.latest_seq = latest_seq + added;
            session.message_count += added - removed;
            session.last_activity_at = session.last_activity_at.max(ms(turn.now));
        }
        if let Some(context) = &turn.context {
            self.contexts.insert(turn.session_id, context.clone());
        }
        let user = new_message(turn, latest_seq + 1, Role::User, MessageStatus::Complete);
        self.insert(&turn.tenant_id, user.clone(), None);
        if human {
            return BeginTurnOutcome::Human { user };
        }
        let assistant = new_message(turn, latest_seq + 2, Role::Assistant, MessageStatus::Streaming);
        let lease = Lease { node_id: turn.node_id.clone(), until: ms(turn.lease_until) };
        self.insert(&turn.tenant_id, assistant.clone(), Some(lease));
        if let Some(r) = &turn.budget {
            self.reserve(r);
        }
        let history = self.history(turn, &user);
        let context =
            if turn.context.is_some() { None } else { self.contexts.get(&turn.session_id).cloned() };
        BeginTurnOutcome::Started { user, assistant, history, context }
    }

    /// The earlier turn with this `client_message_id`: its user message and
    /// the answer of the same turn, if it had one.
    fn duplicate(&self, turn: &BeginTurn) -> Option<BeginTurnOutcome> {
        let id = turn.client_message_id.as_deref()?;
        let rows = || self.rows(turn.session_id).map(|r| &r.message);
        let user = rows().find(|m| m.client_message_id.as_deref() == Some(id))?.clone();
        let assistant = rows()
            .find(|m| m.role == Role::Assistant && m.turn_id.is_some() && m.turn_id == user.turn_id)
            .cloned();
        Some(BeginTurnOutcome::Duplicate { user, assistant })
    }

    /// What counts against `r`'s budgets today: settled usage plus the
    /// reservations not yet expired.
    fn counted(&self, tenant_id: &str, r: &Reserve) -> Counted {
        let live = || {
            self.reservations
                .values()
                .filter(|h| h.tenant_id == tenant_id && h.day == r.day && h.expires_at > ms(r.now))
        };
        let settled = self.daily.get(&(tenant_id.to_owned(), r.day)).copied().unwrap_or_default();
        let subject_settled =
            self.subject_daily.get(&(tenant_id.to_owned(), r.subject.clone(), r.day)).copied().unwrap_or(0);
        Counted {
            tenant_tokens: settled.prompt_tokens
                + settled.completion_tokens
                + live().map(|h| h.tokens).sum::<i64>(),
            tenant_cost_micro_usd: settled.cost_micro_usd + live().map(|h| h.cost_micro_usd).sum::<i64>(),
            subject_tokens: subject_settled
                + live().filter(|h| h.subject == r.subject).map(|h| h.tokens).sum::<i64>(),
        }
    }

    /// Takes `r`, after clearing the tenant's reservations from before
    /// yesterday (long expired; nobody settled them).
    fn reserve(&mut self, r: &Reserve) {
        self.reservations.retain(|_, h| h.tenant_id != r.tenant_id || h.day >= r.day - 1);
        let held = Reservation {
            tenant_id: r.tenant_id.clone(),
            subject: r.subject.clone(),
            day: r.day,
            tokens: r.tokens,
            cost_micro_usd: r.cost_micro_usd,
            expires_at: ms(r.expires_at),
        };
        self.reservations.insert(r.id, held);
    }

    /// Oldest first, ending with `user`: the newest earlier messages within
    /// the window, none past retention (what the cap left), without `meta`.
    fn history(&self, turn: &BeginTurn, user: &Message) -> Vec<Message> {
        if turn.history_limit == 0 {
            return Vec::new();
        }
        let since = ms(turn.retained_since);
        let earlier = turn.history_limit.saturating_sub(1) as usize;
        let mut history: Vec<Message> = self
            .rows(turn.session_id)
            .map(|r| &r.message)
            .filter(|m| m.seq < user.seq && m.created_at >= since)
            .rev()
            .take(earlier)
            .map(|m| Message { meta: None, ..m.clone() })
            .collect();
        history.reverse();
        history.push(user.clone());
        history
    }

    pub(super) fn checkpoint(&mut self, c: &Checkpoint) -> bool {
        let Some(row) = self.streaming_row(&c.tenant_id, c.session_id, c.seq) else { return false };
        row.message.content.clone_from(&c.content);
        row.message.tools = c.tools.iter().map(|t| t.visible()).collect();
        row.message.tool_calls.clone_from(&c.tools);
        row.lease = Some(Lease { node_id: c.node_id.clone(), until: ms(c.lease_until) });
        self.checkpoints.push(c.clone());
        true
    }

    /// Ends a streaming answer, touches its session and records its usage,
    /// settling its reservation either way (as the SQL backends do).
    pub(super) fn finish_message(&mut self, f: &Finish) -> bool {
        let finished = match self.streaming_row(&f.tenant_id, f.session_id, f.seq) {
            Some(row) => {
                let m = &mut row.message;
                m.content.clone_from(&f.content);
                m.status = f.status;
                m.token_count = f.token_count;
                m.meta = Some(f.meta.clone());
                m.tools = f.tools.iter().map(|t| t.visible()).collect();
                m.tool_calls.clone_from(&f.tools);
                row.lease = None;
                true
            }
            None => false,
        };
        if finished {
            if let Some(session) = self.session_mut(&f.tenant_id, f.session_id) {
                session.last_activity_at = session.last_activity_at.max(ms(f.now));
            }
            if let Some(event) = &f.event {
                self.enqueue(event);
            }
        }
        self.record_usage(f, finished);
        finished
    }

    fn record_usage(&mut self, f: &Finish, finished: bool) {
        let Some(u) = &f.usage else { return };
        if let Some(id) = u.reservation {
            if self.reservations.get(&id).is_some_and(|r| r.tenant_id == f.tenant_id) {
                self.reservations.remove(&id);
            }
        }
        if !finished {
            return;
        }
        let day = switchboard_core::usage::day_of(&f.now);
        let (prompt, completion) = (i64::from(u.usage.prompt_tokens), i64::from(u.usage.completion_tokens));
        self.usage_events.insert((f.session_id, f.seq));
        let sums = self
            .daily
            .entry((f.tenant_id.clone(), day))
            .or_insert_with(|| DailyUsage { day, ..DailyUsage::default() });
        sums.turns += 1;
        sums.prompt_tokens += prompt;
        sums.completion_tokens += completion;
        sums.cost_micro_usd += u.cost_micro_usd;
        *self.subject_daily.entry((f.tenant_id.clone(), u.subject.clone(), day)).or_insert(0) +=
            prompt + completion;
    }

    fn streaming_row(&mut self, tenant_id: &str, session_id: Uuid, seq: i64) -> Option<&mut Row> {
        self.messages
            .get_mut(&session_id)?
            .get_mut(&seq)
            .filter(|r| r.tenant_id == tenant_id && r.message.status == MessageStatus::Streaming)
    }

    /// Marks `interrupted` every streaming answer whose lease `ends` says
    /// ended, and returns them.
    pub(super) fn reap(&mut self, ends: impl Fn(&Lease) -> bool) -> Vec<Reaped> {
        let mut reaped = Vec::new();
        for row in self.messages.values_mut().flat_map(|m| m.values_mut()) {
            if row.message.status == MessageStatus::Streaming && row.lease.as_ref().is_some_and(&ends) {
                row.message.status = MessageStatus::Interrupted;
                // A call still running was cut with its answer (SPEC §16).
                for tool in &mut row.message.tools {
                    if tool["status"] == "running" {
                        tool["status"] = "error".into();
                    }
                }
                row.lease = None;
                reaped.push(Reaped { tenant_id: row.tenant_id.clone(), message: row.message.clone() });
            }
        }
        reaped
    }

    /// One batch of the retention sweep, as `Store::purge_expired` says.
    pub(super) fn purge_expired(&mut self, tenant_id: &str, before: Timestamp, limit: u32) -> Purged {
        let before = ms(before);
        let limit = u64::from(limit);
        let expired = |r: &Row| r.message.created_at < before && r.message.status != MessageStatus::Streaming;
        // The sessions holding the oldest `limit` expired messages.
        let mut oldest: Vec<(Timestamp, Uuid, i64)> = self
            .messages
            .values()
            .flat_map(|m| m.values())
            .filter(|r| r.tenant_id == tenant_id && expired(r))
            .map(|r| (r.message.created_at, r.message.session_id, r.message.seq))
            .collect();
        oldest.sort();
        let mut sessions: Vec<Uuid> =
            oldest.iter().take(usize::try_from(limit).unwrap_or(usize::MAX)).map(|o| o.1).collect();
        sessions.sort();
        sessions.dedup();
        let mut purged = Purged::default();
        for session_id in sessions {
            let left = limit.saturating_sub(purged.messages);
            if left == 0 {
                break;
            }
            if self.session_mut(tenant_id, session_id).is_none() {
                continue;
            }
            let Some(rows) = self.messages.get_mut(&session_id) else { continue };
            let doomed: Vec<i64> = rows
                .values()
                .filter(|r| expired(r))
                .map(|r| r.message.seq)
                .take(usize::try_from(left).unwrap_or(usize::MAX))
                .collect();
            for seq in &doomed {
                rows.remove(seq);
            }
            let deleted = doomed.len() as u64;
            if let Some(session) = self.session_mut(tenant_id, session_id) {
                session.message_count = (session.message_count - deleted as i64).max(0);
            }
            purged.messages += deleted;
        }
        purged.sessions = self.purge_empty_sessions(tenant_id, before, limit);
        purged
    }

    /// Deletes up to `limit` of the tenant's sessions without messages, idle
    /// since before `before`, the longest idle first.
    fn purge_empty_sessions(&mut self, tenant_id: &str, before: Timestamp, limit: u64) -> u64 {
        let mut empty: Vec<(Timestamp, uuid::Uuid)> = self
            .sessions
            .values()
            .filter(|s| s.tenant_id == tenant_id && s.last_activity_at < before)
            .filter(|s| self.messages.get(&s.id).is_none_or(|m| m.is_empty()))
            .map(|s| (s.last_activity_at, s.id))
            .collect();
        empty.sort();
        empty.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        for (_, id) in &empty {
            self.remove_session(*id);
        }
        empty.len() as u64
    }

    /// A session and everything kept under it.
    pub(super) fn remove_session(&mut self, id: Uuid) {
        self.sessions.remove(&id);
        self.messages.remove(&id);
        self.contexts.remove(&id);
        self.conversations.retain(|(session_id, _), _| *session_id != id);
    }

    pub(super) fn daily_usage(&self, tenant_id: &str, from: i64, to: i64) -> Vec<DailyUsage> {
        self.daily
            .iter()
            .filter(|((t, day), u)| t == tenant_id && (from..=to).contains(day) && u.turns > 0)
            .map(|(_, u)| *u)
            .collect()
    }
}

/// A turn's user message or its answer, as `begin_turn` writes them.
fn new_message(turn: &BeginTurn, seq: i64, role: Role, status: MessageStatus) -> Message {
    let user = role == Role::User;
    Message {
        tool_calls: Vec::new(),
        session_id: turn.session_id,
        seq,
        role,
        content: if user { turn.content.clone() } else { String::new() },
        author: None,
        status,
        created_at: ms(turn.now),
        token_count: if user { turn.user_token_count } else { 0 },
        client_message_id: if user { turn.client_message_id.clone() } else { None },
        tools: Vec::new(),
        turn_id: Some(turn.turn_id),
        meta: None,
    }
}
