//! `ApiError`: the one place that turns a refusal into the SPEC §8 envelope.
//! Internal causes are logged here, once, with the trace id, and never sent.

use super::trace;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_core::error::FieldProblem;
use switchboard_core::events::ErrorBody;
use switchboard_core::ErrorCode;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub details: Option<serde_json::Value>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// A message clearer than the code's default for this refusal. Static
    /// text only, so nothing of the request or the server leaks into it.
    pub message: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self { code, details: None, retry_after: None, message: None }
    }

    /// `code`, told with `message` instead of the code's default.
    pub fn with_message(code: ErrorCode, message: &'static str) -> Self {
        Self { message: Some(message), ..Self::new(code) }
    }

    /// 400 `request.invalid` listing what is wrong with which field.
    pub fn invalid(problems: Vec<FieldProblem>) -> Self {
        Self { details: serde_json::to_value(problems).ok(), ..Self::new(ErrorCode::RequestInvalid) }
    }

    pub fn invalid_field(field: &str, problem: &str) -> Self {
        Self::invalid(vec![FieldProblem::new(field, problem)])
    }

    /// An unexpected failure: logged with its cause, answered as `internal`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(trace_id = %trace::current(), cause = %cause, "internal error");
        Self::new(ErrorCode::Internal)
    }

    /// An authentication failure: one answer for all reasons, the reason logged.
    pub fn auth_invalid(reason: impl std::fmt::Display) -> Self {
        tracing::info!(trace_id = %trace::current(), reason = %reason, "credentials refused");
        Self::new(ErrorCode::AuthInvalid)
    }

    /// The fields `details` names (for tests of body validation).
    #[cfg(test)]
    pub fn problem_fields(&self) -> Vec<String> {
        let details = self.details.as_ref().and_then(|d| d.as_array());
        details.into_iter().flatten().filter_map(|p| p["field"].as_str().map(str::to_owned)).collect()
    }

    /// The envelope's body. A wait (`Retry-After`) is also given as
    /// `details.retry_after`: a WebSocket frame or an SSE event has no
    /// headers, and the widget waits exactly that long before sending again.
    pub fn body(&self) -> ErrorBody {
        let details = match (self.retry_after, self.details.clone()) {
            (Some(secs), None) => Some(serde_json::json!({ "retry_after": secs })),
            (Some(secs), Some(serde_json::Value::Object(mut map))) => {
                map.insert("retry_after".to_owned(), secs.into());
                Some(serde_json::Value::Object(map))
            }
            (_, details) => details,
        };
        ErrorBody {
            code: self.code.as_str(),
            message: self.message.unwrap_or(self.code.default_message()).to_owned(),
            http_status: self.code.http_status(),
            trace_id: trace::current(),
            details,
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

/// Every error, HTTP or stream (SPEC §8).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope<'a> {
    pub error: &'a ErrorBody,
}

impl ApiError {
    /// The envelope as JSON text, for an answer written without axum (the
    /// HTTP parser's refusals, see `listen`).
    pub fn envelope_json(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorEnvelope { error: &self.body() }).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_client_error() {
            metrics::counter!("switchboard_refusals_total", "code" => self.code.as_str()).increment(1);
        }
        let body = self.body();
        let mut response = (status, axum::Json(ErrorEnvelope { error: &body })).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        if self.code == ErrorCode::RequestTimeout {
            // The rest of the body may still come: nothing after it on this
            // connection could be told apart from it.
            response.headers_mut().insert("connection", HeaderValue::from_static("close"));
        }
        response
    }
}
