//! Changing tenants at run time, once for every front end: the CLI
//! (`switchboard tenant …`) and the admin API both create, update, delete and
//! flip kill switches through these functions, so the rules (the file owns
//! its tenants; only their kill switch moves; settings are validated like
//! `[[tenants]]` entries) are written once. Telling running nodes is the
//! caller's job: it knows whether it runs inside a node or beside them.

use super::records::{config_record, db_record, next_update};
use super::{SOURCE_CONFIG, SOURCE_DB};
use crate::config::TenantConfig;
use switchboard_core::store::{Store, TenantRecord};
use switchboard_core::time::Timestamp;

/// Why a change was refused. The messages name no secret: settings only
/// ever reference them by variable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("tenant `{0}` already exists")]
    Exists(String),
    #[error("no tenant `{0}`")]
    NotFound(String),
    #[error("tenant `{0}` is owned by the configuration file: edit the file instead (only its kill switch can be changed at run time)")]
    OwnedByFile(String),
    /// The new settings do not validate.
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Store(String),
}

fn db(e: impl std::fmt::Display) -> EditError {
    EditError::Store(e.to_string())
}

fn file_tenant<'a>(file: &'a [TenantConfig], id: &str) -> Option<&'a TenantConfig> {
    file.iter().find(|t| t.id == id)
}

/// Stores a new database tenant; refused when the id is taken (by the file
/// or the database).
pub async fn create(
    store: &dyn Store,
    file: &[TenantConfig],
    settings: &TenantConfig,
    now: Timestamp,
) -> Result<TenantRecord, EditError> {
    let id = &settings.id;
    if file_tenant(file, id).is_some() || store.get_tenant(id).await.map_err(db)?.is_some() {
        return Err(EditError::Exists(id.clone()));
    }
    let record = db_record(settings, settings.kill_switch, None, now).map_err(EditError::Invalid)?;
    store.upsert_tenant(&record).await.map_err(db)?;
    Ok(record)
}

/// Replaces a database tenant's settings with what `change` makes of its
/// stored record. Tenants of the file (or left over from a file) are refused.
pub async fn update(
    store: &dyn Store,
    file: &[TenantConfig],
    id: &str,
    change: impl FnOnce(&TenantRecord) -> Result<TenantConfig, String>,
    now: Timestamp,
) -> Result<TenantRecord, EditError> {
    if file_tenant(file, id).is_some() {
        return Err(EditError::OwnedByFile(id.to_owned()));
    }
    let existing = store.get_tenant(id).await.map_err(db)?.ok_or_else(|| EditError::NotFound(id.into()))?;
    if existing.source != SOURCE_DB {
        return Err(EditError::OwnedByFile(id.to_owned()));
    }
    let settings = change(&existing).map_err(EditError::Invalid)?;
    if settings.id != id {
        return Err(EditError::Invalid(format!("`id`: the settings name tenant `{}`", settings.id)));
    }
    let record =
        db_record(&settings, settings.kill_switch, Some(&existing), now).map_err(EditError::Invalid)?;
    store.upsert_tenant(&record).await.map_err(db)?;
    Ok(record)
}

/// Turns a tenant's kill switch on or off: any tenant, the file's included
/// (the file owns everything else about them).
pub async fn set_kill_switch(
    store: &dyn Store,
    file: &[TenantConfig],
    id: &str,
    on: bool,
    now: Timestamp,
) -> Result<TenantRecord, EditError> {
    let existing = store.get_tenant(id).await.map_err(db)?;
    if let Some(config) = file_tenant(file, id) {
        let mut record = match existing.clone().filter(|r| r.source == SOURCE_CONFIG) {
            Some(r) => r,
            None => config_record(config, None, now).map_err(EditError::Invalid)?,
        };
        record.kill_switch = on;
        record.updated_at = next_update(now, existing.as_ref()).map_err(db)?;
        store.upsert_tenant(&record).await.map_err(db)?;
        return Ok(record);
    }
    let existing = existing.ok_or_else(|| EditError::NotFound(id.into()))?;
    let mut record = existing.clone();
    if existing.source == SOURCE_DB {
        // The stored settings carry the switch too; keep both in step.
        let settings = super::records::settings(&existing).map_err(EditError::Invalid)?;
        record = db_record(&settings, on, Some(&existing), now).map_err(EditError::Invalid)?;
    } else {
        record.kill_switch = on;
        record.updated_at = next_update(now, Some(&existing)).map_err(db)?;
    }
    store.upsert_tenant(&record).await.map_err(db)?;
    Ok(record)
}

/// Deletes a database tenant (its sessions stay). A `config` record that no
/// file here declares is a leftover of a tenant removed from the file, and
/// may go.
pub async fn delete(store: &dyn Store, file: &[TenantConfig], id: &str) -> Result<(), EditError> {
    if file_tenant(file, id).is_some() {
        return Err(EditError::OwnedByFile(id.to_owned()));
    }
    if !store.delete_tenant(id).await.map_err(db)? {
        return Err(EditError::NotFound(id.to_owned()));
    }
    Ok(())
}
