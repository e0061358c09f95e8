//! Switchboard's `Store` on sqlx, for SQLite (one machine) and PostgreSQL
//! (several nodes), with message content encrypted at rest (SPEC §11).
//!
//! Opening is two steps, so that only one place changes the schema:
//!
//! - [`migrate`] runs the backend's migrations (idempotent; on PostgreSQL under
//!   sqlx's advisory lock, so nodes starting together migrate once), then runs
//!   the key check. `switchboard migrate` calls it, and so may `serve` before
//!   [`connect`].
//! - [`connect`] opens the pools, refuses a database that lacks any of this
//!   build's migrations ([`StoreOpenError::NotMigrated`]), and runs the key
//!   check. The one exception is `sqlite::memory:`, which exists only inside
//!   the connection that opens it, so `connect` migrates it itself.
//!
//! The key check keeps one encrypted canary per key id in the database (the
//! current key's is added the first time it is used). Opening fails when the
//! database has canaries and the configured keys decrypt none of them, or when
//! a configured key id has a canary that its key does not decrypt: a node with
//! the wrong keys refuses to start instead of writing what others cannot read.
//!
//! SQLite runs in WAL mode with `synchronous = NORMAL` ([`Durability::Full`]
//! selects `FULL`), `busy_timeout` 5 s and foreign keys on. All its writes go
//! through one writer task holding the one writing connection; writes that
//! queue while a transaction runs commit together in the next one (group
//! commit), and each caller hears back only after its write committed. Reads
//! use a pool of four read-only connections beside it. PostgreSQL uses one
//! pool of 16 connections per node; a turn locks its session row.
//!
//! Dropping the last handle to the store closes it: the SQLite writer commits
//! what is queued and closes its connection.

mod admin;
mod audit;
mod conversations;
mod crypto;
mod db;
mod erase;
mod keys;
mod links;
mod memory;
mod messages;
mod outbox;
mod postgres;
mod retention;
mod rotate;
mod rows;
mod schema;
mod sessions;
mod sqlite;
mod store;
mod store_impl;
mod takeover;
mod tenants;
mod timing;
mod turn;
mod usage;
mod write;

pub use keys::{load_or_generate, KeyError, Keyring, KEY_LEN};
pub use rotate::{rotate_keys, ColumnReport, Progress, RotateError, RotationReport, DEFAULT_BATCH};
pub use timing::{operations, register_metrics, OPERATION_SECONDS};

use std::sync::Arc;
use store::SqlStore;
use switchboard_core::store::Store;

/// How hard SQLite works to keep the last commits through a power loss
/// (SPEC §11.5). PostgreSQL follows its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = NORMAL`: survives a killed process; a power loss may
    /// take the last commits.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit reaches the disk before it returns.
    Full,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The first key encrypts; every key decrypts what was written under its id.
    pub keyring: Keyring,
    pub durability: Durability,
}

/// Why the database could not be opened. For the log and the operator at
/// startup; the URL (which may hold a password) is never repeated.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error("unsupported database URL: expected sqlite:… or postgres://…")]
    UnsupportedUrl,
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Connect(String),
    #[error("database error while opening: {0}")]
    Database(String),
    #[error("migrating the database failed: {0}")]
    Migrate(String),
    #[error("the database schema is not up to date; run `switchboard migrate` first")]
    NotMigrated,
    #[error(
        "the configured encryption keys cannot decrypt this database's content (it holds content \
         under key ids {database_kids}); every node must be given the same SWITCHBOARD_ENCRYPTION_KEYS"
    )]
    KeysCannotDecrypt { database_kids: String },
    #[error(
        "the configured encryption key {kid:?} cannot decrypt this database's content written under \
         that key id; every node must be given the same SWITCHBOARD_ENCRYPTION_KEYS"
    )]
    KeyConflict { kid: String },
    #[error("cannot encrypt the key check value")]
    Crypto,
}

/// Opens the database (creating a SQLite file and its directory if missing),
/// checks that it is migrated and that the keys can read it. Does not migrate,
/// except an in-memory SQLite database.
pub async fn connect(database_url: &str, options: StoreOptions) -> Result<Arc<dyn Store>, StoreOpenError> {
    let store = SqlStore::open(database_url, &options).await?;
    let checked =
        if store.in_memory() { schema::migrate(&store).await } else { schema::ensure_ready(&store).await };
    match checked {
        Ok(()) => Ok(Arc::new(store)),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

/// Runs the backend's migrations (idempotent), then the key check.
pub async fn migrate(database_url: &str, options: &StoreOptions) -> Result<(), StoreOpenError> {
    let store = SqlStore::open(database_url, options).await?;
    let result = schema::migrate(&store).await;
    store.close().await;
    result
}
