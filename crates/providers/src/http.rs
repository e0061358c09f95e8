//! What every HTTP vendor client shares: the tuned HTTP client, endpoint
//! URLs from `base_url`, and turning transport errors and refusals into
//! [`ProviderError`]s with the vendor's retry hint parsed.

use crate::BuildError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::Url;
use std::time::Duration;
use switchboard_core::provider::ProviderError;
use switchboard_core::tenant::ProviderSettings;

/// How much of an error response body is read for the log.
const ERROR_BODY_MAX_BYTES: usize = 4096;

/// How much of an upstream error text goes into a log message.
pub(crate) const LOG_SNIPPET_CHARS: usize = 512;

/// The HTTP client of one provider: connect timeout from the settings, kept
/// alive connections, no overall timeout (the turn engine times the stream).
pub(crate) fn client(settings: &ProviderSettings) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .connect_timeout(settings.timeouts.connect)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::Client(e.to_string()))
}

/// `{base}/{path}`, whatever slashes the base ends with; http(s) only.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<Url, BuildError> {
    let invalid = |reason: String| BuildError::InvalidBaseUrl { url: base.to_owned(), reason };
    let url =
        Url::parse(&format!("{}/{path}", base.trim_end_matches('/'))).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    Ok(url)
}

/// A request that got no response: a connect error, retryable.
pub(crate) fn send_error(e: &reqwest::Error) -> ProviderError {
    // Only connecting is timed by the client, so a timeout here is that.
    let timed_out = e.is_timeout();
    ProviderError::Connect { message: format!("request failed: {}", error_chain(e)), timed_out }
}

/// An error with its causes, which is where HTTP client errors keep the
/// useful part ("connection refused", "unexpected EOF").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A non-success response as a [`ProviderError::Refused`]: its status, the
/// vendor's retry hint and verdict (`x-should-retry`), and the start of its
/// body for the log. `read_within`
/// bounds reading the body, which nothing else times.
pub(crate) async fn refusal(response: reqwest::Response, read_within: Duration) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers(), chrono::Utc::now());
    let should_retry = match response.headers().get("x-should-retry").map(|v| v.as_bytes()) {
        Some(b"true") => Some(true),
        Some(b"false") => Some(false),
        _ => None,
    };
    let body = read_prefix(response, ERROR_BODY_MAX_BYTES, read_within).await;
    ProviderError::Refused { status, retry_after, should_retry, message: snippet(body.trim()) }
}

/// `retry-after-ms` (milliseconds, OpenAI) or `retry-after` (seconds or an
/// HTTP date; a date in the past means now).
pub(crate) fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = value("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms.min(1e12) / 1000.0));
        }
    }
    let raw = value(RETRY_AFTER.as_str())?;
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// The first bytes of a response body, lossily decoded; whatever was read
/// when the time runs out or the body fails.
async fn read_prefix(mut response: reqwest::Response, max: usize, within: Duration) -> String {
    let mut buf = Vec::new();
    let read = async {
        while buf.len() < max {
            match response.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    buf.truncate(max);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Cuts upstream text to a length fit for one log line.
pub(crate) fn snippet(text: &str) -> String {
    match text.char_indices().nth(LOG_SNIPPET_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// A count from the wire as `u32`, saturating.
pub(crate) fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use reqwest::header::HeaderValue;

    #[test]
    fn endpoints_follow_the_base_url() {
        let url = |b: &str| endpoint(b, "chat/completions").map(|u| u.to_string());
        assert_eq!(url("https://api.openai.com/v1").unwrap(), "https://api.openai.com/v1/chat/completions");
        assert_eq!(url("http://127.0.0.1:11434/v1/").unwrap(), "http://127.0.0.1:11434/v1/chat/completions");
        assert!(matches!(url("not a url"), Err(BuildError::InvalidBaseUrl { .. })));
        assert!(matches!(url("ftp://example.com"), Err(BuildError::InvalidBaseUrl { .. })));
    }

    #[test]
    fn retry_hints_in_every_form() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        let hint = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            retry_after(&h, now)
        };
        assert_eq!(hint(&[]), None);
        assert_eq!(hint(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(hint(&[("retry-after", "1.5")]), Some(Duration::from_millis(1500)));
        assert_eq!(
            hint(&[("retry-after", "7"), ("retry-after-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(hint(&[("retry-after", "Sun, 22 Nov 2026 08:00:30 GMT")]), Some(Duration::from_secs(30)));
        assert_eq!(hint(&[("retry-after", "Sun, 22 Nov 2026 07:00:00 GMT")]), Some(Duration::ZERO));
        assert_eq!(hint(&[("retry-after", "soon")]), None);
        assert_eq!(hint(&[("retry-after", "-3")]), None);
        assert_eq!(hint(&[("retry-after-ms", "x"), ("retry-after", "2")]), Some(Duration::from_secs(2)));
    }

    #[test]
    fn snippets_are_bounded() {
        let long = "é".repeat(5000);
        assert_eq!(snippet(&long).chars().count(), LOG_SNIPPET_CHARS + 1);
        assert_eq!(snippet("short"), "short");
    }
}
