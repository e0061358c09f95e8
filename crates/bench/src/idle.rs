//! `switchboard-bench idle`: what an open, idle subscription costs the server
//! in memory (target: 10,000 connections, half SSE and half WebSocket, at no
//! more than 16 KB each). Server RSS is read from `/proc/<pid>/status` once
//! the sessions exist, then while the connections are held open across
//! several heartbeat and ping periods (so heartbeats and pings really flow),
//! and once more after they are closed.

use crate::api::{self, Visitor};
use crate::error::{Context, Result};
use crate::events::Item;
use crate::harness::{self, ServerArgs};
use crate::rawsse::SseConn;
use crate::sys::{self, Rss};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

const TARGET_CONNECTIONS: u32 = 10_000;
const TARGET_BYTES: f64 = 8.0 * 1024.0;
/// Sessions created at a time, and connections opened at a time.
const CREATE_CONCURRENCY: usize = 16;
/// Sockets the load generator needs beyond the connections themselves.
const SPARE_FILES: u64 = 200;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Half SSE subscriptions, half WebSockets (alternating).
    Both,
    Sse,
    Ws,
}

#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Connections to open and hold.
    #[arg(long, default_value_t = TARGET_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub connections: u32,
    #[arg(long, value_enum, default_value_t = Kind::Both)]
    pub kind: Kind,
    /// Connections per visitor session (each session is a visitor of its own).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub per_session: u32,
    /// SSE heartbeat and WebSocket ping period, in seconds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub heartbeat_secs: u64,
    /// How long to hold the connections open once all are open, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub hold_secs: u64,
    /// Times to open, hold and close all the connections, on the same server
    /// and sessions (a second round shows whether memory is reused or kept).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Give every round new visitor sessions instead of reusing the first
    /// round's (shows whether per-session state outlives its connections).
    #[arg(long)]
    pub fresh_sessions: bool,
    /// Connections opened at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub open_concurrency: u32,
}

/// What the held connections saw.
#[derive(Default)]
struct Counters {
    heartbeats: AtomicU64,
    pings: AtomicU64,
    /// Connections that ended before they were told to.
    closed: AtomicU64,
}

/// One round: every connection opened, held, closed.
struct Round {
    opened: Rss,
    held: Vec<Rss>,
    after_close: Rss,
    open_secs: f64,
    sse: u64,
    ws: u64,
    heartbeats: u64,
    pings: u64,
    closed: u64,
}

struct Measured {
    baseline: Rss,
    rounds: Vec<Round>,
}

pub async fn run(args: IdleArgs) -> Result<()> {
    sys::ensure_open_files(u64::from(args.connections) + SPARE_FILES)?;
    let upstream = harness::upstream(1, Duration::ZERO).await?;
    let mut setup = harness::realtime_setup(&args.server, args.connections);
    setup.top.push(format!("heartbeat_secs = {}", args.heartbeat_secs));
    setup.connections.push(format!("ws_ping_secs = {}", args.heartbeat_secs));
    setup.connections.push(format!("ws_pong_timeout_secs = {}", args.heartbeat_secs * 10));
    setup.connections.push("hello_timeout_secs = 30".to_owned());
    let mut servers = Vec::new();
    let node = harness::start(&args.server, &upstream, &setup, &mut servers).await?;
    let limit = Duration::from_secs(600 + args.hold_secs);
    let measured = harness::finish(&mut servers, limit, measure(&args, &node)).await?;
    println!("{}", render(&args, &measured));
    Ok(())
}

async fn measure(args: &IdleArgs, node: &harness::Node) -> Result<Measured> {
    let pid = node.pid.context("the server has no pid")?;
    let rss = || sys::rss(pid).context("reading the server's /proc status");
    let client = api::streaming_client(CREATE_CONCURRENCY)?;
    let sessions = args.connections.div_ceil(args.per_session) as usize;
    let rounds_of_sessions = if args.fresh_sessions { args.rounds as usize } else { 1 };
    eprintln!("creating {} visitor sessions", sessions * rounds_of_sessions);
    let visitors = create_visitors(&client, &node.base, sessions * rounds_of_sessions).await?;

    settle().await;
    let baseline = rss()?;
    let mut rounds = Vec::new();
    for r in 1..=args.rounds {
        eprintln!("round {r}: server RSS {} KiB; opening {} connections", rss()?.total_kib, args.connections);
        let first = if args.fresh_sessions { (r as usize - 1) * sessions } else { 0 };
        rounds.push(round(args, node, &visitors[first..first + sessions], pid).await?);
    }
    Ok(Measured { baseline, rounds })
}

async fn round(args: &IdleArgs, node: &harness::Node, visitors: &[Visitor], pid: u32) -> Result<Round> {
    let rss = || sys::rss(pid).context("reading the server's /proc status");
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.open_concurrency as usize));
    let (mut set, mut opening) = (JoinSet::new(), JoinSet::new());
    let started = Instant::now();
    for i in 0..args.connections as usize {
        let ws = match args.kind {
            Kind::Both => i % 2 == 1,
            Kind::Sse => false,
            Kind::Ws => true,
        };
        let visitor = visitors[i / args.per_session as usize].clone();
        let permit = gate.clone().acquire_owned().await.context("the open gate")?;
        let (base, counters, stop) = (node.base.clone(), counters.clone(), stop_rx.clone());
        opening.spawn(async move {
            let held = open(&base, &visitor, ws).await;
            drop(permit);
            held.map(|held| (held, counters, stop))
        });
        while let Some(done) = opening.try_join_next() {
            let (held, counters, stop) = done.context("an opening task failed")??;
            set.spawn(hold(held, counters, stop));
        }
    }
    while let Some(done) = opening.join_next().await {
        let (held, counters, stop) = done.context("an opening task failed")??;
        set.spawn(hold(held, counters, stop));
    }
    let open_secs = started.elapsed().as_secs_f64();
    let opened = rss()?;
    let (beats0, pings0) =
        (counters.heartbeats.load(Ordering::Relaxed), counters.pings.load(Ordering::Relaxed));
    eprintln!(
        "opened in {open_secs:.1} s; server RSS {} KiB; holding {} s",
        opened.total_kib, args.hold_secs
    );
    let mut held = Vec::new();
    for _ in 0..args.hold_secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        held.push(rss()?);
    }
    let heartbeats = counters.heartbeats.load(Ordering::Relaxed) - beats0;
    let pings = counters.pings.load(Ordering::Relaxed) - pings0;
    let closed = counters.closed.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let (mut sse, mut ws) = (0, 0);
    while let Some(done) = set.join_next().await {
        if done.context("a holding task failed")? {
            ws += 1;
        } else {
            sse += 1;
        }
    }
    // Closed SSE streams are noticed at the next heartbeat write.
    settle().await;
    let after_close = rss()?;
    Ok(Round { opened, held, after_close, open_secs, sse, ws, heartbeats, pings, closed })
}

async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn create_visitors(client: &reqwest::Client, base: &str, n: usize) -> Result<Vec<Visitor>> {
    let mut out = Vec::with_capacity(n);
    let mut set = JoinSet::new();
    for _ in 0..n {
        if set.len() >= CREATE_CONCURRENCY {
            if let Some(v) = set.join_next().await {
                out.push(v.context("a session task failed")??);
            }
        }
        let (client, base) = (client.clone(), base.to_owned());
        set.spawn(async move { Visitor::create(&client, &base).await });
    }
    while let Some(v) = set.join_next().await {
        out.push(v.context("a session task failed")??);
    }
    Ok(out)
}

enum Held {
    Sse(SseConn),
    Ws(api::Ws),
}

/// Opens one connection and reads it up to its `session` event or `welcome`.
async fn open(base: &str, visitor: &Visitor, ws: bool) -> Result<Held> {
    if ws {
        let mut socket = api::open_ws(base, visitor, None).await?;
        api::welcome(&mut socket).await?;
        return Ok(Held::Ws(socket));
    }
    let mut conn = SseConn::open(base, visitor, None).await?;
    let mut seen = false;
    while !seen {
        let more = conn.read(|_, item| seen |= matches!(item, Item::Event { name: "session", .. })).await?;
        if !more {
            return Err("a subscription ended before its session event".into());
        }
    }
    Ok(Held::Sse(conn))
}

/// Reads a connection until told to stop, counting heartbeats and pings (the
/// WebSocket library answers pings while it reads). True for a WebSocket.
async fn hold(held: Held, counters: Arc<Counters>, mut stop: watch::Receiver<bool>) -> bool {
    match held {
        Held::Sse(mut conn) => {
            loop {
                let read = conn.read(|_, item| {
                    if item == Item::Comment {
                        counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                    }
                });
                tokio::select! {
                    more = read => if !matches!(more, Ok(true)) {
                        counters.closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    },
                    _ = stop.changed() => break,
                }
            }
            false
        }
        Held::Ws(mut ws) => {
            loop {
                tokio::select! {
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Ping(_))) => { counters.pings.fetch_add(1, Ordering::Relaxed); }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            counters.closed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Some(Ok(_)) => {}
                    },
                    _ = stop.changed() => { let _ = ws.close(None).await; break; }
                }
            }
            true
        }
    }
}

fn render(args: &IdleArgs, m: &Measured) -> String {
    let mut text = String::from(
        "| server RSS | VmRSS (KiB) | RssAnon (KiB) | per connection, VmRSS (bytes) | per connection, RssAnon (bytes) |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    let b = m.baseline;
    text.push_str(&format!(
        "| sessions created, no connections yet | {} | {} | | |\n",
        b.total_kib, b.anon_kib
    ));
    let mut first_steady = None;
    for (r, round) in m.rounds.iter().enumerate() {
        let n = (round.sse + round.ws).max(1) as f64;
        let per = |kib: u64, base: u64| format!("{:.0}", kib.saturating_sub(base) as f64 * 1024.0 / n);
        let mut line = |name: &str, x: Rss| {
            text.push_str(&format!(
                "| round {}: {name} | {} | {} | {} | {} |\n",
                r + 1,
                x.total_kib,
                x.anon_kib,
                per(x.total_kib, b.total_kib),
                per(x.anon_kib, b.anon_kib)
            ));
        };
        // The steady value: the median of the samples of the second half of the hold.
        let mut tail: Vec<Rss> = round.held[round.held.len() / 2..].to_vec();
        tail.sort_by_key(|x| x.total_kib);
        let steady = tail.get(tail.len() / 2).copied().unwrap_or(round.opened);
        line("all connections just opened", round.opened);
        line(&format!("held open (median of the last {} one-second samples)", tail.len()), steady);
        line("2 s after closing them all", round.after_close);
        first_steady
            .get_or_insert((steady.total_kib.saturating_sub(b.total_kib) as f64 * 1024.0 / n, round.closed));
    }
    text.push('\n');
    for (r, round) in m.rounds.iter().enumerate() {
        text.push_str(&format!(
            "- round {}: {} SSE + {} WebSocket connections held, {} per visitor session{}; opened in {:.1} s, {} at a time; {} ended early; while held ({} s, heartbeat and ping every {} s): {:.1} SSE heartbeats per SSE connection, {:.1} pings per WebSocket\n",
            r + 1, round.sse, round.ws, args.per_session,
            if args.fresh_sessions && r > 0 { " (new sessions)" } else { "" },
            round.open_secs, args.open_concurrency, round.closed,
            args.hold_secs, args.heartbeat_secs,
            round.heartbeats as f64 / round.sse.max(1) as f64, round.pings as f64 / round.ws.max(1) as f64
        ));
    }
    match first_steady {
        Some((bytes, closed)) if args.connections == TARGET_CONNECTIONS && args.kind == Kind::Both => {
            text.push_str(&format!(
                "- target: {TARGET_CONNECTIONS} idle connections (half SSE, half WebSocket) at no more than 8 KiB ({TARGET_BYTES:.0} bytes) of server memory each; measured {bytes:.0} bytes (VmRSS, held, round 1): {}\n",
                crate::stats::verdict(bytes <= TARGET_BYTES && closed == 0)
            ));
        }
        _ => text.push_str(&format!(
            "- target: not comparable (it is for {TARGET_CONNECTIONS} connections of both kinds)\n"
        )),
    }
    text.push_str(&crate::report::provenance());
    text
}
