//! The SQLite backend: every write goes through one writer task and its one
//! connection (`writer.rs`), while a small pool of read-only connections reads
//! beside it, which WAL allows.

mod checkpoint;
mod direct;
mod finish;
mod known;
mod turn;
mod writer;

use crate::crypto::Cipher;
use crate::schema::Schema;
use crate::store_impl::impl_store;
use crate::write::{BoxFuture, WriteError};
use crate::{sql, Durability, StoreOpenError, StoreOptions};
use checkpoint::Checkpointer;
pub(crate) use direct::Numbered;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, SqliteConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::store::StoreError;
use writer::Writer;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Readers run on their own threads (one per connection); a few cover
/// concurrent reads without starving the writer's thread of CPU.
const READERS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's own tables, temporary (in memory, never in the WAL).
/// Budget reservations (SPEC §13) of running turns: only the writer reads or
/// writes them, and they matter only while their turns run (the migration
/// `lighter_turn_writes` says more).
const WRITER_TABLES: &str = "CREATE TEMP TABLE budget_reservations (
    id             TEXT    NOT NULL PRIMARY KEY,
    tenant_id      TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    day            INTEGER NOT NULL,
    tokens         INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX temp.budget_reservations_tenant_day ON budget_reservations (tenant_id, day)";

pub struct SqliteStore {
    writer: Writer,
    /// `None` for an in-memory database, which has no WAL.
    checkpointer: tokio::sync::Mutex<Option<Checkpointer>>,
    /// The history of sessions whose last turn was written here: a turn in
    /// such a session reads none (`known.rs`).
    known: turn::KnownSessions,
    reader: SqlitePool,
    cipher: Arc<Cipher>,
    /// How to open another writing connection (migrations run on their own).
    write_options: SqliteConnectOptions,
    in_memory: bool,
}

impl SqliteStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreOpenError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let synchronous = match options.durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        };
        let mut base = SqliteConnectOptions::from_str(url)
            .map_err(connect_err)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(synchronous);
        if !in_memory {
            create_parent_dir(base.get_filename())?;
            // Bound the WAL file's size after checkpoints; it otherwise keeps
            // its high-water mark forever.
            base = base.journal_mode(SqliteJournalMode::Wal).pragma("journal_size_limit", "67108864");
        }
        // An in-memory database lives as long as its writer's connection,
        // which the writer task holds until the store closes.
        let mut conn = base
            .clone()
            .pragma("wal_autocheckpoint", checkpoint::WRITER_THRESHOLD)
            .pragma("temp_store", "MEMORY")
            // The writer also runs statements on this connection's handle from
            // its own task (`writer.rs`); SQLite's own mutex keeps that safe
            // even if both sides ever met.
            .serialized(true)
            .connect()
            .await
            .map_err(connect_err)?;
        sqlx::raw_sql(WRITER_TABLES).execute(&mut conn).await.map_err(connect_err)?;
        let writer = Writer::spawn(conn);
        let checkpointer =
            if in_memory { None } else { Some(Checkpointer::spawn(&base).await.map_err(connect_err)?) };
        let reader = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { READERS })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base.clone().pragma("query_only", "ON"))
            .await
            .map_err(connect_err)?;
        Ok(Self {
            writer,
            checkpointer: tokio::sync::Mutex::new(checkpointer),
            known: turn::KnownSessions::default(),
            reader,
            cipher: Arc::new(Cipher::new(options.keyring.clone())),
            write_options: base,
            in_memory,
        })
    }

    /// An in-memory database cannot be migrated by another process first.
    pub fn in_memory(&self) -> bool {
        self.in_memory
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// Every write shares the writer's batch transaction anyway.
    async fn write_one<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        self.writer.write(work).await
    }
}

fn connect_err(e: sqlx::Error) -> StoreOpenError {
    StoreOpenError::Connect(e.to_string())
}

fn create_parent_dir(file: &std::path::Path) -> Result<(), StoreOpenError> {
    match file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|source| StoreOpenError::CreateDir { path: dir.display().to_string(), source }),
        None => Ok(()),
    }
}

impl_store!(
    SqliteStore,
    conn = SqliteConnection,
    dialect = sql::sqlite,
    begin_turn = turn::begin_turn,
    checkpoint = finish::checkpoint,
    finish_message = finish::finish_message,
    messages_after = messages_after
);
crate::rotate::backend::impl_rotation!(SqliteStore, conn = SqliteConnection, select = select);
crate::retention::impl_retention!(SqliteStore, conn = SqliteConnection, dialect = crate::retention::sqlite);

/// A replay's page, oldest first, read as one packed JSON value.
async fn messages_after(
    store: &SqliteStore,
    tenant_id: &str,
    session_id: uuid::Uuid,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<switchboard_core::Message>, StoreError> {
    let session = session_id.to_string();
    let json: String = sqlx::query_scalar(sql::sqlite::MESSAGES_AFTER)
        .bind(&session)
        .bind(tenant_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_one(&store.reader)
        .await
        .map_err(crate::rows::db_err)?;
    let rows = crate::rows::message_rows_from_json(&json, &session, tenant_id)?;
    crate::rows::decode_messages(rows, &store.cipher)
}

#[async_trait::async_trait]
impl Schema for SqliteStore {
    fn migrator(&self) -> &'static Migrator {
        &MIGRATOR
    }

    fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    async fn run_migrations(&self) -> Result<(), StoreOpenError> {
        // On a connection of its own: the migrator manages its transactions.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(self.write_options.clone())
            .await
            .map_err(connect_err)?;
        let result = MIGRATOR.run(&pool).await.map_err(|e| StoreOpenError::Migrate(e.to_string()));
        pool.close().await;
        result
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>, StoreOpenError> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(open_err)?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(sql::APPLIED_MIGRATIONS).fetch_all(&self.reader).await.map_err(open_err)
    }

    async fn canaries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreOpenError> {
        sqlx::query_as(sql::LIST_CANARIES).fetch_all(&self.reader).await.map_err(open_err)
    }

    async fn add_canary(&self, kid: &str, canary: &[u8], now_ms: i64) -> Result<(), StoreOpenError> {
        let row = Arc::new((kid.to_owned(), canary.to_vec()));
        self.write(move |conn: &mut SqliteConnection| {
            let row = row.clone();
            Box::pin(async move {
                let (kid, canary) = &*row;
                sqlx::query(sql::INSERT_CANARY)
                    .bind(kid)
                    .bind(canary)
                    .bind(now_ms)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
        .map_err(|e| StoreOpenError::Database(e.to_string()))
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
        if let Some(checkpointer) = self.checkpointer.lock().await.take() {
            checkpointer.stop().await;
        }
    }
}

fn open_err(e: sqlx::Error) -> StoreOpenError {
    StoreOpenError::Database(e.to_string())
}
