//! `switchboard-bench cluster`: what crossing nodes adds to a streamed delta
//! (target: at most 1 ms at p50). Two nodes share a fresh PostgreSQL database
//! and a Redis key prefix of their own; turns run on node A; the same deltas
//! are timed at subscribers on node A and on node B (see `deltas`). The
//! database and the prefix's keys are removed at the end, failed or not.

use crate::api::{self, Visitor};
use crate::deltas::{self, Measured, Subscriber};
use crate::error::{Context, Result};
use crate::harness::{self, ServerArgs};
use crate::stats::{self, Ms};
use base64::Engine;
use sqlx::Connection;
use std::collections::HashMap;
use std::time::Duration;

const TARGET_P50_MS: f64 = 1.0;
const WARMUP: u32 = 5;

#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A PostgreSQL database the benchmark may create (and drop) databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// The Redis both nodes use as their bus (under a key prefix of their own).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// SSE subscribers of the session on each node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub subscribers_per_node: u32,
    /// Measured turns (after 5 unmeasured ones).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub turns: u32,
    /// Content chunks per answer.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub chunks: u32,
    /// Milliseconds the fake upstream waits between content chunks.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub gap_ms: u64,
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    let name = format!("sbbench_{}_{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let database_url = create_database(&args.postgres_url, &name).await?;
    eprintln!("database {name}, Redis prefix {name}");
    let outcome = nodes(&args, &database_url, &name).await;
    let dropped = drop_database(&args.postgres_url, &name).await;
    let cleaned = delete_keys(&args.redis_url, &name).await;
    let measured = outcome?;
    dropped?;
    cleaned?;
    println!("{}", render(&args, &measured));
    Ok(())
}

async fn nodes(args: &ClusterArgs, database_url: &str, prefix: &str) -> Result<Measured> {
    let upstream = harness::upstream(args.chunks, Duration::from_millis(args.gap_ms)).await?;
    let mut setup = harness::realtime_setup(&args.server, args.subscribers_per_node * 2 + 4);
    let bus_url = format!("{}/?prefix={prefix}", args.redis_url.trim_end_matches('/'));
    setup.top.push(format!("database_url = {}", toml_string(database_url)?));
    setup.top.push(format!("bus_url = {}", toml_string(&bus_url)?));
    setup.env.push(("SWITCHBOARD_ENCRYPTION_KEYS".into(), key("bench")?));
    setup.env.push(("SWITCHBOARD_SIGNING_KEY".into(), key("bench")?));
    let mut servers = Vec::new();
    // One after the other: the first one migrates the new database.
    let a = harness::start(&args.server, &upstream, &setup, &mut servers).await?;
    let b = harness::start(&args.server, &upstream, &setup, &mut servers).await?;
    let per_turn = Duration::from_millis(args.gap_ms * u64::from(args.chunks)) + Duration::from_millis(100);
    let limit = per_turn * 2 * (args.turns + WARMUP) + Duration::from_secs(120);
    harness::finish(&mut servers, limit, async {
        let n = args.subscribers_per_node as usize;
        let client = api::streaming_client(2 * n + 4)?;
        let visitor = Visitor::create(&client, &a.base).await?;
        let mut subs = vec![Subscriber { group: 0, base: a.base.clone() }; n];
        subs.extend(vec![Subscriber { group: 1, base: b.base.clone() }; n]);
        eprintln!("turns on node A, {n} subscriber(s) on each node: {WARMUP} + {} turns", args.turns);
        let pids: Vec<u32> = [a.pid, b.pid].into_iter().flatten().collect();
        let plan = deltas::Plan {
            chat_base: &a.base,
            visitor: &visitor,
            subscribers: &subs,
            server_pids: &pids,
            warmup: WARMUP,
            turns: args.turns,
        };
        deltas::measure(&client, &upstream, &plan).await
    })
    .await
}

/// `kid:base64(32 random bytes)`, as both nodes must share.
fn key(kid: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut bytes,
    )
    .context("reading /dev/urandom")?;
    Ok(format!("{kid}:{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn toml_string(s: &str) -> Result<String> {
    serde_json::to_string(s).context("quoting a config value")
}

/// Creates database `name` next to the one `url` names; returns its URL.
pub(crate) async fn create_database(url: &str, name: &str) -> Result<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to PostgreSQL")?;
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .context("CREATE DATABASE")?;
    let _ = conn.close().await;
    let mut new = reqwest::Url::parse(url).context("the PostgreSQL URL")?;
    new.set_path(&format!("/{name}"));
    Ok(new.to_string())
}

pub(crate) async fn drop_database(url: &str, name: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to PostgreSQL")?;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::raw_sql(&sql).execute(&mut conn).await.context("DROP DATABASE")?;
    let _ = conn.close().await;
    Ok(())
}

/// Deletes every key under the prefix (rate-limit counters and the like).
async fn delete_keys(url: &str, prefix: &str) -> Result<()> {
    let client = redis::Client::open(url).context("the Redis URL")?;
    let mut conn = client.get_multiplexed_async_connection().await.context("connecting to Redis")?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .context("SCAN")?;
        if !keys.is_empty() {
            let _: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.context("DEL")?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn render(args: &ClusterArgs, m: &Measured) -> String {
    let group = |g: usize| {
        Ms::of(&m.samples.iter().filter(|s| s.group == g).map(|s| s.from_upstream_ms).collect::<Vec<_>>())
    };
    let minus = |g: usize| {
        Ms::of(&m.samples.iter().filter(|s| s.group == g).map(|s| s.minus_direct_ms).collect::<Vec<_>>())
    };
    // Per delta, the first receipt on each node.
    let mut first: HashMap<(u64, usize), [Option<f64>; 2]> = HashMap::new();
    for s in &m.samples {
        let slot = &mut first.entry((s.seq, s.chunk)).or_default()[s.group.min(1)];
        *slot = Some(slot.map_or(s.from_upstream_ms, |t| t.min(s.from_upstream_ms)));
    }
    let paired: Vec<f64> = first.values().filter_map(|[a, b]| Some((*b)? - (*a)?)).collect();
    let (a, b) = (group(0), group(1));
    let mut text = stats::header("delay of a delta (turns on node A)");
    text.push_str(&stats::row("upstream chunk → sender's own chat stream on A", &Ms::of(&m.direct_ms)));
    text.push_str(&stats::row("upstream chunk → subscriber on node A", &a));
    text.push_str(&stats::row("upstream chunk → subscriber on node B (over Redis)", &b));
    text.push_str(&stats::row("node A subscriber less the sender's own stream", &minus(0)));
    text.push_str(&stats::row("node B subscriber less the sender's own stream", &minus(1)));
    text.push_str(&stats::row("node B less node A, same delta", &Ms::of(&paired)));
    text.push('\n');
    text.push_str(&format!(
        "- deliveries: {} of {} expected; {} measured turns of {} chunks {} ms apart ({WARMUP} warm-up turns first); {} subscriber(s) per node; PostgreSQL and Redis on the same machine\n",
        m.samples.len(), m.expected, m.turns, args.chunks, args.gap_ms, args.subscribers_per_node
    ));
    text.push_str(&deltas::cpu_line(m));
    if let (Some(pa), Some(pb)) = (a.p50, b.p50) {
        let added = pb - pa;
        text.push_str(&format!(
            "- target: crossing nodes over Redis adds at most {TARGET_P50_MS} ms at p50; measured {added:+.3} ms (p50 on B {pb:.3} − p50 on A {pa:.3}): {}\n",
            stats::verdict(added <= TARGET_P50_MS && m.samples.len() == m.expected)
        ));
    }
    text.push_str(&crate::report::provenance());
    text
}
