//! The load generator: streamed turns straight to the fake upstream and through
//! each measured server (the relay, Switchboard, a peer gateway), timed from
//! sending the request to the first token and to the end of the stream. Every
//! run is bounded in turns and in time; at concurrency 1 turns against all
//! targets are interleaved one by one so drift on the machine hits all alike.

use crate::api::{client, create_session, snippet, REQUEST_TIMEOUT};
use crate::error::{Context, Result};
use crate::server::{ORIGIN, TENANT};
use crate::sse::{Scanner, Wire};
use crate::RunArgs;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, ORIGIN as ORIGIN_HEADER};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Unmeasured turns per target first, so connections, caches and the server's
/// lazy state are warm before anything is timed.
const WARMUP_TURNS: u32 = 20;
/// How long workers may take past the window to finish their last turn.
const DRAIN_GRACE: Duration = Duration::from_secs(45);

/// Timings of completed turns.
#[derive(Debug, Default)]
pub struct Samples {
    pub ttft: Vec<Duration>,
    pub total: Vec<Duration>,
}

impl Samples {
    fn push(&mut self, t: TurnTiming) {
        self.ttft.push(t.ttft);
        self.total.push(t.total);
    }

    fn append(&mut self, mut other: Samples) {
        self.ttft.append(&mut other.ttft);
        self.total.append(&mut other.total);
    }
}

/// One throughput window against one target.
#[derive(Debug, Default)]
pub struct Throughput {
    pub completed: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub window: Duration,
    pub samples: Samples,
    /// Every turn that ended well, the warm-up turns and those that ended
    /// after the window included: what the server really completed.
    pub succeeded: u64,
    /// CPU time the server's process spent over the whole phase, if known.
    pub server_cpu: Option<Duration>,
    /// What the server's `/metrics` says its turns waited for its store
    /// over the phase, if it has them.
    pub store_waits: Vec<crate::scrape::StoreWait>,
}

impl Throughput {
    pub fn turns_per_sec(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }

    /// The server's CPU time per turn it completed in the phase.
    pub fn cpu_per_turn(&self) -> Option<Duration> {
        Some(self.server_cpu? / u32::try_from(self.succeeded).ok().filter(|&n| n > 0)?)
    }
}

/// One server between the load and the upstream, as measured.
#[derive(Debug, Default)]
pub struct Measured {
    pub name: String,
    pub c1: Samples,
    /// What the server's `/metrics` says its turns waited for its store
    /// over the c=1 phase (the other targets' turns interleaved with its
    /// own, warm-up included), if it has them.
    pub c1_store_waits: Vec<crate::scrape::StoreWait>,
    pub load: Throughput,
}

/// Everything one `run` measured: straight to the upstream, then each server
/// in the order given.
pub struct Results {
    pub direct: Measured,
    pub through: Vec<Measured>,
}

impl Results {
    /// The server of that name, if it was measured.
    pub fn get(&self, name: &str) -> Option<&Measured> {
        self.through.iter().find(|m| m.name == name)
    }
}

/// A read of `target`'s `/metrics` for its store's waits; `None` for a
/// target that is not Switchboard.
async fn store_snapshot(client: &reqwest::Client, target: &Target) -> Option<crate::scrape::Snapshot> {
    match target {
        Target::Switchboard { base } => crate::scrape::snapshot(client, base).await,
        Target::OpenAi { .. } => None,
    }
}

/// The waits between two reads, if both were made.
fn store_waits(
    before: Option<crate::scrape::Snapshot>,
    after: Option<crate::scrape::Snapshot>,
) -> Vec<crate::scrape::StoreWait> {
    before.zip(after).map(|(a, b)| crate::scrape::waits(&a, &b)).unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
struct TurnTiming {
    ttft: Duration,
    total: Duration,
}

/// Where turns go: each is one POST answered by a stream.
#[derive(Clone)]
pub(crate) enum Target {
    /// OpenAI Chat Completions: the upstream itself, or a gateway in front of
    /// it (with its bearer key, if it wants one).
    OpenAi { url: Arc<str>, body: Bytes, bearer: Option<HeaderValue> },
    /// Switchboard's API (or the relay's imitation of it).
    Switchboard { base: Arc<str> },
}

/// A target made ready for one worker (a Switchboard session of its own).
struct Lane {
    url: Arc<str>,
    headers: HeaderMap,
    body: Bytes,
    wire: Wire,
}

/// The request a turn sends straight to the upstream or to a peer gateway.
pub(crate) fn completion_body(model: &str) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hello, benchmark"}],
    });
    Bytes::from(body.to_string())
}

/// A server the turns go through, by name, with its process if it is ours.
pub(crate) struct Through {
    pub name: String,
    pub target: Target,
    pub pid: Option<u32>,
    /// A pause after each of its turns at c=1, for a server that goes on
    /// working after its answer (the LiteLLM proxy logs and counts spend
    /// then): without it, that work lands on the next target's turn.
    pub settle: Duration,
}

/// Measures `direct` and every one of `through`, interleaved at c=1, then one
/// throughput window each, in order.
pub(crate) async fn measure(args: &RunArgs, direct: Target, through: Vec<Through>) -> Result<Results> {
    let client = client(args.concurrency as usize)?;
    let names: Vec<&str> = through.iter().map(|t| t.name.as_str()).collect();
    eprintln!(
        "concurrency 1: {WARMUP_TURNS} warm-up + {} measured turns each, straight and through {}",
        args.turns_c1,
        names.join(", ")
    );
    let upstream =
        Through { name: "the upstream".to_owned(), target: direct, pid: None, settle: Duration::ZERO };
    let all: Vec<Through> = std::iter::once(upstream).chain(through).collect();
    let targets: Vec<(Target, Duration)> = all.iter().map(|t| (t.target.clone(), t.settle)).collect();
    let mut c1_before = Vec::new();
    for t in &all {
        c1_before.push(store_snapshot(&client, &t.target).await);
    }
    let mut c1 = concurrency_one(&client, &targets, args.turns_c1).await?.into_iter();
    let mut c1_waits = Vec::new();
    for (t, before) in all.iter().zip(c1_before) {
        c1_waits.push(store_waits(before, store_snapshot(&client, &t.target).await));
    }
    let mut c1_waits = c1_waits.into_iter();

    let mut measured = Vec::new();
    for t in all {
        eprintln!("throughput to {}: {} workers for {} s", t.name, args.concurrency, args.seconds);
        let cpu = || t.pid.and_then(|p| crate::sys::cpu_ns(Some(p)));
        let waited = store_snapshot(&client, &t.target).await;
        let before = cpu();
        let mut load = throughput(&client, &t.target, args).await?;
        load.server_cpu = before.zip(cpu()).map(|(a, b)| Duration::from_nanos(b.saturating_sub(a)));
        load.store_waits = store_waits(waited, store_snapshot(&client, &t.target).await);
        measured.push(Measured {
            name: t.name,
            c1: c1.next().unwrap_or_default(),
            c1_store_waits: c1_waits.next().unwrap_or_default(),
            load,
        });
    }
    let mut measured = measured.into_iter();
    let direct = measured.next().context("the direct measurement")?;
    Ok(Results { direct, through: measured.collect() })
}

/// `turns` measured turns per target after the warm-up, one target after the
/// other within each round.
async fn concurrency_one(
    client: &reqwest::Client,
    targets: &[(Target, Duration)],
    turns: u32,
) -> Result<Vec<Samples>> {
    let mut lanes = Vec::new();
    for (target, settle) in targets {
        lanes.push((target.lane(client).await?, *settle));
    }
    let mut samples: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for i in 0..WARMUP_TURNS + turns {
        for (n, (lane, settle)) in lanes.iter().enumerate() {
            let t = turn(client, lane).await.map_err(|e| format!("turn {i} to {}: {e}", lane.url))?;
            if i >= WARMUP_TURNS {
                samples[n].push(t);
            }
            if !settle.is_zero() {
                tokio::time::sleep(*settle).await;
            }
        }
    }
    Ok(samples)
}

async fn throughput(client: &reqwest::Client, target: &Target, args: &RunArgs) -> Result<Throughput> {
    throughput_of(client, target, args.concurrency as usize, args.window(), args.turns_per_session).await
}

/// C workers, each on its own lane: ready (session, one warm-up turn), released
/// together, then turns back to back until the window closes, on a new lane
/// after every `turns_per_session` turns when that is set (a new session, made
/// inside the window). Only turns that end inside the window count.
pub(crate) async fn throughput_of(
    client: &reqwest::Client,
    target: &Target,
    workers: usize,
    window: Duration,
    turns_per_session: Option<u32>,
) -> Result<Throughput> {
    let barrier = Arc::new(Barrier::new(workers));
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (client, target, barrier) = (client.clone(), target.clone(), barrier.clone());
        set.spawn(async move { worker(client, target, barrier, window, turns_per_session).await });
    }
    let mut total = Throughput { window, ..Throughput::default() };
    let bound = REQUEST_TIMEOUT * 2 + window + DRAIN_GRACE;
    let collected = tokio::time::timeout(bound, async {
        while let Some(joined) = set.join_next().await {
            let part = joined.context("a worker task failed")??;
            total.completed += part.completed;
            total.succeeded += part.succeeded;
            total.errors += part.errors;
            if total.first_error.is_none() {
                total.first_error = part.first_error;
            }
            total.samples.append(part.samples);
        }
        Ok::<_, crate::error::Error>(())
    })
    .await;
    match collected {
        Ok(r) => r.map(|()| total),
        // Dropping the set aborts whatever is still running.
        Err(_) => Err(format!("throughput phase did not finish within {bound:?}").into()),
    }
}

async fn worker(
    client: reqwest::Client,
    target: Target,
    barrier: Arc<Barrier>,
    window: Duration,
    turns_per_session: Option<u32>,
) -> Result<Throughput> {
    // A failed setup must still reach the barrier, or the others wait forever.
    let ready = async {
        let lane = target.lane(&client).await?;
        turn(&client, &lane).await.map_err(|e| format!("warm-up turn: {e}"))?;
        Ok::<_, crate::error::Error>(lane)
    }
    .await;
    barrier.wait().await;
    let mut lane = ready?;
    // Turns on this lane so far, the warm-up one included.
    let mut on_lane = 1;
    let deadline = Instant::now() + window;
    let mut out = Throughput { window, succeeded: 1, ..Throughput::default() };
    while Instant::now() < deadline {
        if turns_per_session.is_some_and(|n| on_lane >= n) {
            match target.lane(&client).await {
                Ok(next) => (lane, on_lane) = (next, 0),
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(format!("a new session: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        on_lane += 1;
        match turn(&client, &lane).await {
            Ok(t) if Instant::now() <= deadline => {
                out.completed += 1;
                out.succeeded += 1;
                out.samples.push(t);
            }
            Ok(_) => out.succeeded += 1,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
                // Keep a failing target from turning into a busy loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Ok(out)
}

impl Target {
    /// Turns through the Switchboard node at `base`.
    pub(crate) fn switchboard(base: &str) -> Self {
        Target::Switchboard { base: base.into() }
    }

    /// OpenAI: the request as is. Switchboard: a new visitor session whose token
    /// and id go into the chat request, which is rendered once.
    async fn lane(&self, client: &reqwest::Client) -> Result<Lane> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match self {
            Target::OpenAi { url, body, bearer } => {
                if let Some(bearer) = bearer {
                    headers.insert(AUTHORIZATION, bearer.clone());
                }
                Ok(Lane { url: url.clone(), headers, body: body.clone(), wire: Wire::Upstream })
            }
            Target::Switchboard { base } => {
                headers.insert("x-tenant-id", HeaderValue::from_static(TENANT));
                headers.insert(ORIGIN_HEADER, HeaderValue::from_static(ORIGIN));
                let (id, token) = create_session(client, base, &headers).await?;
                let bearer = HeaderValue::try_from(format!("Bearer {token}")).context("token as a header")?;
                headers.insert(AUTHORIZATION, bearer);
                let body = serde_json::json!({"session_id": id, "message": "Hello, benchmark"});
                Ok(Lane {
                    url: format!("{base}/v1/chat").into(),
                    headers,
                    body: Bytes::from(body.to_string()),
                    wire: Wire::Switchboard,
                })
            }
        }
    }
}

/// One streamed turn, read to the end of the response so the connection goes
/// back to the pool.
async fn turn(client: &reqwest::Client, lane: &Lane) -> Result<TurnTiming, String> {
    let start = Instant::now();
    let response = client
        .post(&*lane.url)
        .headers(lane.headers.clone())
        .body(lane.body.clone())
        .send()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Err(format!("HTTP {status}: {}", snippet(&body)));
    }
    let mut response = response;
    let mut scanner = Scanner::new(lane.wire);
    let mut ttft = None;
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the stream: {e}"))? {
        let progress = scanner.feed(&chunk);
        if ttft.is_none() && progress.token {
            ttft = Some(start.elapsed());
        }
        if let Some(error) = &progress.error {
            return Err(format!("error event: {}", snippet(error.as_bytes())));
        }
    }
    let total = start.elapsed();
    if !scanner.progress().end {
        return Err("the stream ended without its end event".to_owned());
    }
    let ttft = ttft.ok_or("the stream ended without a token")?;
    Ok(TurnTiming { ttft, total })
}
