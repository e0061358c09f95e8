//! Why an MCP exchange gave nothing usable. `Display` is the short reason a
//! model reads (`{"error": "<reason>"}`); `detail` is for the log, and is
//! built from root causes so it never carries the server's URL (reqwest's
//! own messages name it) or token.

use crate::guard::AddressRefused;
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::StreamableHttpError;
use rmcp::ServiceError;
use std::error::Error;

type TransportError = StreamableHttpError<rmcp_reqwest::Error>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    #[error("invalid URL")]
    InvalidUrl,
    #[error("address not allowed")]
    NotAllowed,
    #[error("timeout")]
    Timeout,
    /// Connecting, the handshake or the exchange failed; `detail` is for the
    /// log.
    #[error("connection failed")]
    Connection { detail: String },
    /// The server answered with a JSON-RPC error.
    #[error("MCP error: {message}")]
    Server { message: String },
    /// An answer of a kind a plain tool call or listing does not expect
    /// (such as a task or a request for input).
    #[error("unexpected answer from the MCP server")]
    Unexpected,
    /// The HTTP client could not be built (its TLS setup failed).
    #[error("client unavailable")]
    Client,
}

impl McpError {
    pub(super) fn from_initialize(error: ClientInitializeError) -> Self {
        match &error {
            // The transport's error is a field here, not a source.
            ClientInitializeError::TransportError { error, .. } => Self::transport(error),
            ClientInitializeError::JsonRpcError(data) => Self::Server { message: data.message.to_string() },
            _ => Self::Connection { detail: error.to_string() },
        }
    }

    pub(super) fn from_service(error: ServiceError) -> Self {
        match error {
            ServiceError::McpError(data) => Self::Server { message: data.message.into_owned() },
            ServiceError::TransportSend(error) => Self::transport(&error),
            ServiceError::Timeout { .. } => Self::Timeout,
            ServiceError::UnexpectedResponse | ServiceError::InputRequiredRoundsExceeded { .. } => {
                Self::Unexpected
            }
            other => Self::Connection { detail: other.to_string() },
        }
    }

    /// Whether the session this came from should be dropped, so the next
    /// use opens a new one. A slow call or the server's own error says
    /// nothing against the session.
    pub(super) fn breaks_session(&self) -> bool {
        matches!(self, Self::Connection { .. } | Self::NotAllowed | Self::Unexpected)
    }

    /// A transport failure, told apart from the guard's refusal, which the
    /// resolver's error carries among its causes.
    fn transport(error: &(dyn Error + 'static)) -> Self {
        let mut current = error;
        loop {
            if current.downcast_ref::<AddressRefused>().is_some() {
                return Self::NotAllowed;
            }
            let next = match current.downcast_ref::<TransportError>() {
                // The HTTP client's error is held, not linked as a source.
                Some(StreamableHttpError::Client(inner)) => Some(inner as &(dyn Error + 'static)),
                _ => current.source(),
            };
            match next {
                Some(next) => current = next,
                None => return Self::Connection { detail: describe(current) },
            }
        }
    }
}

/// The root cause, in words without a URL: reqwest's message names the URL
/// (which may carry a token), so for its own errors only their kind is said.
fn describe(root: &(dyn Error + 'static)) -> String {
    let Some(http) = root.downcast_ref::<rmcp_reqwest::Error>() else {
        return root.to_string();
    };
    let kind = if http.is_connect() {
        "connect"
    } else if http.is_timeout() {
        "timeout"
    } else if http.is_body() || http.is_decode() {
        "reading the answer"
    } else if http.is_redirect() {
        "redirect"
    } else {
        "request"
    };
    match http.status() {
        Some(status) => format!("HTTP {status} ({kind})"),
        None => format!("HTTP client error ({kind})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_and_fit_for_a_model() {
        let reasons = [
            (McpError::Timeout, "timeout"),
            (McpError::NotAllowed, "address not allowed"),
            (McpError::Connection { detail: "refused".into() }, "connection failed"),
            (McpError::Server { message: "no such order".into() }, "MCP error: no such order"),
        ];
        for (error, reason) in reasons {
            assert_eq!(error.to_string(), reason);
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("dns error")]
    struct Dns(#[source] AddressRefused);

    #[test]
    fn the_guard_refusal_is_found_among_the_causes() {
        let refused = Dns(AddressRefused { host: "rebind.example".into() });
        assert_eq!(McpError::transport(&refused), McpError::NotAllowed);
        let closed = TransportError::TransportChannelClosed;
        let failed = McpError::transport(&closed);
        assert_eq!(failed, McpError::Connection { detail: "Transport channel closed".into() });
        assert!(failed.breaks_session());
        assert!(!McpError::Timeout.breaks_session());
    }
}
