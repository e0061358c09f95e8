//! `switchboard-bench admin-list`: how fast `GET /v1/admin/sessions` answers
//! when the tenant holds a million sessions (SPEC §12, "fast at a million
//! sessions"). The server starts on a fresh database (SQLite in its data
//! directory, or a PostgreSQL database created here and dropped at the end)
//! and migrates it; then the sessions are written straight into the
//! `sessions` table in big multi-row batches, as the admin suite's test does
//! with a few thousand, because a million sessions through the API would take
//! hours. The list is then timed over HTTP, one keep-alive connection, as the
//! operator: first and deep pages of every sort and order, each filter, a
//! combination, and the largest page.

use crate::error::{Context, Result};
use crate::harness::{self, ServerArgs};
use crate::stats::Ms;
use crate::sys;
use sqlx::Connection;
use std::time::{Duration, Instant};

/// The tenant the list is read from (the server's only configured tenant).
const TENANT: &str = crate::server::TENANT;
/// Other tenants' sessions share the table and its indexes, not the config.
const OTHER_TENANTS: [&str; 3] = ["other-1", "other-2", "other-3"];
const DAY_MS: i64 = 86_400_000;
/// Creation times are spread over this many days before the run.
const DAYS: i64 = 90;
/// Sessions owned by users draw from this many user ids (`u0` … `u1999`),
/// skewed so that `u0` has the most; the rest are visitors'.
const USER_IDS: f64 = 2000.0;
const USER_SHARE: f64 = 0.25;
/// Rows per statement: under SQLite's 32,766 bound variables (9 per row).
const SQLITE_BATCH: usize = 500;
/// Rows per statement on PostgreSQL (one array per column, so no bound).
const POSTGRES_BATCH: usize = 10_000;
/// Rows per transaction.
const TRANSACTION_ROWS: usize = 100_000;
/// Unmeasured requests before each query's measured ones.
const WARMUP: u32 = 3;
/// A query whose requests are this slow stops early with fewer samples, so
/// that one bad plan cannot hold the run for long.
const QUERY_BUDGET: Duration = Duration::from_secs(20);
/// The operator token the server is given (loopback only, thrown away).
const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789abcdef";

#[derive(clap::Args, Debug, Clone)]
pub struct AdminListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Sessions of the measured tenant.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=20_000_000))]
    pub sessions: u32,
    /// Other tenants' sessions, in percent of `--sessions`, spread over three tenants.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub others_percent: u32,
    /// Measured requests per query (after 3 unmeasured ones).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub repeats: u32,
    /// Pages followed through `next_cursor` before the deep page is timed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub depth: u32,
    /// PostgreSQL instead of SQLite: a database URL the benchmark may create
    /// (and drop, unless --keep-data) a fresh database from, e.g.
    /// postgres://postgres@127.0.0.1:5432/test.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Seed of the generated sessions (the same seed gives the same data).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub async fn run(args: AdminListArgs) -> Result<()> {
    let started = Instant::now();
    let Some(admin_url) = args.database_url.clone() else {
        let measured = measure(&args, None).await?;
        println!("{}", render(&args, &measured, started.elapsed()));
        return Ok(());
    };
    let name = format!("sbbench_{}_{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let database_url = crate::cluster::create_database(&admin_url, &name).await?;
    eprintln!("database {name}");
    let outcome = measure(&args, Some(&database_url)).await;
    let dropped = if args.server.keep_data {
        eprintln!("kept database {name} (--keep-data)");
        Ok(())
    } else {
        crate::cluster::drop_database(&admin_url, &name).await
    };
    let measured = outcome?;
    dropped?;
    println!("{}", render(&args, &measured, started.elapsed()));
    Ok(())
}

/// What a run found, for the report.
struct Measured {
    backend: &'static str,
    /// Day 0 of the labels: the oldest creation time.
    start: i64,
    fill: Fill,
    results: Vec<QueryResult>,
}

/// Starts the server (which migrates), fills the table, times the list.
async fn measure(args: &AdminListArgs, postgres: Option<&str>) -> Result<Measured> {
    let upstream = harness::upstream(1, Duration::ZERO).await?;
    let mut setup = harness::realtime_setup(&args.server, 4);
    setup.env.push(("SWITCHBOARD_OPERATOR_TOKEN".into(), OPERATOR_TOKEN.into()));
    if let Some(url) = postgres {
        setup.top.push(format!("database_url = {}", serde_json::to_string(url).context("quoting the URL")?));
    }
    let mut servers = Vec::new();
    let node = harness::start(&args.server, &upstream, &setup, &mut servers).await?;
    let sqlite_path = servers.first().map(|s| s.data_dir().join("data").join("switchboard.db"));
    let total = u64::from(args.sessions) * u64::from(100 + args.others_percent) / 100;
    // Generous: a slow disk fills at a few thousand rows a second.
    let limit = Duration::from_secs(600) + Duration::from_millis(total);
    harness::finish(&mut servers, limit, async {
        let plan = Plan::new(args);
        let fill = match (postgres, sqlite_path) {
            (Some(url), _) => fill_postgres(url, &plan).await?,
            (None, Some(path)) => fill_sqlite(&path, &plan).await?,
            (None, None) => return Err("no server was started".into()),
        };
        eprintln!(
            "inserted {} sessions in {:.1} s ({:.0} rows/s)",
            fill.rows,
            fill.elapsed.as_secs_f64(),
            fill.rows as f64 / fill.elapsed.as_secs_f64().max(1e-9)
        );
        let results = time_queries(args, &node, &plan, &fill).await?;
        let backend = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
        Ok(Measured { backend, start: plan.start, fill, results })
    })
    .await
}

/// A small deterministic generator (xorshift64*): the same seed, the same data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random (version 4) UUID as text, like the server's session ids.
    fn uuid(&mut self) -> String {
        let (hi, lo) = (self.next(), self.next());
        let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

/// One generated session.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    tenant: &'static str,
    owner: String,
    status: &'static str,
    created: i64,
    activity: i64,
    count: i64,
    assisted: bool,
}

/// What the data looks like and which queries are timed on it.
struct Plan {
    seed: u64,
    /// Sessions of the measured tenant, and of all tenants.
    sessions: u64,
    total: u64,
    /// Creation times run from `start` to `end` (the run's start).
    start: i64,
    end: i64,
    queries: Vec<Query>,
}

/// One timed list request; `deep` also times the page after `--depth` pages.
struct Query {
    label: String,
    query: String,
    deep: bool,
    /// Which of the tenant's sessions it selects (to report how many do).
    keep: Box<dyn Fn(&Row) -> bool + Send + Sync>,
}

impl Plan {
    fn new(args: &AdminListArgs) -> Self {
        let end = chrono::Utc::now().timestamp_millis();
        let start = end - DAYS * DAY_MS;
        let sessions = u64::from(args.sessions);
        let total = sessions * u64::from(100 + args.others_percent) / 100;
        Self { seed: args.seed, sessions, total, start, end, queries: queries(start) }
    }

    /// Rows in creation order, as a table grows (rowids follow creation,
    /// which decides how a time-ordered scan reads the table). Other
    /// tenants' rows are spread evenly among the measured tenant's.
    fn rows(&self) -> impl Iterator<Item = Row> + '_ {
        let mut rng = Rng::new(self.seed);
        let others = self.total - self.sessions;
        let span = (self.end - self.start) as f64;
        (0..self.total).map(move |i| {
            let other = (i + 1) * others / self.total > i * others / self.total;
            let tenant = if other { OTHER_TENANTS[(i % 3) as usize] } else { TENANT };
            let created = self.start + ((i as f64 + rng.unit()) * span / self.total as f64) as i64;
            row(&mut rng, tenant, created, self.end)
        })
    }
}

/// A session of `tenant` created at `created`, as a chat runtime's table holds
/// them: mostly visitors', a quarter users' (a few users with many sessions,
/// most with a few), mostly active, a tenth closed by an agent, very few
/// taken over right now (`human` lasts while an agent talks: 1 in 2,000),
/// about 2 % ever assisted by an agent, most activity within hours of the
/// creation, and message counts skewed (a fifth never got a message).
fn row(rng: &mut Rng, tenant: &'static str, created: i64, now: i64) -> Row {
    let id = rng.uuid();
    let owner = if rng.unit() < USER_SHARE {
        // The square skews towards small ids: u0 owns about 2 % of users' sessions.
        format!("user:u{}", (rng.unit().powi(2) * USER_IDS) as u32)
    } else {
        format!("visitor:{}", rng.uuid())
    };
    let s = rng.unit();
    let status = if s < 0.0005 {
        "human"
    } else if s < 0.1 {
        "closed"
    } else {
        "active"
    };
    let assisted = status == "human" || rng.unit() < 0.02;
    let activity = (created + (rng.unit().powi(4) * 7.0 * DAY_MS as f64) as i64).min(now);
    let count = if rng.unit() < 0.2 { 0 } else { (1.0 - 8.0 * (1.0 - rng.unit()).ln()).min(1000.0) as i64 };
    Row { id, tenant, owner, status, created, activity, count, assisted }
}

/// RFC 3339 in UTC with milliseconds, as the API writes times.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// The timed queries. Times are relative to `start`, so the filters select
/// the same share of the data on every run; labels name the days so (day 0
/// is the oldest creation time) and keep the table narrow.
fn queries(start: i64) -> Vec<Query> {
    type Keep = Box<dyn Fn(&Row) -> bool + Send + Sync>;
    let mut out = Vec::new();
    let mut add = |label: &str, query: String, deep: bool, keep: Keep| {
        out.push(Query { label: label.to_owned(), query, deep, keep });
    };
    for sort in ["created_at", "last_activity_at", "message_count"] {
        for order in ["desc", "asc"] {
            let query = format!("sort={sort}&order={order}");
            add(&query, query.clone(), true, Box::new(|_| true));
        }
    }
    add("limit=200", "limit=200".into(), true, Box::new(|_| true));
    let user = |name: &'static str| -> Keep { Box::new(move |r: &Row| r.owner == name) };
    add("user_id=u0 (the user with most sessions)", "user_id=u0".into(), true, user("user:u0"));
    add("user_id=u1000 (a typical user)", "user_id=u1000".into(), false, user("user:u1000"));
    add("user_id=nobody (no sessions)", "user_id=nobody".into(), false, user("user:nobody"));
    add(
        "user_id=u1000&sort=message_count",
        "user_id=u1000&sort=message_count".into(),
        false,
        user("user:u1000"),
    );
    let status = |s: &'static str| -> Keep { Box::new(move |r: &Row| r.status == s) };
    add("status=human", "status=human".into(), false, status("human"));
    add(
        "status=human&sort=last_activity_at",
        "status=human&sort=last_activity_at".into(),
        false,
        status("human"),
    );
    add("status=closed", "status=closed".into(), true, status("closed"));
    add("admin_assisted=true", "admin_assisted=true".into(), true, Box::new(|r| r.assisted));
    add(
        "admin_assisted=true&sort=last_activity_at",
        "admin_assisted=true&sort=last_activity_at".into(),
        false,
        Box::new(|r| r.assisted),
    );
    let (from, to) = (start + 45 * DAY_MS, start + 46 * DAY_MS - 1);
    let day = format!("created_from={}&created_to={}", rfc3339(from), rfc3339(to));
    let in_day = move |r: &Row| (from..=to).contains(&r.created);
    add("created_from, created_to: day 45 (one day)", day.clone(), true, Box::new(in_day));
    add(
        "created_from, created_to: day 45, sort=last_activity_at",
        format!("{day}&sort=last_activity_at"),
        false,
        Box::new(in_day),
    );
    let month = start + 60 * DAY_MS;
    add(
        "created_from: day 60 (the last 30 days), sort=last_activity_at",
        format!("created_from={}&sort=last_activity_at", rfc3339(month)),
        false,
        Box::new(move |r| r.created >= month),
    );
    add(
        "created_from: day 60, sort=message_count",
        format!("created_from={}&sort=message_count", rfc3339(month)),
        false,
        Box::new(move |r| r.created >= month),
    );
    add(
        "user_id=u0&status=active&created_from: day 60",
        format!("user_id=u0&status=active&created_from={}", rfc3339(month)),
        false,
        Box::new(move |r| r.owner == "user:u0" && r.status == "active" && r.created >= month),
    );
    add(
        "status=closed&admin_assisted=true&sort=message_count",
        "status=closed&admin_assisted=true&sort=message_count".into(),
        false,
        Box::new(|r| r.status == "closed" && r.assisted),
    );
    out
}

/// How the table was filled.
struct Fill {
    rows: u64,
    elapsed: Duration,
    /// Per query, the measured tenant's sessions it selects.
    matches: Vec<u64>,
    /// The database's size on disk (SQLite files, or the table and its indexes).
    bytes: u64,
}

/// Counts, per query, the rows it selects (the measured tenant's only).
fn tally(plan: &Plan, matches: &mut [u64], row: &Row) {
    if row.tenant == TENANT {
        for (m, q) in matches.iter_mut().zip(&plan.queries) {
            *m += u64::from((q.keep)(row));
        }
    }
}

fn progress(done: u64, total: u64, since: Instant) {
    eprintln!("  {done} / {total} rows, {:.0} rows/s", done as f64 / since.elapsed().as_secs_f64().max(1e-9));
}

/// SQLite: one connection beside the running server (WAL lets its readers
/// on), a prepared multi-row INSERT, one transaction per 100,000 rows. The
/// loader skips fsync and gets a large page cache: that only changes how fast
/// the table fills, not what is measured.
async fn fill_sqlite(path: &std::path::Path, plan: &Plan) -> Result<Fill> {
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
async fn fill_postgres(url: &str, plan: &Plan) -> Result<Fill> {
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
struct Columns {
    id: Vec<String>,
    tenant: Vec<&'static str>,
    owner: Vec<String>,
    status: Vec<&'static str>,
    created: Vec<i64>,
    activity: Vec<i64>,
    count: Vec<i64>,
    assisted: Vec<bool>,
}

impl Columns {
    fn push(&mut self, r: Row) {
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
fn insert_sql(rows: usize, param: impl Fn(usize) -> String) -> String {
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

/// The timings of one query (and of its deep page).
struct QueryResult {
    label: String,
    matches: u64,
    first: Timing,
    deep: Option<Timing>,
}

struct Timing {
    ms: Ms,
    /// Items on the timed page.
    items: usize,
    /// Server CPU per measured request, in milliseconds.
    server_cpu_ms: f64,
}

async fn time_queries(
    args: &AdminListArgs,
    node: &harness::Node,
    plan: &Plan,
    fill: &Fill,
) -> Result<Vec<QueryResult>> {
    let client = crate::api::client(1)?;
    let base = format!("{}/v1/admin/sessions", node.base);
    let mut out = Vec::new();
    for (q, &matches) in plan.queries.iter().zip(&fill.matches) {
        let url = format!("{base}?{}", q.query);
        let first = time(&client, node.pid, &url, args.repeats).await?;
        let deep = if q.deep {
            // The page after `depth` pages: follow the cursors there once.
            let mut cursor = None;
            for _ in 0..args.depth {
                let page_url = cursor.as_ref().map_or_else(|| url.clone(), |c| format!("{url}&cursor={c}"));
                cursor = get(&client, &page_url).await?["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            match cursor {
                Some(c) => Some(time(&client, node.pid, &format!("{url}&cursor={c}"), args.repeats).await?),
                None => None,
            }
        } else {
            None
        };
        let p99 = |t: &Timing| t.ms.p99.unwrap_or(0.0);
        eprintln!(
            "  {}: p99 {:.2} ms{}",
            q.query,
            p99(&first),
            deep.as_ref().map_or_else(String::new, |d| format!(", deep page p99 {:.2} ms", p99(d)))
        );
        out.push(QueryResult { label: q.label.clone(), matches, first, deep });
    }
    Ok(out)
}

/// `GET url` as the operator; the body as JSON (200 only).
async fn get(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let (status, body) = send(client, url).await?;
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}: {}", crate::api::snippet(&body)).into());
    }
    serde_json::from_slice(&body).context("the list's JSON")
}

async fn send(client: &reqwest::Client, url: &str) -> Result<(u16, bytes::Bytes)> {
    let response = client
        .get(url)
        .bearer_auth(OPERATOR_TOKEN)
        .header("x-tenant-id", TENANT)
        .send()
        .await
        .context("GET /v1/admin/sessions")?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await.context("reading the list")?))
}

/// Times `repeats` requests of `url` (after the warm-up), each from before
/// it is sent to the end of its body; stops early past `QUERY_BUDGET`.
async fn time(client: &reqwest::Client, pid: Option<u32>, url: &str, repeats: u32) -> Result<Timing> {
    let budget = Instant::now() + QUERY_BUDGET;
    let mut items = 0;
    for _ in 0..WARMUP {
        items = get(client, url).await?["items"].as_array().map_or(0, Vec::len);
    }
    let cpu_before = pid.and_then(|p| sys::cpu_ns(Some(p)));
    let mut samples = Vec::with_capacity(repeats as usize);
    for _ in 0..repeats {
        let start = Instant::now();
        let (status, body) = send(client, url).await?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}: {}", crate::api::snippet(&body)).into());
        }
        if Instant::now() > budget {
            break;
        }
    }
    let cpu_after = pid.and_then(|p| sys::cpu_ns(Some(p)));
    let server_cpu_ms = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / 1e6 / samples.len().max(1) as f64,
        _ => 0.0,
    };
    Ok(Timing { ms: Ms::of(&samples), items, server_cpu_ms })
}

fn render(args: &AdminListArgs, m: &Measured, elapsed: Duration) -> String {
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
    let mut text = format!(
        "| `GET /v1/admin/sessions?…` ({}, {} sessions in the tenant) | matching | page | items | samples | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | server CPU (ms) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        m.backend, args.sessions
    );
    let mut slowest: Option<(f64, String)> = None;
    for r in &m.results {
        let pages = [(1, Some(&r.first)), (args.depth + 1, r.deep.as_ref())];
        for (page, timing) in pages {
            let Some(t) = timing else { continue };
            text.push_str(&format!(
                "| `{}` | {} | {page} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
                r.label,
                r.matches,
                t.items,
                t.ms.n,
                cell(t.ms.p50),
                cell(t.ms.p90),
                cell(t.ms.p99),
                cell(t.ms.max),
                t.server_cpu_ms
            ));
            if let Some(p99) = t.ms.p99 {
                if slowest.as_ref().is_none_or(|(s, _)| p99 > *s) {
                    slowest = Some((p99, format!("`{}`, page {page}", r.label)));
                }
            }
        }
    }
    text.push('\n');
    let f = &m.fill;
    text.push_str(&format!(
        "- data: {} sessions in tenant `{TENANT}` and {} of three other tenants, created over {DAYS} days, \
         written in {:.1} s ({:.0} rows/s); {:.0} MiB on disk{}; day 0 is {}\n",
        args.sessions,
        f.rows.saturating_sub(u64::from(args.sessions)),
        f.elapsed.as_secs_f64(),
        f.rows as f64 / f.elapsed.as_secs_f64().max(1e-9),
        f.bytes as f64 / 1_048_576.0,
        if m.backend == "SQLite" { " (the database file)" } else { " (the table and its indexes)" },
        rfc3339(m.start)
    ));
    text.push_str(&format!(
        "- timing: one keep-alive HTTP/1.1 connection on loopback, as the operator; per query {WARMUP} \
         unmeasured requests then {} measured ones (fewer if a query passes {} s), each from before it is \
         sent to the end of its body; page {} is reached by following `next_cursor`; server CPU is the \
         `switchboard` process's per measured request (PostgreSQL's own work is not in it)\n",
        args.repeats,
        QUERY_BUDGET.as_secs(),
        args.depth + 1
    ));
    if let Some((p99, which)) = slowest {
        text.push_str(&format!("- slowest p99: {p99:.2} ms ({which})\n"));
    }
    text.push_str(&format!("- whole run: {:.1} s\n", elapsed.as_secs_f64()));
    text.push_str(&crate::report::provenance());
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn uuids_are_version_4_text() {
        let mut rng = Rng::new(7);
        let id = rng.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]), "{id}");
        assert_ne!(id, rng.uuid());
    }

    #[test]
    fn rows_are_in_creation_order_with_the_asked_counts() {
        let args = AdminListArgs {
            server: ServerArgs { server_bin: "x".into(), keep_data: false },
            sessions: 10_000,
            others_percent: 10,
            repeats: 1,
            depth: 1,
            database_url: None,
            seed: 3,
        };
        let plan = Plan::new(&args);
        let rows: Vec<Row> = plan.rows().collect();
        assert_eq!(rows.len(), 11_000);
        assert_eq!(rows.iter().filter(|r| r.tenant == TENANT).count(), 10_000);
        assert!(rows.windows(2).all(|w| w[0].created <= w[1].created));
        assert!(rows.iter().all(|r| r.activity >= r.created && r.activity <= plan.end));
        let assisted = rows.iter().filter(|r| r.assisted).count();
        assert!((100..400).contains(&assisted), "{assisted}");
        let users = rows.iter().filter(|r| r.owner.starts_with("user:")).count();
        assert!((2000..3500).contains(&users), "{users}");
    }

    #[test]
    fn insert_statements_number_their_parameters() {
        let sql = insert_sql(2, |i| format!("${i}"));
        assert!(sql.ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ));
    }
}
