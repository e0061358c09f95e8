//! Validation of one `[[tenants]]` entry, and the built-in `demo` tenant.

use super::raw::{RawBudget, RawJwt, RawProvider, RawRateLimits, RawTenant, RawTool, RawTooling, RawWindow};
use switchboard_core::tenant::{
    BreakerPolicy, JwtKey, OnDisconnect, ProviderKind, ProviderSettings, RateLimits, RetryPolicy, Timeouts,
    Window,
};
use switchboard_core::TenantId;

pub use switchboard_core::origin::normalize as normalize_origin;

/// A tenant declared in the configuration, validated.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub id: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub allow_no_origin: bool,
    pub on_disconnect: OnDisconnect,
    pub retention_days: u32,
    pub max_messages_per_session: u32,
    pub max_connections_per_subject: u32,
    pub require_user: bool,
    pub kill_switch: bool,
    pub jwt: Option<JwtKey>,
    pub rate_limits: RateLimits,
    pub provider: ProviderSettings,
    /// `[tenants.budget]`.
    pub budget: Option<switchboard_core::usage::Budget>,
    /// `[[tenants.fallbacks]]`, in the order they are tried.
    pub fallbacks: Vec<ProviderSettings>,
    /// `[[tenants.tools]]`: webhook tools its model may call.
    pub tools: Vec<super::tools::ToolConfig>,
    /// `[tenants.tooling]`: a turn's limits on tool calls, built-in tools.
    pub tooling: super::tools::ToolingConfig,
    /// `[[tenants.mcp]]`: MCP servers whose tools the model may call.
    pub mcp: Vec<super::tools::McpConfig>,
    /// `[tenants.events]`: its outbound events.
    pub events: Option<super::events::EventsConfig>,
    /// The entry as written (secrets only by variable name): what the
    /// database keeps and `switchboard tenant show` prints.
    pub raw: RawTenant,
}

/// Validates one tenant entry, from the file or from the database alike.
pub(crate) fn validate(t: RawTenant) -> Result<TenantConfig, String> {
    let raw = t.clone();
    TenantId::parse(&t.id)
        .ok_or_else(|| format!("`id`: `{}` is not a tenant id ([a-z0-9][a-z0-9_-]{{0,62}})", t.id))?;
    let mut allowed_origins = Vec::with_capacity(t.allowed_origins.len());
    for o in &t.allowed_origins {
        let n = normalize_origin(o).ok_or_else(|| {
            format!("`allowed_origins`: `{o}` is not an origin (scheme://host[:port]; `*` is never allowed)")
        })?;
        allowed_origins.push(n);
    }
    if t.max_messages_per_session == 0 || t.max_connections_per_subject == 0 {
        return Err("`max_messages_per_session` and `max_connections_per_subject` must be at least 1".into());
    }
    // Zero days would hide every message the moment it is written.
    if t.retention_days == 0 {
        return Err("`retention_days` must be at least 1".into());
    }
    let provider = provider_settings(t.provider).map_err(|e| format!("`provider.{e}"))?;
    let fallbacks = (t.fallbacks.into_iter().enumerate())
        .map(|(i, p)| provider_settings(p).map_err(|e| format!("`fallbacks[{i}].{e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let jwt = t.jwt.map(jwt).transpose()?;
    let budget = t.budget.map(budget).transpose()?;
    let rate_limits = rate_limits(t.rate_limits)?;
    let tools = super::tools::tools(&t.tools)?;
    let tooling = super::tools::tooling(t.tooling.as_ref())?;
    super::tools::no_builtin_names(&tools, &tooling)?;
    if tooling.verify.is_some() && tools.is_empty() && t.mcp.is_empty() {
        return Err(
            "`tooling.verify_url`: checks the products that tools show, and this tenant has no tools".into(),
        );
    }
    let mcp = super::tools::mcp(&t.mcp)?;
    let events = super::events::events(t.events.as_ref())?;
    Ok(TenantConfig {
        events,
        name: t.name.unwrap_or_else(|| t.id.clone()),
        id: t.id,
        allowed_origins,
        allow_no_origin: t.allow_no_origin,
        on_disconnect: t.on_disconnect,
        retention_days: t.retention_days,
        max_messages_per_session: t.max_messages_per_session,
        max_connections_per_subject: t.max_connections_per_subject,
        require_user: t.require_user,
        kill_switch: t.kill_switch,
        jwt,
        rate_limits,
        provider,
        budget,
        fallbacks,
        tools,
        tooling,
        mcp,
        raw,
    })
}

/// Limits of 0 would refuse every turn; a cost must be a finite amount.
fn budget(b: RawBudget) -> Result<switchboard_core::usage::Budget, String> {
    if b.daily_tokens == Some(0) || b.per_subject_daily_tokens == Some(0) {
        return Err("`budget`: token limits must be at least 1 (leave a limit out for none)".into());
    }
    if b.daily_cost_usd.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
        return Err("`budget.daily_cost_usd`: must be more than 0".into());
    }
    Ok(switchboard_core::usage::Budget {
        daily_tokens: b.daily_tokens,
        daily_cost_usd: b.daily_cost_usd,
        per_subject_daily_tokens: b.per_subject_daily_tokens,
    })
}

fn jwt(j: RawJwt) -> Result<JwtKey, String> {
    match (j.hs256_secret_env, j.rs256_public_key_file, j.es256_public_key_file) {
        (Some(secret_env), None, None) if !secret_env.is_empty() => Ok(JwtKey::Hs256 { secret_env }),
        (None, Some(file), None) => Ok(JwtKey::Rs256 { public_key_file: file.into() }),
        (None, None, Some(file)) => Ok(JwtKey::Es256 { public_key_file: file.into() }),
        _ => Err("`jwt`: give exactly one of hs256_secret_env, rs256_public_key_file, es256_public_key_file"
            .into()),
    }
}

/// Configured scopes replace the defaults one by one; `limit = 0` is refused
/// (leave a scope out to keep its default).
fn rate_limits(r: Option<RawRateLimits>) -> Result<RateLimits, String> {
    let defaults = RateLimits::default();
    let Some(r) = r else { return Ok(defaults) };
    let window = |name: &str, w: Option<RawWindow>, default: Option<Window>| match w {
        None => Ok(default),
        Some(w) if w.limit > 0 && w.window_secs > 0 => {
            Ok(Some(Window { limit: w.limit, window: std::time::Duration::from_secs(w.window_secs) }))
        }
        Some(_) => Err(format!("`rate_limits.{name}`: limit and window_secs must be at least 1")),
    };
    Ok(RateLimits {
        ip: window("ip", r.ip, defaults.ip)?,
        user: window("user", r.user, defaults.user)?,
        tenant: window("tenant", r.tenant, defaults.tenant)?,
    })
}

fn provider_settings(p: RawProvider) -> Result<ProviderSettings, String> {
    let model = match (p.kind, p.model) {
        (ProviderKind::Demo, m) => m.unwrap_or_else(|| "demo".into()),
        // A Dify app chooses its model itself; the name is what `stream_end` reports.
        (ProviderKind::Dify, m) => m.unwrap_or_else(|| "dify".into()),
        (_, Some(m)) if !m.trim().is_empty() => m,
        (kind, _) => return Err(format!("model`: required for kind \"{}\"", kind.as_str())),
    };
    if let Some(url) = &p.base_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("base_url`: `{url}` must be an http(s) URL"));
        }
    }
    // Checked at start: a value the vendor refuses would fail every call.
    let max_temperature = if p.kind == ProviderKind::Anthropic { 1.0 } else { 2.0 };
    if let Some(t) = p.temperature {
        if !(0.0..=max_temperature).contains(&t) {
            return Err(format!(
                "temperature`: must be between 0 and {max_temperature} for kind \"{}\"",
                p.kind.as_str()
            ));
        }
    }
    if p.max_tokens == Some(0) {
        return Err("max_tokens`: must be at least 1".into());
    }
    if p.history_messages == 0 || p.history_messages > 1000 {
        return Err("history_messages`: must be between 1 and 1000".into());
    }
    let t = p.timeouts;
    let secs = |name: &str, v: f64| {
        if v > 0.0 && v <= 86_400.0 {
            Ok(std::time::Duration::from_secs_f64(v))
        } else {
            Err(format!("{name}`: must be more than 0 and at most 86400 seconds"))
        }
    };
    let timeouts = Timeouts {
        connect: secs("timeouts.connect", t.connect)?,
        first_token: secs("timeouts.first_token", t.first_token)?,
        idle: secs("timeouts.idle", t.idle)?,
        total: secs("timeouts.total", t.total)?,
    };
    let retry = match p.retry {
        None => RetryPolicy::default(),
        Some(r) => {
            let d = RetryPolicy::default();
            let attempts = r.attempts.unwrap_or(d.attempts);
            if !(1..=10).contains(&attempts) {
                return Err("retry.attempts`: must be between 1 and 10".into());
            }
            let max_wait = match r.max_wait_secs {
                None => d.max_wait,
                Some(v) if (0.0..=600.0).contains(&v) => std::time::Duration::from_secs_f64(v),
                Some(_) => return Err("retry.max_wait_secs`: must be between 0 and 600 seconds".into()),
            };
            RetryPolicy { attempts, max_wait }
        }
    };
    let breaker = match p.breaker {
        None => BreakerPolicy::default(),
        Some(b) => {
            let d = BreakerPolicy::default();
            let failures = b.failures.unwrap_or(d.failures);
            if failures == 0 {
                return Err("breaker.failures`: must be at least 1".into());
            }
            let open_for = match b.open_secs {
                None => d.open_for,
                Some(v) => secs("breaker.open_secs", v)?,
            };
            BreakerPolicy { failures, open_for }
        }
    };
    Ok(ProviderSettings {
        kind: p.kind,
        base_url: p.base_url,
        model,
        api_key_env: p.api_key_env,
        system_prompt: p.system_prompt,
        max_tokens: p.max_tokens,
        temperature: p.temperature,
        history_messages: p.history_messages,
        timeouts,
        retry,
        breaker,
    })
}

/// The tenant a fresh checkout runs: the offline demo model, reachable from
/// the server's own pages, with the demo shop's tools (served by this server
/// at `listen`) and the built-in handoff.
pub(super) fn builtin_demo(public_url: &str, listen: std::net::SocketAddr) -> Result<TenantConfig, String> {
    let port = listen.port();
    let mut origins = vec![public_url.to_owned()];
    for o in [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")] {
        if let Some(n) = normalize_origin(&o) {
            if !origins.contains(&n) {
                origins.push(n);
            }
        }
    }
    let raw = RawTenant {
        events: None,
        id: "demo".into(),
        name: Some("Switchboard demo".into()),
        allowed_origins: origins,
        allow_no_origin: false,
        on_disconnect: OnDisconnect::Continue,
        retention_days: 30,
        max_messages_per_session: 1000,
        max_connections_per_subject: 10,
        require_user: false,
        kill_switch: false,
        jwt: None,
        provider: RawProvider {
            system_prompt: Some("You are the Switchboard demo assistant.".into()),
            ..RawProvider::default()
        },
        rate_limits: None,
        budget: None,
        fallbacks: Vec::new(),
        tools: demo_shop_tools(listen)?,
        // The shop's endpoint also answers `products.verify`: its cards are
        // checked live like any shop's.
        tooling: Some(RawTooling {
            builtin_tools: vec!["handoff_to_human".into()],
            verify_url: Some(crate::demo_shop::tools_url(listen)),
            verify_secret_env: Some(crate::demo_shop::SECRET_ENV.into()),
            ..RawTooling::default()
        }),
        mcp: Vec::new(),
    };
    validate(raw)
}

/// The demo shop's tools, as a `[[tenants.tools]]` entry would declare them.
fn demo_shop_tools(listen: std::net::SocketAddr) -> Result<Vec<RawTool>, String> {
    let url = crate::demo_shop::tools_url(listen);
    crate::demo_shop::tool_specs()
        .into_iter()
        .map(|(name, description, parameters)| {
            let parameters =
                toml::Value::try_from(parameters).map_err(|e| format!("demo shop `{name}`: {e}"))?;
            Ok(RawTool {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                url: url.clone(),
                secret_env: Some(crate::demo_shop::SECRET_ENV.into()),
                timeout_ms: Some(crate::demo_shop::TIMEOUT_MS),
            })
        })
        .collect()
}
