//! MCP servers as a tool source (`[[tenants.mcp]]`, SPEC §16), on the
//! official Rust SDK (rmcp) over Streamable HTTP. A server's tools, from
//! `tools/list`, are offered as `<server>__<tool>` and run with `tools/call`
//! under their bare name.
//!
//! The listing is cached: refreshed when a turn needs it and it is older
//! than the refresh interval (5 minutes), or than the server's cache hint
//! (`ttlMs`), or the server announced a change; a listing that failed is
//! tried again at most every retry interval (30 s). A server that is down,
//! slow or refusing never fails a turn or the start: its tools are simply
//! not offered until it answers, and no turn waits on it longer than its
//! timeout. A call carries the turn's W3C `traceparent` in its `_meta`.

mod client;
mod error;
mod listing;
mod outcome;
mod session;

pub use client::{McpClient, MAX_MESSAGE_BYTES};
pub use error::McpError;
pub use listing::SEPARATOR;

use client::{Connection, Endpoint};
use listing::Listing;
use rmcp::model::{CallToolRequestParams, RequestParamsMeta, Tool};
use rmcp::service::MergedList;
use secrecy::SecretString;
use serde_json::Value;
use session::Session;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use switchboard_core::tools::{Invocation, Outcome, ToolCall, ToolSpec, Toolbox};
use switchboard_core::trace::traceparent;

/// One `[[tenants.mcp]]` entry, its secret read.
#[derive(Debug, Clone)]
pub struct McpServerConfig {
    /// The tenant it belongs to, for the log.
    pub tenant_id: String,
    pub name: String,
    /// A Streamable HTTP endpoint.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<SecretString>,
    /// The bare tool names offered; `None` for all of them.
    pub allow: Option<Vec<String>>,
    /// The deadline of one listing or one call, the handshake included.
    pub timeout: Duration,
    pub intervals: ListingIntervals,
}

/// How often the listing is asked for again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingIntervals {
    /// A listing older than this is refreshed; the server's cache hint can
    /// make it sooner, but never sooner than `retry`.
    pub refresh: Duration,
    /// After a failed listing, no new try before this.
    pub retry: Duration,
}

impl Default for ListingIntervals {
    fn default() -> Self {
        Self { refresh: Duration::from_secs(5 * 60), retry: Duration::from_secs(30) }
    }
}

/// One configured MCP server of a tenant: its cached listing and its
/// session. A core `Toolbox` on its own; [`crate::ToolSet`] combines it with
/// the tenant's other tools.
pub struct McpServer {
    config: McpServerConfig,
    /// `<name>__`.
    prefix: String,
    client: McpClient,
    http: rmcp_reqwest::Client,
    cache: RwLock<Cache>,
    /// Held while the listing is refreshed, so one request serves every
    /// turn that found it stale.
    refreshing: tokio::sync::Mutex<()>,
    session: Session,
    /// Set when the server says its tools changed.
    changed: Arc<AtomicBool>,
}

struct Cache {
    listing: Listing,
    /// When a turn should ask for the listing again.
    due: Instant,
}

impl McpServer {
    /// Fails (the message says why, for the operator) when the name cannot
    /// prefix tool names, the URL is not http(s) or is a private address
    /// `tool_allow_private` leaves out, or the timeout is zero. Nothing is
    /// sent: the first turn that needs the tools lists them.
    pub fn new(config: McpServerConfig, client: &McpClient) -> Result<Self, String> {
        if !listing::is_server_name(&config.name) {
            return Err("the name must be letters, digits, `-` and `_`, at most 64, with no `__` and not ending in `_` (it prefixes the tools' names)".into());
        }
        match client.check_url(&config.url) {
            Ok(()) => {}
            Err(McpError::NotAllowed) => {
                return Err("`url` is a private address that tool_allow_private does not list".into())
            }
            Err(_) => return Err("`url` is not an http or https URL".into()),
        }
        if config.timeout.is_zero() {
            return Err("`timeout_ms` must be more than 0".into());
        }
        let http = client.http_client().map_err(|e| e.to_string())?;
        Ok(Self {
            prefix: format!("{}{}", config.name, SEPARATOR),
            config,
            client: client.clone(),
            http,
            cache: RwLock::new(Cache { listing: Listing::empty(), due: Instant::now() }),
            refreshing: tokio::sync::Mutex::new(()),
            session: Session::default(),
            changed: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The bare name of an offered name that is this server's.
    pub fn bare_name<'a>(&self, offered: &'a str) -> Option<&'a str> {
        offered.strip_prefix(&self.prefix)
    }

    /// The server's tools, refreshing a stale listing first (within the
    /// timeout); none while the server cannot be listed.
    pub async fn offered(&self) -> Arc<[ToolSpec]> {
        if self.due() && tokio::time::timeout(self.config.timeout, self.refresh()).await.is_err() {
            self.listing_failed(&McpError::Timeout);
        }
        Arc::clone(&self.cache().listing.offered)
    }

    /// The arguments of a call to one of the listed tools, checked against
    /// its `inputSchema`.
    pub fn check(&self, call: &ToolCall) -> Result<Value, String> {
        let unknown = || format!("unknown tool {:?}", call.name);
        let bare = self.bare_name(&call.name).ok_or_else(unknown)?;
        let cache = self.cache();
        let schema = cache.listing.schema(bare).ok_or_else(unknown)?;
        let arguments = crate::arguments::check(&call.arguments, schema)?;
        if !arguments.is_object() {
            return Err("arguments must be a JSON object".into());
        }
        Ok(arguments)
    }

    /// `tools/call` with the bare name, within the timeout.
    pub async fn run(&self, invocation: Invocation) -> Outcome {
        let Some(bare) = self.bare_name(&invocation.name) else {
            return failed(format!("unknown tool {:?}", invocation.name));
        };
        let Value::Object(arguments) = invocation.arguments else {
            return failed("arguments must be a JSON object".into());
        };
        let mut params = CallToolRequestParams::new(bare.to_owned()).with_arguments(arguments);
        // The transport sends each message from a task of its own, with
        // headers fixed per session: the trace context goes in the request's
        // `_meta`, where MCP carries it (SEP-414), not in an HTTP header.
        if let Some(parent) = traceparent(&invocation.trace_id) {
            params.set_traceparent(&parent);
        }
        let call = async {
            let connection = self.session.get(|| self.connect()).await?;
            // The peer's `call_tool`: a server asking for input mid-call
            // (which a turn cannot give) is an unexpected answer.
            let result = connection.peer().call_tool(params).await.map_err(McpError::from_service);
            if let Err(error) = &result {
                self.session.failed(&connection, error);
            }
            result
        };
        match tokio::time::timeout(self.config.timeout, call).await {
            Ok(Ok(result)) => outcome::outcome_of(result),
            Ok(Err(error)) => {
                self.log_failure("an MCP tool call failed", &error);
                failed(error.to_string())
            }
            Err(_) => failed(McpError::Timeout.to_string()),
        }
    }

    fn due(&self) -> bool {
        self.changed.load(Ordering::Acquire) || Instant::now() >= self.cache().due
    }

    async fn refresh(&self) {
        let _one = self.refreshing.lock().await;
        // The turn that held the lock before may have just listed.
        if !self.due() {
            return;
        }
        self.changed.store(false, Ordering::Release);
        match self.list().await {
            Ok(list) => self.listed(list),
            Err(error) => self.listing_failed(&error),
        }
    }

    /// A session that served before may have broken since (a server that
    /// restarted, a connection cut); listing is safe to ask twice, so a
    /// broken session gets one more try on a new one before the tools are
    /// withdrawn. A call is not retried: it may have run.
    async fn list(&self) -> Result<MergedList<Tool>, McpError> {
        let reused = self.session.is_open();
        match self.list_once().await {
            Err(error) if reused && error.breaks_session() => self.list_once().await,
            listed => listed,
        }
    }

    async fn list_once(&self) -> Result<MergedList<Tool>, McpError> {
        let connection = self.session.get(|| self.connect()).await?;
        let list = connection.peer().list_all_tools_with_cache_hint().await.map_err(McpError::from_service);
        if let Err(error) = &list {
            self.session.failed(&connection, error);
        }
        list
    }

    fn listed(&self, list: MergedList<Tool>) {
        let McpServerConfig { tenant_id, name, allow, intervals, .. } = &self.config;
        let listing = Listing::build(tenant_id, name, list.items, allow.as_deref());
        let fresh_for = match list.ttl_ms {
            // Sooner than the refresh interval if the server says so, but
            // not so often that every turn waits on a listing: on protocol
            // 2026-07-28 a hint is required, and rmcp's servers send
            // `ttlMs: 0` unless told otherwise.
            Some(ms) => Duration::from_millis(ms).max(intervals.retry).min(intervals.refresh),
            None => intervals.refresh,
        };
        tracing::debug!(tenant = %tenant_id, server = %name, tools = listing.offered.len(), "MCP tools listed");
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        *cache = Cache { listing, due: Instant::now() + fresh_for };
    }

    fn listing_failed(&self, error: &McpError) {
        self.log_failure(
            "listing an MCP server's tools failed; they are not offered until it answers",
            error,
        );
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        *cache = Cache { listing: Listing::empty(), due: Instant::now() + self.config.intervals.retry };
    }

    async fn connect(&self) -> Result<Connection, McpError> {
        let endpoint = Endpoint {
            url: &self.config.url,
            bearer_token: self.config.bearer_token.as_ref(),
            http: &self.http,
        };
        self.client.connect(&endpoint, Arc::clone(&self.changed)).await
    }

    fn cache(&self) -> RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn log_failure(&self, what: &str, error: &McpError) {
        let detail = match error {
            McpError::Connection { detail } => detail.as_str(),
            _ => "",
        };
        tracing::warn!(tenant = %self.config.tenant_id, server = %self.config.name, reason = %error, detail, "{what}");
    }
}

#[async_trait::async_trait]
impl Toolbox for McpServer {
    async fn offered(&self) -> Arc<[ToolSpec]> {
        McpServer::offered(self).await
    }

    fn check(&self, call: &ToolCall) -> Result<Value, String> {
        McpServer::check(self, call)
    }

    async fn run(&self, invocation: Invocation) -> Outcome {
        McpServer::run(self, invocation).await
    }
}

fn failed(reason: String) -> Outcome {
    Outcome { result: Err(reason), display: None }
}
