//! Statements run in place on the writer's connection (see `writer.rs`):
//! rusqlite on the very handle sqlx opened, while the writer holds it. A
//! statement here is a function call, not a hand-off to sqlx's thread and
//! back, so a turn's writes can be plain statements in order.
//!
//! The SQL is the same text as everywhere else in this crate, with numbered
//! parameters (`$1`, `$2`…), bound from the same [`Param`] lists as sqlx's
//! statements: each parameter a statement names is bound by its number, so
//! several statements can share one list.

use crate::db::Param;
use crate::rows::MessageRow;
use crate::write::WriteError;
use rusqlite::{CachedStatement, Connection, ErrorCode, Row};
use switchboard_core::store::StoreError;

/// `sql` prepared (once per connection) with every parameter it names bound.
fn bound<'c>(db: &'c Connection, sql: &str, params: &[Param<'_>]) -> Result<CachedStatement<'c>, WriteError> {
    let mut statement = db.prepare_cached(sql).map_err(write_err)?;
    for index in 1..=statement.parameter_count() {
        let value = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| params.get(n.checked_sub(1)?));
        let Some(value) = value else {
            return Err(WriteError::Store(StoreError::Database(format!(
                "no value for parameter {index} of a statement"
            ))));
        };
        statement.raw_bind_parameter(index, value).map_err(write_err)?;
    }
    Ok(statement)
}

/// Runs `sql`; returns how many rows it changed.
pub fn execute(db: &Connection, sql: &str, params: &[Param<'_>]) -> Result<usize, WriteError> {
    bound(db, sql, params)?.raw_execute().map_err(write_err)
}

/// Runs each statement of `sqls` in order, all bound from `params`.
pub fn execute_all(db: &Connection, sqls: &[&str], params: &[Param<'_>]) -> Result<(), WriteError> {
    sqls.iter().try_for_each(|sql| execute(db, sql, params).map(drop))
}

/// The first row of `sql`, read with `read`, if there is one.
pub fn row<T>(
    db: &Connection,
    sql: &str,
    params: &[Param<'_>],
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, WriteError> {
    let mut statement = bound(db, sql, params)?;
    let mut rows = statement.raw_query();
    match rows.next().map_err(write_err)? {
        Some(row) => read(row).map(Some).map_err(write_err),
        None => Ok(None),
    }
}

/// Every row of `sql`, read with `read`.
pub fn rows<T>(
    db: &Connection,
    sql: &str,
    params: &[Param<'_>],
    mut read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, WriteError> {
    let mut statement = bound(db, sql, params)?;
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(write_err)? {
        out.push(read(row).map_err(write_err)?);
    }
    Ok(out)
}

/// A message row in the column order of `message_columns!`.
pub fn message_row(row: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        session_id: row.get(0)?,
        seq: row.get(1)?,
        tenant_id: row.get(2)?,
        role: row.get(3)?,
        content: row.get(4)?,
        author: row.get(5)?,
        status: row.get(6)?,
        created_at: row.get(7)?,
        token_count: row.get(8)?,
        client_message_id: row.get(9)?,
        turn_id: row.get(10)?,
        meta: row.get(11)?,
        tools: row.get(12)?,
    })
}

/// A unique index refusing a row is worth another try, as with sqlx.
pub fn write_err(e: rusqlite::Error) -> WriteError {
    let store = StoreError::Database(e.to_string());
    match e.sqlite_error() {
        Some(f) if f.code == ErrorCode::ConstraintViolation && is_unique(f.extended_code) => {
            WriteError::Conflict(store)
        }
        _ => WriteError::Store(store),
    }
}

fn is_unique(extended_code: i32) -> bool {
    extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
}
