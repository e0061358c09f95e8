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
//!
//! `data` makes the sessions and the queries, `fill` writes them, `timing`
//! times the queries over HTTP.

mod data;
mod fill;
mod timing;

use crate::error::{Context, Result};
use crate::harness::{self, ServerArgs};
use crate::stats::Ms;
use crate::sys;
use sqlx::Connection;
use std::time::{Duration, Instant};

use data::*;
use fill::*;
use timing::*;

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

/// The report: the run's settings, how the table was filled, and a row of
/// percentiles per query.
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
