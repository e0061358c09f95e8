//! The outbox of outbound events (SPEC §19) in the memory store: the same
//! rows and rules as the SQL backends' (`switchboard-store`'s `outbox`),
//! each call one step under the store's one lock.

use super::{ms, State};
use std::collections::BTreeMap;
use switchboard_core::model::SessionStatus;
use switchboard_core::outbound::{DeliveryStatus, NewEvent};
use switchboard_core::store::outbox::{
    Delivery, DeliveryQuery, DeliveryRecord, IdleSession, RetryOutcome, Settle,
};
use switchboard_core::time::Timestamp;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub(super) struct OutboxRow {
    event: NewEvent,
    status: DeliveryStatus,
    attempts: u32,
    next_attempt_at: Timestamp,
    last_status: Option<u16>,
    last_error: Option<String>,
    delivered_at: Option<Timestamp>,
    lease: Option<(String, Timestamp)>,
}

/// The outbox's part of the store's state.
#[derive(Default)]
pub(super) struct Outbox {
    rows: BTreeMap<Uuid, OutboxRow>,
    /// Tenants whose endpoint answered 410, and when.
    disabled: BTreeMap<String, Timestamp>,
    /// The activity each session's last `session.idle` was for.
    idle_for: BTreeMap<Uuid, Timestamp>,
}

impl State {
    pub(super) fn enqueue(&mut self, event: &NewEvent) {
        let held = self.outbox.disabled.contains_key(&event.tenant_id);
        let row = OutboxRow {
            event: NewEvent { at: ms(event.at), ..event.clone() },
            status: if held { DeliveryStatus::Held } else { DeliveryStatus::Pending },
            attempts: 0,
            next_attempt_at: ms(event.at),
            last_status: None,
            last_error: None,
            delivered_at: None,
            lease: None,
        };
        self.outbox.rows.insert(event.id, row);
    }

    pub(super) fn lease_deliveries(
        &mut self,
        node: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Vec<Delivery> {
        let disabled = &self.outbox.disabled;
        let mut due: Vec<&mut OutboxRow> = self
            .outbox
            .rows
            .values_mut()
            .filter(|r| {
                matches!(r.status, DeliveryStatus::Pending | DeliveryStatus::Held) && r.next_attempt_at <= now
            })
            .filter(|r| !disabled.contains_key(&r.event.tenant_id))
            .filter(|r| r.lease.as_ref().is_none_or(|(_, end)| *end <= now))
            .collect();
        due.sort_by_key(|r| r.next_attempt_at);
        due.into_iter()
            .take(limit as usize)
            .map(|r| {
                (r.status, r.lease) = (DeliveryStatus::Pending, Some((node.to_owned(), ms(until))));
                Delivery {
                    id: r.event.id,
                    tenant_id: r.event.tenant_id.clone(),
                    kind: r.event.kind.as_str().to_owned(),
                    body: r.event.body.clone(),
                    attempts: r.attempts,
                    created_at: r.event.at,
                }
            })
            .collect()
    }

    pub(super) fn settle_delivery(&mut self, id: Uuid, node: &str, settle: &Settle, now: Timestamp) -> bool {
        let Some(row) = self.outbox.rows.get_mut(&id) else { return false };
        let held = row.lease.as_ref().is_some_and(|(n, _)| n == node);
        if !held || row.status != DeliveryStatus::Pending {
            return false;
        }
        row.lease = None;
        if let Settle::Postpone { at, why } = settle {
            (row.next_attempt_at, row.last_error) = (ms(*at), Some(why.clone()));
            return true;
        }
        row.attempts += 1;
        match settle {
            Settle::Delivered { status } => {
                (row.status, row.last_status, row.last_error) =
                    (DeliveryStatus::Delivered, Some(*status), None);
                row.delivered_at = Some(ms(now));
            }
            Settle::Retry { at, status, error } => {
                (row.next_attempt_at, row.last_status, row.last_error) =
                    (ms(*at), *status, Some(error.clone()));
            }
            Settle::Dead { status, error } => {
                (row.status, row.last_status, row.last_error) =
                    (DeliveryStatus::Dead, *status, Some(error.clone()));
            }
            Settle::Postpone { .. } => {}
            Settle::Gone => {
                (row.status, row.last_status, row.last_error) = (DeliveryStatus::Gone, Some(410), None);
                let tenant = row.event.tenant_id.clone();
                self.outbox.disabled.entry(tenant.clone()).or_insert(ms(now));
                for r in self.outbox.rows.values_mut() {
                    if r.event.tenant_id == tenant && r.status == DeliveryStatus::Pending {
                        (r.status, r.lease) = (DeliveryStatus::Held, None);
                    }
                }
            }
        }
        true
    }

    pub(super) fn release_deliveries(&mut self, node: &str) -> u64 {
        let mut released = 0;
        for row in self.outbox.rows.values_mut() {
            if row.status == DeliveryStatus::Pending && row.lease.as_ref().is_some_and(|(n, _)| n == node) {
                row.lease = None;
                released += 1;
            }
        }
        released
    }

    pub(super) fn list_deliveries(&self, q: &DeliveryQuery) -> Vec<DeliveryRecord> {
        let newest_first = self.outbox.rows.values().rev();
        newest_first
            .filter(|r| r.event.tenant_id == q.tenant_id)
            .filter(|r| q.before.is_none_or(|before| r.event.id.to_string() < before.to_string()))
            .filter(|r| q.status.is_none_or(|s| r.status == s))
            .take(q.limit as usize)
            .map(|r| DeliveryRecord {
                id: r.event.id,
                kind: r.event.kind.as_str().to_owned(),
                session_id: r.event.session_id,
                status: r.status,
                attempts: r.attempts,
                next_attempt_at: (r.status == DeliveryStatus::Pending).then_some(r.next_attempt_at),
                last_status: r.last_status,
                last_error: r.last_error.clone(),
                created_at: r.event.at,
                delivered_at: r.delivered_at,
            })
            .collect()
    }

    pub(super) fn retry_delivery(&mut self, tenant_id: &str, id: Uuid, now: Timestamp) -> RetryOutcome {
        if self.outbox.rows.get(&id).is_none_or(|r| r.event.tenant_id != tenant_id) {
            return RetryOutcome::NotFound;
        }
        if self.outbox.disabled.contains_key(tenant_id) {
            return RetryOutcome::Disabled;
        }
        match self.outbox.rows.get_mut(&id) {
            Some(row) => {
                (row.status, row.attempts, row.next_attempt_at) = (DeliveryStatus::Pending, 0, ms(now));
                row.delivered_at = None;
                RetryOutcome::Queued
            }
            None => RetryOutcome::NotFound,
        }
    }

    pub(super) fn resume_deliveries(&mut self, tenant_id: &str, now: Timestamp) -> u64 {
        self.outbox.disabled.remove(tenant_id);
        let mut resumed = 0;
        for row in self.outbox.rows.values_mut() {
            if row.event.tenant_id == tenant_id && row.status == DeliveryStatus::Held {
                (row.status, row.attempts, row.next_attempt_at) = (DeliveryStatus::Pending, 0, ms(now));
                resumed += 1;
            }
        }
        resumed
    }

    pub(super) fn purge_deliveries(
        &mut self,
        delivered_before: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> u64 {
        let old: Vec<Uuid> = self
            .outbox
            .rows
            .values()
            .filter(|r| match r.status {
                DeliveryStatus::Delivered => r.delivered_at.is_some_and(|at| at < delivered_before),
                DeliveryStatus::Dead | DeliveryStatus::Gone => r.event.at < ended_before,
                DeliveryStatus::Pending | DeliveryStatus::Held => false,
            })
            .map(|r| r.event.id)
            .take(limit as usize)
            .collect();
        old.iter().for_each(|id| drop(self.outbox.rows.remove(id)));
        old.len() as u64
    }

    pub(super) fn delivery_counts(&self) -> Vec<(DeliveryStatus, u64)> {
        DeliveryStatus::ALL
            .into_iter()
            .filter(|s| *s != DeliveryStatus::Delivered)
            .map(|s| (s, self.outbox.rows.values().filter(|r| r.status == s).count() as u64))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub(super) fn idle_sessions(
        &self,
        tenant_id: &str,
        since: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Vec<IdleSession> {
        let mut idle: Vec<IdleSession> = self
            .sessions
            .values()
            .filter(|s| s.tenant_id == tenant_id && s.status != SessionStatus::Closed)
            .filter(|s| s.last_activity_at >= since && s.last_activity_at < before)
            .filter(|s| self.outbox.idle_for.get(&s.id).is_none_or(|at| *at < s.last_activity_at))
            .map(|s| IdleSession {
                session_id: s.id,
                owner: s.owner.clone(),
                last_activity_at: s.last_activity_at,
            })
            .collect();
        idle.sort_by_key(|s| s.last_activity_at);
        idle.truncate(limit as usize);
        idle
    }

    pub(super) fn mark_idle(&mut self, idle: &IdleSession, event: &NewEvent) -> bool {
        let Some(session) = self.sessions.get(&idle.session_id).filter(|s| s.tenant_id == event.tenant_id)
        else {
            return false;
        };
        let at = session.last_activity_at;
        if at != idle.last_activity_at || self.outbox.idle_for.get(&idle.session_id).is_some_and(|f| *f >= at)
        {
            return false;
        }
        self.outbox.idle_for.insert(idle.session_id, at);
        self.enqueue(event);
        true
    }

    /// An erased subject's sessions take their events with them.
    pub(super) fn forget_events_of(&mut self, sessions: &[Uuid]) {
        self.outbox.rows.retain(|_, r| !sessions.contains(&r.event.session_id));
        self.outbox.idle_for.retain(|id, _| !sessions.contains(id));
    }
}
