//! The rate-limit step of the gate (SPEC §10) for HTTP: who the client is
//! (the socket peer, or `X-Forwarded-For` behind a trusted proxy; IPv6 per
//! /64), which limits a request is checked against, and the
//! `X-RateLimit-*` headers.
//!
//! How the headers reach the response without threading a value through
//! every handler: `layer` (a middleware around the end-user routes) opens a
//! per-request, task-local slot holding the peer address; `admit` records
//! the tightest scope in it; when the handler has answered, whatever way
//! (success, or any refusal after this step, the 429 included), `layer`
//! copies that scope onto the response. Endpoints that never call `admit`
//! get no headers.

use crate::edge::Edge;
use crate::gate::Caller;
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use switchboard_core::ratelimit::{Decision, Limit, Quota};
use switchboard_core::tenant::Tenant;
use switchboard_core::{ErrorCode, Subject};

/// What `layer` and `admit` share for one request.
struct Slot {
    peer: Option<SocketAddr>,
    quota: Mutex<Option<Quota>>,
}

tokio::task_local! {
    static SLOT: Arc<Slot>;
}

/// Middleware for end-user routes: see the module comment.
pub async fn layer(request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let slot = Arc::new(Slot { peer, quota: Mutex::new(None) });
    let mut response = SLOT.scope(slot.clone(), next.run(request)).await;
    let quota = *slot.quota.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(q) = quota {
        apply(response.headers_mut(), &q);
    }
    response
}

fn apply(headers: &mut HeaderMap, q: &Quota) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(q.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(q.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(q.reset));
}

/// The gate's rate-limit step for an HTTP request, right after the kill
/// switch: the client's address, the caller's subject (none yet for a
/// visitor creating its first session) and the tenant, each in its own
/// scope. Refuses with 429 `rate_limited` and `Retry-After`; either way the
/// tightest scope goes onto the response (through `layer`).
pub async fn admit(
    state: &AppState,
    edge: &Edge,
    headers: &HeaderMap,
    caller: Option<&Caller>,
) -> Result<(), ApiError> {
    let peer = SLOT.try_with(|s| s.peer).ok().flatten();
    if peer.is_none() {
        tracing::warn!("no peer address for this request: the ip rate limit is not applied");
    }
    let client = peer.map(|p| client_ip(p.ip(), headers, &state.config.trusted_proxies));
    let result = check(state, &edge.tenant, client, caller.map(|c| &c.subject)).await;
    let quota = match &result {
        Ok(q) => *q,
        Err((_, q)) => Some(*q),
    };
    if let (Some(q), Ok(slot)) = (quota, SLOT.try_with(Arc::clone)) {
        *slot.quota.lock().unwrap_or_else(PoisonError::into_inner) = Some(q);
    }
    result.map(|_| ()).map_err(|(e, _)| e)
}

/// The transport-neutral step (also for WebSocket messages): admits and
/// counts the request, or refuses it. A limiter that cannot answer lets the
/// request through (logged): limits protect capacity, and an outage of a
/// shared counter store should not take chat down with it.
pub async fn check(
    state: &AppState,
    tenant: &Tenant,
    client: Option<IpAddr>,
    subject: Option<&Subject>,
) -> Result<Option<Quota>, (ApiError, Quota)> {
    let address = client.map(ip_key);
    let subject = subject.map(Subject::to_string);
    let limits = Limit::for_request(&tenant.id, &tenant.rate_limits, address.as_deref(), subject.as_deref());
    match state.limiter.check(&limits).await {
        Ok(Decision::Admitted { tightest }) => Ok(tightest),
        Ok(Decision::Refused { tightest, retry_after }) => {
            // Debug, not info: a flood of refusals must not flood the log too.
            tracing::debug!(tenant = %tenant.id, scope = tightest.scope.as_str(), retry_after, "rate limited");
            let error = ApiError { retry_after: Some(retry_after), ..ApiError::new(ErrorCode::RateLimited) };
            Err((error, tightest))
        }
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable: request let through");
            Ok(None)
        }
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy; then
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy
/// (entries left of it are whatever the client chose to send). A malformed
/// entry on the way there means the header cannot be believed: the peer.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { return peer };
        entries.extend(value.split(',').map(str::trim));
    }
    let mut leftmost = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_forwarded(entry) else { return peer };
        if !is_trusted(&ip) {
            return ip;
        }
        leftmost = ip;
    }
    // Every hop is a trusted proxy: the first of them is the client.
    leftmost
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`), as some proxies write it.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let ip = entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// The `ip` scope's identity: an IPv4 address, or the /64 of an IPv6 one
/// (one subscriber usually holds a whole /64). IPv4-mapped IPv6 is IPv4.
pub fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = xff(&["203.0.113.7"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &nets(&["10.0.0.0/8"])), ip("198.51.100.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "::1/128"]);
        let peer = ip("10.0.0.2");
        assert_eq!(client_ip(peer, &xff(&["203.0.113.7"]), &trusted), ip("203.0.113.7"));
        assert_eq!(client_ip(peer, &xff(&["1.1.1.1, 203.0.113.7, 10.0.0.9"]), &trusted), ip("203.0.113.7"));
        // Several header lines read as one list, in order.
        assert_eq!(client_ip(peer, &xff(&["1.1.1.1", "203.0.113.7, 10.0.0.9"]), &trusted), ip("203.0.113.7"));
        // Garbage left of the client is the client's own business.
        assert_eq!(client_ip(peer, &xff(&["nonsense, 203.0.113.7"]), &trusted), ip("203.0.113.7"));
        assert_eq!(client_ip(peer, &xff(&["203.0.113.7:4711"]), &trusted), ip("203.0.113.7"));
        assert_eq!(client_ip(peer, &xff(&["[2001:db8::1]:4711"]), &trusted), ip("2001:db8::1"));
        assert_eq!(client_ip(peer, &xff(&["::ffff:203.0.113.7"]), &trusted), ip("203.0.113.7"));
        // Only proxies: the first of them.
        assert_eq!(client_ip(peer, &xff(&["10.1.1.1, 10.2.2.2"]), &trusted), ip("10.1.1.1"));
        // A mapped peer is matched as IPv4.
        assert_eq!(client_ip(ip("::ffff:10.0.0.2"), &xff(&["203.0.113.7"]), &trusted), ip("203.0.113.7"));
    }

    #[test]
    fn a_malformed_or_missing_header_falls_back_to_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        for bad in ["", "nonsense", "203.0.113.7, bogus", "203.0.113.7,", "unknown"] {
            assert_eq!(client_ip(peer, &xff(&[bad]), &trusted), peer, "{bad:?}");
        }
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip_key(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(ip_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("2001:db8:1:2:bbbb::9")), "2001:db8:1:2::/64");
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), ip_key(ip("2001:db8:1:2::1")));
    }
}
