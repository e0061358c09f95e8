//! A tenant's webhook tools (`[[tenants.tools]]`) and their limits
//! (`[tenants.tooling]`), SPEC §16, checked as far as can be without the
//! environment: names, schemas' shape, URLs and limits. Secrets are read
//! when the tenant is built (`tenancy::tools`).

use super::raw::{RawMcp, RawTool, RawTooling};
use std::time::Duration;

/// A tool's name as models accept it (OpenAI: `^[a-zA-Z0-9_-]{1,64}$`).
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How long a webhook tool may take when `timeout_ms` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a webhook tool may be given: a turn waits for its tools.
const MAX_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ToolConfig {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an empty object schema when not given).
    pub parameters: serde_json::Value,
    pub url: String,
    /// The variable holding the `whsec_` secret(s).
    pub secret_env: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolingConfig {
    pub max_rounds: u32,
    pub max_calls: u32,
    /// `builtin_tools` lists `handoff_to_human`.
    pub handoff: bool,
    /// Live product verification, when `verify_url` is set.
    pub verify: Option<VerifyConfig>,
    /// `memory = true`: users' memory shown to the model, with `remember`
    /// and `forget` (SPEC §18).
    pub memory: bool,
}

impl Default for ToolingConfig {
    fn default() -> Self {
        Self { max_rounds: 4, max_calls: 8, handoff: false, verify: None, memory: false }
    }
}

/// `verify_url`, `verify_secret_env`, `verify_timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    pub url: String,
    /// The variable holding the `whsec_` secret(s) that sign the checks.
    pub secret_env: String,
    pub timeout: Duration,
}

/// How long a product check may take when `verify_timeout_ms` is not given.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// An MCP server of a tenant (`[[tenants.mcp]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct McpConfig {
    /// Its tools are offered as `<name>__<tool>`.
    pub name: String,
    pub url: String,
    /// The variable holding the bearer token, if it needs one.
    pub bearer_token_env: Option<String>,
    /// Bare tool names offered; `None`: all.
    pub allow: Option<Vec<String>>,
    pub timeout: Duration,
}

pub fn mcp(raw: &[RawMcp]) -> Result<Vec<McpConfig>, String> {
    let mut out: Vec<McpConfig> = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let key = |field: &str| format!("`mcp[{i}].{field}`");
        // The prefix and its `__` must leave room for a tool's name.
        if !valid_name(&m.name) || m.name.len() > 32 || m.name.contains("__") {
            return Err(format!("{}: must be 1-32 characters of A-Z a-z 0-9 _ - (no `__`)", key("name")));
        }
        if out.iter().any(|o| o.name == m.name) {
            return Err(format!("{}: `{}` is declared twice", key("name"), m.name));
        }
        http_url(&key("url"), &m.url)?;
        let timeout = timeout(&key("timeout_ms"), m.timeout_ms)?;
        out.push(McpConfig {
            name: m.name.clone(),
            url: m.url.clone(),
            bearer_token_env: m.bearer_token_env.clone().filter(|v| !v.is_empty()),
            allow: m.allow.clone(),
            timeout,
        });
    }
    Ok(out)
}

/// An http(s) URL with a host, or why not (`key` names the setting).
pub(super) fn http_url(key: &str, url: &str) -> Result<(), String> {
    let parsed = switchboard_tools::Url::parse(url).map_err(|_| format!("{key}: `{url}` is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!("{key}: must be an http(s) URL"));
    }
    Ok(())
}

/// A call's deadline: [`DEFAULT_TIMEOUT`] unless given, 1 ms to a minute.
fn timeout(key: &str, ms: Option<u64>) -> Result<Duration, String> {
    timeout_or(key, ms, DEFAULT_TIMEOUT)
}

fn timeout_or(key: &str, ms: Option<u64>, default: Duration) -> Result<Duration, String> {
    match ms {
        None => Ok(default),
        Some(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Ok(Duration::from_millis(ms)),
        Some(_) => Err(format!("{key}: must be 1 to {MAX_TIMEOUT_MS}")),
    }
}

pub fn tools(raw: &[RawTool]) -> Result<Vec<ToolConfig>, String> {
    let mut out: Vec<ToolConfig> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let key = |field: &str| format!("`tools[{i}].{field}`");
        if !valid_name(&t.name) {
            return Err(format!("{}: must be 1-64 characters of A-Z a-z 0-9 _ -", key("name")));
        }
        if out.iter().any(|o| o.name == t.name) {
            return Err(format!("{}: `{}` is declared twice", key("name"), t.name));
        }
        let parameters = match &t.parameters {
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(p) => serde_json::to_value(p).map_err(|e| format!("{}: {e}", key("parameters")))?,
        };
        if !parameters.is_object() {
            return Err(format!("{}: must be a JSON Schema object", key("parameters")));
        }
        http_url(&key("url"), &t.url)?;
        let secret_env = t.secret_env.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            format!("{}: is required (the variable holding the tool's whsec_ secret)", key("secret_env"))
        })?;
        let timeout = timeout(&key("timeout_ms"), t.timeout_ms)?;
        out.push(ToolConfig {
            name: t.name.clone(),
            description: t.description.clone().unwrap_or_default(),
            parameters,
            url: t.url.clone(),
            secret_env,
            timeout,
        });
    }
    Ok(out)
}

pub fn tooling(raw: Option<&RawTooling>) -> Result<ToolingConfig, String> {
    let defaults = ToolingConfig::default();
    let Some(raw) = raw else { return Ok(defaults) };
    let limit = |name: &str, v: Option<u32>, default: u32| match v {
        None => Ok(default),
        Some(n) if (1..=32).contains(&n) => Ok(n),
        Some(_) => Err(format!("`tooling.{name}`: must be 1 to 32")),
    };
    let mut handoff = false;
    for name in &raw.builtin_tools {
        match name.as_str() {
            "handoff_to_human" => handoff = true,
            "remember" | "forget" => {
                return Err(format!(
                    "`tooling.builtin_tools`: `{name}` comes with `memory = true`, not listed here"
                ))
            }
            other => return Err(format!("`tooling.builtin_tools`: `{other}` is not a built-in tool")),
        }
    }
    Ok(ToolingConfig {
        max_rounds: limit("max_tool_rounds", raw.max_tool_rounds, defaults.max_rounds)?,
        max_calls: limit("max_tool_calls", raw.max_tool_calls, defaults.max_calls)?,
        handoff,
        verify: verify(raw)?,
        memory: raw.memory,
    })
}

/// A webhook tool may not take the name of a built-in tool the tenant
/// offers: the model could not tell them apart.
pub fn no_builtin_names(tools: &[ToolConfig], tooling: &ToolingConfig) -> Result<(), String> {
    let builtin = |name: &str| match name {
        "handoff_to_human" => tooling.handoff,
        "remember" | "forget" => tooling.memory,
        _ => false,
    };
    match tools.iter().position(|t| builtin(&t.name)) {
        Some(i) => {
            Err(format!("`tools[{i}].name`: `{}` is a built-in tool this tenant offers", tools[i].name))
        }
        None => Ok(()),
    }
}

/// `verify_url` with the secret that signs its checks; the other two keys
/// mean nothing without it.
fn verify(raw: &RawTooling) -> Result<Option<VerifyConfig>, String> {
    let Some(url) = &raw.verify_url else {
        if raw.verify_secret_env.is_some() || raw.verify_timeout_ms.is_some() {
            return Err("`tooling.verify_secret_env` and `verify_timeout_ms` need `verify_url`".into());
        }
        return Ok(None);
    };
    http_url("`tooling.verify_url`", url)?;
    let secret_env = raw.verify_secret_env.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
        "`tooling.verify_secret_env`: is required with `verify_url` (the variable holding its whsec_ secret)"
            .to_owned()
    })?;
    let timeout = timeout_or("`tooling.verify_timeout_ms`", raw.verify_timeout_ms, DEFAULT_VERIFY_TIMEOUT)?;
    Ok(Some(VerifyConfig { url: url.clone(), secret_env, timeout }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml: &str) -> RawTool {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn tools_are_checked_field_by_field() {
        let good = raw(r#"name = "search_products"
               url = "https://shop.example/tools"
               secret_env = "SHOP_SECRET"
               parameters = { type = "object", properties = { query = { type = "string" } } }"#);
        let t = tools(std::slice::from_ref(&good)).unwrap();
        assert_eq!(t[0].parameters["properties"]["query"]["type"], "string");
        assert_eq!(t[0].timeout, DEFAULT_TIMEOUT);
        for (bad, says) in [
            (RawTool { name: "a b".into(), ..good.clone() }, "tools[0].name"),
            (RawTool { url: "ftp://x".into(), ..good.clone() }, "tools[0].url"),
            (RawTool { url: "nope".into(), ..good.clone() }, "tools[0].url"),
            (RawTool { secret_env: None, ..good.clone() }, "tools[0].secret_env"),
            (RawTool { timeout_ms: Some(0), ..good.clone() }, "tools[0].timeout_ms"),
        ] {
            let e = tools(&[bad]).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let twice = tools(&[good.clone(), good]).unwrap_err();
        assert!(twice.contains("declared twice"), "{twice}");
    }

    #[test]
    fn limits_default_and_are_bounded() {
        let expected =
            ToolingConfig { max_rounds: 4, max_calls: 8, handoff: false, verify: None, memory: false };
        assert_eq!(tooling(None).unwrap(), expected);
        let raw = RawTooling { builtin_tools: vec!["handoff_to_human".into()], ..Default::default() };
        assert!(tooling(Some(&raw)).unwrap().handoff);
        let raw = RawTooling { builtin_tools: vec!["launch_rockets".into()], ..Default::default() };
        assert!(tooling(Some(&raw)).unwrap_err().contains("launch_rockets"));
        let raw = RawTooling { max_tool_rounds: Some(2), ..Default::default() };
        assert_eq!(tooling(Some(&raw)).unwrap().max_rounds, 2);
        let raw = RawTooling { max_tool_calls: Some(0), ..Default::default() };
        assert!(tooling(Some(&raw)).is_err());
    }

    #[test]
    fn a_tool_may_not_take_a_builtin_name() {
        let tool = tools(&[raw(r#"name = "remember"
               url = "https://shop.example/tools"
               secret_env = "SHOP_SECRET""#)])
        .unwrap();
        let memory = ToolingConfig { memory: true, ..ToolingConfig::default() };
        assert!(no_builtin_names(&tool, &memory).unwrap_err().contains("tools[0].name"));
        assert!(no_builtin_names(&tool, &ToolingConfig::default()).is_ok(), "not offered: the name is free");
    }

    #[test]
    fn verification_needs_a_url_and_its_secret() {
        let good = RawTooling {
            verify_url: Some("https://shop.example/verify".into()),
            verify_secret_env: Some("SHOP_VERIFY_SECRET".into()),
            ..Default::default()
        };
        let verify = tooling(Some(&good)).unwrap().verify.unwrap();
        assert_eq!(verify.timeout, DEFAULT_VERIFY_TIMEOUT);
        assert_eq!(verify.secret_env, "SHOP_VERIFY_SECRET");
        let fast = RawTooling { verify_timeout_ms: Some(250), ..good.clone() };
        assert_eq!(tooling(Some(&fast)).unwrap().verify.unwrap().timeout, Duration::from_millis(250));
        for (bad, says) in [
            (RawTooling { verify_secret_env: None, ..good.clone() }, "verify_secret_env"),
            (RawTooling { verify_url: Some("ftp://x".into()), ..good.clone() }, "verify_url"),
            (RawTooling { verify_timeout_ms: Some(0), ..good.clone() }, "verify_timeout_ms"),
            (RawTooling { verify_url: None, ..good }, "need `verify_url`"),
        ] {
            let e = tooling(Some(&bad)).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
