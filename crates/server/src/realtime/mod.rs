//! Long-lived connections: the SSE subscription (`subscribe`), the WebSocket
//! (`ws`), the registry that caps and closes them (`connections`), and what
//! they share.

pub mod connections;
pub mod cursor;
pub mod frame_cache;
pub mod subscribe;
pub mod ws;

use crate::gate::Caller;
use crate::http::ApiError;
use crate::limits;
use crate::state::AppState;
use axum::http::HeaderMap;
use connections::Slot;
use std::net::SocketAddr;
use switchboard_core::tenant::Tenant;
use switchboard_core::ErrorCode;

/// Counts a connection of `caller` (refusing with `connection.limit` when
/// the subject, its address or the node is at its cap).
pub fn open_slot(
    state: &AppState,
    tenant: &Tenant,
    caller: &Caller,
    peer: SocketAddr,
    headers: &HeaderMap,
    transport: connections::Transport,
    pending: bool,
) -> Result<Slot, ApiError> {
    let ip = limits::client_ip(peer.ip(), headers, &state.config.trusted_proxies);
    let mut slot = state
        .connections
        .open(ip, transport, pending)
        .map_err(|_| ApiError::new(ErrorCode::ConnectionLimit))?;
    slot.identify(&tenant.id, &caller.subject.to_string(), tenant.max_connections_per_subject)
        .map_err(|_| ApiError::new(ErrorCode::ConnectionLimit))?;
    Ok(slot)
}
