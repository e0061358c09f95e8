//! The one store type, [`SqlStore`]: a backend (SQLite's writer or a
//! PostgreSQL pool), the pool reads run on, and the cipher. The SQL both
//! backends share runs through [`SqlStore::write`] and [`SqlStore::reader`]
//! (`db.rs`); a turn's hot path (`begin_turn`, checkpoints, `finish_message`,
//! a replay's page) is each backend's own, in the fewest round trips it
//! can do it in (`sqlite/`, `postgres.rs`).
//!
//! Writes encrypt before and decrypt after `write`, never inside it: on SQLite
//! every write of the process passes through one connection.

use crate::crypto::Cipher;
use crate::db::{Conn, Dialect, Reader};
use crate::write::{BoxFuture, WriteError};
use crate::{postgres, sqlite, StoreOpenError, StoreOptions};
use sqlx::{PgConnection, SqliteConnection};
use std::sync::{Arc, OnceLock};
use switchboard_core::store::outbox::Handoff;
use switchboard_core::store::StoreError;

pub struct SqlStore {
    pub(crate) backend: Backend,
    pub(crate) reader: Reader,
    pub(crate) cipher: Arc<Cipher>,
    /// This node's delivery worker, once it runs (see `outbox::reserve`).
    pub(crate) handoff: OnceLock<Handoff>,
}

/// One lives per store: boxing the larger variant would only add a hop.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// Which database a URL names.
enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    fn of(url: &str) -> Result<Self, StoreOpenError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreOpenError::UnsupportedUrl)
        }
    }
}

impl SqlStore {
    /// Opens the pools (creating a SQLite file and its directory if missing);
    /// checks nothing about the schema (`schema.rs` does).
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreOpenError> {
        let cipher = Arc::new(Cipher::new(options.keyring.clone()));
        let (backend, reader) = match Kind::of(url)? {
            Kind::Sqlite => {
                let (sqlite, pool) = sqlite::Sqlite::open(url, options).await?;
                (Backend::Sqlite(sqlite), Reader::Sqlite(pool))
            }
            Kind::Postgres => {
                let postgres = postgres::Postgres::open(url).await?;
                let reader = Reader::Postgres(postgres.pool.clone());
                (Backend::Postgres(postgres), reader)
            }
        };
        Ok(Self { backend, reader, cipher, handoff: OnceLock::new() })
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// An in-memory SQLite database cannot be migrated by another process first.
    pub fn in_memory(&self) -> bool {
        matches!(&self.backend, Backend::Sqlite(s) if s.in_memory)
    }

    /// Runs `work`, a re-runnable unit of work (`write.rs`), in a write
    /// transaction and returns its output once that committed.
    pub(crate) async fn write<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(Conn<'c>) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(s) => s.writer.write(move |c: &mut SqliteConnection| work(Conn::Sqlite(c))).await,
            Backend::Postgres(p) => p.write(move |c: &mut PgConnection| work(Conn::Postgres(c))).await,
        }
    }

    /// [`SqlStore::write`] for work of one statement, which is atomic by
    /// itself: on PostgreSQL it needs no BEGIN and COMMIT round trips (on
    /// SQLite every write shares the writer's batch transaction anyway).
    pub(crate) async fn write_one<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(Conn<'c>) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(s) => s.writer.write(move |c: &mut SqliteConnection| work(Conn::Sqlite(c))).await,
            Backend::Postgres(p) => p.write_one(move |c: &mut PgConnection| work(Conn::Postgres(c))).await,
        }
    }

    /// Closes the pools; on SQLite the writer first commits what is queued.
    pub async fn close(&self) {
        self.reader.close().await;
        if let Backend::Sqlite(s) = &self.backend {
            s.close().await;
        }
    }
}
