//! The long-lived connections of this node (SSE subscriptions and
//! WebSockets): their caps (SPEC §7: per subject across SSE and WS, per
//! client address, per address still waiting for `hello`, and per node) and
//! the way to close them from outside (shutdown, a kill switch, a visitor
//! linked to a user).
//!
//! A `Slot` is one connection: taking it counts it, dropping it uncounts it,
//! so no path (error, panic, client gone) can leak a count. Counts are per
//! node: a subject's connections spread over several nodes are capped on
//! each node separately.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use uuid::Uuid;

/// How a connection speaks: counted apart in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// An SSE subscription (a visitor's or an agent's live view).
    Sse,
    WebSocket,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Sse, Transport::WebSocket];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::WebSocket => "websocket",
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// The subject holds its tenant's maximum (`connection.limit`).
    Subject,
    /// The node, or the client's address, is at its cap.
    Node,
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Shutdown,
    TenantDisabled,
    /// Its credentials were revoked (a visitor linked to a user).
    Revoked,
}

impl CloseReason {
    /// The error the client is told before the close; none at shutdown (the
    /// client just resumes on another node).
    pub fn error(self) -> Option<switchboard_core::ErrorCode> {
        match self {
            Self::Shutdown => None,
            Self::TenantDisabled => Some(switchboard_core::ErrorCode::TenantDisabled),
            Self::Revoked => Some(switchboard_core::ErrorCode::AuthInvalid),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub total: u32,
    pub per_ip: u32,
    pub pending_per_ip: u32,
}

#[derive(Default)]
struct Counts {
    total: u32,
    /// By [`Transport`], in its order.
    by_transport: [u32; 2],
    by_ip: HashMap<IpAddr, u32>,
    pending_by_ip: HashMap<IpAddr, u32>,
    by_subject: HashMap<(String, String), u32>,
    open: HashMap<Uuid, Arc<Closer>>,
}

/// Who a connection belongs to, and how to tell it to close.
struct Closer {
    identity: OnceLock<(String, String)>,
    token: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl Closer {
    fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }
}

pub struct Connections {
    caps: Caps,
    counts: Mutex<Counts>,
    /// Woken when the last connection closes (shutdown waits for it).
    emptied: tokio::sync::Notify,
}

impl Connections {
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self { caps, counts: Mutex::default(), emptied: tokio::sync::Notify::new() })
    }

    /// Waits, at most `within`, until every connection has closed (each
    /// writes its last frame before its slot is dropped).
    pub async fn drained(&self, within: std::time::Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.emptied.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.count() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `ip` (a WebSocket before its `hello` is
    /// `pending`), or refuses it when the node or the address is full.
    pub fn open(self: &Arc<Self>, ip: IpAddr, transport: Transport, pending: bool) -> Result<Slot, LimitHit> {
        let mut c = self.lock();
        let at_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
        let pending_at_ip = c.pending_by_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= self.caps.total
            || at_ip >= self.caps.per_ip
            || (pending && pending_at_ip >= self.caps.pending_per_ip)
        {
            return Err(LimitHit::Node);
        }
        c.total += 1;
        c.by_transport[transport as usize] += 1;
        *c.by_ip.entry(ip).or_default() += 1;
        if pending {
            *c.pending_by_ip.entry(ip).or_default() += 1;
        }
        let id = Uuid::new_v4();
        let closer = Arc::new(Closer {
            identity: OnceLock::new(),
            token: CancellationToken::new(),
            reason: OnceLock::new(),
        });
        c.open.insert(id, closer.clone());
        Ok(Slot { registry: self.clone(), id, ip, transport, pending, closer })
    }

    /// Open connections on this node.
    pub fn count(&self) -> u32 {
        self.lock().total
    }

    /// Open connections on this node, by transport (in [`Transport::ALL`]'s order).
    pub fn count_by_transport(&self) -> [u32; 2] {
        self.lock().by_transport
    }

    /// Closes every connection (the node is stopping).
    pub fn close_all(&self, reason: CloseReason) {
        for closer in self.lock().open.values() {
            closer.close(reason);
        }
    }

    /// Closes every connection of the tenant; returns how many.
    pub fn close_tenant(&self, tenant: &str, reason: CloseReason) -> usize {
        self.close_where(reason, |(t, _)| t == tenant)
    }

    /// Closes every connection of one subject of the tenant.
    pub fn close_subject(&self, tenant: &str, subject: &str, reason: CloseReason) -> usize {
        self.close_where(reason, |(t, s)| t == tenant && s == subject)
    }

    /// Closes every connection whose (tenant, subject) matches.
    pub fn close_where(&self, reason: CloseReason, f: impl Fn(&(String, String)) -> bool) -> usize {
        let c = self.lock();
        let mut closed = 0;
        for closer in c.open.values() {
            if closer.identity.get().is_some_and(&f) && !closer.token.is_cancelled() {
                closer.close(reason);
                closed += 1;
            }
        }
        closed
    }
}

/// One counted connection.
pub struct Slot {
    registry: Arc<Connections>,
    id: Uuid,
    ip: IpAddr,
    transport: Transport,
    pending: bool,
    closer: Arc<Closer>,
}

impl Slot {
    /// The connection id clients see (`connection_id`).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Names the connection's owner (ending `pending`) and counts it against
    /// the subject's cap of `max` connections.
    pub fn identify(&mut self, tenant: &str, subject: &str, max: u32) -> Result<(), LimitHit> {
        let key = (tenant.to_owned(), subject.to_owned());
        let mut c = self.registry.lock();
        if self.closer.identity.get().is_some() {
            return Ok(());
        }
        let held = c.by_subject.get(&key).copied().unwrap_or(0);
        if held >= max {
            return Err(LimitHit::Subject);
        }
        *c.by_subject.entry(key.clone()).or_default() += 1;
        if self.pending {
            self.pending = false;
            decrement(&mut c.pending_by_ip, &self.ip);
        }
        let _ = self.closer.identity.set(key);
        Ok(())
    }

    /// Resolves when the server wants this connection closed.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.closer.token.cancelled()
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.closer.reason.get().copied()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.registry.lock();
        c.total = c.total.saturating_sub(1);
        let by_transport = &mut c.by_transport[self.transport as usize];
        *by_transport = by_transport.saturating_sub(1);
        decrement(&mut c.by_ip, &self.ip);
        if self.pending {
            decrement(&mut c.pending_by_ip, &self.ip);
        }
        if let Some(key) = self.closer.identity.get() {
            decrement(&mut c.by_subject, key);
        }
        c.open.remove(&self.id);
        if c.total == 0 {
            self.registry.emptied.notify_waiters();
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn caps_hold_and_dropping_a_slot_frees_it() {
        let c = Connections::new(Caps { total: 3, per_ip: 2, pending_per_ip: 1 });
        let a = c.open(ip(1), Transport::WebSocket, true).unwrap();
        assert_eq!(
            c.open(ip(1), Transport::WebSocket, true).err(),
            Some(LimitHit::Node),
            "one pending per address"
        );
        let b = c.open(ip(1), Transport::Sse, false).unwrap();
        assert_eq!(c.open(ip(1), Transport::Sse, false).err(), Some(LimitHit::Node), "two per address");
        let d = c.open(ip(2), Transport::Sse, false).unwrap();
        assert_eq!(c.open(ip(3), Transport::Sse, false).err(), Some(LimitHit::Node), "three per node");
        assert_eq!(c.count_by_transport(), [2, 1], "sse, websocket");
        drop((a, b, d));
        assert_eq!(c.count(), 0);
        assert_eq!(c.count_by_transport(), [0, 0]);
        assert!(c.lock().by_ip.is_empty() && c.lock().pending_by_ip.is_empty());
    }

    #[test]
    fn a_subject_is_capped_across_connections_and_others_are_untouched() {
        let c = Connections::new(Caps { total: 100, per_ip: 100, pending_per_ip: 100 });
        let mut slots: Vec<Slot> = Vec::new();
        for _ in 0..2 {
            let mut s = c.open(ip(1), Transport::WebSocket, true).unwrap();
            s.identify("acme", "user:a", 2).unwrap();
            slots.push(s);
        }
        let mut third = c.open(ip(1), Transport::WebSocket, true).unwrap();
        assert_eq!(third.identify("acme", "user:a", 2), Err(LimitHit::Subject));
        third.identify("acme", "user:b", 2).unwrap();
        assert!(c.lock().pending_by_ip.is_empty(), "identified sockets are no longer pending");
        assert_eq!(c.close_subject("acme", "user:a", CloseReason::Revoked), 2);
        assert_eq!(slots[0].close_reason(), Some(CloseReason::Revoked));
        assert_eq!(third.close_reason(), None);
        slots.pop();
        let mut again = c.open(ip(1), Transport::Sse, false).unwrap();
        assert!(again.identify("acme", "user:a", 2).is_ok());
        assert_eq!(c.close_tenant("acme", CloseReason::TenantDisabled), 2, "already closed ones not counted");
    }
}
