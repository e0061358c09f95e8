//! Trace ids: every response carries `X-Trace-Id`, taken from a client's W3C
//! `traceparent` when it sends a valid one, else fresh. The id is task-local
//! for the request, so errors and logs anywhere in it can name it. Also adds
//! the security headers every response carries.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static TRACE_ID: String;
}

/// The current request's trace id (empty outside a request).
pub fn current() -> String {
    TRACE_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `f` with `id` as the current trace id, outside any request (an
/// answer written by the accept loop itself).
pub fn with_id<R>(id: String, f: impl FnOnce() -> R) -> R {
    TRACE_ID.sync_scope(id, f)
}

/// The headers every response carries (SPEC §9).
pub const SECURITY_HEADERS: [(&str, &str); 2] =
    [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer")];

/// Runs `f` with `id` as the current trace id (a WebSocket's whole life,
/// after the request that upgraded it has answered). Not an `async fn`: that
/// would hold `f` twice (the argument, then inside the scope), doubling the
/// state a socket keeps for its life.
pub fn within<F: std::future::Future>(id: String, f: F) -> tokio::task::futures::TaskLocalFuture<String, F> {
    TRACE_ID.scope(id, f)
}

/// The trace-id field of a valid `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn from_traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && hex(flags, 2);
    valid.then(|| trace.to_owned())
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
    let id = from_traceparent(request.headers()).unwrap_or_else(fresh);
    let header = HeaderValue::from_str(&id).ok();
    // An access log at debug level; nothing is copied when it is off.
    let access = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        let uri = request.uri();
        (request.method().clone(), uri.path().to_owned(), uri.query().map(redact_credentials))
    });
    let started = std::time::Instant::now();
    let mut response = TRACE_ID.scope(id.clone(), next.run(request)).await;
    if let Some((method, path, query)) = access {
        tracing::debug!(
            trace_id = %id,
            %method,
            %path,
            query = query.as_deref().unwrap_or(""),
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
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
        from_traceparent(&h)
    }

    #[test]
    fn honours_only_valid_traceparents() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(parse(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(), Some(id));
        assert_eq!(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
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
