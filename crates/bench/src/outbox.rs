//! `switchboard-bench events`: what outbound events (SPEC §19) cost, in one
//! run. (`events.rs` is the SSE parser; this is the outbox's benchmark.)
//!
//! 1. **Throughput.** Two servers on embedded SQLite with the same config,
//!    except that one tenant has `[tenants.events]` with
//!    `types = ["turn.completed"]` pointing at a receiver in this process.
//!    Streamed turns at concurrency C (50) in windows alternating off, on,
//!    off, on, … (`--rounds` pairs of `--seconds` each), so drift on a noisy
//!    machine hits both alike. After each "on" window the run waits for the
//!    receiver to have every event of the turns that server completed, so
//!    that no delivery work spills into the next "off" window; how many had
//!    arrived by the window's end and how long the rest took are reported.
//! 2. **Drain.** On SQLite and on a fresh PostgreSQL database: the tenant's
//!    events (`types = ["session.created"]`) point at the receiver, which
//!    answers the first one `410` (the endpoint is disabled, later events are
//!    kept `held`); N (10,000) sessions are created through the API; the
//!    receiver switches to `204` and `POST /v1/admin/deliveries/resume` makes
//!    them pending; timed from the resume's answer until the receiver has
//!    seen N distinct `webhook-id`s (target: under 10 s).
//!
//! The receiver runs on a thread of its own (`apart.rs`), answers at once
//! and does not verify signatures (it checks only that each request carries
//! `webhook-id` and `webhook-signature`): it stands for the tenant's
//! backend, and what is measured is the runtime.
//! Nothing here asserts timings.

mod report;

use crate::apart::Apart;
use crate::api::{self, snippet, tenant_headers};
use crate::error::{Context, Result};
use crate::harness::{self, Node, ServerArgs};
use crate::load::{self, Target, Throughput};
use crate::receiver::Receiver;
use crate::server::{Setup, TENANT};
use crate::stats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Target of the drain: every pending event delivered within this.
const DRAIN_TARGET: Duration = Duration::from_secs(10);
/// The variable naming the endpoint's secret, and a valid `whsec_` secret for it.
const SECRET_ENV: &str = "BENCH_EVENTS_SECRET";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The operator token the drain's server is given (loopback only, thrown away).
const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789abcdef";
/// How long the run waits for the events of an "on" window to arrive.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How long the receiver is watched after everything arrived, for duplicates.
const SETTLE: Duration = Duration::from_secs(2);
/// The name of the receiver's thread, whose CPU time is reported.
const RECEIVER_THREAD: &str = "receiver";

#[derive(clap::Args, Debug, Clone)]
pub struct EventsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Concurrent workers (one session each) in every throughput window.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Length of each throughput window, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub seconds: u64,
    /// Pairs of windows (off, then on) in the throughput phase.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Content chunks per streamed completion from the fake upstream.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub chunks: u32,
    /// Turns a worker takes in one session before it opens a new one, inside
    /// the window; by default one session for the whole window.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub turns_per_session: Option<u32>,
    /// Pending events the drain phase makes (one session each) and times.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pending: u32,
    /// Sessions created at once while the events are held.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub create_concurrency: u32,
    /// How long the drain may take before the run gives up on it, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub drain_timeout: u64,
    /// A PostgreSQL database the benchmark may create (and drop) databases from.
    #[arg(
        long,
        env = "SWITCHBOARD_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    /// Leave out the drain on PostgreSQL.
    #[arg(long)]
    pub skip_postgres: bool,
    /// Leave out the throughput phase.
    #[arg(long)]
    pub skip_throughput: bool,
    /// Leave out both drains.
    #[arg(long)]
    pub skip_drain: bool,
}

pub async fn run(args: EventsArgs) -> Result<()> {
    // The tenant's backend is another process: its work must not hold up the
    // load generator's threads, which would count as a slower server.
    let (_apart, receiver) = Apart::start(RECEIVER_THREAD, Receiver::start)?;
    eprintln!("event receiver on {}, on a thread of its own", receiver.url());
    let throughput = if args.skip_throughput { None } else { Some(throughput_phase(&args, &receiver).await) };
    let mut drains = Vec::new();
    if !args.skip_drain {
        drains.push(("SQLite", drain_phase(&args, &receiver, None).await));
        if !args.skip_postgres {
            drains.push(("PostgreSQL", drain_on_postgres(&args, &receiver).await));
        }
    }
    println!("{}", report::render(&args, throughput.as_ref(), &drains));
    let failed = throughput.iter().any(Result::is_err) || drains.iter().any(|(_, d)| d.is_err());
    if failed {
        Err("a phase failed (see the report)".into())
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Throughput: events off against events on.

/// One window of the throughput phase.
struct Window {
    events_on: bool,
    throughput: Throughput,
    /// Events of this window's server the receiver had when the workers
    /// stopped, and turns that server had completed by then (both counted
    /// from the phase's start).
    received_at_end: usize,
    turns_at_end: u64,
    /// How long, after the workers stopped, until every completed turn's event had come.
    catch_up: Option<Duration>,
    /// CPU time the window's server used from the window's start until its
    /// events were in (so deliveries that end after the window count).
    server_cpu: Option<Duration>,
    /// The receiver's CPU time over the same span: the tenant's backend's
    /// work, which on this one machine takes from the same cores.
    receiver_cpu: Option<Duration>,
}

struct Windows {
    windows: Vec<Window>,
    /// Turns the "on" server completed (warm-ups and late ones included).
    on_turns: u64,
    /// Distinct events, and requests, the receiver got from it.
    received: usize,
    requests: u64,
    unsigned: u64,
}

async fn throughput_phase(args: &EventsArgs, receiver: &Receiver) -> Result<Windows> {
    let upstream = harness::upstream(args.chunks, Duration::ZERO).await?;
    let off_setup = setup(args, None);
    let on_setup = setup(args, Some((&receiver.url(), "turn.completed")));
    let mut servers = Vec::new();
    let off = harness::start(&args.server, &upstream, &off_setup, &mut servers).await?;
    let on = harness::start(&args.server, &upstream, &on_setup, &mut servers).await?;
    let window = Duration::from_secs(args.seconds);
    let limit = (window + api::REQUEST_TIMEOUT * 2 + CATCH_UP) * 2 * args.rounds + Duration::from_secs(120);
    harness::finish(&mut servers, limit, windows(args, receiver, &off, &on)).await
}

async fn windows(args: &EventsArgs, receiver: &Receiver, off: &Node, on: &Node) -> Result<Windows> {
    let workers = args.concurrency as usize;
    let window = Duration::from_secs(args.seconds);
    let client = api::client(workers)?;
    receiver.reset(false);
    let mut out = Windows { windows: Vec::new(), on_turns: 0, received: 0, requests: 0, unsigned: 0 };
    for round in 0..args.rounds {
        for (events_on, node) in [(false, off), (true, on)] {
            let label = if events_on { "on" } else { "off" };
            eprintln!(
                "round {}/{}: events {label}, {workers} workers for {} s",
                round + 1,
                args.rounds,
                args.seconds
            );
            let cpu_before = crate::sys::cpu_ns(node.pid);
            let receiver_before = crate::sys::thread_cpu_ns(RECEIVER_THREAD);
            let throughput = load::throughput_of(
                &client,
                &Target::switchboard(&node.base),
                workers,
                window,
                args.turns_per_session,
            )
            .await?;
            let stopped = Instant::now();
            let (mut received_at_end, mut turns_at_end, mut catch_up) = (0, 0, None);
            if events_on {
                received_at_end = receiver.distinct();
                out.on_turns += throughput.succeeded;
                turns_at_end = out.on_turns;
                if receiver.wait_for(out.on_turns as usize, CATCH_UP).await {
                    catch_up = Some(stopped.elapsed());
                }
            }
            let spent = |before: Option<u64>, after: Option<u64>| {
                before.zip(after).map(|(b, a)| Duration::from_nanos(a.saturating_sub(b)))
            };
            let server_cpu = spent(cpu_before, crate::sys::cpu_ns(node.pid));
            let receiver_cpu = spent(receiver_before, crate::sys::thread_cpu_ns(RECEIVER_THREAD));
            out.windows.push(Window {
                events_on,
                throughput,
                received_at_end,
                turns_at_end,
                catch_up,
                server_cpu,
                receiver_cpu,
            });
        }
    }
    tokio::time::sleep(SETTLE).await;
    let log = receiver.snapshot();
    (out.received, out.requests, out.unsigned) = (log.arrivals.len(), log.requests, log.unsigned);
    Ok(out)
}

/// The config both phases share: loopback allowed for the receiver, and
/// (when given) the tenant's events endpoint wanting one type.
fn setup(args: &EventsArgs, events: Option<(&str, &str)>) -> Setup {
    let mut setup = Setup {
        top: vec![r#"tool_allow_private = ["127.0.0.1"]"#.to_owned()],
        env: vec![(SECRET_ENV.to_owned(), SECRET.to_owned())],
        keep_data: args.server.keep_data,
        ..Setup::default()
    };
    if let Some((url, kind)) = events {
        setup.tenant.push(format!(
            r#"events = {{ url = "{url}", secret_env = "{SECRET_ENV}", types = ["{kind}"] }}"#
        ));
    }
    setup
}

// ---------------------------------------------------------------------------
// Drain: N held events resumed at once.

struct Drain {
    created: u32,
    create_time: Duration,
    /// Requests the receiver got while the endpoint was disabled (the probe's 410 excluded).
    sent_while_held: u64,
    resumed: Option<u64>,
    /// The resume's own request.
    resume_rtt: Duration,
    /// From the resume's answer to the first, the middle and the last distinct
    /// event, and from sending the resume to the last, in seconds.
    first: Option<f64>,
    half: Option<f64>,
    all: Option<f64>,
    all_from_sent: Option<f64>,
    /// Distinct events that came after the resume (of `created`), all requests, unsigned ones.
    received: usize,
    requests: u64,
    unsigned: u64,
}

async fn drain_on_postgres(args: &EventsArgs, receiver: &Receiver) -> Result<Drain> {
    let name = format!("sbbench_{}_{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let database_url = crate::cluster::create_database(&args.postgres_url, &name).await?;
    eprintln!("database {name}");
    let outcome = drain_phase(args, receiver, Some(&database_url)).await;
    let dropped = if args.server.keep_data {
        eprintln!("kept database {name} (--keep-data)");
        Ok(())
    } else {
        crate::cluster::drop_database(&args.postgres_url, &name).await
    };
    let drain = outcome?;
    dropped?;
    Ok(drain)
}

async fn drain_phase(args: &EventsArgs, receiver: &Receiver, postgres: Option<&str>) -> Result<Drain> {
    let upstream = harness::upstream(1, Duration::ZERO).await?;
    let mut setup = setup(args, Some((&receiver.url(), "session.created")));
    setup.env.push(("SWITCHBOARD_OPERATOR_TOKEN".into(), OPERATOR_TOKEN.into()));
    if let Some(url) = postgres {
        setup.top.push(format!("database_url = {}", serde_json::to_string(url).context("quoting the URL")?));
    }
    let mut servers = Vec::new();
    let node = harness::start(&args.server, &upstream, &setup, &mut servers).await?;
    let limit =
        Duration::from_secs(args.drain_timeout + 180) + Duration::from_millis(u64::from(args.pending) * 20);
    harness::finish(&mut servers, limit, drain(args, receiver, &node.base)).await
}

async fn drain(args: &EventsArgs, receiver: &Receiver, base: &str) -> Result<Drain> {
    let n = args.pending;
    let client = api::client(args.create_concurrency as usize + 4)?;
    // A first session whose event is answered 410: the endpoint is disabled.
    receiver.reset(true);
    api::create_session(&client, base, &tenant_headers()).await?;
    if !receiver.wait_requests(1, Duration::from_secs(10)).await {
        return Err("the first session.created never reached the receiver".into());
    }
    wait_for_gone(&client, base).await?;

    eprintln!("endpoint disabled; creating {n} sessions, {} at a time", args.create_concurrency);
    let start = Instant::now();
    create_sessions(&client, base, n, args.create_concurrency).await?;
    let create_time = start.elapsed();
    // Anything sent now would be a held event that was not held.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent_while_held = receiver.snapshot().requests.saturating_sub(1);

    receiver.reset(false);
    eprintln!("resuming");
    let sent = Instant::now();
    let response = operator(client.post(format!("{base}/v1/admin/deliveries/resume")))
        .send()
        .await
        .context("POST /v1/admin/deliveries/resume")?;
    let answered = Instant::now();
    let status = response.status();
    let text = response.text().await.context("reading the resume's answer")?;
    if !status.is_success() {
        return Err(
            format!("POST /v1/admin/deliveries/resume: HTTP {status}: {}", snippet(text.as_bytes())).into()
        );
    }
    let resumed = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["resumed"].as_u64());
    let complete = receiver.wait_for(n as usize, Duration::from_secs(args.drain_timeout)).await;
    if complete {
        tokio::time::sleep(SETTLE).await;
    }
    let log = receiver.snapshot();
    let since = |i: usize| log.arrivals.get(i).map(|&at| stats::ms_between(answered, at) / 1000.0);
    let n = n as usize;
    Ok(Drain {
        created: args.pending,
        create_time,
        sent_while_held,
        resumed,
        resume_rtt: answered - sent,
        first: since(0),
        half: since(n.div_ceil(2) - 1),
        all: since(n - 1),
        all_from_sent: log.arrivals.get(n - 1).map(|&at| (at - sent).as_secs_f64()),
        received: log.arrivals.len(),
        requests: log.requests,
        unsigned: log.unsigned,
    })
}

/// The operator's headers for the bench tenant.
fn operator(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.bearer_auth(OPERATOR_TOKEN).header("x-tenant-id", TENANT)
}

/// Waits until the admin API lists the probe's delivery as `gone`: the 410
/// and the endpoint's disabling are one transaction.
async fn wait_for_gone(client: &reqwest::Client, base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = operator(client.get(format!("{base}/v1/admin/deliveries?status=gone&limit=1")))
            .send()
            .await
            .context("GET /v1/admin/deliveries")?;
        let status = response.status();
        let text = response.text().await.context("reading the deliveries")?;
        if !status.is_success() {
            return Err(
                format!("GET /v1/admin/deliveries: HTTP {status}: {}", snippet(text.as_bytes())).into()
            );
        }
        let json: serde_json::Value = serde_json::from_str(&text).context("the deliveries' JSON")?;
        if json["items"].as_array().is_some_and(|items| !items.is_empty()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the delivery answered 410 is not `gone` after 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` new visitor sessions, `width` requests in flight.
async fn create_sessions(client: &reqwest::Client, base: &str, n: u32, width: u32) -> Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut set = JoinSet::new();
    for _ in 0..width.min(n) {
        let (client, base, next) = (client.clone(), base.to_owned(), next.clone());
        set.spawn(async move {
            let headers = tenant_headers();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                api::create_session(&client, &base, &headers).await?;
            }
            Ok::<_, crate::error::Error>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.context("a session task failed")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> EventsArgs {
        EventsArgs {
            server: ServerArgs { server_bin: "x".into(), keep_data: false },
            concurrency: 1,
            seconds: 1,
            rounds: 1,
            chunks: 1,
            turns_per_session: None,
            pending: 1,
            create_concurrency: 1,
            drain_timeout: 1,
            postgres_url: String::new(),
            skip_postgres: true,
            skip_throughput: false,
            skip_drain: false,
        }
    }

    #[test]
    fn the_events_endpoint_is_the_only_difference() {
        let off = setup(&args(), None);
        let on = setup(&args(), Some(("http://127.0.0.1:4000/events", "turn.completed")));
        assert_eq!(off.top, on.top);
        assert_eq!(off.env, on.env);
        assert!(off.tenant.is_empty());
        let top: toml::Table = on.top[0].parse().unwrap();
        assert_eq!(top["tool_allow_private"].as_array().unwrap()[0].as_str(), Some("127.0.0.1"));
        let tenant: toml::Table = on.tenant[0].parse().unwrap();
        let events = &tenant["events"];
        assert_eq!(events["url"].as_str(), Some("http://127.0.0.1:4000/events"));
        assert_eq!(events["secret_env"].as_str(), Some(SECRET_ENV));
        assert_eq!(events["types"].as_array().unwrap()[0].as_str(), Some("turn.completed"));
        assert!(on.env.iter().any(|(k, v)| k == SECRET_ENV && v.starts_with("whsec_")));
    }
}
