//! HTTP/1.1 over a bare TCP stream, for what no well-behaved client sends:
//! silent or trickled bodies, malformed heads. Reads answers framed by
//! `Content-Length` (every answer these tests expect) and tells whether the
//! server then closed the connection.

use super::app::TestApp;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

/// One answer as it came over the wire.
pub struct RawReply {
    pub status: u16,
    /// Names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawReply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts the SPEC §8 envelope with this status and code, its trace id
    /// in `X-Trace-Id`, and the security headers; returns `error`.
    pub fn assert_envelope(&self, status: u16, code: &str) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "status of {code}: {self:?}");
        assert!(self.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{self:?}");
        let err = self.json()["error"].clone();
        assert_eq!(err["code"], code, "{text}");
        assert_eq!(err["http_status"], status, "{text}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{text}");
        let trace = err["trace_id"].as_str().unwrap_or_default();
        assert!(!trace.is_empty(), "{text}");
        assert_eq!(self.header("x-trace-id"), Some(trace), "{self:?}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"), "{self:?}");
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"), "{self:?}");
        err
    }
}

/// The `host:port` of the server under test.
pub fn addr(app: &TestApp) -> String {
    app.url("").trim_start_matches("http://").trim_end_matches('/').to_owned()
}

pub async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(addr(app)).await.expect("connect")
}

/// The first whole answer in `bytes`, and how many bytes it took.
pub fn parse(bytes: &[u8]) -> Option<(RawReply, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let body_start = end + 4;
    let body = bytes.get(body_start..body_start + length)?.to_vec();
    Some((RawReply { status, headers, body }, body_start + length))
}

/// Reads one whole answer, leaving the connection as it is (for the next
/// request on it). Panics if none came within `within`.
pub async fn read_reply(r: &mut (impl AsyncRead + Unpin), within: Duration) -> RawReply {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            if let Some((reply, _)) = parse(&got) {
                return Some(reply);
            }
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    match read {
        Ok(Some(reply)) => reply,
        Ok(None) => panic!("the connection ended before a whole answer: {:?}", String::from_utf8_lossy(&got)),
        Err(_) => panic!("no whole answer within {within:?}: {:?}", String::from_utf8_lossy(&got)),
    }
}

/// Everything the server sends until it closes the connection (an end or a
/// reset), or `None` if it was still open after `within`.
pub async fn read_to_close(r: &mut (impl AsyncRead + Unpin), within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let ended = tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    ended.is_ok().then_some(got)
}
