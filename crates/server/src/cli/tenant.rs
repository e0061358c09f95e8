//! `switchboard tenant create|list|show|update|delete`: tenants kept in the
//! database, managed against the configured database (`--config`, like
//! `serve`). Settings are validated exactly like `[[tenants]]` entries; a
//! running server picks changes up within a few seconds. Tenants declared in
//! the configuration file are owned by it: here only their kill switch moves.
//! Secrets are only ever named (`*_env`); no value is read or printed.
//! Every change is appended to the admin audit log (SPEC §12) as actor
//! `cli`, sealed with the same key the servers use (`SWITCHBOARD_AUDIT_KEY`,
//! else the data directory's `audit.key`).

use super::tenant_input::{on_off_word, table_of, SettingsArgs};
use crate::admin::audit::{Action, CLI_ACTOR};
use crate::config::{Config, RawTenant, TenantConfig};
use crate::tenancy::records::raw_settings;
use crate::tenancy::{edit, SOURCE_CONFIG};
use chrono::Utc;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_core::audit::NewAuditEntry;
use switchboard_core::bus::Notice;
use switchboard_core::store::{Store, TenantRecord};
use switchboard_core::time::format;

#[derive(Debug, clap::Args)]
pub struct TenantArgs {
    /// The configuration file `serve` uses; it names the database and the
    /// tenants the file owns.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant in the database.
    Create {
        /// The tenant id: [a-z0-9][a-z0-9_-]{0,62}.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List every tenant: id, name, source (config or db) and kill switch.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a tenant's settings as TOML (usable as `--file`); secrets only by variable name.
    Show {
        id: String,
        /// JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant: `--file` replaces its settings, flags change single keys.
    /// A tenant of the configuration file takes only `--kill-switch on|off`.
    Update {
        id: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Delete a tenant created at run time (its sessions stay in the database).
    Delete { id: String },
}

/// What the CLI works against.
struct Ctx {
    config: Config,
    store: Arc<dyn Store>,
    /// The audit log's key; read (or generated) only for a command that
    /// changes something, and before it does.
    audit_keys: Option<switchboard_store::Keyring>,
}

impl Ctx {
    fn file_tenant(&self, id: &str) -> Option<&TenantConfig> {
        self.config.tenants.iter().find(|t| t.id == id)
    }

    async fn record(&self, id: &str) -> Result<Option<TenantRecord>, String> {
        self.store.get_tenant(id).await.map_err(|e| e.to_string())
    }

    /// Appends a change already made to the audit log, as the admin API does.
    async fn audit(&self, action: Action, id: &str, detail: Value) -> Result<(), String> {
        let keys = self.audit_keys.as_ref().ok_or("the change was made, but no audit key was loaded")?;
        let entry = NewAuditEntry {
            at: Utc::now(),
            actor: CLI_ACTOR.to_owned(),
            actor_name: "Command line".to_owned(),
            tenant_id: Some(id.to_owned()),
            action: action.as_str().to_owned(),
            target: id.to_owned(),
            detail: detail.to_string(),
        };
        match self.store.append_audit(&entry, keys.current_kid(), keys.current_key()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("the change was made, but its audit entry could not be written: {e}")),
        }
    }
}

pub async fn run(args: TenantArgs) -> Result<(), String> {
    let config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let store = crate::app::open_store(&config, true).await.map_err(|e| e.to_string())?;
    let audit_keys = match args.command {
        TenantCommand::List { .. } | TenantCommand::Show { .. } => None,
        _ => Some(
            crate::app::load_keys(&config.data_dir, "SWITCHBOARD_AUDIT_KEY", "audit.key", "audit log")
                .map_err(|e| e.to_string())?,
        ),
    };
    let ctx = Ctx { config, store, audit_keys };
    let (change, id) = match args.command {
        TenantCommand::Create { id, settings } => (create(&ctx, &id, &settings).await?, id),
        TenantCommand::List { json } => return list(&ctx, json).await,
        TenantCommand::Show { id, json } => return show(&ctx, &id, json).await,
        TenantCommand::Update { id, settings } => (update(&ctx, &id, &settings).await?, id),
        TenantCommand::Delete { id } => (delete(&ctx, &id).await?, id),
    };
    // Running nodes re-read tenants at once (else within their next poll).
    if let Err(e) = switchboard_bus::announce(&ctx.config.bus_url, Notice::TenantsChanged).await {
        eprintln!(
            "warning: running nodes were not told at once ({e}); they pick the change up within seconds"
        );
    }
    let Change(action, detail) = change;
    ctx.audit(action, &id, detail).await
}

/// A change made: what it was (for the audit log) and its detail.
struct Change(Action, Value);

async fn create(ctx: &Ctx, id: &str, args: &SettingsArgs) -> Result<Change, String> {
    let table = args.file_table(id)?.unwrap_or_default();
    let settings = args.settings(table, id)?;
    edit::create(ctx.store.as_ref(), &ctx.config.tenants, &settings, Utc::now()).await.map_err(message)?;
    println!("created tenant {id} (running servers serve it within a few seconds)");
    Ok(Change(Action::TenantCreate, json!({})))
}

async fn update(ctx: &Ctx, id: &str, args: &SettingsArgs) -> Result<Change, String> {
    if args.is_empty() {
        return Err("nothing to change: give --file or flags (see --help)".into());
    }
    let (store, file) = (ctx.store.as_ref(), ctx.config.tenants.as_slice());
    if let (Some(kill_switch), true) = (args.kill_switch, args.only_kill_switch()) {
        edit::set_kill_switch(store, file, id, kill_switch, Utc::now()).await.map_err(message)?;
        println!("tenant {id}: kill switch {}", on_off_word(kill_switch));
        return Ok(Change(Action::TenantKillSwitch, json!({"enabled": kill_switch})));
    }
    let change = |existing: &TenantRecord| {
        let table = match args.file_table(id)? {
            Some(mut table) => {
                // A file replaces the settings, but leaves the switch alone unless it sets it.
                table.entry("kill_switch").or_insert(toml::Value::Boolean(existing.kill_switch));
                table
            }
            None => {
                let mut raw = raw_settings(existing).map_err(|e| format!("the stored settings: {e}"))?;
                raw.kill_switch = existing.kill_switch;
                table_of(&raw)?
            }
        };
        args.settings(table, id)
    };
    let before = ctx.record(id).await?.map(|r| r.config);
    let after = edit::update(store, file, id, change, Utc::now()).await.map_err(message)?;
    println!("updated tenant {id} (running servers follow within a few seconds)");
    let fields = changed_fields(before.as_ref(), &after.config);
    Ok(Change(Action::TenantUpdate, json!({"fields": fields})))
}

/// The top-level settings whose stored value changed.
fn changed_fields(before: Option<&Value>, after: &Value) -> Vec<String> {
    let Some(after) = after.as_object() else { return Vec::new() };
    let empty = serde_json::Map::new();
    let before = before.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = after.keys().chain(before.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}

async fn delete(ctx: &Ctx, id: &str) -> Result<Change, String> {
    edit::delete(ctx.store.as_ref(), &ctx.config.tenants, id).await.map_err(message)?;
    println!("deleted tenant {id}");
    Ok(Change(Action::TenantDelete, json!({})))
}

fn message(e: edit::EditError) -> String {
    e.to_string()
}

/// One line of `list`.
struct Row {
    id: String,
    name: String,
    source: String,
    kill_switch: bool,
}

async fn list(ctx: &Ctx, as_json: bool) -> Result<(), String> {
    let records = ctx.store.list_tenants().await.map_err(|e| e.to_string())?;
    let mut rows: Vec<Row> = ctx
        .config
        .tenants
        .iter()
        .map(|t| Row {
            id: t.id.clone(),
            name: t.name.clone(),
            source: SOURCE_CONFIG.into(),
            kill_switch: records.iter().find(|r| r.id == t.id).map_or(t.kill_switch, |r| r.kill_switch),
        })
        .collect();
    for r in records.iter().filter(|r| ctx.file_tenant(&r.id).is_none()) {
        let source =
            if r.source == SOURCE_CONFIG { "config (not in this file)".into() } else { r.source.clone() };
        rows.push(Row { id: r.id.clone(), name: r.name.clone(), source, kill_switch: r.kill_switch });
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    if as_json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| json!({"id": r.id, "name": r.name, "source": r.source, "kill_switch": r.kill_switch}))
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    let width = |f: fn(&Row) -> usize, title: &str| rows.iter().map(f).max().unwrap_or(0).max(title.len());
    let (w_id, w_name, w_source) = (
        width(|r| r.id.chars().count(), "ID"),
        width(|r| r.name.chars().count(), "NAME"),
        width(|r| r.source.chars().count(), "SOURCE"),
    );
    println!("{:w_id$}  {:w_name$}  {:w_source$}  KILL_SWITCH", "ID", "NAME", "SOURCE");
    for r in &rows {
        println!(
            "{:w_id$}  {:w_name$}  {:w_source$}  {}",
            r.id,
            r.name,
            r.source,
            on_off_word(r.kill_switch)
        );
    }
    Ok(())
}

async fn show(ctx: &Ctx, id: &str, as_json: bool) -> Result<(), String> {
    let record = ctx.record(id).await?;
    let (mut raw, name, source): (RawTenant, String, String) = match (ctx.file_tenant(id), &record) {
        (Some(t), _) => (t.raw.clone(), t.name.clone(), SOURCE_CONFIG.into()),
        (None, Some(r)) => {
            let raw = raw_settings(r).map_err(|e| format!("the stored settings: {e}"))?;
            (raw, r.name.clone(), r.source.clone())
        }
        (None, None) => return Err(format!("no tenant `{id}`")),
    };
    // The switch in force: the database's when it has the tenant.
    if let Some(r) = &record {
        raw.kill_switch = r.kill_switch;
    }
    let created = record.as_ref().map(|r| format(&r.created_at));
    let updated = record.as_ref().map(|r| format(&r.updated_at));
    if as_json {
        let out = json!({
            "id": id,
            "name": name,
            "source": source,
            "kill_switch": raw.kill_switch,
            "created_at": created,
            "updated_at": updated,
            "settings": raw,
        });
        println!("{out:#}");
        return Ok(());
    }
    let body = toml::to_string(&raw).map_err(|e| format!("cannot print the settings: {e}"))?;
    println!("# tenant {id}: source {source}, kill switch {}", on_off_word(raw.kill_switch));
    if let (Some(c), Some(u)) = (created, updated) {
        println!("# created {c}, updated {u}");
    }
    print!("{body}");
    Ok(())
}
