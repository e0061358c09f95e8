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
    /// Serve the floor `run --relay` measures: HTTP in, the upstream called,
    /// its chunks re-framed as chat events; nothing stored, nothing checked.
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
    /// Path to the `switchboard` binary (e.g. target/release/switchboard).
    #[arg(long, required_unless_present = "relay", conflicts_with = "relay")]
    pub server_bin: Option<PathBuf>,
    /// Measure the relay (this binary's `relay`) instead of `switchboard`:
    /// what any server in between costs on this machine, with no work of its own.
    #[arg(long)]
    pub relay: bool,
    /// Measured turns at concurrency 1, each direct and through Switchboard.
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
    /// Keep the server's temporary data directory and log instead of deleting them.
    #[arg(long)]
    pub keep_data: bool,
}

impl RunArgs {
    /// What the turns go through, for the report.
    pub fn through(&self) -> &'static str {
        if self.relay {
            "the relay"
        } else {
            "Switchboard"
        }
    }

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

/// Owns the order of a run: upstream, server, measurements, then shutdown of the
/// server whatever happened in between (errors and Ctrl-C included).
async fn run(args: RunArgs) -> Result<()> {
    let upstream = fake::FakeUpstream::start("127.0.0.1:0".parse().context("loopback")?, args.chunks).await?;
    eprintln!("fake upstream on http://{}/v1", upstream.addr());
    let mut server = match &args.server_bin {
        Some(bin) => server::Server::spawn(bin, upstream.addr(), args.keep_data).await?,
        None => server::Server::spawn_relay(upstream.addr(), args.keep_data).await?,
    };
    eprintln!("{} on {} (data in {})", args.through(), server.base_url(), server.data_dir().display());

    let outcome = tokio::select! {
        r = load::measure(&args, &upstream, server.base_url()) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    let stopped = server.stop().await;
    let caveats = server.caveats();
    if outcome.is_err() {
        server.print_log_tail(40);
    }
    eprintln!("the fake upstream accepted {} TCP connections", upstream.connections());
    report::print(&args, &outcome?, upstream.calls(), &caveats);
    stopped
}
