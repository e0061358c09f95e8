//! The settings a `tenant create` or `tenant update` is given: a TOML file
//! with the keys of one `[[tenants]]` entry (the complete way), and flags for
//! the common keys laid over it. The result goes through the same validation
//! as the configuration file's tenants.

use crate::config::{validate_tenant, RawTenant, TenantConfig};
use std::path::PathBuf;
use toml::{Table, Value};

#[derive(Debug, Default, clap::Args)]
pub struct SettingsArgs {
    /// A TOML file with the keys of one `[[tenants]]` entry, without the
    /// `[[tenants]]` line (tables as `[provider]`, `[jwt]`, …). Flags override it.
    #[arg(long, value_name = "TENANT.toml")]
    pub file: Option<PathBuf>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// An allowed origin, scheme://host[:port]; repeat for more. Replaces the list.
    #[arg(long = "origin", value_name = "URL")]
    pub origins: Vec<String>,
    /// Accept requests without an Origin header (server-side clients).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub allow_no_origin: Option<bool>,
    /// What happens to an answer when its client goes away.
    #[arg(long, value_name = "continue|abort")]
    pub on_disconnect: Option<String>,
    /// Only users with a tenant JWT may chat.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub require_user: Option<bool>,
    /// The tenant's kill switch: every end-user endpoint answers `tenant.disabled`.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub kill_switch: Option<bool>,
    /// `provider.kind`: demo or openai.
    #[arg(long, value_name = "KIND")]
    pub provider_kind: Option<String>,
    /// `provider.model`.
    #[arg(long)]
    pub model: Option<String>,
    /// `provider.base_url`.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// `provider.api_key_env`: the NAME of the variable holding the API key
    /// in the server's environment (the key itself is never stored).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// `provider.system_prompt`.
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// `jwt.hs256_secret_env`: the NAME of the variable holding the tenant's
    /// HS256 secret for user JWTs.
    #[arg(long, value_name = "VAR")]
    pub jwt_hs256_secret_env: Option<String>,
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
fn on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

pub fn on_off_word(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl SettingsArgs {
    /// Whether nothing but the kill switch was given.
    pub fn only_kill_switch(&self) -> bool {
        let Self {
            file,
            name,
            origins,
            allow_no_origin,
            on_disconnect,
            require_user,
            kill_switch: _,
            provider_kind,
            model,
            base_url,
            api_key_env,
            system_prompt,
            jwt_hs256_secret_env,
        } = self;
        file.is_none()
            && name.is_none()
            && origins.is_empty()
            && allow_no_origin.is_none()
            && on_disconnect.is_none()
            && require_user.is_none()
            && provider_kind.is_none()
            && model.is_none()
            && base_url.is_none()
            && api_key_env.is_none()
            && system_prompt.is_none()
            && jwt_hs256_secret_env.is_none()
    }

    pub fn is_empty(&self) -> bool {
        self.only_kill_switch() && self.kill_switch.is_none()
    }

    /// The `--file` table, if one was given; it must not name another tenant.
    pub fn file_table(&self, id: &str) -> Result<Option<Table>, String> {
        let Some(path) = &self.file else { return Ok(None) };
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let table: Table = toml::from_str(&text)
            .map_err(|e| format!("{} is not valid TOML: {}", path.display(), e.message()))?;
        match table.get("id") {
            None => {}
            Some(Value::String(s)) if s == id => {}
            Some(other) => return Err(format!("{} is for tenant {other}, not `{id}`", path.display())),
        }
        Ok(Some(table))
    }

    /// Lays the flags over `table` and validates the result as tenant `id`.
    pub fn settings(&self, mut table: Table, id: &str) -> Result<TenantConfig, String> {
        table.insert("id".into(), Value::String(id.to_owned()));
        self.overlay(&mut table)?;
        let raw: RawTenant = serde_path_to_error::deserialize(Value::Table(table))
            .map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))?;
        validate_tenant(raw).map_err(|e| e.0)
    }

    fn overlay(&self, t: &mut Table) -> Result<(), String> {
        let text = |v: &str| Value::String(v.to_owned());
        if let Some(v) = &self.name {
            t.insert("name".into(), text(v));
        }
        if !self.origins.is_empty() {
            t.insert("allowed_origins".into(), Value::Array(self.origins.iter().map(|o| text(o)).collect()));
        }
        for (key, v) in [
            ("allow_no_origin", self.allow_no_origin),
            ("require_user", self.require_user),
            ("kill_switch", self.kill_switch),
        ] {
            if let Some(v) = v {
                t.insert(key.into(), Value::Boolean(v));
            }
        }
        if let Some(v) = &self.on_disconnect {
            t.insert("on_disconnect".into(), text(v));
        }
        let provider = [
            ("kind", &self.provider_kind),
            ("model", &self.model),
            ("base_url", &self.base_url),
            ("api_key_env", &self.api_key_env),
            ("system_prompt", &self.system_prompt),
        ];
        set_in(t, "provider", &provider)?;
        set_in(t, "jwt", &[("hs256_secret_env", &self.jwt_hs256_secret_env)])
    }
}

/// Sets the given keys of the sub-table `name`, creating it when needed.
fn set_in(t: &mut Table, name: &str, values: &[(&str, &Option<String>)]) -> Result<(), String> {
    if values.iter().all(|(_, v)| v.is_none()) {
        return Ok(());
    }
    let Value::Table(sub) = t.entry(name).or_insert_with(|| Value::Table(Table::new())) else {
        return Err(format!("`{name}` must be a table"));
    };
    for (key, v) in values {
        if let Some(v) = v {
            sub.insert((*key).into(), Value::String(v.clone()));
        }
    }
    Ok(())
}

/// Settings as a TOML table (to lay flags over a stored tenant's settings).
pub fn table_of(raw: &RawTenant) -> Result<Table, String> {
    match Value::try_from(raw) {
        Ok(Value::Table(t)) => Ok(t),
        Ok(_) => Err("the stored settings are not a table".into()),
        Err(e) => Err(format!("cannot encode the stored settings: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_and_validate() {
        let args = SettingsArgs {
            name: Some("Acme".into()),
            origins: vec!["https://Shop.Acme.example:443".into()],
            provider_kind: Some("openai".into()),
            model: Some("gpt-4o-mini".into()),
            api_key_env: Some("ACME_KEY".into()),
            ..SettingsArgs::default()
        };
        let c = args.settings(Table::new(), "acme").unwrap();
        assert_eq!(c.name, "Acme");
        assert_eq!(c.allowed_origins, ["https://shop.acme.example"]);
        assert_eq!(c.provider.api_key_env.as_deref(), Some("ACME_KEY"));
        // The settings survive being written back as a table.
        let again = SettingsArgs::default().settings(table_of(&c.raw).unwrap(), "acme").unwrap();
        assert_eq!(again.provider, c.provider);
    }

    #[test]
    fn bad_settings_are_refused_like_in_the_file() {
        let wildcard = SettingsArgs { origins: vec!["*".into()], ..SettingsArgs::default() };
        assert!(wildcard.settings(Table::new(), "acme").unwrap_err().contains("allowed_origins"));
        let incomplete = SettingsArgs { provider_kind: Some("openai".into()), ..SettingsArgs::default() };
        assert!(incomplete.settings(Table::new(), "acme").unwrap_err().contains("model"));
        assert!(SettingsArgs::default().settings(Table::new(), "Not A Slug").is_err());
        let mut unknown = Table::new();
        unknown.insert("colour".into(), Value::String("red".into()));
        assert!(SettingsArgs::default().settings(unknown, "acme").unwrap_err().contains("colour"));
    }

    #[test]
    fn only_the_kill_switch() {
        let flip = SettingsArgs { kill_switch: Some(true), ..SettingsArgs::default() };
        assert!(flip.only_kill_switch() && !flip.is_empty());
        let more =
            SettingsArgs { name: Some("x".into()), kill_switch: Some(true), ..SettingsArgs::default() };
        assert!(!more.only_kill_switch());
        assert_eq!(on_off("ON"), Ok(true));
        assert!(on_off("maybe").is_err());
    }
}
