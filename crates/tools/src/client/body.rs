//! Reading a webhook's answer: the status judged first (a redirect is never
//! followed, anything else but 2xx is an error), then the body streamed
//! under a hard cap, so an endpoint cannot make us hold more than
//! [`MAX_RESPONSE_BYTES`] of it.

use super::CallError;
use reqwest::header::RETRY_AFTER;
use reqwest::Response;
use std::time::Duration;

/// The largest answer read (SPEC §16: a body over 256 KiB is an error).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The response when its status is 2xx, else why not.
pub(super) fn success(response: Response) -> Result<Response, CallError> {
    let status = response.status();
    if status.is_redirection() {
        return Err(CallError::Redirect { status: status.as_u16() });
    }
    if !status.is_success() {
        let retry_after = retry_after(&response);
        return Err(CallError::Status { status: status.as_u16(), retry_after });
    }
    Ok(response)
}

/// The body, read chunk by chunk and refused as soon as it would pass the
/// cap (at once when the declared length already does).
pub(super) async fn read_capped(mut response: Response, cap: usize) -> Result<Vec<u8>, CallError> {
    if response.content_length().is_some_and(|length| length > cap as u64) {
        return Err(CallError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CallError::transport)? {
        if body.len() + chunk.len() > cap {
            return Err(CallError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` in seconds, for the outbound-event worker's 429 and 503
/// handling. The HTTP-date form is not read: the worker then keeps its own
/// schedule.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}
