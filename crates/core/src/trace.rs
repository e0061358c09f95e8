//! W3C Trace Context for the requests the runtime makes on a turn's
//! behalf: a provider's completion and a webhook tool's call carry a
//! `traceparent` with the trace id of the request that started the turn
//! (the client's own when it sent one), so a gateway or a tenant's backend
//! can join its logs to ours.

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// `00-<trace id>-<new parent id>-01` for a valid trace id (32 lower-case
/// hex digits, not all zero); `None` for anything else. Each call names a
/// parent id of its own: every outgoing request is a new span of the trace.
pub fn traceparent(trace_id: &str) -> Option<String> {
    let valid = trace_id.len() == 32
        && trace_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && trace_id.bytes().any(|b| b != b'0');
    valid.then(|| format!("00-{trace_id}-{:016x}-01", rand::random::<u64>().max(1)))
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
    fn refuses_what_is_not_a_trace_id() {
        for bad in ["", "abc", "00000000000000000000000000000000", "4BF92F3577B34DA6A3CE929D0E0E4736"] {
            assert_eq!(traceparent(bad), None, "{bad}");
        }
        assert_eq!(traceparent("4bf92f3577b34da6a3ce929d0e0e4736\r\nx: y"), None);
    }
}
