//! Trace ids: every response carries `X-Trace-Id`, taken from a client's W3C
//! `traceparent` when it sends a valid one, else fresh. The id is task-local
//! for the request, so errors and logs anywhere in it can name it. Also
//! writes the request's access line (`logging.rs`), opens the request's
//! span when spans are exported (`otlp.rs`), and adds the security headers
//! every response carries.

use crate::logging::ACCESS;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, OnceLock};
use switchboard_core::tenant::Tenant;
use tracing::Instrument;

/// What a request's task knows about the request: its trace id, and the
/// tenant once one is resolved (for the access line).
pub struct Scope {
    id: String,
    tenant: OnceLock<Arc<Tenant>>,
}

impl Scope {
    fn new(id: String) -> Self {
        Self { id, tenant: OnceLock::new() }
    }
}

tokio::task_local! {
    static REQUEST: Scope;
}

/// The current request's trace id (empty outside a request).
pub fn current() -> String {
    REQUEST.try_with(|s| s.id.clone()).unwrap_or_default()
}

/// Notes the tenant the current request is for (the first one noted counts).
pub fn note_tenant(tenant: &Arc<Tenant>) {
    let _ = REQUEST.try_with(|s| s.tenant.set(Arc::clone(tenant)));
}

/// Runs `f` with `id` as the current trace id, outside any request (an
/// answer written by the accept loop itself).
pub fn with_id<R>(id: String, f: impl FnOnce() -> R) -> R {
    REQUEST.sync_scope(Scope::new(id), f)
}

/// The headers every response carries (SPEC §9).
pub const SECURITY_HEADERS: [(&str, &str); 2] =
    [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer")];

/// Runs `f` with `id` as the current trace id (a WebSocket's whole life,
/// after the request that upgraded it has answered). Not an `async fn`: that
/// would hold `f` twice (the argument, then inside the scope), doubling the
/// state a socket keeps for its life.
pub fn within<F: std::future::Future>(id: String, f: F) -> tokio::task::futures::TaskLocalFuture<Scope, F> {
    REQUEST.scope(Scope::new(id), f)
}

/// A client's valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
pub struct TraceParent<'a> {
    pub trace_id: &'a str,
    /// The client's span, parent of the request's exported span.
    pub parent_id: &'a str,
    pub flags: &'a str,
}

fn parse_traceparent(headers: &HeaderMap) -> Option<TraceParent<'_>> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2);
    valid.then_some(TraceParent { trace_id: trace, parent_id: parent, flags })
}

/// A query string with the values of credentials (`ticket`, `token`)
/// replaced, so URLs can be logged: tickets travel in URLs.
fn redact_credentials(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _))
                if matches!(key.to_ascii_lowercase().as_str(), "ticket" | "token" | "access_token") =>
            {
                format!("{key}=REDACTED")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A new trace id (32 lower-case hex digits).
pub fn fresh() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let parent = parse_traceparent(request.headers());
    // With spans exported the request's span names the trace id (the
    // client's when it sent one), so logs, `X-Trace-Id`, the `traceparent`
    // sent on and the collector agree; otherwise no span is made at all.
    let span = crate::otlp::request_span(&request, parent.as_ref());
    let id = match (&span, parent) {
        (Some((_, id)), _) => id.clone(),
        (None, Some(parent)) => parent.trace_id.to_owned(),
        (None, None) => fresh(),
    };
    let header = HeaderValue::from_str(&id).ok();
    // The access line (`logging.rs`); nothing is copied when it is off.
    let access = tracing::enabled!(target: ACCESS, tracing::Level::INFO).then(|| {
        let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
        let query = request.uri().query().map(redact_credentials);
        (request.method().clone(), route, request.uri().path().to_owned(), query)
    });
    let started = std::time::Instant::now();
    let scoped = REQUEST.scope(Scope::new(id.clone()), async {
        let response = next.run(request).await;
        (response, REQUEST.with(|s| s.tenant.get().map(|t| t.id.clone())))
    });
    let (mut response, tenant) = match span {
        None => scoped.await,
        Some((span, _)) => {
            let (response, tenant) = scoped.instrument(span.clone()).await;
            crate::otlp::answered(&span, response.status(), tenant.as_deref());
            (response, tenant)
        }
    };
    if let Some((method, route, path, query)) = access {
        tracing::info!(
            target: ACCESS,
            trace_id = %id,
            %method,
            route = route.as_deref().unwrap_or("unmatched"),
            %path,
            query = query.as_deref().unwrap_or(""),
            tenant = tenant.as_deref().unwrap_or(""),
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    let headers = response.headers_mut();
    if let Some(h) = header {
        headers.insert("x-trace-id", h);
    }
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_str(v).ok()?);
        parse_traceparent(&h).map(|p| p.trace_id.to_owned())
    }

    #[test]
    fn honours_only_valid_traceparents() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(parse(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(), Some(id));
        assert_eq!(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(parse(&format!("00-{id}-0000000000000000-01")), None, "a zero parent id is invalid");
        assert_eq!(parse(&format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase())), None);
        assert_eq!(parse(&format!("ff-{id}-00f067aa0ba902b7-01")), None);
        assert_eq!(parse("garbage"), None);
        assert_eq!(fresh().len(), 32);
    }

    #[test]
    fn credentials_in_query_strings_are_redacted() {
        assert_eq!(
            redact_credentials("tenant=acme&ticket=eyJ.secret.sig&last_event_id=4&Token=x"),
            "tenant=acme&ticket=REDACTED&last_event_id=4&Token=REDACTED"
        );
        assert_eq!(redact_credentials("a=1&b"), "a=1&b");
    }
}
