//! Request extractors whose refusals come out as our envelope: query and path
//! wrappers, and the JSON body reader that enforces `Content-Type` (415),
//! `max_body_bytes` (413) and the body's deadline (408) before anything
//! parses the body, which is then read strictly (duplicate keys refused).

use super::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use switchboard_core::error::FieldProblem;
use switchboard_core::ErrorCode;

/// `axum::extract::Query`, refusing with `request.invalid`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::invalid_field("query", &e.body_text()))
    }
}

/// `axum::extract::Path`, refusing with `request.invalid`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::invalid_field("path", &e.body_text()))
    }
}

/// A session id from the path.
pub fn session_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::invalid_field("session_id", "must be a UUID"))
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads a JSON body: 413 past `limit`, 415 without a JSON content type.
/// `None` when there is no body and none is required.
pub async fn json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    required: bool,
) -> Result<Option<Bytes>, ApiError> {
    if let Some(declared) = declared_length(headers).filter(|n| *n > limit as u64) {
        if declared <= DRAIN_BYTES {
            drain(body).await;
        }
        return Err(ErrorCode::TooLarge.into());
    }
    let has_body_headers = headers.contains_key(header::CONTENT_TYPE)
        || declared_length(headers).is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING);
    if has_body_headers && !is_json(headers) {
        return Err(ErrorCode::UnsupportedMediaType.into());
    }
    let bytes = read_to_limit(body, limit).await?;
    if bytes.is_empty() {
        return if required {
            Err(ApiError::invalid_field("body", "a JSON object is required"))
        } else {
            Ok(None)
        };
    }
    if !is_json(headers) {
        return Err(ErrorCode::UnsupportedMediaType.into());
    }
    Ok(Some(bytes))
}

/// The whole body, refused with 413 once it passes `limit` bytes, or with
/// 408 when it does not arrive before its deadline (see
/// [`super::request_body`]).
async fn read_to_limit(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if out.len() + chunk.len() > limit {
            return Err(ErrorCode::TooLarge.into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// A body that could not be read: too slow (408), or cut off or malformed
/// chunked framing (400; the client is usually gone by then).
fn unreadable(e: axum::Error) -> ApiError {
    if super::request_body::timed_out(&e) {
        return ErrorCode::RequestTimeout.into();
    }
    tracing::debug!(trace_id = %super::trace::current(), error = %e, "request body unreadable");
    ApiError::invalid_field("body", "could not be read to its end")
}

/// A refused body of up to this size is read to its end and dropped before
/// the refusal is sent, for at most `DRAIN_TIME`.
const DRAIN_BYTES: u64 = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// A client still sending a body the server refused would otherwise meet a
/// connection closed under its writes (a reset) before it reads the 413.
/// The body's own deadline bounds this too; a body not drained to its end
/// makes hyper close the connection after the answer.
async fn drain(body: Body) {
    use futures_util::StreamExt;
    let mut chunks = body.into_data_stream();
    let _ = tokio::time::timeout(DRAIN_TIME, async { while let Some(Ok(_)) = chunks.next().await {} }).await;
}

/// One problem per field left in `body` once the known ones were taken out
/// (sorted, so answers are stable).
pub fn unknown_fields(body: &serde_json::Map<String, serde_json::Value>) -> Vec<FieldProblem> {
    let mut unknown: Vec<&String> = body.keys().collect();
    unknown.sort();
    unknown.into_iter().map(|field| FieldProblem::new(field, "unknown field")).collect()
}

/// Parses a body that must be a JSON object. A key given twice anywhere in
/// it is refused, naming its path (see [`super::json`]).
pub fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    use super::json::JsonProblem;
    match super::json::parse(bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_field("body", "must be a JSON object")),
        Err(JsonProblem::Duplicate { path }) => Err(ApiError::invalid_field(&path, DUPLICATE)),
        Err(JsonProblem::Syntax { line, column }) => {
            Err(ApiError::invalid_field("body", &format!("is not valid JSON (line {line}, column {column})")))
        }
    }
}

/// The problem of a key given more than once.
pub const DUPLICATE: &str = "is given more than once";

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("x")));
        h
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/merge-patch+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("application/jsonx")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
