//! The PostgreSQL backend, for several nodes sharing one database: a turn
//! locks its session row (`FOR UPDATE`) before choosing seqs, so nodes never
//! hand out the same seq or start two answers at once (`turn.rs`).

mod turn;

pub use turn::{begin_turn, checkpoint, finish_message};

use crate::rows::db_err;
use crate::write::{BoxFuture, WriteError, ATTEMPTS};
use crate::StoreOpenError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::PgConnection;
use std::str::FromStr;
use std::time::Duration;
use switchboard_core::store::StoreError;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per node; the database's `max_connections` must cover every
/// node's pool.
const MAX_CONNECTIONS: u32 = 16;

pub struct Postgres {
    /// Reads and writes share one pool: PostgreSQL has no single writer.
    pub pool: PgPool,
}

impl Postgres {
    pub async fn open(url: &str) -> Result<Self, StoreOpenError> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| StoreOpenError::Connect(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| StoreOpenError::Connect(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Runs `work` in a transaction of its own, again (in a new one) when a
    /// unique index refused it.
    pub async fn write<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            match work(&mut tx).await {
                Ok(output) => {
                    tx.commit().await.map_err(db_err)?;
                    return Ok(output);
                }
                // Dropping the transaction rolls it back.
                Err(WriteError::Conflict(_)) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into_store()),
            }
        }
    }

    /// A single statement is atomic by itself: no BEGIN and COMMIT round trips.
    pub async fn write_one<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.pool.acquire().await.map_err(db_err)?;
            match work(&mut conn).await {
                Ok(output) => return Ok(output),
                Err(WriteError::Conflict(_)) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into_store()),
            }
        }
    }

    /// sqlx holds an advisory lock meanwhile, so nodes starting together
    /// migrate once.
    pub async fn run_migrations(&self) -> Result<(), StoreOpenError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| StoreOpenError::Migrate(e.to_string()))
    }
}
