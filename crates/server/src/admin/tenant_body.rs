//! Tenant settings as the admin API reads and writes them: the JSON shape of
//! one `[[tenants]]` entry, validated by the same path as the configuration
//! file (`config::validate_tenant`), patched with JSON merge patch (RFC
//! 7396), and shown with URL credentials masked. Settings never hold secret
//! values, only the names of the variables that do; a URL may still carry a
//! password or a key in its query, so those are shown as `***`.

use crate::config::{validate_tenant, RawTenant, TenantConfig};
use crate::http::ApiError;
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;

/// A JSON object as tenant settings, validated like a `[[tenants]]` entry
/// and checked to be servable on this node (provider and JWT key load).
pub fn settings(body: Map<String, Value>) -> Result<TenantConfig, ApiError> {
    let raw: RawTenant = serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid_field(&field, &e.inner().to_string())
    })?;
    let config = validate_tenant(raw).map_err(|e| invalid_message(&e.0))?;
    servable(&config)?;
    Ok(config)
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
    }
}
