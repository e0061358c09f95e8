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

fn fresh() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let id = from_traceparent(request.headers()).unwrap_or_else(fresh);
    let header = HeaderValue::from_str(&id).ok();
    let mut response = TRACE_ID.scope(id, next.run(request)).await;
    let headers = response.headers_mut();
    if let Some(h) = header {
        headers.insert("x-trace-id", h);
    }
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
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
}
