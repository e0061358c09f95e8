//! Turns samples into the Markdown that goes into `docs/benchmarks.md`: the
//! table, the exact command, the machine and the date, so a number is never
//! quoted without what produced it.

use crate::load::{Measured, Results, Samples};
use crate::stats::percentile;
use crate::RunArgs;
use std::time::Duration;

/// The names of what a run measures besides the upstream itself.
pub const RELAY: &str = "the relay";
pub const SWITCHBOARD: &str = "Switchboard";
pub const PEER: &str = "the peer";

/// The project's targets (docs/benchmarks.md), as ratios to the relay measured
/// in the same run: what Switchboard's own work may add to time to first token
/// at c=1 beyond what the relay adds (p50, ms), its streamed turns/s at c=50
/// as a share of the relay's, and its time-to-first-token p99 at c=50 as a
/// multiple of the relay's.
const OWN_TTFT_TARGET_MS: f64 = 0.15;
const TURNS_SHARE_TARGET: f64 = 0.80;
const P99_MULTIPLE_TARGET: f64 = 1.5;
const TARGET_CONCURRENCY: u32 = 50;

fn mean(samples: &[Duration]) -> Option<Duration> {
    let n = u32::try_from(samples.len()).ok().filter(|&n| n > 0)?;
    Some(samples.iter().sum::<Duration>() / n)
}

/// The figures of one sample set, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    mean: Option<f64>,
}

impl Summary {
    fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        Self {
            p50: ms(percentile(&sorted, 50.0)),
            p90: ms(percentile(&sorted, 90.0)),
            p99: ms(percentile(&sorted, 99.0)),
            mean: ms(mean(samples)),
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.3}"))
}

fn diff(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.3}", b - a),
        _ => "–".to_owned(),
    }
}

/// A row: the direct figure, then each server's figure and what it adds.
fn row(name: &str, direct: Option<f64>, through: &[Option<f64>]) -> String {
    let cells: Vec<String> = through.iter().map(|&t| format!("{} | {}", ms(t), diff(direct, t))).collect();
    format!("| {name} | {} | {} |", ms(direct), cells.join(" | "))
}

/// A figure of a summary, by name.
type Pick = (&'static str, fn(&Summary) -> Option<f64>);
/// The samples a set of rows is about, by name, with the figures it shows.
type RowSet = (&'static str, fn(&Samples) -> &[Duration], &'static [Pick]);

const PICKS: [Pick; 4] = [("p50", |s| s.p50), ("p90", |s| s.p90), ("p99", |s| s.p99), ("mean", |s| s.mean)];
const ROW_SETS: [RowSet; 2] =
    [("time to first token", |s| &s.ttft, &PICKS), ("whole turn", |s| &s.total, &[PICKS[0], PICKS[3]])];

fn latency_rows(label: &str, direct: &Samples, through: &[&Samples], out: &mut Vec<String>) {
    for (measure, of, picks) in ROW_SETS {
        let d = Summary::of(of(direct));
        let t: Vec<Summary> = through.iter().map(|s| Summary::of(of(s))).collect();
        for (what, pick) in picks {
            let cells: Vec<_> = t.iter().map(pick).collect();
            out.push(row(&format!("{label} {measure} {what} (ms)"), pick(&d), &cells));
        }
    }
}

/// Renders the whole report.
pub fn render(args: &RunArgs, r: &Results, upstream_calls: u64, caveats: &[String]) -> String {
    let c = args.concurrency;
    let mut header = "| measure | straight to upstream |".to_owned();
    let mut rule = "| --- | ---: |".to_owned();
    for m in &r.through {
        header.push_str(&format!(" through {} | added |", m.name));
        rule.push_str(" ---: | ---: |");
    }
    let mut lines = vec![header, rule];
    let c1: Vec<&Samples> = r.through.iter().map(|m| &m.c1).collect();
    latency_rows("c=1", &r.direct.c1, &c1, &mut lines);
    let direct_rate = r.direct.load.turns_per_sec();
    let rates: Vec<String> = r
        .through
        .iter()
        .map(|m| {
            let rate = m.load.turns_per_sec();
            let share = if direct_rate > 0.0 {
                format!("{:.0} % of direct", 100.0 * rate / direct_rate)
            } else {
                "–".into()
            };
            format!("{rate:.0} | {share}")
        })
        .collect();
    lines.push(format!(
        "| c={c} streamed turns/s ({} s) | {direct_rate:.0} | {} |",
        args.seconds,
        rates.join(" | ")
    ));
    let counts: Vec<String> =
        r.through.iter().map(|m| format!("{} / {} | ", m.load.completed, m.load.errors)).collect();
    lines.push(format!(
        "| c={c} completed turns / errors | {} / {} | {}|",
        r.direct.load.completed,
        r.direct.load.errors,
        counts.concat()
    ));
    let cpu: Vec<String> = r
        .through
        .iter()
        .map(|m| {
            m.load.cpu_per_turn().map_or_else(|| "–".to_owned(), |d| format!("{:.0}", d.as_secs_f64() * 1e6))
        })
        .map(|cell| format!("{cell} | "))
        .collect();
    lines.push(format!("| c={c} the server's CPU per turn (µs) | – | {}|", cpu.concat()));
    let loaded: Vec<&Samples> = r.through.iter().map(|m| &m.load.samples).collect();
    latency_rows(&format!("c={c}"), &r.direct.load.samples, &loaded, &mut lines);

    let mut text = String::new();
    text.push_str(&format!("{}\n\n", lines.join("\n")));
    text.push_str(&ratios(args, r));
    for m in std::iter::once(&r.direct).chain(&r.through) {
        if let Some(e) = &m.load.first_error {
            text.push_str(&format!("First error at c={c} to {}: {e}\n\n", m.name));
        }
    }
    text.push_str(&format!(
        "- measured turns at c=1: {} per target (after warm-up), interleaved; {} content chunks per answer\n",
        r.direct.c1.ttft.len(),
        args.chunks
    ));
    if let Some(n) = args.turns_per_session {
        text.push_str(&format!(
            "- throughput workers open a new session after every {n} turns, inside the window\n"
        ));
    }
    text.push_str(&format!("- completions served by the fake upstream: {upstream_calls}\n"));
    for caveat in caveats {
        text.push_str(&format!("- server log: {caveat}\n"));
    }
    text.push_str(&provenance());
    text
}

/// The command, the machine and the date, as the closing lines of a report.
pub fn provenance() -> String {
    format!(
        "- command: `{}`\n- machine: {} cores (nproc), {}\n- date: {}\n",
        command_line(),
        nproc(),
        cpu_model(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

/// Switchboard's mean wait for its store at concurrency `c`, as a report
/// line; nothing if none was read.
fn store_wait_line(c: &str, waits: &[crate::scrape::StoreWait]) -> String {
    if waits.is_empty() {
        return String::new();
    }
    let waits: Vec<String> = waits
        .iter()
        .map(|w| format!("`{}` {:.3} ms ({} calls)", w.op, w.mean.as_secs_f64() * 1000.0, w.count))
        .collect();
    format!(
        "- c={c} Switchboard's mean wait for its store, from its `/metrics` over the phase (the queue for \
         SQLite's one writer included): {}\n",
        waits.join(", ")
    )
}

/// What `m` adds to time to first token at c=1, at the median, in ms.
fn added_p50(direct: &Measured, m: &Measured) -> Option<f64> {
    Some(Summary::of(&m.c1.ttft).p50? - Summary::of(&direct.c1.ttft).p50?)
}

/// Switchboard against the relay, next to the project's targets, and the peer
/// against both; a reading, not a test.
fn ratios(args: &RunArgs, r: &Results) -> String {
    let verdict = |met: bool| if met { "met" } else { "not met" };
    let c = args.concurrency;
    // The c=50 targets are set on workers that keep one session each.
    let tail = |met: bool| match (c == TARGET_CONCURRENCY, args.turns_per_session) {
        (true, None) => verdict(met).to_owned(),
        (false, _) => format!("not comparable (the target is for c={TARGET_CONCURRENCY})"),
        (true, Some(_)) => "not comparable (the target is for one session a worker)".to_owned(),
    };
    let mut text = String::new();
    let (relay, switchboard) = (r.get(RELAY), r.get(SWITCHBOARD));
    if let (Some(relay), Some(sb)) = (relay, switchboard) {
        if let (Some(a), Some(b)) = (added_p50(&r.direct, sb), added_p50(&r.direct, relay)) {
            let own = a - b;
            text.push_str(&format!(
                "- c=1 time to first token, p50: Switchboard adds {a:+.3} ms, the relay {b:+.3} ms; Switchboard's own \
                 work {own:+.3} ms (target at most {OWN_TTFT_TARGET_MS} ms): {}\n",
                verdict(own <= OWN_TTFT_TARGET_MS)
            ));
        }
        let (sr, rr) = (sb.load.turns_per_sec(), relay.load.turns_per_sec());
        if rr > 0.0 {
            let share = sr / rr;
            text.push_str(&format!(
                "- c={c} streamed turns/s: Switchboard {sr:.0}, the relay {rr:.0}: {:.0} % of the relay's (target at \
                 least {:.0} %, no errors): {}\n",
                100.0 * share,
                100.0 * TURNS_SHARE_TARGET,
                tail(share >= TURNS_SHARE_TARGET && sb.load.errors == 0)
            ));
        }
        let p99 = |m: &Measured| Summary::of(&m.load.samples.ttft).p99;
        if let (Some(sp), Some(rp)) = (p99(sb), p99(relay)) {
            let multiple = sp / rp;
            text.push_str(&format!(
                "- c={c} time to first token p99: Switchboard {sp:.3} ms, the relay {rp:.3} ms: {multiple:.2}× the \
                 relay's (target at most {P99_MULTIPLE_TARGET}×): {}\n",
                tail(multiple <= P99_MULTIPLE_TARGET)
            ));
        }
    } else if switchboard.is_some() {
        text.push_str("- no targets read: they are ratios to the relay, which this run left out\n");
    }
    if let Some(sb) = switchboard {
        text.push_str(&store_wait_line("1", &sb.c1_store_waits));
        text.push_str(&store_wait_line(&c.to_string(), &sb.load.store_waits));
    }
    if let Some(peer) = r.get(PEER) {
        let mut line = format!("- the peer ({}):", args.peer.as_deref().unwrap_or_default());
        if let Some(a) = added_p50(&r.direct, peer) {
            line.push_str(&format!(" adds {a:+.3} ms to time to first token at c=1 (p50),"));
        }
        line.push_str(&format!(" {:.0} streamed turns/s at c={c}", peer.load.turns_per_sec()));
        for other in [switchboard, relay].into_iter().flatten() {
            if let Some(a) = added_p50(&r.direct, other) {
                line.push_str(&format!(
                    "; {} adds {a:+.3} ms, {:.0}/s",
                    other.name,
                    other.load.turns_per_sec()
                ));
            }
        }
        text.push_str(&format!("{line}\n"));
    }
    text
}

pub fn print(args: &RunArgs, r: &Results, upstream_calls: u64, caveats: &[String]) {
    println!("{}", render(args, r, upstream_calls, caveats));
}

/// The command as typed, quoted where a shell would need it.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Same as `nproc`: the CPUs this process may run on.
fn nproc() -> String {
    std::thread::available_parallelism().map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&ms(&[7]), 1.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile::<Duration>(&[], 50.0), None);
    }

    #[test]
    fn mean_and_difference() {
        assert_eq!(mean(&ms(&[1, 2, 3])), Some(Duration::from_millis(2)));
        assert_eq!(mean(&[]), None);
        assert_eq!(diff(Some(0.2), Some(0.7)), "+0.500");
        assert_eq!(diff(None, Some(1.0)), "–");
    }

    fn measured(name: &str, ttft_us: &[u64], turns: u64) -> Measured {
        let ttft: Vec<Duration> = ttft_us.iter().map(|&u| Duration::from_micros(u)).collect();
        let samples = || Samples { ttft: ttft.clone(), total: ttft.clone() };
        let load = crate::load::Throughput {
            completed: turns,
            window: Duration::from_secs(10),
            samples: samples(),
            ..Default::default()
        };
        Measured { name: name.to_owned(), c1: samples(), c1_store_waits: Vec::new(), load }
    }

    fn args(cli: &[&str]) -> RunArgs {
        use clap::Parser;
        let mut argv = vec!["switchboard-bench", "run"];
        argv.extend_from_slice(cli);
        match crate::Cli::parse_from(argv).command {
            crate::Command::Run(args) => args,
            _ => unreachable!("parsed as run"),
        }
    }

    #[test]
    fn ratios_to_the_relay_read_against_the_targets() {
        let r = Results {
            direct: measured("the upstream", &[1000], 30_000),
            through: vec![
                measured(RELAY, &[1200, 1200, 10_000], 50_000),
                measured(SWITCHBOARD, &[1300, 1300, 14_000], 41_000),
            ],
        };
        let text = ratios(&args(&["--server-bin", "x"]), &r);
        assert!(
            text.contains(
                "Switchboard adds +0.300 ms, the relay +0.200 ms; Switchboard's own work +0.100 ms"
            ),
            "{text}"
        );
        assert!(text.contains("(target at most 0.15 ms): met"), "{text}");
        assert!(text.contains("Switchboard 4100, the relay 5000: 82 % of the relay's"), "{text}");
        assert!(text.contains("1.40× the relay's (target at most 1.5×): met"), "{text}");
        assert!(!text.contains("wait for its store"), "no waits read: no line");
        let mut r = r;
        r.through[1].load.store_waits = vec![crate::scrape::StoreWait {
            op: "begin_turn",
            mean: Duration::from_micros(2500),
            count: 9000,
        }];
        r.through[1].c1_store_waits =
            vec![crate::scrape::StoreWait { op: "begin_turn", mean: Duration::from_micros(190), count: 320 }];
        let text = ratios(&args(&["--server-bin", "x"]), &r);
        assert!(text.contains("- c=50 Switchboard's mean wait for its store, from its `/metrics` over the phase (the queue for SQLite's one writer included): `begin_turn` 2.500 ms (9000 calls)"), "{text}");
        assert!(text.contains("- c=1 Switchboard's mean wait for its store, from its `/metrics` over the phase (the queue for SQLite's one writer included): `begin_turn` 0.190 ms (320 calls)"), "{text}");

        let slow = Results {
            direct: measured("the upstream", &[1000], 30_000),
            through: vec![
                measured(RELAY, &[1100], 50_000),
                measured(SWITCHBOARD, &[1400, 1400, 30_000], 30_000),
            ],
        };
        let text = ratios(&args(&["--server-bin", "x", "--concurrency", "50"]), &slow);
        assert_eq!(text.matches("not met").count(), 3, "{text}");
        let text = ratios(&args(&["--server-bin", "x", "--concurrency", "10"]), &slow);
        assert_eq!(text.matches("not comparable (the target is for c=50)").count(), 2, "{text}");
        let text = ratios(&args(&["--server-bin", "x", "--turns-per-session", "4"]), &slow);
        assert_eq!(
            text.matches("not comparable (the target is for one session a worker)").count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn a_peer_is_read_next_to_switchboard_and_the_table_has_a_column_pair_each() {
        let r = Results {
            direct: measured("the upstream", &[1000], 30_000),
            through: vec![measured(SWITCHBOARD, &[1400], 20_000), measured(PEER, &[9000], 600)],
        };
        let a = args(&["--server-bin", "x", "--no-relay", "--peer", "http://127.0.0.1:4000/v1"]);
        let text = render(&a, &r, 3, &[]);
        assert!(
            text.contains(
                "| measure | straight to upstream | through Switchboard | added | through the peer | added |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| c=1 time to first token p50 (ms) | 1.000 | 1.400 | +0.400 | 9.000 | +8.000 |"),
            "{text}"
        );
        assert!(text.contains("no targets read: they are ratios to the relay"), "{text}");
        assert!(
            text.contains("the peer (http://127.0.0.1:4000/v1): adds +8.000 ms to time to first token at c=1 (p50), 60 streamed turns/s at c=50; Switchboard adds +0.400 ms, 2000/s"),
            "{text}"
        );
    }
}
