//! Which tenants this node serves, worked out from the database's records.
//! Only records that changed since the last look are rebuilt (with new
//! provider clients); the rest keep their running instance, so in-flight
//! requests and turns are never disturbed by a reload.

use super::{build, records, SOURCE_CONFIG, SOURCE_DB};
use crate::config::TenantConfig;
use crate::state::TenantMap;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_core::store::TenantRecord;
use switchboard_core::time::Timestamp;

/// What identifies one state of a record: every write moves `updated_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    updated_at: Timestamp,
    kill_switch: bool,
}

impl Version {
    fn of(record: &TenantRecord) -> Self {
        Self { updated_at: record.updated_at, kill_switch: record.kill_switch }
    }
}

pub struct Catalog {
    /// The tenants this node's configuration file declares, by id.
    file: HashMap<String, TenantConfig>,
    /// The last version looked at of each database tenant, served or not.
    seen: HashMap<String, Version>,
}

impl Catalog {
    /// The catalog and the first map to serve. A file tenant that cannot be
    /// built stops the start (as a bad configuration does); a database tenant
    /// that cannot is logged and skipped.
    pub fn start(file: &[TenantConfig], records: &[TenantRecord]) -> Result<(Self, TenantMap), String> {
        let by_id: HashMap<&str, &TenantRecord> = records.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut map = TenantMap::with_capacity(file.len() + records.len());
        for t in file {
            let kill_switch = by_id.get(t.id.as_str()).map_or(t.kill_switch, |r| r.kill_switch);
            let tenant = build(t, SOURCE_CONFIG, kill_switch).map_err(|e| format!("tenant {}: {e}", t.id))?;
            map.insert(t.id.clone(), Arc::new(tenant));
        }
        let mut catalog =
            Self { file: file.iter().map(|t| (t.id.clone(), t.clone())).collect(), seen: HashMap::new() };
        let map = catalog.refresh(records, &map).unwrap_or(map);
        Ok((catalog, map))
    }

    /// The map to serve now that the database holds `records`, or `None` when
    /// `current` is still right.
    pub fn refresh(&mut self, records: &[TenantRecord], current: &TenantMap) -> Option<TenantMap> {
        let by_id: HashMap<&str, &TenantRecord> = records.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut next = TenantMap::with_capacity(current.len());
        let mut changed = false;
        for (id, config) in &self.file {
            let kill_switch = by_id.get(id.as_str()).map_or(config.kill_switch, |r| r.kill_switch);
            changed |= self.file_tenant(config, kill_switch, current, &mut next);
        }
        for record in records {
            if self.file.contains_key(&record.id) || record.source == SOURCE_CONFIG {
                // The file owns it, or it belongs to a file this node does not have.
                continue;
            }
            let version = Version::of(record);
            if self.seen.get(&record.id) == Some(&version) {
                if let Some(t) = current.get(&record.id) {
                    next.insert(record.id.clone(), t.clone());
                }
                continue;
            }
            self.seen.insert(record.id.clone(), version);
            changed = true;
            match records::settings(record).and_then(|c| build(&c, SOURCE_DB, record.kill_switch)) {
                Ok(t) => {
                    tracing::info!(tenant = %record.id, kill_switch = record.kill_switch, "serving the tenant's current settings");
                    next.insert(record.id.clone(), Arc::new(t));
                }
                Err(e) => {
                    tracing::warn!(tenant = %record.id, error = %e, "skipping a stored tenant whose settings are not usable")
                }
            }
        }
        self.seen.retain(|id, _| by_id.contains_key(id.as_str()));
        for id in current.keys().filter(|id| !next.contains_key(*id)) {
            tracing::info!(tenant = %id, "no longer serving the tenant");
            changed = true;
        }
        changed.then_some(next)
    }

    /// Carries a file tenant over, with the database's kill switch; returns
    /// whether it changed.
    fn file_tenant(
        &self,
        config: &TenantConfig,
        kill_switch: bool,
        current: &TenantMap,
        next: &mut TenantMap,
    ) -> bool {
        let tenant = match current.get(&config.id).filter(|t| t.source == SOURCE_CONFIG) {
            Some(t) if t.kill_switch == kill_switch => {
                next.insert(config.id.clone(), t.clone());
                return false;
            }
            // Same settings and provider client; only the switch moves.
            Some(t) => Ok(switchboard_core::tenant::Tenant { kill_switch, ..(**t).clone() }),
            None => build(config, SOURCE_CONFIG, kill_switch),
        };
        match tenant {
            Ok(t) => {
                tracing::info!(tenant = %config.id, kill_switch, "kill switch changed");
                next.insert(config.id.clone(), Arc::new(t));
                true
            }
            Err(e) => {
                tracing::warn!(tenant = %config.id, error = %e, "cannot serve a tenant of the configuration file");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate_tenant, Config, RawTenant};
    use crate::tenancy::records::{config_record, db_record};
    use switchboard_core::time::from_millis;

    fn tenant(id: &str) -> TenantConfig {
        let text = format!("[[tenants]]\nid = \"{id}\"\n");
        Config::from_parts(&text, Vec::new()).unwrap().tenants.remove(0)
    }

    #[test]
    fn only_changed_records_are_rebuilt() {
        let file = [tenant("filed")];
        let mut records = vec![
            config_record(&file[0], None, from_millis(1).unwrap()).unwrap(),
            db_record(&tenant("a"), false, None, from_millis(1).unwrap()).unwrap(),
            db_record(&tenant("b"), false, None, from_millis(1).unwrap()).unwrap(),
        ];
        let (mut catalog, map) = Catalog::start(&file, &records).unwrap();
        assert_eq!(map.len(), 3);
        assert!(catalog.refresh(&records, &map).is_none(), "nothing changed");

        // Flip the file tenant's switch and update `a`.
        records[0].kill_switch = true;
        records[0].updated_at = from_millis(2).unwrap();
        records[1] = db_record(&tenant("a"), true, Some(&records[1]), from_millis(2).unwrap()).unwrap();
        let next = catalog.refresh(&records, &map).unwrap();
        assert!(next["filed"].kill_switch && next["a"].kill_switch && !next["b"].kill_switch);
        assert!(Arc::ptr_eq(&next["b"], &map["b"]), "b was rebuilt");
        assert!(Arc::ptr_eq(&next["filed"].primary, &map["filed"].primary), "only the switch moves");

        // Delete `b`; add one whose settings are broken.
        records.remove(2);
        let mut broken = db_record(&tenant("c"), false, None, from_millis(3).unwrap()).unwrap();
        broken.config["provider"] = serde_json::json!({"kind": "openai"});
        records.push(broken);
        let last = catalog.refresh(&records, &next).unwrap();
        let mut ids: Vec<_> = last.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["a", "filed"]);
        assert!(catalog.refresh(&records, &last).is_none(), "a broken record is logged once");
    }

    #[test]
    fn a_record_of_another_file_is_not_served() {
        let mut foreign = config_record(&tenant("elsewhere"), None, from_millis(1).unwrap()).unwrap();
        foreign.source = SOURCE_CONFIG.into();
        let (_, map) = Catalog::start(&[], &[foreign]).unwrap();
        assert!(map.is_empty());
        let raw: RawTenant = serde_json::from_value(serde_json::json!({"id": "x"})).unwrap();
        assert!(validate_tenant(raw).is_ok());
    }
}
