//! `switchboard-bench fanout`: how long a streamed delta takes to reach every
//! SSE subscriber of one session (target: 100 subscribers within 2 ms p99).
//! One subscriber first (the path without fan-out), then N; the same turns
//! through the paced fake upstream for both. See `deltas` for the clock.

use crate::api::{self, Visitor};
use crate::deltas::{self, Measured, Subscriber};
use crate::error::Result;
use crate::harness::{self, ServerArgs};
use crate::stats::{self, Ms};
use std::time::Duration;

const TARGET_SUBSCRIBERS: u32 = 100;
const TARGET_P99_MS: f64 = 2.0;

#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// SSE subscribers of the one session in the second phase.
    #[arg(long, default_value_t = TARGET_SUBSCRIBERS, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub subscribers: u32,
    /// Measured turns per phase (after 5 unmeasured ones).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub turns: u32,
    /// Content chunks per answer.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub chunks: u32,
    /// Milliseconds the fake upstream waits between content chunks.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub gap_ms: u64,
}

const WARMUP: u32 = 5;

pub async fn run(args: FanoutArgs) -> Result<()> {
    let upstream = harness::upstream(args.chunks, Duration::from_millis(args.gap_ms)).await?;
    let setup = harness::realtime_setup(&args.server, args.subscribers + 2);
    let mut servers = Vec::new();
    let node = harness::start(&args.server, &upstream, &setup, &mut servers).await?;
    let per_turn = Duration::from_millis(args.gap_ms * u64::from(args.chunks)) + Duration::from_millis(50);
    let limit = per_turn * 2 * (args.turns + WARMUP) + Duration::from_secs(120);
    let (one, many) = harness::finish(&mut servers, limit, async {
        let client = api::streaming_client(args.subscribers as usize + 4)?;
        let visitor = Visitor::create(&client, &node.base).await?;
        let subs = |n: u32| vec![Subscriber { group: 0, base: node.base.clone() }; n as usize];
        eprintln!("1 subscriber: {WARMUP} + {} turns", args.turns);
        let pids: Vec<u32> = node.pid.into_iter().collect();
        let (one_sub, many_subs) = (subs(1), subs(args.subscribers));
        let plan = |subscribers| deltas::Plan {
            chat_base: &node.base,
            visitor: &visitor,
            subscribers,
            server_pids: &pids,
            warmup: WARMUP,
            turns: args.turns,
        };
        let one = deltas::measure(&client, &upstream, &plan(&one_sub)).await?;
        eprintln!("{} subscribers: {WARMUP} + {} turns", args.subscribers, args.turns);
        let many = deltas::measure(&client, &upstream, &plan(&many_subs)).await?;
        Ok((one, many))
    })
    .await?;
    println!("{}", render(&args, &one, &many));
    Ok(())
}

fn render(args: &FanoutArgs, one: &Measured, many: &Measured) -> String {
    let n = args.subscribers;
    let of =
        |m: &Measured, f: fn(&deltas::Sample) -> f64| Ms::of(&m.samples.iter().map(f).collect::<Vec<_>>());
    let (each, last) = deltas::spread(&many.samples, 0);
    let many_up = of(many, |s| s.from_upstream_ms);
    let mut text = stats::header("delay of a delta");
    text.push_str(&stats::row(
        "upstream chunk → sender's own chat stream (1-subscriber phase)",
        &Ms::of(&one.direct_ms),
    ));
    text.push_str(&stats::row("upstream chunk → the 1 subscriber", &of(one, |s| s.from_upstream_ms)));
    text.push_str(&stats::row(
        "… less the sender's own stream (1 subscriber)",
        &of(one, |s| s.minus_direct_ms),
    ));
    text.push_str(&stats::row(
        &format!("upstream chunk → sender's own chat stream ({n}-subscriber phase)"),
        &Ms::of(&many.direct_ms),
    ));
    text.push_str(&stats::row(&format!("upstream chunk → each of {n} subscribers"), &many_up));
    text.push_str(&stats::row(
        &format!("… less the sender's own stream ({n} subscribers)"),
        &of(many, |s| s.minus_direct_ms),
    ));
    text.push_str(&stats::row(&format!("first of {n} subscribers → each"), &Ms::of(&each)));
    text.push_str(&stats::row(&format!("first of {n} subscribers → last (per delta)"), &Ms::of(&last)));
    text.push('\n');
    let missing = |m: &Measured| m.expected.saturating_sub(m.samples.len());
    text.push_str(&format!(
        "- deliveries: {} of {} expected with 1 subscriber, {} of {} with {n} ({} and {} missing); {} measured turns of {} chunks {} ms apart per phase, {WARMUP} warm-up turns before each\n",
        one.samples.len(), one.expected, many.samples.len(), many.expected, missing(one), missing(many),
        many.turns, args.chunks, args.gap_ms
    ));
    text.push_str(&deltas::cpu_line(many));
    if n == TARGET_SUBSCRIBERS {
        if let Some(p99) = many_up.p99 {
            text.push_str(&format!(
                "- target: a delta reaches {TARGET_SUBSCRIBERS} subscribers within {TARGET_P99_MS} ms p99 (upstream chunk → each subscriber); measured {p99:.3} ms: {}\n",
                stats::verdict(p99 <= TARGET_P99_MS && missing(many) == 0)
            ));
        }
    } else {
        text.push_str(&format!("- target: not comparable (it is for {TARGET_SUBSCRIBERS} subscribers)\n"));
    }
    text.push_str(&crate::report::provenance());
    text
}
