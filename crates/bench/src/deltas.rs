//! Times each streamed delta from the moment the paced fake upstream handed
//! its chunk over to the moment each SSE subscriber of the session (on any
//! node) received it, and to the moment the sender's own `POST /v1/chat`
//! stream received it (the direct path). Turns run one after another; a turn
//! ends when every subscriber has its `stream_end`. Subscribers only note
//! arrival times and bytes while turns run; decoding happens afterwards.

use crate::api::{self, Timed, Visitor};
use crate::error::{Context, Result};
use crate::events::Item;
use crate::fake::{chunks_in, FakeUpstream};
use crate::rawsse::SseConn;
use crate::stats::ms_between;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How long all subscribers may take to open, and a turn to reach them all.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
const TURN_TIMEOUT: Duration = Duration::from_secs(15);

/// One subscriber: which group it reports in, and the node it connects to.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub group: usize,
    pub base: String,
}

/// One delta at one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub group: usize,
    /// The turn (its assistant message's seq) and the content chunk.
    pub seq: u64,
    pub chunk: usize,
    /// From the upstream handing the chunk over to this subscriber's receipt.
    pub from_upstream_ms: f64,
    /// This receipt less the sender's own stream's receipt of the same delta.
    pub minus_direct_ms: f64,
}

#[derive(Debug, Default)]
pub struct Measured {
    /// From the upstream handing a chunk over to the sender's own stream.
    pub direct_ms: Vec<f64>,
    pub samples: Vec<Sample>,
    /// Deltas expected at the subscribers (turns × chunks × subscribers).
    pub expected: usize,
    pub turns: usize,
    /// CPU time over the measured turns: the servers' and the load
    /// generator's (which includes the fake upstream), and the wall time.
    pub server_cpu_ms: f64,
    pub bench_cpu_ms: f64,
    pub wall_ms: f64,
}

/// What the turns left to match deliveries against, by seq.
struct TurnRecord {
    sent: Vec<Instant>,
    direct: HashMap<usize, Instant>,
}

/// Where turns run and who listens.
pub struct Plan<'a> {
    pub chat_base: &'a str,
    pub visitor: &'a Visitor,
    pub subscribers: &'a [Subscriber],
    /// The server processes, for their CPU time.
    pub server_pids: &'a [u32],
    pub warmup: u32,
    pub turns: u32,
}

/// CPU nanoseconds of the servers and of this process.
fn cpu(pids: &[u32]) -> (u64, u64) {
    let server = pids.iter().filter_map(|&p| crate::sys::cpu_ns(Some(p))).sum();
    (server, crate::sys::cpu_ns(None).unwrap_or(0))
}

/// Opens every subscriber, runs the plan's turns, and returns the measured
/// turns' deliveries.
pub async fn measure(client: &reqwest::Client, upstream: &FakeUpstream, plan: &Plan<'_>) -> Result<Measured> {
    let Plan { chat_base, visitor, subscribers, warmup, turns, .. } = *plan;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (end_tx, mut end_rx) = mpsc::unbounded_channel::<u64>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for (i, sub) in subscribers.iter().enumerate() {
        let conn = SseConn::open(&sub.base, visitor, None).await?;
        let (ready, end, stop) = (ready_tx.clone(), end_tx.clone(), stop_rx.clone());
        set.spawn(async move { (i, listen(conn, ready, end, stop).await) });
    }
    drop((ready_tx, end_tx));
    for _ in subscribers {
        tokio::time::timeout(OPEN_TIMEOUT, ready_rx.recv())
            .await
            .context("subscribers did not all get their `session` event")?
            .context("a subscriber ended before its `session` event")?;
    }

    let mut records = HashMap::new();
    let mut ends: HashMap<u64, usize> = HashMap::new();
    let _ = upstream.take_sent();
    let (mut cpu0, mut wall0) = (cpu(plan.server_pids), Instant::now());
    for t in 0..warmup + turns {
        if t == warmup {
            (cpu0, wall0) = (cpu(plan.server_pids), Instant::now());
        }
        let events = api::chat(client, chat_base, visitor, &format!("fan-out turn {t}")).await?;
        let seq = stream_start_seq(&events)?;
        let wait = async {
            while ends.get(&seq).copied().unwrap_or(0) < subscribers.len() {
                let seen = end_rx.recv().await.context("subscribers ended during a turn")?;
                *ends.entry(seen).or_default() += 1;
            }
            Ok::<_, crate::error::Error>(())
        };
        tokio::time::timeout(TURN_TIMEOUT, wait)
            .await
            .context(&format!("turn {t} did not reach every subscriber within {TURN_TIMEOUT:?}"))??;
        let sent = upstream.take_sent();
        let [sent] = <[Vec<Instant>; 1]>::try_from(sent)
            .map_err(|v| format!("turn {t}: expected one upstream completion, saw {}", v.len()))?;
        if t >= warmup {
            records.insert(seq, TurnRecord { sent, direct: direct_arrivals(&events) });
        }
    }

    let (cpu1, wall_ms) = (cpu(plan.server_pids), wall0.elapsed().as_secs_f64() * 1000.0);
    let _ = stop_tx.send(true);
    let mut received = vec![Vec::new(); subscribers.len()];
    while let Some(joined) = set.join_next().await {
        let (i, deltas) = joined.context("a subscriber task failed")?;
        received[i] = deltas?;
    }
    let chunks = records.values().map(|r| r.sent.len()).sum::<usize>();
    let mut out = Measured {
        expected: chunks * subscribers.len(),
        turns: records.len(),
        server_cpu_ms: cpu1.0.saturating_sub(cpu0.0) as f64 / 1e6,
        bench_cpu_ms: cpu1.1.saturating_sub(cpu0.1) as f64 / 1e6,
        wall_ms,
        ..Measured::default()
    };
    for record in records.values() {
        for (&chunk, &at) in &record.direct {
            if let Some(&sent) = record.sent.get(chunk) {
                out.direct_ms.push(ms_between(sent, at));
            }
        }
    }
    for (i, deltas) in received.iter().enumerate() {
        for (at, data) in deltas {
            let Some((seq, text)) = delta_fields(data) else { continue };
            let Some(record) = records.get(&seq) else { continue };
            for chunk in chunks_in(&text) {
                let (Some(&sent), Some(&direct)) = (record.sent.get(chunk), record.direct.get(&chunk)) else {
                    continue;
                };
                out.samples.push(Sample {
                    group: subscribers[i].group,
                    seq,
                    chunk,
                    from_upstream_ms: ms_between(sent, *at),
                    minus_direct_ms: ms_between(direct, *at),
                });
            }
        }
    }
    Ok(out)
}

/// One subscriber: notes `(arrival, data)` of every `stream_delta`, reports
/// its `session` event and each `stream_end`'s seq, until told to stop.
async fn listen(
    mut conn: SseConn,
    ready: mpsc::UnboundedSender<()>,
    end: mpsc::UnboundedSender<u64>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<(Instant, Vec<u8>)>> {
    let mut deltas = Vec::with_capacity(4096);
    loop {
        let read = conn.read(|at, item| match item {
            Item::Event { name: "stream_delta", data } => deltas.push((at, data.to_vec())),
            Item::Event { name: "stream_end", data } => {
                if let Some(seq) = json_seq(data) {
                    let _ = end.send(seq);
                }
            }
            Item::Event { name: "session", .. } => {
                let _ = ready.send(());
            }
            _ => {}
        });
        let more = tokio::select! {
            biased;
            more = read => more?,
            _ = stop.changed() => break,
        };
        if !more {
            break;
        }
    }
    Ok(deltas)
}

fn json_seq(data: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(data).ok()?["seq"].as_u64()
}

fn delta_fields(data: &[u8]) -> Option<(u64, String)> {
    let json: serde_json::Value = serde_json::from_slice(data).ok()?;
    Some((json["seq"].as_u64()?, json["text"].as_str()?.to_owned()))
}

/// The assistant message's seq, from the turn's `stream_start`.
fn stream_start_seq(events: &[Timed]) -> Result<u64> {
    let start = events.iter().find(|e| e.name == "stream_start").context("the turn had no stream_start")?;
    json_seq(&start.data).context("stream_start without a seq")
}

/// When the sender's own stream received each content chunk.
fn direct_arrivals(events: &[Timed]) -> HashMap<usize, Instant> {
    let mut out = HashMap::new();
    for e in events.iter().filter(|e| e.name == "stream_delta") {
        if let Some((_, text)) = delta_fields(&e.data) {
            for chunk in chunks_in(&text) {
                out.entry(chunk).or_insert(e.at);
            }
        }
    }
    out
}

/// CPU use over the measured turns, as a line of a report.
pub fn cpu_line(m: &Measured) -> String {
    let per = |ms: f64| ms * 1000.0 / m.samples.len().max(1) as f64;
    format!(
        "- CPU over the measured turns ({:.0} ms of wall time), everything the turns did included: server(s) {:.0} ms ({:.0} % of one core, {:.1} µs per delivered delta), load generator and fake upstream {:.0} ms ({:.0} %, {:.1} µs per delivered delta)\n",
        m.wall_ms,
        m.server_cpu_ms,
        100.0 * m.server_cpu_ms / m.wall_ms.max(1e-9),
        per(m.server_cpu_ms),
        m.bench_cpu_ms,
        100.0 * m.bench_cpu_ms / m.wall_ms.max(1e-9),
        per(m.bench_cpu_ms)
    )
}

/// Per delta (turn and chunk) of one group: the first subscriber's receipt
/// to each subscriber's (`each`), and to the last one's (`last`).
pub fn spread(samples: &[Sample], group: usize) -> (Vec<f64>, Vec<f64>) {
    let mut by_delta: HashMap<(u64, usize), Vec<f64>> = HashMap::new();
    for s in samples.iter().filter(|s| s.group == group) {
        by_delta.entry((s.seq, s.chunk)).or_default().push(s.from_upstream_ms);
    }
    let (mut each, mut last) = (Vec::new(), Vec::new());
    for times in by_delta.values() {
        let first = times.iter().copied().fold(f64::INFINITY, f64::min);
        let latest = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        each.extend(times.iter().map(|t| t - first));
        last.push(latest - first);
    }
    (each, last)
}
