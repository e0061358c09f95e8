//! The error codes of the wire contract and their HTTP statuses: the one table
//! every transport maps refusals through. Building the JSON envelope is the
//! transport's job, not this module's.

use serde::Serialize;

/// Every refusal or failure a client can see, by its contract name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ErrorCode {
    #[serde(rename = "request.invalid")]
    RequestInvalid,
    #[serde(rename = "request.unsupported_media_type")]
    UnsupportedMediaType,
    #[serde(rename = "request.too_large")]
    TooLarge,
    /// The request body did not arrive within `request_body_timeout_secs`
    /// (our addition to SPEC §8).
    #[serde(rename = "request.timeout")]
    RequestTimeout,
    /// Too many or too large header lines (our addition to SPEC §8).
    #[serde(rename = "request.headers_too_large")]
    HeadersTooLarge,
    /// A request target over 64 KiB (our addition to SPEC §8).
    #[serde(rename = "request.uri_too_long")]
    UriTooLong,
    #[serde(rename = "tenant.missing")]
    TenantMissing,
    #[serde(rename = "tenant.unknown")]
    TenantUnknown,
    #[serde(rename = "tenant.disabled")]
    TenantDisabled,
    #[serde(rename = "origin.missing")]
    OriginMissing,
    #[serde(rename = "origin.forbidden")]
    OriginForbidden,
    #[serde(rename = "auth.missing")]
    AuthMissing,
    #[serde(rename = "auth.invalid")]
    AuthInvalid,
    #[serde(rename = "auth.forbidden")]
    AuthForbidden,
    #[serde(rename = "auth.context_mismatch")]
    AuthContextMismatch,
    #[serde(rename = "session.not_found")]
    SessionNotFound,
    #[serde(rename = "session.closed")]
    SessionClosed,
    #[serde(rename = "session.not_human")]
    SessionNotHuman,
    #[serde(rename = "turn.in_progress")]
    TurnInProgress,
    #[serde(rename = "chat.cursor_invalid")]
    CursorInvalid,
    #[serde(rename = "rate_limited")]
    RateLimited,
    #[serde(rename = "quota.exceeded")]
    QuotaExceeded,
    #[serde(rename = "connection.limit")]
    ConnectionLimit,
    #[serde(rename = "memory.not_found")]
    MemoryNotFound,
    #[serde(rename = "delivery.not_found")]
    DeliveryNotFound,
    #[serde(rename = "events.disabled")]
    EventsDisabled,
    #[serde(rename = "llm.unavailable")]
    LlmUnavailable,
    #[serde(rename = "llm.timeout")]
    LlmTimeout,
    #[serde(rename = "internal")]
    Internal,
    #[serde(rename = "not_found")]
    RouteNotFound,
    #[serde(rename = "request.method_not_allowed")]
    MethodNotAllowed,
}

impl ErrorCode {
    /// The contract name, as it appears in `error.code`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            RequestInvalid => "request.invalid",
            UnsupportedMediaType => "request.unsupported_media_type",
            TooLarge => "request.too_large",
            RequestTimeout => "request.timeout",
            HeadersTooLarge => "request.headers_too_large",
            UriTooLong => "request.uri_too_long",
            TenantMissing => "tenant.missing",
            TenantUnknown => "tenant.unknown",
            TenantDisabled => "tenant.disabled",
            OriginMissing => "origin.missing",
            OriginForbidden => "origin.forbidden",
            AuthMissing => "auth.missing",
            AuthInvalid => "auth.invalid",
            AuthForbidden => "auth.forbidden",
            AuthContextMismatch => "auth.context_mismatch",
            SessionNotFound => "session.not_found",
            SessionClosed => "session.closed",
            SessionNotHuman => "session.not_human",
            TurnInProgress => "turn.in_progress",
            CursorInvalid => "chat.cursor_invalid",
            RateLimited => "rate_limited",
            QuotaExceeded => "quota.exceeded",
            ConnectionLimit => "connection.limit",
            MemoryNotFound => "memory.not_found",
            DeliveryNotFound => "delivery.not_found",
            EventsDisabled => "events.disabled",
            LlmUnavailable => "llm.unavailable",
            LlmTimeout => "llm.timeout",
            Internal => "internal",
            RouteNotFound => "not_found",
            MethodNotAllowed => "request.method_not_allowed",
        }
    }

    /// Every code of the contract.
    pub fn all() -> &'static [ErrorCode] {
        ALL
    }

    /// Parses a stored contract name back (used for replaying a stored outcome).
    pub fn parse(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The HTTP status of SPEC §8.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            RequestInvalid | TenantMissing => 400,
            AuthMissing | AuthInvalid => 401,
            TenantDisabled | OriginMissing | OriginForbidden | AuthForbidden | AuthContextMismatch => 403,
            TenantUnknown | SessionNotFound | MemoryNotFound | DeliveryNotFound | RouteNotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            SessionClosed | SessionNotHuman | TurnInProgress | EventsDisabled => 409,
            CursorInvalid => 410,
            TooLarge => 413,
            UriTooLong => 414,
            UnsupportedMediaType => 415,
            HeadersTooLarge => 431,
            RateLimited | QuotaExceeded | ConnectionLimit => 429,
            Internal => 500,
            LlmUnavailable => 502,
            LlmTimeout => 504,
        }
    }

    /// A short, generic, safe message for clients. Details go to the log.
    pub fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            RequestInvalid => "The request is invalid.",
            UnsupportedMediaType => "The request body must be JSON (Content-Type: application/json).",
            TooLarge => "The request body is too large.",
            RequestTimeout => "The request body did not arrive in time.",
            HeadersTooLarge => "The request's headers are too large.",
            UriTooLong => "The request's URL is too long.",
            TenantMissing => "No tenant was given (X-Tenant-Id).",
            TenantUnknown => "No such tenant.",
            TenantDisabled => "This service is temporarily disabled.",
            OriginMissing => "The request has no Origin.",
            OriginForbidden => "This origin is not allowed.",
            AuthMissing => "Credentials are required.",
            AuthInvalid => "The credentials are invalid.",
            AuthForbidden => "Not allowed.",
            AuthContextMismatch => "The credentials do not match the request's tenant or session.",
            SessionNotFound => "No such session.",
            SessionClosed => "The session is closed.",
            SessionNotHuman => "No agent has taken this session over.",
            TurnInProgress => "An answer is still streaming in this session.",
            CursorInvalid => "The resume cursor is not valid; reload the history.",
            RateLimited => "Too many requests; slow down.",
            QuotaExceeded => "The usage budget is spent.",
            ConnectionLimit => "Too many open connections.",
            MemoryNotFound => "No such memory key.",
            DeliveryNotFound => "No such delivery.",
            EventsDisabled => "The events endpoint is disabled (it answered 410); resume it first.",
            LlmUnavailable => "The model is unavailable; the partial answer was kept.",
            LlmTimeout => "The model took too long to answer; the partial answer was kept.",
            Internal => "Something went wrong on our side.",
            RouteNotFound => "No such endpoint.",
            MethodNotAllowed => "Method not allowed on this endpoint.",
        }
    }
}

const ALL: &[ErrorCode] = {
    use ErrorCode::*;
    &[
        RequestInvalid,
        UnsupportedMediaType,
        TooLarge,
        RequestTimeout,
        HeadersTooLarge,
        UriTooLong,
        TenantMissing,
        TenantUnknown,
        TenantDisabled,
        OriginMissing,
        OriginForbidden,
        AuthMissing,
        AuthInvalid,
        AuthForbidden,
        AuthContextMismatch,
        SessionNotFound,
        SessionClosed,
        SessionNotHuman,
        TurnInProgress,
        CursorInvalid,
        RateLimited,
        QuotaExceeded,
        ConnectionLimit,
        MemoryNotFound,
        DeliveryNotFound,
        EventsDisabled,
        LlmUnavailable,
        LlmTimeout,
        Internal,
        RouteNotFound,
        MethodNotAllowed,
    ]
};

/// One problem with one field of a request, for `error.details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_name() {
        for code in ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let json = serde_json::to_string(code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    /// The rows of the error table in `docs/protocol.md`'s "Errors" section:
    /// (code, HTTP status) as written.
    fn documented() -> Vec<(&'static str, &'static str)> {
        let doc = include_str!("../../../docs/protocol.md");
        let section = doc.split("\n## Errors\n").nth(1).unwrap_or_default();
        let section = section.split("\n## ").next().unwrap_or_default();
        section
            .lines()
            .filter_map(|line| {
                let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code, cells.next()?))
            })
            .collect()
    }

    /// A code a client can get but the protocol doc does not explain (or
    /// explains with another status) fails here, and so does a row of the
    /// doc that names no code.
    #[test]
    fn the_protocol_docs_error_table_lists_every_code_with_its_status() {
        let rows = documented();
        for code in ALL {
            let row = rows.iter().find(|(c, _)| *c == code.as_str());
            assert_eq!(
                row.map(|(_, status)| *status),
                Some(code.http_status().to_string().as_str()),
                "docs/protocol.md, section Errors: add the row `| `{}` | {} | … |`",
                code.as_str(),
                code.http_status()
            );
        }
        for (code, _) in &rows {
            assert!(
                ErrorCode::parse(code).is_some(),
                "docs/protocol.md lists `{code}`, which no ErrorCode is"
            );
        }
        assert_eq!(rows.len(), ALL.len(), "a code is listed twice in docs/protocol.md");
    }
}
