//! One typed configuration: embedded defaults, then the TOML file, then
//! `SWITCHBOARD_*` variables; validated once at start into `Config`. Bad
//! configuration fails fast with a message naming the key.

mod env;
pub mod events;
mod raw;
mod tenant;
pub mod tools;

pub use raw::{LogFormat, RawTenant};
pub use tenant::TenantConfig;

use ipnet::IpNet;
use raw::{RawConfig, RawDurability};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tenant::normalize_origin;

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Caps and timings of long-lived connections (`[connections]`).
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub max_total: u32,
    pub max_per_ip: u32,
    pub max_pending_per_ip: u32,
    pub hello_timeout: Duration,
    /// Slow or silent clients lose their connection after this (slowloris).
    pub request_head_timeout: Duration,
    /// A request body must have arrived this long after its head (408).
    pub request_body_timeout: Duration,
    pub ws_ping: Duration,
    pub ws_pong_timeout: Duration,
    pub ws_frames_per_sec: u32,
}

/// Where spans are exported (`otlp_endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// `<otlp_endpoint>/v1/traces`, where OTLP/HTTP takes spans.
    pub traces_url: String,
    pub service_name: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// How browsers reach the server (normalised origin).
    pub public_url: String,
    /// No `public_url` given and `listen` on port 0: it follows the port the
    /// server gets (see [`Config::bound_to`]).
    public_url_follows_listener: bool,
    /// The configuration declares no tenant: the built-in `demo` runs.
    builtin_demo: bool,
    pub operator_token_env: String,
    pub encryption_keys_env: String,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins (normalised) allowed on admin endpoints besides `public_url`.
    pub admin_origins: Vec<String>,
    /// Peers allowed to read `/metrics`.
    pub metrics_allow: Vec<IpNet>,
    pub agent_token_max_ttl: Duration,
    pub heartbeat: Duration,
    pub max_body_bytes: usize,
    pub kill_switch: bool,
    pub visitor_token_ttl: Duration,
    pub ticket_ttl: Duration,
    pub full_durability: bool,
    pub log_format: LogFormat,
    /// Spans are exported over OTLP/HTTP only when set.
    pub otlp: Option<OtlpSettings>,
    /// Empty: generated once into the data directory.
    pub node_id: String,
    pub shutdown_grace: Duration,
    /// `""` (in-process), `redis://…` or `nats://…`.
    pub bus_url: String,
    pub connections: ConnectionSettings,
    /// `tool_allow_private`: what tools may reach on private addresses.
    pub tool_allow_private: switchboard_tools::PrivateAllowList,
    pub tenants: Vec<TenantConfig>,
    /// `[prices]`: USD per million tokens, per model name.
    pub prices: std::collections::HashMap<String, switchboard_core::usage::Price>,
}

impl Config {
    /// Once the server listens: with `listen` on port 0 and no `public_url`,
    /// the server's own origin is known only now, so `public_url` (and the
    /// built-in demo tenant's origins) become `http://127.0.0.1:<port>`. The
    /// built-in demo tenant's tools point at the address it got, whatever
    /// `public_url` says (a proxy's address, say).
    pub fn bound_to(&mut self, addr: SocketAddr) -> Result<(), ConfigError> {
        if self.public_url_follows_listener {
            let shown = if addr.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], addr.port()))
            } else {
                addr
            };
            // `SocketAddr` shows IPv6 hosts in brackets, as URLs want them.
            let url = format!("http://{shown}");
            self.public_url = normalize_origin(&url).ok_or_else(|| err(format!("`public_url`: `{url}`")))?;
        }
        if self.builtin_demo {
            self.tenants = vec![tenant::builtin_demo(&self.public_url, addr).map_err(err)?];
        }
        Ok(())
    }

    /// Reads the file (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?,
            None => String::new(),
        };
        Self::from_parts(&text, std::env::vars())
    }

    /// Builds the configuration from TOML text and environment variables.
    pub fn from_parts(
        toml_text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut root: toml::Value = toml::from_str::<toml::Table>(toml_text)
            .map(toml::Value::Table)
            .map_err(|e| err(format!("the file is not valid TOML: {}", e.message())))?;
        let from_env = env::overlay(&mut root, vars).map_err(err)?;
        let raw: RawConfig = serde_path_to_error::deserialize(root).map_err(|e| {
            let path = e.path().to_string();
            let via = from_env
                .iter()
                .find(|(key, _)| path.starts_with(key.as_str()) || key.starts_with(path.as_str()))
                .map(|(_, var)| format!(" (set by {var})"))
                .unwrap_or_default();
            err(format!("at `{path}`{via}: {}", e.into_inner()))
        })?;
        validate(raw)
    }
}

/// A tenant entry from elsewhere than the file (the database, the CLI),
/// validated exactly like a `[[tenants]]` entry.
pub fn validate_tenant(raw: RawTenant) -> Result<TenantConfig, ConfigError> {
    tenant::validate(raw).map_err(err)
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen: SocketAddr =
        raw.listen.parse().map_err(|_| err(format!("`listen`: `{}` is not an address:port", raw.listen)))?;
    let data_dir = PathBuf::from(&raw.data_dir);
    let database_url =
        raw.database_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("switchboard.db").display()));
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(err("`database_url`: must start with sqlite:// or postgres://"));
    }
    if !(raw.bus_url.is_empty() || raw.bus_url.starts_with("redis://") || raw.bus_url.starts_with("nats://"))
    {
        return Err(err("`bus_url`: must be empty (in-process), redis://… or nats://…"));
    }
    let connections = connection_settings(&raw.connections)?;
    let public_url = raw.public_url.clone().unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let public_url = normalize_origin(&public_url)
        .ok_or_else(|| err(format!("`public_url`: `{public_url}` must be scheme://host[:port]")))?;
    positive("heartbeat_secs", raw.heartbeat_secs as f64)?;
    positive("ticket_ttl_secs", raw.ticket_ttl_secs as f64)?;
    positive("visitor_token_ttl_secs", raw.visitor_token_ttl_secs as f64)?;
    if raw.max_body_bytes < 1024 {
        return Err(err("`max_body_bytes`: must be at least 1024"));
    }
    if !(0.0..=3600.0).contains(&raw.shutdown_grace_secs) {
        return Err(err("`shutdown_grace_secs`: must be between 0 and 3600"));
    }
    let public_url_follows_listener = raw.public_url.is_none() && listen.port() == 0;
    let mut tenants = Vec::with_capacity(raw.tenants.len().max(1));
    for (i, t) in raw.tenants.into_iter().enumerate() {
        let t = tenant::validate(t).map_err(|e| err(format!("at `tenants[{i}]`: {e}")))?;
        if tenants.iter().any(|o: &TenantConfig| o.id == t.id) {
            return Err(err(format!("at `tenants[{i}].id`: `{}` is declared twice", t.id)));
        }
        tenants.push(t);
    }
    let builtin_demo = tenants.is_empty();
    if builtin_demo {
        tenants.push(tenant::builtin_demo(&public_url, listen).map_err(err)?);
    }
    if raw.bus_url.starts_with("nats://") {
        nats_windows(&tenants)?;
    }
    Ok(Config {
        listen,
        data_dir,
        database_url,
        public_url,
        public_url_follows_listener,
        builtin_demo,
        operator_token_env: raw.operator_token_env,
        encryption_keys_env: raw.encryption_keys_env,
        trusted_proxies: networks("trusted_proxies", &raw.trusted_proxies)?,
        admin_origins: origins("admin_origins", &raw.admin_origins)?,
        metrics_allow: networks("metrics_allow", &raw.metrics_allow)?,
        tool_allow_private: switchboard_tools::PrivateAllowList::parse(&raw.tool_allow_private).map_err(
            |e| err(format!("`tool_allow_private`: `{}` is not a host name, address or CIDR range", e.entry)),
        )?,
        agent_token_max_ttl: Duration::from_secs(raw.agent_token_max_ttl_secs),
        heartbeat: Duration::from_secs(raw.heartbeat_secs),
        max_body_bytes: raw.max_body_bytes,
        kill_switch: raw.kill_switch,
        visitor_token_ttl: Duration::from_secs(raw.visitor_token_ttl_secs),
        ticket_ttl: Duration::from_secs(raw.ticket_ttl_secs),
        full_durability: raw.durability == RawDurability::Full,
        log_format: raw.log_format,
        otlp: otlp(&raw.otlp_endpoint, &raw.otlp_service_name)?,
        node_id: raw.node_id,
        shutdown_grace: Duration::from_secs_f64(raw.shutdown_grace_secs),
        bus_url: raw.bus_url,
        connections,
        tenants,
        prices: prices(&raw.prices)?,
    })
}

/// `otlp_endpoint`: empty for none, else an http(s) base URL (a collector's
/// `http://host:4318`, or a path it is served under), to which OTLP/HTTP's
/// `/v1/traces` is appended, as the OpenTelemetry SDKs do with
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn otlp(endpoint: &str, service_name: &str) -> Result<Option<OtlpSettings>, ConfigError> {
    if endpoint.is_empty() {
        return Ok(None);
    }
    let refused = || {
        err(format!(
            "`otlp_endpoint`: `{endpoint}` is not an http:// or https:// URL (e.g. http://127.0.0.1:4318)"
        ))
    };
    let uri: axum::http::Uri = endpoint.parse().map_err(|_| refused())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok || uri.query().is_some() || endpoint.contains('#') {
        return Err(refused());
    }
    if service_name.trim().is_empty() {
        return Err(err("`otlp_service_name`: must not be empty"));
    }
    let traces_url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    Ok(Some(OtlpSettings { traces_url, service_name: service_name.to_owned() }))
}

/// Prices must be finite and not negative.
fn prices(
    raw: &std::collections::BTreeMap<String, raw::RawPrice>,
) -> Result<std::collections::HashMap<String, switchboard_core::usage::Price>, ConfigError> {
    let fit = |v: f64| v.is_finite() && v >= 0.0;
    raw.iter()
        .map(|(model, p)| {
            if fit(p.input) && fit(p.output) {
                Ok((model.clone(), switchboard_core::usage::Price { input: p.input, output: p.output }))
            } else {
                Err(err(format!("at `prices.{model}`: input and output must be numbers of 0 or more")))
            }
        })
        .collect()
}

/// NATS keeps rate-limit counters in a key-value bucket whose entries expire
/// after two days, so a window may be at most one day there.
fn nats_windows(tenants: &[TenantConfig]) -> Result<(), ConfigError> {
    let max = switchboard_bus::NATS_MAX_WINDOW;
    for (i, t) in tenants.iter().enumerate() {
        let r = &t.rate_limits;
        for (scope, w) in [("ip", r.ip), ("user", r.user), ("tenant", r.tenant)] {
            if w.is_some_and(|w| w.window > max) {
                return Err(err(format!(
                    "at `tenants[{i}].rate_limits.{scope}`: with a nats:// bus_url a window may be at most {} seconds",
                    max.as_secs()
                )));
            }
        }
    }
    Ok(())
}

fn connection_settings(raw: &raw::RawConnections) -> Result<ConnectionSettings, ConfigError> {
    for (key, value) in [
        ("connections.max_total", raw.max_total),
        ("connections.max_per_ip", raw.max_per_ip),
        ("connections.max_pending_per_ip", raw.max_pending_per_ip),
        ("connections.ws_frames_per_sec", raw.ws_frames_per_sec),
    ] {
        positive(key, f64::from(value))?;
    }
    for (key, value) in [
        ("connections.hello_timeout_secs", raw.hello_timeout_secs),
        ("connections.request_head_timeout_secs", raw.request_head_timeout_secs),
        ("connections.request_body_timeout_secs", raw.request_body_timeout_secs),
        ("connections.ws_ping_secs", raw.ws_ping_secs),
        ("connections.ws_pong_timeout_secs", raw.ws_pong_timeout_secs),
    ] {
        if !(value > 0.0 && value <= 3600.0) {
            return Err(err(format!("`{key}`: must be between 0 and 3600 seconds")));
        }
    }
    Ok(ConnectionSettings {
        max_total: raw.max_total,
        max_per_ip: raw.max_per_ip,
        max_pending_per_ip: raw.max_pending_per_ip,
        hello_timeout: Duration::from_secs_f64(raw.hello_timeout_secs),
        request_head_timeout: Duration::from_secs_f64(raw.request_head_timeout_secs),
        request_body_timeout: Duration::from_secs_f64(raw.request_body_timeout_secs),
        ws_ping: Duration::from_secs_f64(raw.ws_ping_secs),
        ws_pong_timeout: Duration::from_secs_f64(raw.ws_pong_timeout_secs),
        ws_frames_per_sec: raw.ws_frames_per_sec,
    })
}

/// CIDR blocks or single addresses (`10.0.0.1` means `10.0.0.1/32`).
fn networks(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| err(format!("`{key}`: `{s}` is not an address or CIDR block")))
        })
        .collect()
}

fn origins(key: &str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    list.iter()
        .map(|o| {
            normalize_origin(o)
                .ok_or_else(|| err(format!("`{key}`: `{o}` is not an origin (scheme://host[:port])")))
        })
        .collect()
}

fn positive(key: &str, v: f64) -> Result<(), ConfigError> {
    if v > 0.0 {
        Ok(())
    } else {
        Err(err(format!("`{key}`: must be greater than 0")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        Config::from_parts(toml, Vec::new())
    }

    #[test]
    fn a_verify_url_needs_tools_to_check() {
        let verify = "[[tenants]]\nid = \"acme\"\n[tenants.tooling]\n\
            verify_url = \"https://shop.example/verify\"\nverify_secret_env = \"SHOP_SECRET\"";
        let e = load(verify).err().unwrap().to_string();
        assert!(e.contains("verify_url") && e.contains("no tools"), "{e}");
    }

    #[test]
    fn embedded_defaults_run_the_demo_tenant_offline() {
        let c = load("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./data/switchboard.db");
        assert_eq!(c.tenants.len(), 1);
        assert_eq!(c.tenants[0].id, "demo");
        assert_eq!(c.tenants[0].allowed_origins, ["http://127.0.0.1:8080", "http://localhost:8080"]);
    }

    #[test]
    fn on_port_zero_public_url_follows_the_port_unless_given() {
        let mut c = load("listen = \"0.0.0.0:0\"").unwrap();
        c.bound_to("0.0.0.0:4321".parse().unwrap()).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:4321");
        assert_eq!(c.tenants[0].allowed_origins, ["http://127.0.0.1:4321", "http://localhost:4321"]);

        let mut c = load("listen = \"[::1]:0\"").unwrap();
        c.bound_to("[::1]:4321".parse().unwrap()).unwrap();
        assert_eq!(c.public_url, "http://[::1]:4321");

        let mut c = load("listen = \"127.0.0.1:0\"\npublic_url = \"https://chat.example\"").unwrap();
        c.bound_to("127.0.0.1:4321".parse().unwrap()).unwrap();
        assert_eq!(c.public_url, "https://chat.example");

        let mut c = load("listen = \"127.0.0.1:9000\"").unwrap();
        c.bound_to("127.0.0.1:9000".parse().unwrap()).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8080", "a fixed port keeps the documented default");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load("listn = \"x\"").unwrap_err().to_string();
        assert!(e.contains("listn"), "{e}");
        let e =
            load("[[tenants]]\nid = \"a\"\n[tenants.provider]\nkindd = \"demo\"").unwrap_err().to_string();
        assert!(e.contains("tenants[0].provider") && e.contains("kindd"), "{e}");
        let e =
            Config::from_parts("", vec![("SWITCHBOARD_LISTN".into(), "x".into())]).unwrap_err().to_string();
        assert!(e.contains("listn") && e.contains("SWITCHBOARD_LISTN"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c =
            Config::from_parts("heartbeat_secs = 3", vec![("SWITCHBOARD_HEARTBEAT_SECS".into(), "7".into())])
                .unwrap();
        assert_eq!(c.heartbeat, Duration::from_secs(7));
    }

    #[test]
    fn otlp_endpoint_is_a_base_url_for_traces() {
        assert_eq!(load("").unwrap().otlp, None);
        let c = load("otlp_endpoint = \"http://127.0.0.1:4318/\"").unwrap();
        let otlp = c.otlp.unwrap();
        assert_eq!(otlp.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(otlp.service_name, "switchboard");
        let c = load("otlp_endpoint = \"https://otel.example/otlp\"\notlp_service_name = \"chat\"").unwrap();
        let otlp = c.otlp.unwrap();
        assert_eq!(
            (otlp.traces_url.as_str(), otlp.service_name.as_str()),
            ("https://otel.example/otlp/v1/traces", "chat")
        );
        for bad in ["127.0.0.1:4318", "ftp://x", "http://", "http://x/?a=b", "not a url", "grpc://x:4317"] {
            let e = load(&format!("otlp_endpoint = \"{bad}\"")).unwrap_err().to_string();
            assert!(e.contains("otlp_endpoint"), "{bad}: {e}");
        }
        let e = load("otlp_endpoint = \"http://x\"\notlp_service_name = \"\"").unwrap_err().to_string();
        assert!(e.contains("otlp_service_name"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "listen = \"nope\"",
            "database_url = \"mysql://x\"",
            "bus_url = \"kafka://x\"",
            "bus_url = \"nats://x\"\n[[tenants]]\nid = \"a\"\n[tenants.rate_limits]\nip = { limit = 1, window_secs = 90000 }",
            "[connections]\nmax_total = 0",
            "[connections]\nhello_timeout_secs = -1",
            "[[tenants]]\nid = \"Bad Id\"",
            "[[tenants]]\nid = \"a\"\nallowed_origins = [\"*\"]",
            "[[tenants]]\nid = \"a\"\nallowed_origins = [\"https://a.example/path\"]",
            "[[tenants]]\nid = \"a\"\n[[tenants]]\nid = \"a\"",
            "[[tenants]]\nid = \"a\"\n[tenants.provider]\nkind = \"openai\"",
            "[[tenants]]\nid = \"a\"\n[tenants.provider]\nkind = \"demo\"\n[tenants.provider.timeouts]\nidle = 0",
            "[[tenants]]\nid = \"a\"\nretention_days = 0",
            "[[tenants]]\nid = \"a\"\nmax_messages_per_session = 0",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn provider_resilience_settings_are_checked_and_named() {
        let provider = "[[tenants]]\nid = \"a\"\n[tenants.provider]\nkind = \"anthropic\"\nmodel = \"m\"\n";
        let c = load(&format!(
            "{provider}[tenants.provider.retry]\nattempts = 1\nmax_wait_secs = 2.5\n[tenants.provider.breaker]\nopen_secs = 5\n\
             [[tenants.fallbacks]]\nkind = \"dify\"\n[[tenants.fallbacks]]\nkind = \"demo\""
        ))
        .unwrap();
        let t = &c.tenants[0];
        assert_eq!((t.provider.retry.attempts, t.provider.retry.max_wait), (1, Duration::from_millis(2500)));
        assert_eq!((t.provider.breaker.failures, t.provider.breaker.open_for), (5, Duration::from_secs(5)));
        let kinds: Vec<&str> = t.fallbacks.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["dify", "demo"]);
        assert_eq!(t.fallbacks[0].model, "dify");
        for (bad, named) in [
            ("[tenants.provider.retry]\nattempts = 0", "retry.attempts"),
            ("[tenants.provider.retry]\nmax_wait_secs = 601", "retry.max_wait_secs"),
            ("[tenants.provider.breaker]\nfailures = 0", "breaker.failures"),
            ("[tenants.provider.breaker]\nopen_secs = 0", "breaker.open_secs"),
            ("[tenants.provider.breaker]\nopen_sec = 5", "open_sec"),
            ("[[tenants.fallbacks]]\nkind = \"openai\"", "fallbacks[0].model"),
            ("[[tenants.fallbacks]]\nkind = \"demo\"\nbase = 1", "base"),
            (
                "[[tenants.fallbacks]]\nkind = \"openai\"\nmodel = \"m\"\ntemperature = 2.5",
                "fallbacks[0].temperature",
            ),
            (
                "[[tenants.fallbacks]]\nkind = \"openai\"\nmodel = \"m\"\nmax_tokens = 0",
                "fallbacks[0].max_tokens",
            ),
        ] {
            let e = load(&format!("{provider}{bad}")).unwrap_err().to_string();
            assert!(e.contains(named), "{bad}: {e}");
        }
        let e = load("[[tenants]]\nid = \"a\"\n[tenants.provider]\nkind = \"anthropic\"").unwrap_err();
        assert!(e.to_string().contains("provider.model"), "{e}");
        // Anthropic takes 0–1; OpenAI up to 2; NaN nowhere.
        let e = load(&format!("{provider}temperature = 1.5")).unwrap_err();
        assert!(e.to_string().contains("provider.temperature"), "{e}");
        assert!(load(&format!("{provider}temperature = nan")).is_err());
        let openai = "[[tenants]]\nid = \"a\"\n[tenants.provider]\nkind = \"openai\"\nmodel = \"m\"\n";
        assert!(load(&format!("{openai}temperature = 1.5")).is_ok());
    }
}
