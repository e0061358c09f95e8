//! A new session on SQLite as a direct write (`direct.rs`): its row and
//! its `session.created`, if the tenant wants it, in one transaction on the
//! writer's connection, rather than each statement handed to sqlx's
//! thread. The SQL is the sessions' own (`sessions.rs`).

use super::{direct, Sqlite};
use crate::sessions::{insert_params, NewRow, INSERT};
use std::sync::Arc;
use switchboard_core::store::StoreError;

/// Writes the session and its event; whether the event was written leased
/// to this node (see `outbox::write_event`).
pub async fn create_session(sqlite: &Sqlite, row: Arc<NewRow>) -> Result<bool, StoreError> {
    sqlite
        .writer
        .write_direct(move |db| {
            direct::execute(db, INSERT, &insert_params(&row))?;
            match &row.2 {
                Some(event) => super::outbox::write_event(db, event),
                None => Ok(false),
            }
        })
        .await
}
