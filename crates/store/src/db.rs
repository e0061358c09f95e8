//! The two databases behind one small surface, so the SQL both backends
//! share is written once, as plain functions: a statement's parameters are a
//! list of [`Param`]s (`$1`, `$2`… in order), run on the writer's connection
//! ([`Conn`], inside a write's transaction) or on the read pool
//! ([`Reader`]). Each call dispatches on the backend with one `match`; the
//! statements themselves are the same text on SQLite and PostgreSQL (SQLite
//! reads `$N` as a numbered parameter). What differs between the backends
//! is chosen by [`Dialect`] where it is used.
//!
//! The same [`Param`]s also bind rusqlite's statements on SQLite's writer
//! (`sqlite/direct.rs`), so the turn's writes list their values once.

use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::FromRow;
use std::borrow::Cow;
use switchboard_core::store::StoreError;
use switchboard_core::time::Timestamp;

use crate::rows::db_err;

/// One value bound to a numbered parameter. Borrows where it can: binding
/// copies nothing until the database's own encoding.
#[derive(Debug, Clone)]
pub enum Param<'q> {
    Text(Option<Cow<'q, str>>),
    Int(Option<i64>),
    /// PostgreSQL's `integer` (e.g. `substr`'s length), not `bigint`.
    Int32(i32),
    Bool(bool),
    Bytes(Option<&'q [u8]>),
}

impl<'q> From<&'q str> for Param<'q> {
    fn from(v: &'q str) -> Self {
        Self::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'q> From<&'q String> for Param<'q> {
    fn from(v: &'q String) -> Self {
        Self::Text(Some(Cow::Borrowed(v)))
    }
}

impl From<String> for Param<'_> {
    fn from(v: String) -> Self {
        Self::Text(Some(Cow::Owned(v)))
    }
}

impl<'q> From<Option<&'q str>> for Param<'q> {
    fn from(v: Option<&'q str>) -> Self {
        Self::Text(v.map(Cow::Borrowed))
    }
}

impl<'q> From<&'q Option<String>> for Param<'q> {
    fn from(v: &'q Option<String>) -> Self {
        Self::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Param<'_> {
    fn from(v: Option<String>) -> Self {
        Self::Text(v.map(Cow::Owned))
    }
}

/// Ids are stored as their hyphenated text.
impl From<uuid::Uuid> for Param<'_> {
    fn from(v: uuid::Uuid) -> Self {
        Self::Text(Some(Cow::Owned(v.to_string())))
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<i32> for Param<'_> {
    fn from(v: i32) -> Self {
        Self::Int32(v)
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// Times are stored as milliseconds since the epoch.
impl From<&Timestamp> for Param<'_> {
    fn from(v: &Timestamp) -> Self {
        Self::Int(Some(v.timestamp_millis()))
    }
}

impl<'q> From<&'q [u8]> for Param<'q> {
    fn from(v: &'q [u8]) -> Self {
        Self::Bytes(Some(v))
    }
}

impl<'q> From<&'q Vec<u8>> for Param<'q> {
    fn from(v: &'q Vec<u8>) -> Self {
        Self::Bytes(Some(v))
    }
}

impl<'q> From<&'q Option<Vec<u8>>> for Param<'q> {
    fn from(v: &'q Option<Vec<u8>>) -> Self {
        Self::Bytes(v.as_deref())
    }
}

/// SQLite's writer binds the same values with rusqlite.
impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Self::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Self::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(*v)),
            Self::Int32(v) => ToSqlOutput::Owned(Value::Integer(i64::from(*v))),
            Self::Bool(v) => ToSqlOutput::Owned(Value::Integer(i64::from(*v))),
            Self::Bytes(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Self::Text(None) | Self::Int(None) | Self::Bytes(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

fn sqlite_args<'q>(params: &'q [Param<'q>]) -> Result<SqliteArguments<'q>, sqlx::Error> {
    bind_all(params, SqliteArguments::default())
}

fn pg_args(params: &[Param<'_>]) -> Result<PgArguments, sqlx::Error> {
    bind_all(params, PgArguments::default())
}

/// Adds each value to a backend's arguments, in order.
fn bind_all<'q, A>(params: &'q [Param<'q>], mut args: A) -> Result<A, sqlx::Error>
where
    A: sqlx::Arguments<'q>,
    Option<&'q str>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    Option<i64>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    i32: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    bool: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    Option<&'q [u8]>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
{
    for param in params {
        match param {
            Param::Text(v) => args.add(v.as_deref()),
            Param::Int(v) => args.add(*v),
            Param::Int32(v) => args.add(*v),
            Param::Bool(v) => args.add(*v),
            Param::Bytes(v) => args.add(*v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// A row type both backends can read.
pub trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// Which SQL a statement needs where the two backends differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One writer: nothing else can hold a row, so no statement locks one.
    Sqlite,
    /// Several nodes: rows are locked (`FOR UPDATE`) where order matters.
    Postgres,
}

impl Dialect {
    /// `sqlite` or `postgres`, whichever this dialect is.
    pub fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Self::Sqlite => sqlite,
            Self::Postgres => postgres,
        }
    }
}

/// The connection a write runs on, inside its transaction.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sql`; returns how many rows it changed.
    pub async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, sqlx::Error> {
        let done = match self {
            Self::Sqlite(c) => {
                sqlx::query_with(sql, sqlite_args(params)?).execute(&mut **c).await?.rows_affected()
            }
            Self::Postgres(c) => {
                sqlx::query_with(sql, pg_args(params)?).execute(&mut **c).await?.rows_affected()
            }
        };
        Ok(done)
    }

    /// The first row of `sql`, if there is one.
    pub async fn optional<R: Row>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<R>, sqlx::Error> {
        match self {
            Self::Sqlite(c) => sqlx::query_as_with(sql, sqlite_args(params)?).fetch_optional(&mut **c).await,
            Self::Postgres(c) => sqlx::query_as_with(sql, pg_args(params)?).fetch_optional(&mut **c).await,
        }
    }

    /// The one row `sql` returns.
    pub async fn one<R: Row>(&mut self, sql: &str, params: &[Param<'_>]) -> Result<R, sqlx::Error> {
        match self {
            Self::Sqlite(c) => sqlx::query_as_with(sql, sqlite_args(params)?).fetch_one(&mut **c).await,
            Self::Postgres(c) => sqlx::query_as_with(sql, pg_args(params)?).fetch_one(&mut **c).await,
        }
    }

    /// Every row of `sql`.
    pub async fn all<R: Row>(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<R>, sqlx::Error> {
        match self {
            Self::Sqlite(c) => sqlx::query_as_with(sql, sqlite_args(params)?).fetch_all(&mut **c).await,
            Self::Postgres(c) => sqlx::query_as_with(sql, pg_args(params)?).fetch_all(&mut **c).await,
        }
    }
}

/// The pool reads run on (on PostgreSQL, the one pool of the node).
#[derive(Debug, Clone)]
pub enum Reader {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Reader {
    /// The first row of `sql`, if there is one.
    pub async fn optional<R: Row>(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<R>, StoreError> {
        let row = match self {
            Self::Sqlite(p) => {
                sqlx::query_as_with(sql, sqlite_args(params).map_err(db_err)?).fetch_optional(p).await
            }
            Self::Postgres(p) => {
                sqlx::query_as_with(sql, pg_args(params).map_err(db_err)?).fetch_optional(p).await
            }
        };
        row.map_err(db_err)
    }

    /// The one row `sql` returns.
    pub async fn one<R: Row>(&self, sql: &str, params: &[Param<'_>]) -> Result<R, StoreError> {
        let row = match self {
            Self::Sqlite(p) => {
                sqlx::query_as_with(sql, sqlite_args(params).map_err(db_err)?).fetch_one(p).await
            }
            Self::Postgres(p) => {
                sqlx::query_as_with(sql, pg_args(params).map_err(db_err)?).fetch_one(p).await
            }
        };
        row.map_err(db_err)
    }

    /// Every row of `sql`.
    pub async fn all<R: Row>(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<R>, StoreError> {
        let rows = match self {
            Self::Sqlite(p) => {
                sqlx::query_as_with(sql, sqlite_args(params).map_err(db_err)?).fetch_all(p).await
            }
            Self::Postgres(p) => {
                sqlx::query_as_with(sql, pg_args(params).map_err(db_err)?).fetch_all(p).await
            }
        };
        rows.map_err(db_err)
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}
