//! Outbound events (SPEC §19): what a tenant is told about its sessions,
//! by a signed webhook, at least once.
//!
//! Each event is a row of a durable outbox, written in the same transaction
//! as the change that causes it (a session created, a turn ended, a hold
//! changed, a close): an event is never lost once the change is committed,
//! and never sent for a change that was not. This module decides *whether*
//! there is an event and what it says ([`Outbound::event`]); the store
//! writes it with the change; a delivery worker on every node (the server's
//! `outbound` module) leases due rows, signs and sends them, and settles
//! each try with [`after_failure`]'s schedule.

mod schedule;

pub use schedule::{after_failure, Next, QuietHours};

use crate::ids::Subject;
use crate::time::{format, Timestamp};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// The kinds of event, by their names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    SessionCreated,
    TurnCompleted,
    TurnFailed,
    HandoffRequested,
    TakeoverStarted,
    TakeoverEnded,
    SessionClosed,
    SessionIdle,
}

impl EventType {
    pub const ALL: [Self; 8] = [
        Self::SessionCreated,
        Self::TurnCompleted,
        Self::TurnFailed,
        Self::HandoffRequested,
        Self::TakeoverStarted,
        Self::TakeoverEnded,
        Self::SessionClosed,
        Self::SessionIdle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionCreated => "session.created",
            Self::TurnCompleted => "turn.completed",
            Self::TurnFailed => "turn.failed",
            Self::HandoffRequested => "handoff.requested",
            Self::TakeoverStarted => "takeover.started",
            Self::TakeoverEnded => "takeover.ended",
            Self::SessionClosed => "session.closed",
            Self::SessionIdle => "session.idle",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The retry delays when `retry_schedule_secs` is left out.
pub const DEFAULT_RETRY_SCHEDULE: [u64; 5] = [60, 300, 900, 3600, 21600];
/// `idle_after_secs` when left out.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(1800);
/// One try's deadline: connect, send and the answer's headers.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// A tenant's `[tenants.events]`, checked.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub url: String,
    /// The `whsec_` secret(s) the deliveries are signed with (the value of
    /// `secret_env`).
    pub secret: String,
    types: u16,
    pub idle_after: Duration,
    pub quiet_hours: Option<QuietHours>,
    pub time_zone: chrono_tz::Tz,
    pub retry_schedule: Vec<Duration>,
}

impl Outbound {
    /// `types`: empty means every type.
    pub fn new(url: String, secret: String, types: &[EventType]) -> Self {
        let types = if types.is_empty() { EventType::ALL.as_slice() } else { types };
        Self {
            url,
            secret,
            types: types.iter().fold(0, |bits, t| bits | t.bit()),
            idle_after: DEFAULT_IDLE_AFTER,
            quiet_hours: None,
            time_zone: chrono_tz::UTC,
            retry_schedule: DEFAULT_RETRY_SCHEDULE.iter().map(|s| Duration::from_secs(*s)).collect(),
        }
    }

    pub fn wants(&self, kind: EventType) -> bool {
        self.types & kind.bit() != 0
    }

    /// The event of `kind` about `session`, if the tenant wants that kind.
    pub fn event(
        &self,
        kind: EventType,
        tenant_id: &str,
        session_id: Uuid,
        at: Timestamp,
        data: Value,
    ) -> Option<NewEvent> {
        self.wants(kind).then(|| NewEvent::new(kind, tenant_id, session_id, at, data))
    }

    /// Whether `now` falls in the tenant's quiet hours (its local time).
    pub fn is_quiet(&self, now: Timestamp) -> bool {
        self.quiet_hours.is_some_and(|q| q.contains(now.with_timezone(&self.time_zone)))
    }

    /// How often idle sessions are looked for: `min(idle_after / 2, 30 s)`,
    /// at least a second.
    pub fn idle_check_every(&self) -> Duration {
        (self.idle_after / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// An event to write with the change that causes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Also the `webhook-id`, the same on every try (time-ordered).
    pub id: Uuid,
    pub tenant_id: String,
    pub session_id: Uuid,
    pub kind: EventType,
    /// The JSON body sent, exactly the bytes signed.
    pub body: String,
    pub at: Timestamp,
}

/// The body on the wire (SPEC §19), written straight to its text rather
/// than through a JSON tree: it is built once per event, on a turn's path.
#[derive(serde::Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: Uuid,
    tenant_id: &'a str,
    session_id: Uuid,
    occurred_at: String,
    data: Value,
}

impl NewEvent {
    pub fn new(kind: EventType, tenant_id: &str, session_id: Uuid, at: Timestamp, data: Value) -> Self {
        let id = Uuid::now_v7();
        let body = Body { kind: kind.as_str(), id, tenant_id, session_id, occurred_at: format(&at), data };
        // A struct of strings, ids and a JSON value always serializes.
        let body = serde_json::to_string(&body).unwrap_or_default();
        Self { id, tenant_id: tenant_id.to_owned(), session_id, kind, body, at }
    }
}

/// How events name a visitor or user: `{kind, id}`, as exports do.
pub fn subject_json(subject: &Subject) -> Value {
    json!({"kind": subject.kind(), "id": subject.id()})
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(rename_all = "lowercase"))]
pub enum DeliveryStatus {
    /// Waiting for its next try.
    Pending,
    Delivered,
    /// Every try failed, or the address was refused.
    Dead,
    /// Kept while the tenant's endpoint is disabled (after a `410`).
    Held,
    /// Answered `410`: the endpoint is disabled.
    Gone,
}

impl DeliveryStatus {
    pub const ALL: [Self; 5] = [Self::Pending, Self::Delivered, Self::Dead, Self::Held, Self::Gone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Held => "held",
            Self::Gone => "gone",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_and_empty_types_mean_all() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("turn.started"), None);
        let all = Outbound::new("https://x".into(), "s".into(), &[]);
        assert!(EventType::ALL.iter().all(|t| all.wants(*t)));
        let some = Outbound::new("https://x".into(), "s".into(), &[EventType::SessionIdle]);
        assert!(some.wants(EventType::SessionIdle) && !some.wants(EventType::TurnCompleted));
        let at = crate::time::from_millis(0).unwrap();
        assert!(some.event(EventType::TurnCompleted, "acme", Uuid::nil(), at, json!({})).is_none());
    }

    #[test]
    fn an_event_body_carries_its_id_and_names() {
        let at = crate::time::from_millis(1_700_000_000_000).unwrap();
        let session = Uuid::new_v4();
        let event = NewEvent::new(EventType::TurnFailed, "acme", session, at, json!({"seq": 2}));
        let body: Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body["type"], "turn.failed");
        assert_eq!(body["id"], event.id.to_string());
        assert_eq!(body["session_id"], session.to_string());
        assert_eq!(body["tenant_id"], "acme");
        assert_eq!(body["occurred_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(body["data"], json!({"seq": 2}));
    }

    #[test]
    fn idle_checks_run_every_half_idle_time_up_to_thirty_seconds() {
        let mut o = Outbound::new("https://x".into(), "s".into(), &[]);
        assert_eq!(o.idle_check_every(), Duration::from_secs(30));
        o.idle_after = Duration::from_secs(10);
        assert_eq!(o.idle_check_every(), Duration::from_secs(5));
        o.idle_after = Duration::from_secs(1);
        assert_eq!(o.idle_check_every(), Duration::from_secs(1));
    }
}
