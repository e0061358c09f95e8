//! `switchboard-bench`: drives the real `switchboard` binary from outside against
//! a fake upstream and prints what Switchboard adds to time to first token, how
//! many streamed turns per second it sustains, what it adds to a turn with a
//! tool round, and, for the realtime features, what idle connections cost,
//! how fast deltas fan out and cross nodes, how long a resume takes, and how
//! fast the admin session list answers at a million sessions, and what
//! outbound events cost (`events`). Numbers are for humans and `docs/benchmarks.md`;
//! nothing here asserts timings.

mod admin_list;
mod apart;
mod api;
mod cluster;
mod deltas;
mod error;
mod events;
mod fake;
mod fanout;
mod harness;
mod idle;
mod load;
mod outbox;
mod rawsse;
mod receiver;
mod relay;
mod report;
mod resume;
mod scrape;
mod server;
mod sse;
mod stats;
mod sys;
mod tools;

use clap::{Parser, Subcommand};
use error::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "switchboard-bench", version, about = "Benchmarks for the Switchboard chat runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a zero-delay fake OpenAI Chat Completions stream until interrupted.
    FakeUpstream {
        /// Address to bind; port 0 picks a free one (the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Content chunks per streamed completion.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        chunks: u32,
    },
    /// Start a fake upstream and a switchboard server, measure both, print a table.
    Run(RunArgs),
    /// Serve the floor every `run` measures beside Switchboard: HTTP in, the
    /// upstream called, its chunks re-framed as chat events; nothing stored,
    /// nothing checked.
    Relay {
        /// Address to bind; port 0 picks a free one (the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The upstream's OpenAI-style base URL, e.g. http://127.0.0.1:9000/v1.
        #[arg(long)]
        upstream: String,
    },
    /// Server memory per idle SSE subscription and WebSocket (heartbeats flowing).
    Idle(idle::IdleArgs),
    /// Delay of a streamed delta to many SSE subscribers of one session.
    Fanout(fanout::FanoutArgs),
    /// Time to replay a session's history to a resuming SSE or WebSocket client.
    Resume(resume::ResumeArgs),
    /// Delay a second node adds to a delta (PostgreSQL + Redis, two nodes).
    Cluster(cluster::ClusterArgs),
    /// Latency of the admin session list with a million sessions in the tenant.
    AdminList(admin_list::AdminListArgs),
    /// What the runtime adds to a turn with one tool round (zero-delay webhook).
    Tools(tools::ToolsArgs),
    /// What outbound events cost: streamed turns/s with `turn.completed` on
    /// against off, and the drain of 10,000 pending events (SQLite, PostgreSQL).
    Events(outbox::EventsArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Path to the `switchboard` binary (e.g. target/release/switchboard): measure
    /// Switchboard, and the relay in the same run unless `--no-relay`.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Leave the relay (the floor: this binary's `relay`, a server that does
    /// nothing but re-frame the upstream's chunks) out of the run.
    #[arg(long)]
    pub no_relay: bool,
    /// An OpenAI-compatible gateway to measure the same way, e.g.
    /// http://127.0.0.1:4000/v1 (its `/chat/completions` is called), configured
    /// by you to forward to the fake upstream (see `--upstream-listen`).
    #[arg(long)]
    pub peer: Option<String>,
    /// The model name the peer routes to the fake upstream.
    #[arg(long, default_value = "bench", requires = "peer")]
    pub peer_model: String,
    /// A bearer key the peer wants, if any.
    #[arg(long, requires = "peer")]
    pub peer_key: Option<String>,
    /// A pause after each of the peer's turns at concurrency 1, in ms: a
    /// gateway that goes on working after its answer (the LiteLLM proxy
    /// logs and counts spend then) would otherwise slow the next turn
    /// measured, which is another target's.
    #[arg(long, default_value_t = 50, requires = "peer")]
    pub peer_settle_ms: u64,
    /// Where the fake upstream listens (a fixed port lets a peer be configured
    /// to forward to it); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub upstream_listen: SocketAddr,
    /// Measured turns at concurrency 1, for each target.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub turns_c1: u32,
    /// Concurrent workers (one session each) for the throughput phase.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Length of each throughput window, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub seconds: u64,
    /// Content chunks per streamed completion from the fake upstream.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub chunks: u32,
    /// Turns a throughput worker takes in one session before it opens a new
    /// one, inside the window (chats of a few turns, as visitors have them);
    /// by default each worker keeps one session for the whole window.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub turns_per_session: Option<u32>,
    /// Keep the servers' temporary data directories and logs instead of deleting them.
    #[arg(long)]
    pub keep_data: bool,
}

impl RunArgs {
    /// The window of one throughput phase.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `run` drives many workers at once and may use every core. The realtime
    // benchmarks time arrivals: they read on one thread, so that no arrival
    // waits for another thread to be woken, and leave the other core(s) to the
    // server.
    let mut builder = match cli.command {
        Command::Run(_) | Command::Events(_) | Command::FakeUpstream { .. } | Command::Relay { .. } => {
            tokio::runtime::Builder::new_multi_thread()
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::FakeUpstream { listen, chunks } => {
            let upstream = fake::FakeUpstream::start(listen, chunks).await?;
            println!("fake upstream listening on http://{}/v1", upstream.addr());
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
            println!("served {} completions", upstream.calls());
            Ok(())
        }
        Command::Relay { listen, upstream } => relay::serve(listen, &upstream).await,
        Command::Run(args) => run(args).await,
        Command::Idle(args) => idle::run(args).await,
        Command::Fanout(args) => fanout::run(args).await,
        Command::Resume(args) => resume::run(args).await,
        Command::Cluster(args) => cluster::run(args).await,
        Command::AdminList(args) => admin_list::run(args).await,
        Command::Tools(args) => tools::run(args).await,
        Command::Events(args) => outbox::run(args).await,
    }
}

/// Owns the order of a run: upstream, servers, measurements, then shutdown of
/// the servers whatever happened in between (errors and Ctrl-C included).
async fn run(args: RunArgs) -> Result<()> {
    if args.no_relay && args.server_bin.is_none() && args.peer.is_none() {
        return Err("nothing to measure: give --server-bin or --peer, or leave the relay in".into());
    }
    let upstream = fake::FakeUpstream::start(args.upstream_listen, args.chunks).await?;
    eprintln!("fake upstream on http://{}/v1", upstream.addr());
    let mut servers = Vec::new();
    let outcome = tokio::select! {
        r = measure_all(&args, &upstream, &mut servers) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    let mut stopped = Ok(());
    let mut caveats = Vec::new();
    for server in &mut servers {
        let r = server.stop().await;
        if stopped.is_ok() {
            stopped = r;
        }
        if outcome.is_err() {
            server.print_log_tail(40);
        }
        caveats.extend(server.caveats());
    }
    eprintln!("the fake upstream accepted {} TCP connections", upstream.connections());
    report::print(&args, &outcome?, upstream.calls(), &caveats);
    stopped
}

/// Starts what `args` names (kept in `servers` for the caller to stop) and
/// measures it all in one run.
async fn measure_all(
    args: &RunArgs,
    upstream: &fake::FakeUpstream,
    servers: &mut Vec<server::Server>,
) -> Result<load::Results> {
    let mut through = Vec::new();
    if !args.no_relay {
        let relay = server::Server::spawn_relay(upstream.addr(), args.keep_data).await?;
        eprintln!("the relay on {}", relay.base_url());
        let target = load::Target::switchboard(relay.base_url());
        through.push(load::Through {
            name: report::RELAY.to_owned(),
            target,
            pid: relay.pid(),
            settle: Duration::ZERO,
        });
        servers.push(relay);
    }
    if let Some(bin) = &args.server_bin {
        let server = server::Server::spawn(bin, upstream.addr(), args.keep_data).await?;
        eprintln!("switchboard on {} (data in {})", server.base_url(), server.data_dir().display());
        let target = load::Target::switchboard(server.base_url());
        let (name, pid) = (report::SWITCHBOARD.to_owned(), server.pid());
        through.push(load::Through { name, target, pid, settle: Duration::ZERO });
        servers.push(server);
    }
    if let Some(peer) = &args.peer {
        let bearer = match &args.peer_key {
            Some(key) => Some(format!("Bearer {key}").try_into().context("--peer-key as a header")?),
            None => None,
        };
        let url = format!("{}/chat/completions", peer.trim_end_matches('/'));
        let body = load::completion_body(&args.peer_model);
        let target = load::Target::OpenAi { url: url.into(), body, bearer };
        let settle = Duration::from_millis(args.peer_settle_ms);
        through.push(load::Through { name: report::PEER.to_owned(), target, pid: None, settle });
    }
    let direct = load::Target::OpenAi {
        url: format!("http://{}/v1/chat/completions", upstream.addr()).into(),
        body: load::completion_body("bench"),
        bearer: None,
    };
    load::measure(args, direct, through).await
}
