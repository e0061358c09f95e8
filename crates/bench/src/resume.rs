//! `switchboard-bench resume`: how long a reconnecting client takes to get a
//! session's whole history replayed (target: 1,000 events within 20 ms). One
//! session gets `--messages` messages (turns of one chunk through the
//! zero-delay fake upstream), then SSE subscriptions with `Last-Event-ID: 0`
//! and WebSockets with `hello` + `last_event_id: 0` alternate, each timed to
//! its last replayed `message`.

use crate::api::{self, Visitor};
use crate::error::{Context, Result};
use crate::events::Item;
use crate::harness::{self, ServerArgs};
use crate::rawsse::SseConn;
use crate::stats::{self, Ms};
use crate::sys;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const TARGET_EVENTS: u32 = 1000;
const TARGET_P99_MS: f64 = 20.0;
/// Unmeasured resumes of each kind first.
const WARMUP: u32 = 3;
/// Upper bound on one resume.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug, Clone)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Messages in the session (two per turn: the user's and the answer).
    #[arg(long, default_value_t = TARGET_EVENTS, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub messages: u32,
    /// Measured resumes of each kind (SSE and WebSocket).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub resumes: u32,
}

/// One replay: when the response (SSE) or the welcome (WS) came, when the
/// last message came, from the start of the connection (and, on a WebSocket,
/// from the hello).
struct Replay {
    opened_ms: f64,
    done_ms: f64,
    from_hello_ms: Option<f64>,
    messages: u64,
    /// CPU time of the server and of the load generator during the resume.
    server_cpu_ms: f64,
    bench_cpu_ms: f64,
}

/// Runs one resume (bounded in time), noting the CPU both sides used.
async fn with_cpu(
    pid: Option<u32>,
    replay: impl std::future::Future<Output = Result<Replay>>,
) -> Result<Replay> {
    let cpu = || (pid.and_then(|p| sys::cpu_ns(Some(p))).unwrap_or(0), sys::cpu_ns(None).unwrap_or(0));
    let before = cpu();
    let mut r = tokio::time::timeout(RESUME_TIMEOUT, replay).await.context("a resume took too long")??;
    let after = cpu();
    r.server_cpu_ms = after.0.saturating_sub(before.0) as f64 / 1e6;
    r.bench_cpu_ms = after.1.saturating_sub(before.1) as f64 / 1e6;
    Ok(r)
}

pub async fn run(args: ResumeArgs) -> Result<()> {
    let upstream = harness::upstream(1, Duration::ZERO).await?;
    let setup = harness::realtime_setup(&args.server, 16);
    let mut servers = Vec::new();
    let node = harness::start(&args.server, &upstream, &setup, &mut servers).await?;
    let limit = Duration::from_secs(120) + Duration::from_millis(u64::from(args.messages) * 20);
    let (sse, ws) =
        harness::finish(&mut servers, limit + RESUME_TIMEOUT * 2 * (args.resumes + WARMUP), async {
            let client = api::client(8)?;
            let visitor = Visitor::create(&client, &node.base).await?;
            eprintln!("filling the session: {} turns", args.messages.div_ceil(2));
            for t in 0..args.messages.div_ceil(2) {
                api::chat(&client, &node.base, &visitor, &format!("resume turn {t}")).await?;
            }
            eprintln!("{WARMUP} + {} resumes each over SSE and WebSocket", args.resumes);
            let (mut sse, mut ws) = (Vec::new(), Vec::new());
            for i in 0..WARMUP + args.resumes {
                let s = with_cpu(node.pid, sse_replay(&node.base, &visitor)).await?;
                let w = with_cpu(node.pid, ws_replay(&node.base, &visitor)).await?;
                if i >= WARMUP {
                    sse.push(s);
                    ws.push(w);
                }
            }
            Ok((sse, ws))
        })
        .await?;
    println!("{}", render(&args, &sse, &ws));
    Ok(())
}

/// `GET …/events` with `Last-Event-ID: 0`, read to the message whose count
/// reaches the `resume_cursor`'s `latest_seq`.
async fn sse_replay(base: &str, visitor: &Visitor) -> Result<Replay> {
    let start = Instant::now();
    let mut conn = SseConn::open(base, visitor, Some(0)).await?;
    let opened_ms = start.elapsed().as_secs_f64() * 1000.0;
    let (mut latest, mut messages, mut done) = (None, 0u64, None);
    while done.is_none() {
        let more = conn
            .read(|at, item| {
                match item {
                    Item::Event { name: "resume_cursor", data } => latest = latest_seq(data),
                    Item::Event { name: "message", .. } => messages += 1,
                    _ => {}
                }
                if done.is_none() && latest.is_some_and(|l| messages >= l) {
                    done = Some(at);
                }
            })
            .await?;
        if !more {
            return Err(format!("the SSE replay ended after {messages} messages").into());
        }
    }
    let done_ms = done.map_or(0.0, |at| (at - start).as_secs_f64() * 1000.0);
    Ok(Replay { opened_ms, done_ms, from_hello_ms: None, messages, server_cpu_ms: 0.0, bench_cpu_ms: 0.0 })
}

/// `/v1/ws` with `hello` and `last_event_id: 0`, read to the message frame
/// whose count reaches the `welcome`'s `latest_seq`.
async fn ws_replay(base: &str, visitor: &Visitor) -> Result<Replay> {
    let start = Instant::now();
    let mut ws = api::open_ws(base, visitor, Some(0)).await?;
    let hello = Instant::now();
    let (mut opened_ms, mut latest, mut messages) = (None, None, 0u64);
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame.context("reading the replay")? else { continue };
        if text.starts_with(r#"{"type":"message""#) {
            messages += 1;
        } else if text.starts_with(r#"{"type":"welcome""#) {
            opened_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
            latest = latest_seq(text.as_bytes());
        } else if text.starts_with(r#"{"type":"error""#) {
            return Err(format!("the WebSocket resume was refused: {}", api::snippet(text.as_bytes())).into());
        }
        if latest.is_some_and(|l| messages >= l) {
            let done_ms = start.elapsed().as_secs_f64() * 1000.0;
            let from_hello_ms = Some(hello.elapsed().as_secs_f64() * 1000.0);
            let _ = ws.close(None).await;
            let opened_ms = opened_ms.unwrap_or(done_ms);
            return Ok(Replay {
                opened_ms,
                done_ms,
                from_hello_ms,
                messages,
                server_cpu_ms: 0.0,
                bench_cpu_ms: 0.0,
            });
        }
    }
    Err(format!("the WebSocket replay ended after {messages} messages").into())
}

fn latest_seq(data: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(data).ok()?["latest_seq"].as_u64()
}

fn render(args: &ResumeArgs, sse: &[Replay], ws: &[Replay]) -> String {
    let ms =
        |r: &[Replay], f: fn(&Replay) -> Option<f64>| Ms::of(&r.iter().filter_map(f).collect::<Vec<_>>());
    let events = sse.first().map_or(0, |r| r.messages);
    let sse_done = ms(sse, |r| Some(r.done_ms));
    let ws_done = ms(ws, |r| Some(r.done_ms));
    let mut text = stats::header(&format!("resume from cursor 0 ({events} messages replayed)"));
    text.push_str(&stats::row("SSE: request → response headers", &ms(sse, |r| Some(r.opened_ms))));
    text.push_str(&stats::row(&format!("SSE: request → message {events}"), &sse_done));
    text.push_str(&stats::row("WebSocket: connect → welcome", &ms(ws, |r| Some(r.opened_ms))));
    text.push_str(&stats::row(&format!("WebSocket: connect → message {events}"), &ws_done));
    text.push_str(&stats::row(
        &format!("WebSocket: hello sent → message {events}"),
        &ms(ws, |r| r.from_hello_ms),
    ));
    text.push_str(&stats::row("SSE: server CPU per resume", &ms(sse, |r| Some(r.server_cpu_ms))));
    text.push_str(&stats::row("SSE: load generator CPU per resume", &ms(sse, |r| Some(r.bench_cpu_ms))));
    text.push_str(&stats::row("WebSocket: server CPU per resume", &ms(ws, |r| Some(r.server_cpu_ms))));
    text.push_str(&stats::row("WebSocket: load generator CPU per resume", &ms(ws, |r| Some(r.bench_cpu_ms))));
    text.push('\n');
    text.push_str(&format!(
        "- session: {} messages asked for, {events} replayed per resume; {} measured resumes per kind (after {WARMUP}), alternating SSE and WebSocket, each on a new connection\n",
        args.messages, sse.len()
    ));
    if events >= u64::from(TARGET_EVENTS) {
        for (name, m) in [("SSE", sse_done), ("WebSocket", ws_done)] {
            if let Some(p99) = m.p99 {
                text.push_str(&format!(
                    "- target: a resume replaying {TARGET_EVENTS} events within {TARGET_P99_MS} ms; {name} p99 {p99:.3} ms: {}\n",
                    stats::verdict(p99 <= TARGET_P99_MS)
                ));
            }
        }
    } else {
        text.push_str(&format!("- target: not comparable (it is for {TARGET_EVENTS} events)\n"));
    }
    text.push_str(&crate::report::provenance());
    text
}
