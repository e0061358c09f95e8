//! The configuration: TOML text, then (after a NUL byte) `NAME=value` lines
//! as environment variables (`SWITCHBOARD_` is added when missing). What
//! validates has every tenant and admin origin in normal form and no tenant
//! id twice.

use switchboard_server::config::Config;

pub fn config(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (toml, env) = data.split_at(split);
    let Ok(toml) = std::str::from_utf8(toml) else { return };
    let env = String::from_utf8_lossy(env.get(1..).unwrap_or_default());
    let vars: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name = if name.starts_with("SWITCHBOARD_") {
                name.to_owned()
            } else {
                format!("SWITCHBOARD_{name}")
            };
            (name, value.to_owned())
        })
        .collect();
    let Ok(config) = Config::from_parts(toml, vars) else { return };
    let normal = |o: &String| switchboard_core::origin::normalize(o).as_ref() == Some(o);
    for tenant in &config.tenants {
        assert!(tenant.allowed_origins.iter().all(normal), "tenant origins {:?}", tenant.allowed_origins);
    }
    assert!(config.admin_origins.iter().all(normal), "admin origins {:?}", config.admin_origins);
    let mut ids: Vec<&str> = config.tenants.iter().map(|t| t.id.as_str()).collect();
    ids.sort_unstable();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count, "a tenant id twice");
}
