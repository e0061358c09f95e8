//! The backends the conformance suite runs against: a SQLite file in a
//! temporary directory, a fresh PostgreSQL database per test (created from
//! `SWITCHBOARD_TEST_POSTGRES_URL`, dropped when the test ends), and the
//! test kit's memory store (the engine's in-process tests run on it).
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::Connection as _;
use std::sync::Arc;
use switchboard_core::store::Store;
use switchboard_store::{connect, migrate, Durability, Keyring, StoreOptions};
use switchboard_testkit::services::{self, service_url};
use uuid::Uuid;

pub struct Harness {
    pub url: String,
    pub options: StoreOptions,
    pub store: Arc<dyn Store>,
    backend: Backend,
    /// Extra databases a test asked for, dropped with the harness.
    extra: Vec<TempDatabase>,
}

enum Backend {
    Sqlite { dir: tempfile::TempDir },
    Postgres { _db: TempDatabase },
    Memory { store: Arc<switchboard_testkit::MemoryStore> },
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("nested/switchboard.db").display());
        Self::open(url, Backend::Sqlite { dir }).await
    }

    /// None when PostgreSQL is not configured and not required (the test is
    /// noted as skipped).
    pub async fn postgres() -> Option<Self> {
        let admin_url = service_url(services::POSTGRES)?;
        let db = TempDatabase::create(&admin_url).await;
        let url = db.url.clone();
        Some(Self::open(url, Backend::Postgres { _db: db }).await)
    }

    /// The test kit's memory store: no SQL and no files, so a case that
    /// needs them is not run on it.
    pub fn memory() -> Self {
        let store = Arc::new(switchboard_testkit::MemoryStore::new());
        let options = StoreOptions { keyring: Keyring::generate("k1"), durability: Durability::Normal };
        let backend = Backend::Memory { store: store.clone() };
        Self { url: "memory:".into(), options, store, backend, extra: Vec::new() }
    }

    async fn open(url: String, backend: Backend) -> Self {
        let options = StoreOptions { keyring: Keyring::generate("k1"), durability: Durability::Normal };
        migrate(&url, &options).await.unwrap();
        let store = connect(&url, options.clone()).await.unwrap();
        Self { url, options, store, backend, extra: Vec::new() }
    }

    /// The URL of another, empty database of the same backend (not migrated).
    pub async fn fresh_url(&mut self) -> String {
        match &self.backend {
            Backend::Sqlite { dir } => {
                format!("sqlite://{}", dir.path().join(format!("{}.db", Uuid::new_v4())).display())
            }
            Backend::Postgres { _db: db } => {
                let extra = TempDatabase::create(&db.admin_url).await;
                let url = extra.url.clone();
                self.extra.push(extra);
                url
            }
            Backend::Memory { .. } => panic!("the memory store has no database URL"),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite { .. })
    }

    /// Drops the store (closing its pools) and opens the database again.
    pub async fn reopen(&mut self) {
        // Memory is not reopened: it is gone when its store is.
        if matches!(self.backend, Backend::Memory { .. }) {
            return;
        }
        self.close_store().await;
        self.store = connect(&self.url, self.options.clone()).await.unwrap();
    }

    /// Replaces the store with an empty stand-in so the real one's pools go.
    async fn close_store(&mut self) {
        let placeholder = connect("sqlite::memory:", self.options.clone()).await.unwrap();
        drop(std::mem::replace(&mut self.store, placeholder));
    }

    /// Runs one statement outside the store (what the trait cannot do yet,
    /// such as a takeover setting the session status).
    pub async fn exec(&self, statement: &str) {
        if matches!(self.backend, Backend::Memory { .. }) {
            panic!("no SQL on the memory store: {statement}");
        }
        if self.is_sqlite() {
            let pool = SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = PgPool::connect(&self.url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    /// The number one SQL query answers (`SELECT count(*) …`); `None` on
    /// the memory store.
    pub async fn count(&self, query: &str) -> Option<i64> {
        if matches!(self.backend, Backend::Memory { .. }) {
            return None;
        }
        let n = if self.is_sqlite() {
            let pool = SqlitePool::connect(&self.url).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(query).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        } else {
            let pool = PgPool::connect(&self.url).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(query).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        };
        Some(n)
    }

    pub async fn set_session_status(&self, id: Uuid, status: &str) {
        if let Backend::Memory { store } = &self.backend {
            let status = switchboard_core::SessionStatus::parse(status).unwrap();
            assert!(store.set_session_status(id, status), "no session {id}");
            return;
        }
        self.exec(&format!("UPDATE sessions SET status = '{status}' WHERE id = '{id}'")).await;
    }

    /// Every byte the database keeps that could hold message content: on
    /// SQLite every file of the data directory (WAL included), after the
    /// store is closed; on PostgreSQL the stored content, page context and
    /// memory values.
    pub async fn stored_bytes(&mut self) -> Vec<Vec<u8>> {
        assert!(!matches!(self.backend, Backend::Memory { .. }), "the memory store keeps nothing at rest");
        self.close_store().await;
        match &self.backend {
            Backend::Sqlite { dir } => {
                let mut out = Vec::new();
                let data_dir = dir.path().join("nested");
                for entry in std::fs::read_dir(&data_dir).unwrap() {
                    out.push(std::fs::read(entry.unwrap().path()).unwrap());
                }
                assert!(!out.is_empty());
                out
            }
            Backend::Postgres { .. } => {
                let pool = PgPool::connect(&self.url).await.unwrap();
                let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
                    "SELECT content FROM messages UNION ALL \
                     SELECT context FROM sessions WHERE context IS NOT NULL UNION ALL \
                     SELECT value FROM memory",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                pool.close().await;
                rows.into_iter().map(|(c,)| c).collect()
            }
            Backend::Memory { .. } => Vec::new(),
        }
    }
}

/// A database of its own for one test, dropped (with its connections) when
/// the test ends, pass or fail.
struct TempDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TempDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = format!("sb_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("SWITCHBOARD_TEST_POSTGRES_URL is set but unreachable: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
        admin.close().await.unwrap();
        let url = with_database(admin_url, &name);
        Self { admin_url: admin_url.to_owned(), name, url }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await; a thread with its own runtime can, whatever
        // runtime the test itself used.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
                sqlx::query(&statement).execute(&mut admin).await.unwrap();
                admin.close().await.unwrap();
            });
        });
        let _ = dropped.join();
    }
}

/// The admin URL with its database name replaced.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}
