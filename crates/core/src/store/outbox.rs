//! What the outbox of outbound events (SPEC §19) asks of the store: rows
//! leased by one node at a time, each try settled, the admin list, a retry,
//! the endpoint disabled and resumed, and the idle sessions `session.idle`
//! is about. Shapes only; the SQL is the store's.

use crate::outbound::{DeliveryStatus, NewEvent};
use crate::time::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Where a node's store hands the events its own writes commit, leased to
/// the node already, so that its delivery worker tries them at once: no
/// look at the outbox, no lease statement, no reading the body back. An
/// event is handed over only when the worker had room for it before its
/// write (else it is written unleased, for the worker's next look) and
/// only after its transaction committed; a held event is never handed.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The node the events are leased to (the worker's own); shared, as
    /// every event's lease names it.
    pub node: Arc<str>,
    /// How long the lease written with an event lasts.
    pub lease: Duration,
    pub tx: mpsc::Sender<Delivery>,
}

/// A place in a worker's hand-off taken before a write, for one event.
#[derive(Debug)]
pub struct Reserved {
    node: Arc<str>,
    until: Timestamp,
    permit: mpsc::OwnedPermit<Delivery>,
}

impl Handoff {
    /// A place for `event`, if the worker is running and has room.
    pub fn reserve(&self, event: &NewEvent) -> Option<Reserved> {
        let permit = self.tx.clone().try_reserve_owned().ok()?;
        let until = event.at + chrono::Duration::from_std(self.lease).ok()?;
        Some(Reserved { node: self.node.clone(), until, permit })
    }
}

impl Reserved {
    /// The lease to write with the event: node and end.
    pub fn lease(&self) -> (Arc<str>, Timestamp) {
        (Arc::clone(&self.node), self.until)
    }

    /// Hands `event`, committed leased to this node, to the worker.
    pub fn hand(self, event: &NewEvent) {
        self.permit.send(Delivery {
            id: event.id,
            tenant_id: event.tenant_id.clone(),
            kind: event.kind.as_str().to_owned(),
            body: event.body.clone(),
            attempts: 0,
            created_at: event.at,
        });
    }
}

/// A delivery leased for a try.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event's id, also its `webhook-id`.
    pub id: Uuid,
    pub tenant_id: String,
    /// The event's type.
    pub kind: String,
    /// The JSON body, exactly as signed and sent on every try.
    pub body: String,
    /// Failed tries so far (since the last manual retry).
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// How a try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Delivered {
        status: u16,
    },
    /// Failed; tried again at `at`.
    Retry {
        at: Timestamp,
        status: Option<u16>,
        error: String,
    },
    /// Not tried: this node cannot send it (it does not serve the tenant's
    /// events); due again at `at`, for any node, and not counted as a try.
    Postpone {
        at: Timestamp,
        why: String,
    },
    /// Failed for good: no try left, or the address was refused.
    Dead {
        status: Option<u16>,
        error: String,
    },
    /// Answered `410`: this delivery is `gone`, the tenant's endpoint
    /// disabled, and its pending deliveries held.
    Gone,
}

/// A delivery as the admin API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub kind: String,
    pub session_id: Uuid,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// A page of a tenant's deliveries, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryQuery {
    pub tenant_id: String,
    pub status: Option<DeliveryStatus>,
    /// Only deliveries older than this one (the cursor).
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// What `POST /v1/admin/deliveries/{id}/retry` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Pending again, due now, with a fresh schedule.
    Queued,
    NotFound,
    /// The tenant's endpoint is disabled (after a `410`).
    Disabled,
}

/// A session quiet since `last_activity_at` that has had no `session.idle`
/// for this quiet stretch.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleSession {
    pub session_id: Uuid,
    pub owner: String,
    pub last_activity_at: Timestamp,
}
