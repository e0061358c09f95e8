//! Tenants as the server registered them (config file or admin API), kept so
//! every node serves the same set.

use crate::db::Conn;
use crate::rows::{tenant_columns, to_json, TenantRow};
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::store::{StoreError, TenantRecord};

const UPSERT: &str = "INSERT INTO tenants (id, name, source, config, kill_switch, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, source = excluded.source, \
     config = excluded.config, kill_switch = excluded.kill_switch, updated_at = excluded.updated_at";
const GET: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1");
const LIST: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants ORDER BY id");
const DELETE: &str = "DELETE FROM tenants WHERE id = $1";

pub async fn upsert(store: &SqlStore, tenant: &TenantRecord) -> Result<(), StoreError> {
    let tenant = Arc::new((tenant.clone(), to_json(&tenant.config)?));
    store
        .write_one(move |mut conn: Conn<'_>| {
            let tenant = tenant.clone();
            Box::pin(async move {
                let (t, config) = &*tenant;
                let params = [
                    (&t.id).into(),
                    (&t.name).into(),
                    (&t.source).into(),
                    config.into(),
                    t.kill_switch.into(),
                    (&t.created_at).into(),
                    (&t.updated_at).into(),
                ];
                conn.execute(UPSERT, &params).await?;
                Ok(())
            })
        })
        .await
}

pub async fn get(store: &SqlStore, id: &str) -> Result<Option<TenantRecord>, StoreError> {
    let row: Option<TenantRow> = store.reader.optional(GET, &[id.into()]).await?;
    row.map(TenantRow::decode).transpose()
}

pub async fn list(store: &SqlStore) -> Result<Vec<TenantRecord>, StoreError> {
    let rows: Vec<TenantRow> = store.reader.all(LIST, &[]).await?;
    rows.into_iter().map(TenantRow::decode).collect()
}

pub async fn delete(store: &SqlStore, id: &str) -> Result<bool, StoreError> {
    let id = Arc::new(id.to_owned());
    store
        .write_one(move |mut conn: Conn<'_>| {
            let id = id.clone();
            Box::pin(async move { Ok(conn.execute(DELETE, &[id.as_str().into()]).await? > 0) })
        })
        .await
}
