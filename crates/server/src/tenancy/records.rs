//! Between validated tenant settings and the database's `TenantRecord`: what
//! a record holds (the entry as written, in the JSON shape of a `[[tenants]]`
//! entry), how a record becomes settings again, and how the file's tenants
//! are written at start.

use super::{SOURCE_CONFIG, SOURCE_DB};
use crate::config::{validate_tenant, RawTenant, TenantConfig};
use switchboard_core::store::{Store, TenantRecord};
use switchboard_core::time::{from_millis, OutOfRange, Timestamp};

/// The settings as a record's `config` JSON.
pub fn settings_json(raw: &RawTenant) -> Result<serde_json::Value, String> {
    serde_json::to_value(raw).map_err(|e| format!("cannot encode the settings: {e}"))
}

/// A record's settings as written (no validation beyond their shape).
pub fn raw_settings(record: &TenantRecord) -> Result<RawTenant, String> {
    let raw: RawTenant = serde_path_to_error::deserialize(record.config.clone())
        .map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))?;
    if raw.id != record.id {
        return Err(format!("`id`: the settings name tenant `{}`", raw.id));
    }
    Ok(raw)
}

/// A record's settings, validated exactly like a `[[tenants]]` entry.
pub fn settings(record: &TenantRecord) -> Result<TenantConfig, String> {
    validate_tenant(raw_settings(record)?).map_err(|e| e.0)
}

/// A record's next `updated_at`: now, but always later than the last one (in
/// the milliseconds the store keeps), so every change is seen by the nodes
/// that poll for changes. An error when the last one is the last instant a
/// timestamp can hold: nothing later exists.
pub fn next_update(now: Timestamp, previous: Option<&TenantRecord>) -> Result<Timestamp, OutOfRange> {
    let now = now.timestamp_millis();
    let after = previous.map_or(i64::MIN, |p| p.updated_at.timestamp_millis().saturating_add(1));
    from_millis(now.max(after))
}

fn updated_at(now: Timestamp, previous: Option<&TenantRecord>) -> Result<Timestamp, String> {
    next_update(now, previous).map_err(|e| format!("`updated_at`: {e}"))
}

/// The record of a tenant created at run time, whose kill switch is `kill_switch`.
pub fn db_record(
    config: &TenantConfig,
    kill_switch: bool,
    previous: Option<&TenantRecord>,
    now: Timestamp,
) -> Result<TenantRecord, String> {
    let mut raw = config.raw.clone();
    raw.kill_switch = kill_switch;
    Ok(TenantRecord {
        id: config.id.clone(),
        name: config.name.clone(),
        source: SOURCE_DB.into(),
        config: settings_json(&raw)?,
        kill_switch,
        created_at: previous.map_or(now, |p| p.created_at),
        updated_at: updated_at(now, previous)?,
    })
}

/// The record of a tenant the file owns. Its kill switch is the file's value
/// unless it was flipped at run time (CLI, admin API) since the file last said
/// otherwise: the latest change wins, and a flip survives restarts. The
/// record's settings keep the file's own value to tell the two apart.
pub fn config_record(
    config: &TenantConfig,
    existing: Option<&TenantRecord>,
    now: Timestamp,
) -> Result<TenantRecord, String> {
    let settings = settings_json(&config.raw)?;
    let kill_switch = match existing {
        Some(r)
            if r.source == SOURCE_CONFIG && r.config.get("kill_switch") == settings.get("kill_switch") =>
        {
            r.kill_switch
        }
        _ => config.kill_switch,
    };
    Ok(TenantRecord {
        id: config.id.clone(),
        name: config.name.clone(),
        source: SOURCE_CONFIG.into(),
        config: settings,
        kill_switch,
        created_at: existing.map_or(now, |p| p.created_at),
        updated_at: updated_at(now, existing)?,
    })
}

/// Writes the file's tenants into the database at start. Records that did not
/// change are left alone, so other nodes do not rebuild them.
pub async fn sync_config_tenants(
    store: &dyn Store,
    tenants: &[TenantConfig],
    now: Timestamp,
) -> Result<(), String> {
    for t in tenants {
        let existing = store.get_tenant(&t.id).await.map_err(|e| e.to_string())?;
        if existing.as_ref().is_some_and(|r| r.source != SOURCE_CONFIG) {
            tracing::warn!(tenant = %t.id, "the configuration file now declares this tenant: the file owns it and its database settings are replaced");
        }
        let record = config_record(t, existing.as_ref(), now)?;
        let unchanged = existing.as_ref().is_some_and(|e| {
            e.name == record.name
                && e.source == record.source
                && e.config == record.config
                && e.kill_switch == record.kill_switch
        });
        if !unchanged {
            store.upsert_tenant(&record).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn file_tenant(kill: bool) -> TenantConfig {
        let text = format!("[[tenants]]\nid = \"acme\"\nkill_switch = {kill}\n");
        Config::from_parts(&text, Vec::new()).unwrap().tenants.remove(0)
    }

    #[test]
    fn settings_survive_a_round_trip_through_a_record() {
        let t = file_tenant(false);
        let record = db_record(&t, true, None, from_millis(5).unwrap()).unwrap();
        let back = settings(&record).unwrap();
        assert_eq!(back.id, "acme");
        assert!(back.kill_switch);
        assert_eq!(back.provider, t.provider);
        let mut other = record.clone();
        other.id = "other".into();
        assert!(settings(&other).is_err(), "a record whose settings name another tenant");
        other.config["unknown_key"] = serde_json::json!(1);
        assert!(settings(&other).unwrap_err().contains("unknown_key"));
    }

    #[test]
    fn updated_at_always_moves_forward() {
        let first = db_record(&file_tenant(false), false, None, from_millis(1000).unwrap()).unwrap();
        let second = db_record(&file_tenant(false), true, Some(&first), from_millis(1000).unwrap()).unwrap();
        assert_eq!(second.updated_at, from_millis(1001).unwrap());
        assert_eq!(second.created_at, first.created_at);
        assert_eq!(next_update(from_millis(2000).unwrap(), Some(&second)), from_millis(2000));
    }

    #[test]
    fn nothing_comes_after_the_last_instant_a_timestamp_can_hold() {
        let end = chrono::DateTime::<chrono::Utc>::MAX_UTC;
        let mut last = db_record(&file_tenant(false), false, None, from_millis(1000).unwrap()).unwrap();
        last.updated_at = end;
        let after = end.timestamp_millis() + 1;
        assert_eq!(next_update(from_millis(1000).unwrap(), Some(&last)), Err(OutOfRange(after)));
        let err = db_record(&file_tenant(false), true, Some(&last), from_millis(1000).unwrap()).unwrap_err();
        assert!(err.starts_with("`updated_at`: "), "{err}");
        assert!(config_record(&file_tenant(false), Some(&last), from_millis(1000).unwrap()).is_err());
    }

    #[test]
    fn a_runtime_flip_of_a_file_tenant_lasts_until_the_file_changes() {
        let start = config_record(&file_tenant(false), None, from_millis(1).unwrap()).unwrap();
        assert!(!start.kill_switch);
        let mut flipped = start.clone();
        flipped.kill_switch = true;
        // Restart with the same file: the flip stays.
        assert!(
            config_record(&file_tenant(false), Some(&flipped), from_millis(2).unwrap()).unwrap().kill_switch
        );
        // The file now says something else: the file wins.
        let mut off = config_record(&file_tenant(true), Some(&flipped), from_millis(3).unwrap()).unwrap();
        assert!(off.kill_switch);
        off.kill_switch = false;
        assert!(!config_record(&file_tenant(true), Some(&off), from_millis(4).unwrap()).unwrap().kill_switch);
    }
}
