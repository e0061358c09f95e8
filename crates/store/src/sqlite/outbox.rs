//! The outbox's writes on SQLite as direct writes (`direct.rs`): an event
//! in a turn's last write, a lease and a batch of settles are statements
//! in place on the writer's connection, committed with whatever turn
//! writes queue beside them, rather than a hand-off of each statement to
//! sqlx's thread. The SQL is the outbox's own (`outbox.rs`).

use super::{direct, Sqlite};
use crate::db::Dialect;
use crate::outbox::{
    after_gone, insert, insert_known, is_leased, lease_statement, settle_statement, tenant_of, LeaseArgs,
    LeasedRow, Sealed, SettleArgs, DISABLED,
};
use crate::write::WriteError;
use rusqlite::Connection;
use std::sync::Arc;
use switchboard_core::store::outbox::Settle;
use switchboard_core::store::StoreError;

/// Writes a sealed event in a direct write; whether it was written leased
/// to this node (see `outbox::write_event`). The writer is SQLite's only
/// one, so what it reads of the endpoint holds until its commit.
pub fn write_event(db: &Connection, event: &Sealed) -> Result<bool, WriteError> {
    if !is_leased(event) {
        let (sql, params) = insert(event);
        direct::execute(db, sql, &params)?;
        return Ok(false);
    }
    let held = direct::row(db, DISABLED, &[tenant_of(event).into()], |_| Ok(()))?.is_some();
    let (sql, params) = insert_known(event, held);
    direct::execute(db, sql, &params)?;
    Ok(!held)
}

/// Leases due rows (see `outbox::lease`).
pub async fn lease_deliveries(sqlite: &Sqlite, args: Arc<LeaseArgs>) -> Result<Vec<LeasedRow>, StoreError> {
    sqlite
        .writer
        .write_direct(move |db| {
            let (sql, params) = lease_statement(Dialect::Sqlite, &args);
            direct::rows(db, sql, &params, |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
            })
        })
        .await
}

/// Settles ended tries (see `outbox::settle_many`); how many were still
/// the node's to end.
pub async fn settle_deliveries(sqlite: &Sqlite, args: Arc<SettleArgs>) -> Result<u64, StoreError> {
    sqlite
        .writer
        .write_direct(move |db| {
            let (node, settles, now) = &*args;
            let mut done = 0;
            for (id, settle) in settles {
                let (sql, params) = settle_statement(id, node, settle, now);
                if direct::execute(db, sql, &params)? == 0 {
                    continue;
                }
                done += 1;
                if matches!(settle, Settle::Gone) {
                    for (sql, params) in after_gone(id, now) {
                        direct::execute(db, sql, &params)?;
                    }
                }
            }
            Ok(done)
        })
        .await
}
