//! Tenant settings as the admin API reads and writes them: the JSON shape of
//! one `[[tenants]]` entry, validated by the same path as the configuration
//! file (`config::validate_tenant`), patched with JSON merge patch (RFC
//! 7396), and shown with URL credentials masked. Settings never hold secret
//! values, only the names of the variables that do; a URL may still carry a
//! password or a key in its query, so those are shown as `***`.
//!
//! [`TenantSettings`] and [`TenantPatch`] are the bodies' shapes in the API
//! description: what [`settings`] accepts field by field (the checks that
//! tie fields together, and that the node can load the keys the settings
//! name, are told in descriptions).

use crate::config::{validate_tenant, RawTenant, TenantConfig};
use crate::http::ApiError;
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;
use switchboard_core::tenant::{OnDisconnect, ProviderKind};

/// One `[[tenants]]` entry of the configuration, as JSON (docs/configuration.md).
// The description's: `settings` reads the JSON.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TenantSettings {
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    id: String,
    /// Shown to visitors; default the id.
    name: Option<String>,
    /// Origins whose pages may use the chat: `scheme://host[:port]`, never `*`.
    #[schema(inline)]
    #[serde(default)]
    allowed_origins: Vec<TenantOrigin>,
    /// Requests without `Origin` (apps, servers) are accepted.
    #[serde(default)]
    allow_no_origin: bool,
    /// What a running answer does when its client leaves; default `continue`.
    #[serde(default)]
    on_disconnect: OnDisconnect,
    /// Days messages are kept; default 30.
    #[schema(minimum = 1)]
    #[serde(default)]
    retention_days: u32,
    /// Default 1000.
    #[schema(minimum = 1)]
    #[serde(default)]
    max_messages_per_session: u32,
    /// Default 10.
    #[schema(minimum = 1)]
    #[serde(default)]
    max_connections_per_subject: u32,
    /// Only users (a tenant JWT) may chat, not anonymous visitors.
    #[serde(default)]
    require_user: bool,
    #[serde(default)]
    kill_switch: bool,
    jwt: Option<JwtSettings>,
    #[serde(default)]
    provider: ProviderSettingsBody,
    rate_limits: Option<RateLimitSettings>,
    budget: Option<BudgetSettings>,
    /// Tried in order when the provider fails before its first token.
    #[serde(default)]
    fallbacks: Vec<ProviderSettingsBody>,
    /// `[[tenants.tools]]`: webhook tools (name, description, parameters, url, secret_env, timeout_ms).
    #[schema(value_type = Vec<Object>)]
    #[serde(default)]
    tools: Vec<Value>,
    /// `[tenants.tooling]`: built-in tools and a turn's limits on tool calls.
    #[schema(value_type = Option<Object>)]
    tooling: Option<Value>,
    /// `[[tenants.mcp]]`: MCP servers whose tools the model may call.
    #[schema(value_type = Vec<Object>)]
    #[serde(default)]
    mcp: Vec<Value>,
    /// `[tenants.events]`: the tenant's outbound events (SPEC §19).
    #[schema(value_type = Option<Object>)]
    events: Option<Value>,
}

/// A JSON merge patch (RFC 7396) over a tenant's stored settings: the keys
/// given replace theirs (objects merge key by key), `null` removes a key
/// (back to its default). The merged settings are checked as a whole.
// The description's: `tenants::update` merges the JSON.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TenantPatch {
    /// The tenant's own id, if given: it cannot be changed.
    #[schema(nullable = false, pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    id: Option<String>,
    name: Option<String>,
    #[schema(inline)]
    allowed_origins: Option<Vec<TenantOrigin>>,
    allow_no_origin: Option<bool>,
    on_disconnect: Option<OnDisconnect>,
    #[schema(minimum = 1)]
    retention_days: Option<u32>,
    #[schema(minimum = 1)]
    max_messages_per_session: Option<u32>,
    #[schema(minimum = 1)]
    max_connections_per_subject: Option<u32>,
    require_user: Option<bool>,
    kill_switch: Option<bool>,
    jwt: Option<JwtSettings>,
    provider: Option<ProviderSettingsBody>,
    rate_limits: Option<RateLimitSettings>,
    budget: Option<BudgetSettings>,
    fallbacks: Option<Vec<ProviderSettingsBody>>,
    #[schema(value_type = Option<Vec<Object>>)]
    tools: Option<Value>,
    #[schema(value_type = Option<Object>)]
    tooling: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    mcp: Option<Value>,
    #[schema(value_type = Option<Object>)]
    events: Option<Value>,
}

/// An origin: `http(s)://host[:port]` (no path, no trailing slash).
#[derive(utoipa::ToSchema)]
#[schema(
    pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]+\])(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|0[0-9]{4}|[0-9]{1,4}))?$"
)]
#[allow(dead_code)]
pub struct TenantOrigin(String);

/// How the tenant's user JWTs are verified: exactly one of the three. The
/// variable must be set, or the file readable, on the server.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct JwtSettings {
    /// The variable holding the HS256 secret.
    #[schema(min_length = 1)]
    hs256_secret_env: Option<String>,
    /// A PEM file with the RS256 public key.
    rs256_public_key_file: Option<String>,
    /// A PEM file with the ES256 public key.
    es256_public_key_file: Option<String>,
}

/// The model provider. `model` is required for `openai` and `anthropic`;
/// their `api_key_env` variable must be set on the server.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ProviderSettingsBody {
    /// Default `demo` (the offline demo model).
    #[serde(default)]
    kind: ProviderKind,
    /// An http(s) URL.
    #[schema(pattern = "^https?://")]
    base_url: Option<String>,
    /// Required (not blank) for `openai` and `anthropic`.
    model: Option<String>,
    /// The variable holding the API key.
    api_key_env: Option<String>,
    system_prompt: Option<String>,
    #[schema(minimum = 1)]
    max_tokens: Option<u32>,
    /// 0 to 2 (0 to 1 for `anthropic`).
    #[schema(minimum = 0.0, maximum = 2.0)]
    temperature: Option<f32>,
    /// Messages of history sent with a turn; default 20.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default)]
    history_messages: u32,
    #[serde(default)]
    timeouts: TimeoutSettings,
    retry: Option<RetrySettings>,
    breaker: Option<BreakerSettings>,
}

/// Seconds (fractions allowed), each more than 0 and at most 86400.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TimeoutSettings {
    /// Default 5.
    #[schema(exclusive_minimum = 0.0, maximum = 86400.0)]
    #[serde(default)]
    connect: f64,
    /// Default 30.
    #[schema(exclusive_minimum = 0.0, maximum = 86400.0)]
    #[serde(default)]
    first_token: f64,
    /// Default 30.
    #[schema(exclusive_minimum = 0.0, maximum = 86400.0)]
    #[serde(default)]
    idle: f64,
    /// Default 300.
    #[schema(exclusive_minimum = 0.0, maximum = 86400.0)]
    #[serde(default)]
    total: f64,
}

/// Attempts before the first token.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RetrySettings {
    #[schema(minimum = 1, maximum = 10)]
    attempts: Option<u32>,
    #[schema(minimum = 0.0, maximum = 600.0)]
    max_wait_secs: Option<f64>,
}

/// The provider's circuit breaker.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BreakerSettings {
    #[schema(minimum = 1)]
    failures: Option<u32>,
    #[schema(exclusive_minimum = 0.0, maximum = 86400.0)]
    open_secs: Option<f64>,
}

/// Per scope; a scope left out keeps its default.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RateLimitSettings {
    ip: Option<WindowSettings>,
    user: Option<WindowSettings>,
    tenant: Option<WindowSettings>,
}

#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WindowSettings {
    #[schema(minimum = 1)]
    limit: u32,
    #[schema(minimum = 1)]
    window_secs: u64,
}

/// Daily limits (UTC days); a limit left out is none.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BudgetSettings {
    #[schema(minimum = 1)]
    daily_tokens: Option<u64>,
    #[schema(exclusive_minimum = 0.0)]
    daily_cost_usd: Option<f64>,
    #[schema(minimum = 1)]
    per_subject_daily_tokens: Option<u64>,
}

/// A JSON object as tenant settings, validated like a `[[tenants]]` entry
/// and checked to be servable on this node (provider and JWT key load).
pub fn settings(body: Map<String, Value>) -> Result<TenantConfig, ApiError> {
    tables_are_objects(&body)?;
    let raw: RawTenant = serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid_field(&field, &e.inner().to_string())
    })?;
    let config = validate_tenant(raw).map_err(|e| invalid_message(&e.0))?;
    servable(&config)?;
    Ok(config)
}

/// The settings that are tables in the configuration file must be JSON
/// objects: serde would also read a struct from an array (its fields in
/// order, `"breaker": [5, 60]`), which nobody writing JSON means.
fn tables_are_objects(body: &Map<String, Value>) -> Result<(), ApiError> {
    fn check(path: &str, value: Option<&Value>) -> Result<(), ApiError> {
        match value {
            None | Some(Value::Object(_)) | Some(Value::Null) => Ok(()),
            Some(_) => Err(ApiError::invalid_field(path, "must be an object")),
        }
    }
    for key in ["provider", "jwt", "rate_limits", "budget", "tooling", "events"] {
        check(key, body.get(key))?;
    }
    let fallbacks = body.get("fallbacks").and_then(Value::as_array).into_iter().flatten();
    let providers = body.get("provider").map(|p| ("provider".to_owned(), p)).into_iter();
    let providers = providers.chain(fallbacks.enumerate().map(|(i, p)| (format!("fallbacks[{i}]"), p)));
    for (path, provider) in providers {
        check(&path, Some(provider))?;
        for key in ["timeouts", "retry", "breaker"] {
            check(&format!("{path}.{key}"), provider.get(key))?;
        }
    }
    for key in ["ip", "user", "tenant"] {
        check(&format!("rate_limits.{key}"), body.get("rate_limits").and_then(|l| l.get(key)))?;
    }
    for list in ["tools", "mcp"] {
        for (i, item) in body.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            check(&format!("{list}[{i}]"), Some(item))?;
        }
    }
    Ok(())
}

/// A validation message (`` `field`: problem ``) as a field problem.
pub fn invalid_message(message: &str) -> ApiError {
    let parsed = message
        .strip_prefix('`')
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, problem)| (field.to_owned(), problem.trim_start_matches(':').trim().to_owned()));
    match parsed {
        Some((field, problem)) if !field.is_empty() => {
            ApiError::invalid(vec![FieldProblem::new(&field, &problem)])
        }
        _ => ApiError::invalid_field("body", message),
    }
}

/// Refuses settings this node could not serve (an API key variable that is
/// not set, a JWT key that does not load), which would otherwise be stored
/// and then skipped by every node.
fn servable(config: &TenantConfig) -> Result<(), ApiError> {
    if let Err(e) = crate::tenancy::build(config, crate::tenancy::SOURCE_DB, false) {
        return Err(ApiError::invalid_field("provider", &e));
    }
    if let Some(jwt) = &config.jwt {
        if let Err(e) = crate::identity::keys::UserKey::load(&config.id, jwt, |v| std::env::var(v).ok()) {
            tracing::info!(trace_id = %crate::http::trace::current(), error = %e, "tenant JWT key refused");
            return Err(ApiError::invalid_field(
                "jwt",
                "the key cannot be loaded on this server (see its log)",
            ));
        }
    }
    Ok(())
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (key, value) in patch {
            if value.is_null() {
                t.remove(&key);
            } else {
                merge_patch(t.entry(key).or_insert(Value::Null), value);
            }
        }
    }
}

/// The settings with credentials in URLs (`base_url`, tools' `url`) masked.
pub fn shown(mut settings: Value) -> Value {
    mask_urls(&mut settings);
    settings
}

fn mask_urls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(s) if key == "base_url" || key == "url" => *s = mask_url(s),
                    other => mask_urls(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_urls),
        _ => {}
    }
}

/// `https://user:secret@host/p?key=v` → `https://***@host/p?key=***`.
fn mask_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    };
    if let Some(q) = query {
        let masked: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(&mut v, json!({"a": null, "b": {"c": 5, "x": {"y": 1}}, "e": [2, 3]}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3, "x": {"y": 1}}, "e": [2, 3]}));
    }

    #[test]
    fn url_credentials_are_masked() {
        assert_eq!(mask_url("https://api.example/v1"), "https://api.example/v1");
        assert_eq!(
            mask_url("https://u:p@api.example:8443/v1?key=s&x"),
            "https://***@api.example:8443/v1?key=***&x"
        );
        let v = shown(
            json!({"provider": {"base_url": "http://a:b@h"}, "tools": [{"url": "https://h/t?token=z"}]}),
        );
        assert_eq!(
            v,
            json!({"provider": {"base_url": "http://***@h"}, "tools": [{"url": "https://h/t?token=***"}]})
        );
    }

    #[test]
    fn validation_messages_name_their_field() {
        let e = invalid_message("`allowed_origins`: `*` is not an origin");
        assert_eq!(e.problem_fields(), ["allowed_origins"]);
        let e = settings(json!({"id": "Bad Id"}).as_object().unwrap().clone()).unwrap_err();
        assert_eq!(e.problem_fields(), ["id"]);
        let e = settings(json!({"id": "ok", "colour": 1}).as_object().unwrap().clone()).unwrap_err();
        assert_eq!(e.code, switchboard_core::ErrorCode::RequestInvalid);
        let e = settings(json!({"id": "ok", "provider": {"kind": "openai"}}).as_object().unwrap().clone());
        assert_eq!(e.unwrap_err().problem_fields(), ["provider.model"]);
        let e = settings(
            json!({"id": "ok", "provider": {"kind": "demo", "breaker": [5, 60]}})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(e.unwrap_err().problem_fields(), ["provider.breaker"]);
        let e = settings(json!({"id": "ok", "rate_limits": {"ip": [1, 60]}}).as_object().unwrap().clone());
        assert_eq!(e.unwrap_err().problem_fields(), ["rate_limits.ip"]);
        let e = settings(json!({"id": "ok", "tools": [[]]}).as_object().unwrap().clone());
        assert_eq!(e.unwrap_err().problem_fields(), ["tools[0]"]);
    }
}
