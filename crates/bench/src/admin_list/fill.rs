//! Writing the sessions straight into the `sessions` table in big multi-row
//! batches, on SQLite or PostgreSQL, counting what each query should find.

use super::*;

/// How the table was filled.
pub(super) struct Fill {
    pub(super) rows: u64,
    pub(super) elapsed: Duration,
    /// Per query, the measured tenant's sessions it selects.
    pub(super) matches: Vec<u64>,
    /// The database's size on disk (SQLite files, or the table and its indexes).
    pub(super) bytes: u64,
}

/// Counts, per query, the rows it selects (the measured tenant's only).
pub(super) fn tally(plan: &Plan, matches: &mut [u64], row: &Row) {
    if row.tenant == TENANT {
        for (m, q) in matches.iter_mut().zip(&plan.queries) {
            *m += u64::from((q.keep)(row));
        }
    }
}

pub(super) fn progress(done: u64, total: u64, since: Instant) {
    eprintln!("  {done} / {total} rows, {:.0} rows/s", done as f64 / since.elapsed().as_secs_f64().max(1e-9));
}

/// SQLite: one connection beside the running server (WAL lets its readers
/// on), a prepared multi-row INSERT, one transaction per 100,000 rows. The
/// loader skips fsync and gets a large page cache: that only changes how fast
/// the table fills, not what is measured.
pub(super) async fn fill_sqlite(path: &std::path::Path, plan: &Plan) -> Result<Fill> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(60))
        .synchronous(SqliteSynchronous::Off)
        .pragma("cache_size", "-524288");
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.context("opening the SQLite file")?;
    let started = Instant::now();
    let mut matches = vec![0u64; plan.queries.len()];
    let mut batch = Vec::with_capacity(SQLITE_BATCH);
    let (mut done, mut in_tx) = (0u64, 0usize);
    sqlx::raw_sql("BEGIN").execute(&mut conn).await.context("BEGIN")?;
    let mut rows = plan.rows().peekable();
    while let Some(row) = rows.next() {
        tally(plan, &mut matches, &row);
        batch.push(row);
        if batch.len() < SQLITE_BATCH && rows.peek().is_some() {
            continue;
        }
        let sql = insert_sql(batch.len(), |_| "?".to_owned());
        let mut insert = sqlx::query(&sql);
        for r in batch.drain(..) {
            insert = insert
                .bind(r.id)
                .bind(r.tenant)
                .bind(r.owner)
                .bind(r.status)
                .bind(r.created)
                .bind(r.activity)
                .bind(r.count)
                .bind(r.count)
                .bind(r.assisted);
        }
        let n = insert.execute(&mut conn).await.context("inserting sessions")?.rows_affected();
        done += n;
        in_tx += n as usize;
        if in_tx >= TRANSACTION_ROWS || rows.peek().is_none() {
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.context("COMMIT")?;
            in_tx = 0;
            if rows.peek().is_some() {
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.context("BEGIN")?;
            }
            progress(done, plan.total, started);
        }
    }
    // Fold the WAL into the file, as the server's checkpoints would have.
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.context("checkpoint")?;
    let elapsed = started.elapsed();
    let _ = conn.close().await;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Fill { rows: done, elapsed, matches, bytes })
}

/// PostgreSQL: one array per column (`UNNEST`), 10,000 rows a statement, one
/// transaction per 100,000 rows; then `VACUUM ANALYZE`, which autovacuum
/// would have done long before a table reached this size.
pub(super) async fn fill_postgres(url: &str, plan: &Plan) -> Result<Fill> {
    let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to PostgreSQL")?;
    let started = Instant::now();
    let mut matches = vec![0u64; plan.queries.len()];
    let sql = "INSERT INTO sessions (id, tenant_id, owner, status, created_at, last_activity_at, \
               message_count, latest_seq, admin_assisted) \
               SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
               $6::int8[], $7::int8[], $7::int8[], $8::bool[])";
    let (mut done, mut in_tx) = (0u64, 0usize);
    let mut rows = plan.rows().peekable();
    sqlx::raw_sql("BEGIN").execute(&mut conn).await.context("BEGIN")?;
    while rows.peek().is_some() {
        let mut cols = Columns::default();
        for row in rows.by_ref().take(POSTGRES_BATCH) {
            tally(plan, &mut matches, &row);
            cols.push(row);
        }
        let n = sqlx::query(sql)
            .bind(cols.id)
            .bind(cols.tenant)
            .bind(cols.owner)
            .bind(cols.status)
            .bind(cols.created)
            .bind(cols.activity)
            .bind(cols.count)
            .bind(cols.assisted)
            .execute(&mut conn)
            .await
            .context("inserting sessions")?
            .rows_affected();
        done += n;
        in_tx += n as usize;
        if in_tx >= TRANSACTION_ROWS || rows.peek().is_none() {
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.context("COMMIT")?;
            in_tx = 0;
            if rows.peek().is_some() {
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.context("BEGIN")?;
            }
            progress(done, plan.total, started);
        }
    }
    let elapsed = started.elapsed();
    eprintln!("VACUUM ANALYZE sessions");
    sqlx::raw_sql("VACUUM ANALYZE sessions").execute(&mut conn).await.context("VACUUM ANALYZE")?;
    let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('sessions')")
        .fetch_one(&mut conn)
        .await
        .context("the table's size")?;
    let _ = conn.close().await;
    Ok(Fill { rows: done, elapsed, matches, bytes: u64::try_from(bytes).unwrap_or(0) })
}

/// A batch as one vector per column (PostgreSQL arrays).
#[derive(Default)]
pub(super) struct Columns {
    pub(super) id: Vec<String>,
    pub(super) tenant: Vec<&'static str>,
    pub(super) owner: Vec<String>,
    pub(super) status: Vec<&'static str>,
    pub(super) created: Vec<i64>,
    pub(super) activity: Vec<i64>,
    pub(super) count: Vec<i64>,
    pub(super) assisted: Vec<bool>,
}

impl Columns {
    pub(super) fn push(&mut self, r: Row) {
        self.id.push(r.id);
        self.tenant.push(r.tenant);
        self.owner.push(r.owner);
        self.status.push(r.status);
        self.created.push(r.created);
        self.activity.push(r.activity);
        self.count.push(r.count);
        self.assisted.push(r.assisted);
    }
}

/// `INSERT … VALUES (…), (…)` for `rows` rows, parameters numbered by `param`.
pub(super) fn insert_sql(rows: usize, param: impl Fn(usize) -> String) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=9).map(|c| param(r * 9 + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO sessions (id, tenant_id, owner, status, created_at, last_activity_at, message_count, \
         latest_seq, admin_assisted) VALUES {}",
        values.join(", ")
    )
}
