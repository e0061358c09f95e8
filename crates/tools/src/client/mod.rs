//! The webhook client that tool calls, product verification and outbound
//! events share: a signed JSON `POST` (Standard Webhooks headers), through
//! the private-address guard, with no redirects followed, one deadline for
//! the whole exchange and the answer read under a hard size cap. Failures
//! come back as a [`CallError`] whose text is short enough to show a model.

mod body;

use crate::guard::{AddressRefused, GuardedResolver, PrivateAllowList, Refusal};
use crate::signature::{message_id, SigningKeys, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::redirect::Policy;
use reqwest::Url;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_core::trace::{traceparent, TRACEPARENT};

pub use body::MAX_RESPONSE_BYTES;

/// Why a call gave no usable answer. `Display` is the short reason given
/// to the model (`{"error": "<reason>"}`); the fields are for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("invalid URL")]
    InvalidUrl,
    #[error("address not allowed")]
    NotAllowed,
    #[error("timeout")]
    Timeout,
    /// Connecting or reading failed; `detail` is for the log (it never
    /// holds the URL, which may carry a token).
    #[error("connection failed")]
    Connection { detail: String },
    #[error("redirect refused")]
    Redirect { status: u16 },
    /// A status other than 2xx or 3xx; `retry_after` is the `Retry-After`
    /// header in seconds, when it has one.
    #[error("HTTP {status}")]
    Status { status: u16, retry_after: Option<Duration> },
    #[error("response over {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("invalid JSON")]
    InvalidJson,
    /// The HTTP client could not be built (its TLS setup failed).
    #[error("client unavailable")]
    Client,
}

impl CallError {
    /// A transport error, told apart from the guard's refusal, which the
    /// resolver's error carries among its causes.
    fn transport(error: reqwest::Error) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = cause {
            if current.downcast_ref::<AddressRefused>().is_some() {
                return Self::NotAllowed;
            }
            cause = current.source();
        }
        if error.is_timeout() {
            return Self::Timeout;
        }
        Self::Connection { detail: error.without_url().to_string() }
    }
}

/// One signed call.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    pub url: &'a str,
    pub keys: &'a SigningKeys,
    /// The `webhook-id`: an outbound event's id, the same on every try;
    /// `None` for a fresh one (a tool call).
    pub id: Option<&'a str>,
    /// The JSON text sent, exactly the bytes signed.
    pub body: Bytes,
    /// The deadline of the whole exchange: connect, send, answer and body.
    pub timeout: Duration,
    /// The trace id sent as `traceparent` (a tool call on a turn's behalf);
    /// empty for none.
    pub trace_id: &'a str,
}

/// Outbound webhook calls for every tenant.
#[derive(Debug)]
pub struct WebhookClient {
    resolver: Arc<GuardedResolver>,
    allow: Arc<PrivateAllowList>,
    /// One HTTP client per tenant, so connections are pooled per tenant: a
    /// tenant's slow endpoint holds only its own connections, and no
    /// connection opened for one tenant carries another's call. Tenants
    /// come from the configuration, so the map stays small.
    clients: Mutex<HashMap<String, reqwest::Client>>,
}

impl WebhookClient {
    pub fn new(allow: PrivateAllowList) -> Self {
        let allow = Arc::new(allow);
        Self {
            resolver: Arc::new(GuardedResolver::new(Arc::clone(&allow))),
            allow,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A tool call or a product verification: the answer must be 2xx with
    /// a JSON body of at most [`MAX_RESPONSE_BYTES`].
    pub async fn call(
        &self,
        tenant: &str,
        request: WebhookRequest<'_>,
    ) -> Result<serde_json::Value, CallError> {
        let timeout = request.timeout;
        let exchange = async {
            let response = body::success(self.send(tenant, request).await?)?;
            let bytes = body::read_capped(response, MAX_RESPONSE_BYTES).await?;
            serde_json::from_slice(&bytes).map_err(|_| CallError::InvalidJson)
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| CallError::Timeout)?
    }

    /// An outbound event: delivered once the endpoint answers 2xx (its
    /// status is returned); the body is not read.
    pub async fn deliver(&self, tenant: &str, request: WebhookRequest<'_>) -> Result<u16, CallError> {
        let timeout = request.timeout;
        let exchange = async { Ok(body::success(self.send(tenant, request).await?)?.status().as_u16()) };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| CallError::Timeout)?
    }

    /// Signs and sends the request; the answer's headers are in.
    async fn send(&self, tenant: &str, request: WebhookRequest<'_>) -> Result<reqwest::Response, CallError> {
        let url = Url::parse(request.url).map_err(|_| CallError::InvalidUrl)?;
        self.allow.check_url(&url).map_err(|refusal| match refusal {
            Refusal::PrivateAddress => CallError::NotAllowed,
            Refusal::Scheme | Refusal::NoHost => CallError::InvalidUrl,
        })?;
        let client = self.client_for(tenant)?;
        let id = request.id.map_or_else(message_id, str::to_owned);
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let signature = request.keys.sign(&id, timestamp, &request.body);
        let mut builder = client.post(url);
        if let Some(parent) = traceparent(request.trace_id) {
            builder = builder.header(TRACEPARENT, parent);
        }
        builder
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(WEBHOOK_ID, id)
            .header(WEBHOOK_TIMESTAMP, timestamp)
            .header(WEBHOOK_SIGNATURE, signature)
            .body(request.body)
            .send()
            .await
            .map_err(CallError::transport)
    }

    fn client_for(&self, tenant: &str) -> Result<reqwest::Client, CallError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(tenant) {
            return Ok(client.clone());
        }
        let client = build_client(Arc::clone(&self.resolver))?;
        clients.insert(tenant.to_owned(), client.clone());
        Ok(client)
    }
}

fn build_client(resolver: Arc<GuardedResolver>) -> Result<reqwest::Client, CallError> {
    reqwest::Client::builder()
        .redirect(Policy::none())
        // A proxy would resolve the host itself, out of the guard's reach.
        .no_proxy()
        .dns_resolver(resolver)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| {
            tracing::error!(error = %error, "building a webhook HTTP client failed");
            CallError::Client
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_tenant() {
        let client = WebhookClient::new(PrivateAllowList::default());
        for tenant in ["acme", "globex", "acme"] {
            client.client_for(tenant).unwrap();
        }
        let tenants = client.clients.lock().unwrap();
        assert_eq!(tenants.len(), 2);
        assert!(tenants.contains_key("acme") && tenants.contains_key("globex"));
    }

    #[test]
    fn reasons_are_short_and_fit_for_a_model() {
        let reasons = [
            (CallError::Timeout, "timeout"),
            (CallError::Status { status: 500, retry_after: None }, "HTTP 500"),
            (CallError::TooLarge, "response over 262144 bytes"),
            (CallError::Redirect { status: 302 }, "redirect refused"),
            (CallError::NotAllowed, "address not allowed"),
            (CallError::InvalidJson, "invalid JSON"),
            (CallError::Connection { detail: "refused".into() }, "connection failed"),
        ];
        for (error, reason) in reasons {
            assert_eq!(error.to_string(), reason);
        }
    }
}
