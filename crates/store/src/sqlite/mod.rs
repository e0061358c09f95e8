//! The SQLite backend: every write goes through one writer task and its one
//! connection (`writer.rs`), while a small pool of read-only connections reads
//! beside it, which WAL allows.

mod batch;
mod checkpoint;
mod direct;
mod finish;
mod known;
mod offload;
mod outbox;
mod session;
mod turn;
mod wal_writes;
mod writer;

pub use finish::{checkpoint, finish_message};
pub use outbox::{lease_deliveries, settle_deliveries};
pub use session::create_session;
pub use turn::begin_turn;

use crate::{Durability, StoreOpenError, StoreOptions};
use checkpoint::Checkpointer;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions as _;
use std::str::FromStr;
use std::time::Duration;
use writer::Writer;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Readers run on their own threads (one per connection); a few cover
/// concurrent reads without starving the writer's thread of CPU.
const READERS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's own tables, temporary (in memory, never in the WAL).
/// Budget reservations (SPEC §13) of running turns: only the writer reads or
/// writes them, and they matter only while their turns run (the migration
/// `lighter_turn_writes` says more). One b-tree, keyed by tenant: a turn
/// inserts its reservation and deletes it by key, and `begin_turn` sums the
/// tenant's (one a turn in flight), so a rowid table with an index beside it
/// only cost more writes.
const WRITER_TABLES: &str = "CREATE TEMP TABLE budget_reservations (
    id             TEXT    NOT NULL,
    tenant_id      TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    day            INTEGER NOT NULL,
    tokens         INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID";

/// SQLite's side of the store; reads go to the read-only pool that
/// [`Sqlite::open`] returns beside it.
pub struct Sqlite {
    pub writer: Writer,
    /// `None` for an in-memory database, which has no WAL.
    checkpointer: tokio::sync::Mutex<Option<Checkpointer>>,
    /// The history of sessions whose last turn was written here: a turn in
    /// such a session reads none (`known.rs`).
    known: turn::KnownSessions,
    /// How to open another writing connection (migrations run on their own).
    write_options: SqliteConnectOptions,
    pub in_memory: bool,
}

impl Sqlite {
    /// The writer and its read-only pool.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<(Self, SqlitePool), StoreOpenError> {
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
            // Each commit's WAL frames in one write (`wal_writes.rs`).
            match wal_writes::register() {
                Ok(vfs) => base = base.vfs(vfs),
                Err(e) => tracing::warn!(error = %e, "WAL writes go frame by frame"),
            }
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
        let wrote = std::sync::Arc::new(tokio::sync::Notify::new());
        let writer = Writer::spawn(conn, wrote.clone());
        let checkpointer = if in_memory {
            None
        } else {
            Some(Checkpointer::spawn(&base, wrote).await.map_err(connect_err)?)
        };
        let reader = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { READERS })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base.clone().pragma("query_only", "ON"))
            .await
            .map_err(connect_err)?;
        let sqlite = Self {
            writer,
            checkpointer: tokio::sync::Mutex::new(checkpointer),
            known: turn::KnownSessions::default(),
            write_options: base,
            in_memory,
        };
        Ok((sqlite, reader))
    }

    /// Runs the migrations on a connection of their own: the migrator
    /// manages its transactions.
    pub async fn run_migrations(&self) -> Result<(), StoreOpenError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(self.write_options.clone())
            .await
            .map_err(connect_err)?;
        let result = MIGRATOR.run(&pool).await.map_err(|e| StoreOpenError::Migrate(e.to_string()));
        pool.close().await;
        result
    }

    /// Commits what is queued, closes the writer and runs a last checkpoint.
    pub async fn close(&self) {
        self.writer.close().await;
        if let Some(checkpointer) = self.checkpointer.lock().await.take() {
            checkpointer.stop().await;
        }
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
