//! The load generator: streamed turns straight to the fake upstream and through
//! Switchboard, timed from sending the request to the first token and to the end
//! of the stream. Every run is bounded in turns and in time; turns against the
//! two targets are interleaved at concurrency 1 so drift hits both alike.

use crate::api::{client, create_session, snippet, REQUEST_TIMEOUT};
use crate::error::{Context, Result};
use crate::fake::FakeUpstream;
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
}

impl Throughput {
    pub fn turns_per_sec(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }
}

/// Everything one `run` measured.
pub struct Results {
    pub c1_direct: Samples,
    pub c1_switchboard: Samples,
    pub direct: Throughput,
    pub switchboard: Throughput,
}

#[derive(Debug, Clone, Copy)]
struct TurnTiming {
    ttft: Duration,
    total: Duration,
}

/// Where turns go: both are one POST answered by a stream.
#[derive(Clone)]
pub(crate) enum Target {
    Direct { url: Arc<str>, body: Bytes },
    Switchboard { base: Arc<str> },
}

/// A target made ready for one worker (a Switchboard session of its own).
struct Lane {
    url: Arc<str>,
    headers: HeaderMap,
    body: Bytes,
    wire: Wire,
}

pub async fn measure(args: &RunArgs, upstream: &FakeUpstream, base_url: &str) -> Result<Results> {
    let client = client(args.concurrency as usize)?;
    let direct = Target::Direct {
        url: format!("http://{}/v1/chat/completions", upstream.addr()).into(),
        body: Bytes::from_static(
            br#"{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello, benchmark"}]}"#,
        ),
    };
    let through = Target::Switchboard { base: base_url.into() };

    eprintln!("concurrency 1: {WARMUP_TURNS} warm-up + {} measured turns per target", args.turns_c1);
    let (c1_direct, c1_switchboard) = concurrency_one(&client, &direct, &through, args.turns_c1).await?;

    eprintln!("throughput straight to the upstream: {} workers for {} s", args.concurrency, args.seconds);
    let direct = throughput(&client, &direct, args).await?;
    eprintln!("throughput through {}: {} workers for {} s", args.through(), args.concurrency, args.seconds);
    let switchboard = throughput(&client, &through, args).await?;
    Ok(Results { c1_direct, c1_switchboard, direct, switchboard })
}

async fn concurrency_one(
    client: &reqwest::Client,
    direct: &Target,
    through: &Target,
    turns: u32,
) -> Result<(Samples, Samples)> {
    let direct = direct.lane(client).await?;
    let through = through.lane(client).await?;
    let (mut d, mut s) = (Samples::default(), Samples::default());
    for i in 0..WARMUP_TURNS + turns {
        let a = turn(client, &direct).await.map_err(|e| format!("direct turn {i}: {e}"))?;
        let b = turn(client, &through).await.map_err(|e| format!("turn {i} through Switchboard: {e}"))?;
        if i >= WARMUP_TURNS {
            d.push(a);
            s.push(b);
        }
    }
    Ok((d, s))
}

async fn throughput(client: &reqwest::Client, target: &Target, args: &RunArgs) -> Result<Throughput> {
    throughput_of(client, target, args.concurrency as usize, args.window()).await
}

/// C workers, each on its own lane: ready (session, one warm-up turn), released
/// together, then turns back to back until the window closes. Only turns that
/// end inside the window count.
pub(crate) async fn throughput_of(
    client: &reqwest::Client,
    target: &Target,
    workers: usize,
    window: Duration,
) -> Result<Throughput> {
    let barrier = Arc::new(Barrier::new(workers));
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (client, target, barrier) = (client.clone(), target.clone(), barrier.clone());
        set.spawn(async move { worker(client, target, barrier, window).await });
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
) -> Result<Throughput> {
    // A failed setup must still reach the barrier, or the others wait forever.
    let ready = async {
        let lane = target.lane(&client).await?;
        turn(&client, &lane).await.map_err(|e| format!("warm-up turn: {e}"))?;
        Ok::<_, crate::error::Error>(lane)
    }
    .await;
    barrier.wait().await;
    let lane = ready?;
    let deadline = Instant::now() + window;
    let mut out = Throughput { window, succeeded: 1, ..Throughput::default() };
    while Instant::now() < deadline {
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

    /// Direct: the request as is. Switchboard: a new visitor session whose token
    /// and id go into the chat request, which is rendered once.
    async fn lane(&self, client: &reqwest::Client) -> Result<Lane> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match self {
            Target::Direct { url, body } => {
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
