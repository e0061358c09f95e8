//! A fresh PostgreSQL database per test, from `SWITCHBOARD_TEST_POSTGRES_URL`,
//! dropped afterwards. Without the variable a test is skipped and noted
//! (`switchboard_testkit::services`), unless `SWITCHBOARD_TEST_REQUIRE_SERVICES=1`.

use sqlx::Connection;
use switchboard_testkit::services;

pub struct TestDatabase {
    /// The URL of the fresh database, for `database_url`.
    pub url: String,
    admin_url: String,
    name: String,
    dropped: bool,
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

impl TestDatabase {
    /// Creates the database, or returns `None` (the test is noted as skipped)
    /// when no PostgreSQL is configured.
    pub async fn create(test: &str) -> Option<Self> {
        let admin_url = services::service_url(services::POSTGRES)?;
        let name = format!("sbtest_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot connect to {admin_url}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{test}: CREATE DATABASE failed: {e}"));
        let _ = conn.close().await;
        Some(Self { url: with_database(&admin_url, &name), admin_url, name, dropped: false })
    }

    /// How many tables the server created in the database.
    pub async fn table_count(&self) -> i64 {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect to the test database");
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut conn)
        .await
        .expect("count tables");
        let _ = conn.close().await;
        count
    }

    /// Drops the database (stop the server first).
    pub async fn drop_database(mut self) {
        self.dropped = true;
        drop_now(&self.admin_url, &self.name).await;
    }
}

async fn drop_now(admin_url: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ =
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await;
        let _ = conn.close().await;
    }
}

impl Drop for TestDatabase {
    /// A test that panicked still cleans up, on a runtime of its own.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(drop_now(&admin_url, &name));
            }
        })
        .join();
    }
}
