//! The configuration as written (TOML file plus `SWITCHBOARD_*` environment),
//! before validation. Every struct rejects unknown keys, so a typo fails at
//! start with the key's name instead of being silently ignored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> String {
    "./data".into()
}
fn default_operator_token_env() -> String {
    "SWITCHBOARD_OPERATOR_TOKEN".into()
}
fn default_encryption_keys_env() -> String {
    "SWITCHBOARD_ENCRYPTION_KEYS".into()
}
fn default_heartbeat_secs() -> u64 {
    15
}
fn default_max_body_bytes() -> usize {
    131_072
}
fn default_visitor_token_ttl_secs() -> u64 {
    2_592_000
}
fn default_ticket_ttl_secs() -> u64 {
    300
}
fn default_agent_token_max_ttl_secs() -> u64 {
    43_200
}
fn default_metrics_allow() -> Vec<String> {
    vec!["127.0.0.1/32".into(), "::1/128".into()]
}
fn default_shutdown_grace_secs() -> f64 {
    10.0
}
fn default_otlp_service_name() -> String {
    "switchboard".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawDurability {
    #[default]
    Normal,
    Full,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the event and its spans.
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    pub database_url: Option<String>,
    #[serde(default)]
    pub bus_url: String,
    pub public_url: Option<String>,
    #[serde(default = "default_operator_token_env")]
    pub operator_token_env: String,
    #[serde(default = "default_encryption_keys_env")]
    pub encryption_keys_env: String,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub admin_origins: Vec<String>,
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub kill_switch: bool,
    #[serde(default = "default_visitor_token_ttl_secs")]
    pub visitor_token_ttl_secs: u64,
    #[serde(default = "default_ticket_ttl_secs")]
    pub ticket_ttl_secs: u64,
    #[serde(default = "default_agent_token_max_ttl_secs")]
    pub agent_token_max_ttl_secs: u64,
    #[serde(default)]
    pub prices: BTreeMap<String, RawPrice>,
    #[serde(default = "default_metrics_allow")]
    pub metrics_allow: Vec<String>,
    #[serde(default)]
    pub durability: RawDurability,
    #[serde(default)]
    pub log_format: LogFormat,
    /// An OTLP/HTTP collector's base URL; spans are exported when it is set
    /// (not empty).
    #[serde(default)]
    pub otlp_endpoint: String,
    /// The `service.name` the exported spans carry.
    #[serde(default = "default_otlp_service_name")]
    pub otlp_service_name: String,
    #[serde(default)]
    pub node_id: String,
    /// How long running turns may take to finish at shutdown.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: f64,
    #[serde(default)]
    pub connections: RawConnections,
    /// Hosts, addresses and CIDR ranges that tools may reach on private or
    /// loopback addresses (SPEC §17).
    #[serde(default)]
    pub tool_allow_private: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
}

/// `[connections]`: caps and timings of SSE subscriptions and WebSockets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConnections {
    /// Open subscriptions and sockets on this node, all tenants together.
    pub max_total: u32,
    /// Open subscriptions and sockets per client address (IPv6 per /64).
    pub max_per_ip: u32,
    /// WebSockets per client address that have not sent `hello` yet.
    pub max_pending_per_ip: u32,
    pub hello_timeout_secs: f64,
    /// How long a client may take to send a request's head, and how long a
    /// kept-alive connection may wait for its next request.
    pub request_head_timeout_secs: f64,
    /// How long a client may take to send a request's whole body, counted
    /// from the end of its head.
    pub request_body_timeout_secs: f64,
    pub ws_ping_secs: f64,
    pub ws_pong_timeout_secs: f64,
    /// Sustained client frames per second a WebSocket may send.
    pub ws_frames_per_sec: u32,
}

impl Default for RawConnections {
    fn default() -> Self {
        Self {
            max_total: 10_000,
            max_per_ip: 256,
            max_pending_per_ip: 32,
            hello_timeout_secs: 10.0,
            request_head_timeout_secs: 30.0,
            request_body_timeout_secs: 30.0,
            ws_ping_secs: 25.0,
            ws_pong_timeout_secs: 70.0,
            ws_frames_per_sec: 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
}

fn default_retention_days() -> u32 {
    30
}
fn default_max_messages() -> u32 {
    1000
}
fn default_max_connections() -> u32 {
    10
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub allow_no_origin: bool,
    #[serde(default)]
    pub on_disconnect: switchboard_core::tenant::OnDisconnect,
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    #[serde(default = "default_max_messages")]
    pub max_messages_per_session: u32,
    #[serde(default = "default_max_connections")]
    pub max_connections_per_subject: u32,
    #[serde(default)]
    pub require_user: bool,
    #[serde(default)]
    pub kill_switch: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<RawJwt>,
    #[serde(default)]
    pub provider: RawProvider,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RawRateLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<RawBudget>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<RawProvider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<RawTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tooling: Option<RawTooling>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<RawMcp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<RawEvents>,
}

/// `[tenants.events]` (SPEC §19), as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_after_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_schedule_secs: Option<Vec<u64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hs256_secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rs256_public_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub es256_public_key_file: Option<String>,
}

fn default_history_messages() -> u32 {
    20
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    #[serde(default = "default_kind")]
    pub kind: switchboard_core::tenant::ProviderKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default = "default_history_messages")]
    pub history_messages: u32,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RawRetry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<RawBreaker>,
}

/// `[tenants.provider.retry]`: attempts before the first token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<u32>,
    pub max_wait_secs: Option<f64>,
}

/// `[tenants.provider.breaker]`: the provider's circuit breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failures: Option<u32>,
    pub open_secs: Option<f64>,
}

fn default_kind() -> switchboard_core::tenant::ProviderKind {
    switchboard_core::tenant::ProviderKind::Demo
}

impl Default for RawProvider {
    fn default() -> Self {
        Self {
            kind: default_kind(),
            base_url: None,
            model: None,
            api_key_env: None,
            system_prompt: None,
            max_tokens: None,
            temperature: None,
            history_messages: default_history_messages(),
            timeouts: RawTimeouts::default(),
            retry: None,
            breaker: None,
        }
    }
}

/// Seconds; fractions allowed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    #[serde(default = "five")]
    pub connect: f64,
    #[serde(default = "thirty")]
    pub first_token: f64,
    #[serde(default = "thirty")]
    pub idle: f64,
    #[serde(default = "three_hundred")]
    pub total: f64,
}

fn five() -> f64 {
    5.0
}
fn thirty() -> f64 {
    30.0
}
fn three_hundred() -> f64 {
    300.0
}

impl Default for RawTimeouts {
    fn default() -> Self {
        Self { connect: five(), first_token: thirty(), idle: thirty(), total: three_hundred() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<RawWindow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<RawWindow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<RawWindow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub limit: u32,
    pub window_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_subject_daily_tokens: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<toml::Value>,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `[tenants.tooling]` (SPEC §16).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTooling {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builtin_tools: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tool_rounds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory: bool,
}

/// `[[tenants.mcp]]` (SPEC §16): an MCP server whose tools the model may call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}
