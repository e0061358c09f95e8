//! Turns samples into the Markdown that goes into `docs/benchmarks.md`: the
//! table, the exact command, the machine and the date, so a number is never
//! quoted without what produced it.

use crate::load::{Results, Samples, Throughput};
use crate::stats::percentile;
use crate::RunArgs;
use std::time::Duration;

/// The project's targets (docs/benchmarks.md): what a streamed turn may add to
/// time to first token at concurrency 1, and the throughput at concurrency 50.
const TTFT_TARGET_MS: f64 = 0.5;
const TURNS_TARGET: f64 = 1500.0;
const TURNS_TARGET_CONCURRENCY: u32 = 50;

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

fn row(name: &str, direct: Option<f64>, through: Option<f64>) -> String {
    format!("| {name} | {} | {} | {} |", ms(direct), ms(through), diff(direct, through))
}

fn latency_rows(label: &str, direct: &Samples, through: &Samples, out: &mut Vec<String>) {
    let (td, ts) = (Summary::of(&direct.ttft), Summary::of(&through.ttft));
    out.push(row(&format!("{label} time to first token p50 (ms)"), td.p50, ts.p50));
    out.push(row(&format!("{label} time to first token p90 (ms)"), td.p90, ts.p90));
    out.push(row(&format!("{label} time to first token p99 (ms)"), td.p99, ts.p99));
    out.push(row(&format!("{label} time to first token mean (ms)"), td.mean, ts.mean));
    let (fd, fs) = (Summary::of(&direct.total), Summary::of(&through.total));
    out.push(row(&format!("{label} whole turn p50 (ms)"), fd.p50, fs.p50));
    out.push(row(&format!("{label} whole turn mean (ms)"), fd.mean, fs.mean));
}

fn throughput_cell(t: &Throughput) -> String {
    format!("{:.0}", t.turns_per_sec())
}

/// Renders the whole report.
pub fn render(args: &RunArgs, r: &Results, upstream_calls: u64, caveats: &[String]) -> String {
    let c = args.concurrency;
    let through = format!("through {}", args.through());
    let mut lines = vec![
        format!("| measure | straight to upstream | {through} | added |"),
        "| --- | ---: | ---: | ---: |".to_owned(),
    ];
    latency_rows("c=1", &r.c1_direct, &r.c1_switchboard, &mut lines);
    let ratio = if r.direct.turns_per_sec() > 0.0 {
        format!("{:.0} % of direct", 100.0 * r.switchboard.turns_per_sec() / r.direct.turns_per_sec())
    } else {
        "–".to_owned()
    };
    lines.push(format!(
        "| c={c} streamed turns/s ({} s) | {} | {} | {ratio} |",
        args.seconds,
        throughput_cell(&r.direct),
        throughput_cell(&r.switchboard)
    ));
    lines.push(format!(
        "| c={c} completed turns / errors | {} / {} | {} / {} | |",
        r.direct.completed, r.direct.errors, r.switchboard.completed, r.switchboard.errors
    ));
    latency_rows(&format!("c={c}"), &r.direct.samples, &r.switchboard.samples, &mut lines);

    let mut text = String::new();
    text.push_str(&format!("{}\n\n", lines.join("\n")));
    text.push_str(&targets(args, r));
    for (name, t) in [("straight to upstream", &r.direct), (through.as_str(), &r.switchboard)] {
        if let Some(e) = &t.first_error {
            text.push_str(&format!("First error {name}: {e}\n\n"));
        }
    }
    text.push_str(&format!(
        "- measured turns at c=1: {} per target (after warm-up), interleaved; {} content chunks per answer\n",
        r.c1_direct.ttft.len(),
        args.chunks
    ));
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

/// The project's targets next to what this run measured; a reading, not a test.
fn targets(args: &RunArgs, r: &Results) -> String {
    if args.relay {
        return "- the relay is not Switchboard and no target applies to it: it is the floor, what any server \
                between a widget and its model adds on this machine before doing any work of its own\n"
            .to_owned();
    }
    let verdict = |met: bool| if met { "met" } else { "not met" };
    let (d, s) = (Summary::of(&r.c1_direct.ttft), Summary::of(&r.c1_switchboard.ttft));
    let mut text = String::new();
    if let (Some(dp), Some(sp), Some(dm), Some(sm)) = (d.p50, s.p50, d.mean, s.mean) {
        let (p50, mean) = (sp - dp, sm - dm);
        text.push_str(&format!(
            "- target: at most {TTFT_TARGET_MS} ms added to time to first token at c=1; measured {p50:+.3} ms (p50), \
             {mean:+.3} ms (mean): {}\n",
            verdict(p50 <= TTFT_TARGET_MS && mean <= TTFT_TARGET_MS)
        ));
    }
    let rate = r.switchboard.turns_per_sec();
    let at = if args.concurrency == TURNS_TARGET_CONCURRENCY {
        verdict(rate >= TURNS_TARGET && r.switchboard.errors == 0).to_owned()
    } else {
        format!("not comparable (target is for c={TURNS_TARGET_CONCURRENCY})")
    };
    text.push_str(&format!(
        "- target: at least {TURNS_TARGET:.0} streamed turns/s at c={TURNS_TARGET_CONCURRENCY}; measured {rate:.0} at \
         c={} with {} errors: {at}\n",
        args.concurrency, r.switchboard.errors
    ));
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
}
