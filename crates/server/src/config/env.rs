//! `SWITCHBOARD_*` environment variables laid over the file's values:
//! `SWITCHBOARD_HEARTBEAT_SECS=5` sets `heartbeat_secs`, `__` nests
//! (`SWITCHBOARD_PRICES__GPT_4O__INPUT`), a number indexes an array
//! (`SWITCHBOARD_TENANTS__0__KILL_SWITCH=true`).

use toml::Value;

/// Variables that hold secrets or test settings: never configuration keys.
const NOT_KEYS: &[&str] =
    &["OPERATOR_TOKEN", "ENCRYPTION_KEYS", "SIGNING_KEY", "AUDIT_KEY", "WEB_DIR", "DEMO_SHOP_SECRET"];

/// Whether `name` (without the prefix) is one of the reserved variables.
fn reserved(name: &str, referenced: &[String]) -> bool {
    NOT_KEYS.contains(&name) || name.starts_with("TEST_") || referenced.iter().any(|r| r == name)
}

/// Lays the variables over `root`; returns the keys it set, each with the
/// variable that set it, so errors can name the variable.
pub fn overlay(
    root: &mut Value,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, String> {
    let referenced = referenced_names(root);
    let mut set = Vec::new();
    for (var, raw) in vars {
        let Some(name) = var.strip_prefix("SWITCHBOARD_") else { continue };
        if reserved(name, &referenced) {
            continue;
        }
        let path: Vec<String> = name.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!("environment variable {var} does not name a configuration key"));
        }
        insert(root, &path, parse_value(&raw)).map_err(|e| format!("environment variable {var}: {e}"))?;
        set.push((path.join("."), var));
    }
    Ok(set)
}

/// Names (without prefix) of `SWITCHBOARD_*` variables that `*_env` keys
/// point at: they hold secrets, not configuration.
fn referenced_names(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_env_refs(root, &mut out);
    out
}

fn collect_env_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Table(t) => {
            for (k, v) in t {
                if let (true, Value::String(s)) = (k.ends_with("_env"), v) {
                    if let Some(name) = s.strip_prefix("SWITCHBOARD_") {
                        out.push(name.to_owned());
                    }
                }
                collect_env_refs(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_env_refs(v, out)),
        _ => {}
    }
}

/// A TOML literal when the text is one (`15`, `true`, `["a"]`), else a string.
fn parse_value(raw: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn insert(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    match node {
        Value::Table(t) => {
            let child = t.entry(head.clone()).or_insert_with(|| Value::Table(Default::default()));
            insert(child, rest, value)
        }
        Value::Array(a) => {
            let i: usize = head.parse().map_err(|_| format!("`{head}` is not an array index"))?;
            let child = a.get_mut(i).ok_or_else(|| format!("index {i} is past the end of the array"))?;
            insert(child, rest, value)
        }
        _ => Err(format!("`{head}` is inside a value that is not a table")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn sets_typed_nested_and_indexed_values() {
        let mut root: Value = toml::from_str("[[tenants]]\nid = \"a\"\n").unwrap();
        overlay(
            &mut root,
            vars(&[
                ("SWITCHBOARD_HEARTBEAT_SECS", "5"),
                ("SWITCHBOARD_LISTEN", "0.0.0.0:9000"),
                ("SWITCHBOARD_TENANTS__0__KILL_SWITCH", "true"),
                ("SWITCHBOARD_PRICES__M__INPUT", "0.5"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(root["heartbeat_secs"].as_integer(), Some(5));
        assert_eq!(root["listen"].as_str(), Some("0.0.0.0:9000"));
        assert_eq!(root["tenants"][0]["kill_switch"].as_bool(), Some(true));
        assert_eq!(root["prices"]["m"]["input"].as_float(), Some(0.5));
    }

    #[test]
    fn secrets_and_test_settings_are_not_keys() {
        let mut root: Value = toml::from_str("operator_token_env = \"SWITCHBOARD_OP\"").unwrap();
        let set = overlay(
            &mut root,
            vars(&[
                ("SWITCHBOARD_ENCRYPTION_KEYS", "k:x"),
                ("SWITCHBOARD_TEST_POSTGRES_URL", "postgres://"),
                ("SWITCHBOARD_OP", "secret"),
                ("SWITCHBOARD_WEB_DIR", "web"),
            ]),
        )
        .unwrap();
        assert!(set.is_empty());
    }

    #[test]
    fn bad_paths_are_errors() {
        let mut root: Value = toml::from_str("[[tenants]]\nid = \"a\"\n").unwrap();
        assert!(overlay(&mut root, vars(&[("SWITCHBOARD_TENANTS__3__ID", "x")])).is_err());
        assert!(overlay(&mut root, vars(&[("SWITCHBOARD_A____B", "x")])).is_err());
    }
}
