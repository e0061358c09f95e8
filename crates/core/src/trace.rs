//! W3C Trace Context for the requests the runtime makes on a turn's
//! behalf: a provider's completion, a tool's call (webhook or MCP) and a
//! product check carry a `traceparent` with the trace id of the request that
//! started the turn (the client's own when it sent one), so a gateway or a
//! tenant's backend can join its logs to ours.
//!
//! When spans are exported (the server's `otlp_endpoint`), the parent id is
//! the exported span the call runs in ([`SPANS`]), so a collector shows the
//! vendor's side as its child; the server installs that lookup with
//! [`set_current_span`]. Nothing here knows how spans are exported.

use std::sync::OnceLock;

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// The `tracing` target of the spans that exist only to be exported (a
/// provider call, a tool call, a product check): the server's log filter
/// turns it off unless spans are exported, so they cost nothing otherwise
/// and never show in log lines.
pub const SPANS: &str = "spans";

/// The `traceparent` of the span the caller runs in, when spans are exported.
static CURRENT_SPAN: OnceLock<fn() -> Option<String>> = OnceLock::new();

/// Installs the lookup of the current span's `traceparent` (once, at start,
/// by whoever exports spans).
pub fn set_current_span(lookup: fn() -> Option<String>) {
    let _ = CURRENT_SPAN.set(lookup);
}

/// The `traceparent` of a request made for the trace `trace_id` (32
/// lower-case hex digits, not all zero; `None` for anything else): the
/// current exported span's when it belongs to that trace, else
/// `00-<trace id>-<new parent id>-01`, so each call still names a parent of
/// its own: every outgoing request is a new span of the trace.
pub fn traceparent(trace_id: &str) -> Option<String> {
    let valid = trace_id.len() == 32
        && trace_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && trace_id.bytes().any(|b| b != b'0');
    if !valid {
        return None;
    }
    let exported = CURRENT_SPAN.get().and_then(|lookup| lookup());
    match exported {
        Some(current) if current.get(3..35) == Some(trace_id) => Some(current),
        _ => Some(format!("00-{trace_id}-{:016x}-01", rand::random::<u64>().max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_the_trace_id_with_a_fresh_parent() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let (a, b) = (traceparent(id).unwrap(), traceparent(id).unwrap());
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!((parts[0], parts[1], parts[3]), ("00", id, "01"));
        assert!(parts[2].len() == 16 && parts[2] != "0000000000000000");
        assert_ne!(a, b, "each request is a span of its own");
    }

    #[test]
    fn names_the_exported_span_of_the_same_trace() {
        // A trace id of this test's own: the lookup is process-wide.
        fn exported() -> Option<String> {
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into())
        }
        set_current_span(exported);
        let id = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(traceparent(id).as_deref(), exported().as_deref());
        let other = traceparent("11111111111111111111111111111111").unwrap();
        assert!(other.starts_with("00-11111111111111111111111111111111-"), "another trace: {other}");
        assert!(!other.contains("b7ad6b7169203331"));
    }

    #[test]
    fn refuses_what_is_not_a_trace_id() {
        for bad in ["", "abc", "00000000000000000000000000000000", "4BF92F3577B34DA6A3CE929D0E0E4736"] {
            assert_eq!(traceparent(bad), None, "{bad}");
        }
        assert_eq!(traceparent("4bf92f3577b34da6a3ce929d0e0e4736\r\nx: y"), None);
    }
}
