//! How Switchboard reaches an MCP server: an HTTP client per configured
//! server, built like the webhook client (the private-address guard in its
//! resolver, no redirects, no proxy, `TCP_NODELAY`) but on the reqwest that
//! rmcp's Streamable HTTP transport speaks, and the handshake that opens a
//! session. Nothing here logs or returns a server's URL or token.

use super::McpError;
use crate::guard::{GuardedResolver, PrivateAllowList, Refusal};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{MaybeSendFuture, NotificationContext, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ServiceExt};
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A JSON answer or one SSE event from a server, at most: a listing of many
/// tools with their schemas fits; a runaway answer does not fill memory.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// One open MCP session.
pub(super) type Connection = RunningService<RoleClient, Watch>;

/// What every MCP server of the process is reached through: the operator's
/// `tool_allow_private` list, enforced by the resolver of each server's HTTP
/// client and, for literal addresses, before any request.
#[derive(Debug, Clone)]
pub struct McpClient {
    allow: Arc<PrivateAllowList>,
    resolver: Arc<GuardedResolver>,
}

impl McpClient {
    pub fn new(allow: PrivateAllowList) -> Self {
        let allow = Arc::new(allow);
        Self { resolver: Arc::new(GuardedResolver::new(Arc::clone(&allow))), allow }
    }

    /// Whether `url` may be called at all: http(s), with a host that is not
    /// a private address the list leaves out.
    pub(super) fn check_url(&self, url: &str) -> Result<(), McpError> {
        let url = reqwest::Url::parse(url).map_err(|_| McpError::InvalidUrl)?;
        self.allow.check_url(&url).map_err(|refusal| match refusal {
            Refusal::PrivateAddress => McpError::NotAllowed,
            Refusal::Scheme | Refusal::NoHost => McpError::InvalidUrl,
        })
    }

    /// A pooled HTTP client for one server: its connections carry only that
    /// server's (and so one tenant's) calls.
    pub(super) fn http_client(&self) -> Result<rmcp_reqwest::Client, McpError> {
        rmcp_reqwest::Client::builder()
            // A redirect could lead to a literal private address the
            // resolver never sees; an MCP endpoint has no reason to move.
            .redirect(rmcp_reqwest::redirect::Policy::none())
            // A proxy would resolve the host itself, out of the guard's reach.
            .no_proxy()
            .dns_resolver(Arc::clone(&self.resolver))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls_config()?)
            .build()
            .map_err(|error| {
                tracing::error!(error = %error, "building an MCP HTTP client failed");
                McpError::Client
            })
    }

    /// Opens a session (`initialize`), within whatever deadline the caller
    /// puts on it. rmcp's own response cache is turned off: the server's
    /// listing is cached one level up, where a failed refresh must show.
    pub(super) async fn connect(
        &self,
        endpoint: &Endpoint<'_>,
        changed: Arc<AtomicBool>,
    ) -> Result<Connection, McpError> {
        self.check_url(endpoint.url)?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(endpoint.url)
            .max_json_response_size(MAX_MESSAGE_BYTES)
            .max_sse_event_size(MAX_MESSAGE_BYTES);
        if let Some(token) = endpoint.bearer_token {
            // rmcp sends it as `Authorization: Bearer <token>`.
            config = config.auth_header(token.expose_secret());
        }
        let transport = StreamableHttpClientTransport::with_client(endpoint.http.clone(), config);
        let watch = Watch { changed };
        let connection = watch.serve(transport).await.map_err(McpError::from_initialize)?;
        connection.peer().set_response_cache_config(rmcp::service::ClientCacheConfig::disabled()).await;
        Ok(connection)
    }
}

/// One server as [`McpClient::connect`] needs it.
pub(super) struct Endpoint<'a> {
    pub url: &'a str,
    pub bearer_token: Option<&'a SecretString>,
    pub http: &'a rmcp_reqwest::Client,
}

/// Ring and the Mozilla roots, like the webhook client's reqwest: the one
/// crypto provider of the process, chosen explicitly rather than by
/// whichever rustls features happen to be on.
fn tls_config() -> Result<rustls::ClientConfig, McpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| {
            tracing::error!(error = %error, "the MCP client's TLS setup failed");
            McpError::Client
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The client side of a session: says who we are, and marks the listing
/// stale when the server announces that its tools changed.
pub(super) struct Watch {
    changed: Arc<AtomicBool>,
}

impl ClientHandler for Watch {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("switchboard", env!("CARGO_PKG_VERSION")),
        )
    }

    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + MaybeSendFuture + '_ {
        self.changed.store(true, Ordering::Release);
        std::future::ready(())
    }
}
