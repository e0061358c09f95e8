//! The server's own account of where a turn waits in its store: `/metrics`
//! read just before and just after the c=1 phase and each throughput phase
//! (warm-up turns included), and the mean wait of each store operation of a turn
//! (`switchboard_store_operation_seconds`: the time its caller waits, the
//! queue for SQLite's one writer included). At c=50 the gap to the relay's
//! first token has been mostly `begin_turn`'s wait, and at c=1 that
//! write has been most of Switchboard's own work (docs/benchmarks.md), so
//! each run shows it beside the figures it explains. A server without that
//! series (the relay, a peer) shows nothing.

use std::time::Duration;

const SERIES: &str = "switchboard_store_operation_seconds";

/// The operations on a turn's path, reported in this order.
const OPS: [&str; 2] = ["begin_turn", "finish_message"];

/// Each of [`OPS`]' total wait (s) and count, as of one read of `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot([(f64, u64); OPS.len()]);

/// One operation's waits over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreWait {
    pub op: &'static str,
    pub mean: Duration,
    pub count: u64,
}

/// Reads `base`'s `/metrics`; `None` if it has none.
pub async fn snapshot(client: &reqwest::Client, base: &str) -> Option<Snapshot> {
    let response = client.get(format!("{base}/metrics")).send().await.ok()?.error_for_status().ok()?;
    parse(&response.text().await.ok()?)
}

/// The sums and counts of [`OPS`] in a Prometheus text exposition; `None`
/// if it has none of them.
pub fn parse(text: &str) -> Option<Snapshot> {
    let mut found = [(0.0, 0); OPS.len()];
    let mut any = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(SERIES) else { continue };
        let Some((labels, value)) = rest.rsplit_once(' ') else { continue };
        let Some(n) = OPS.iter().position(|op| labels.contains(&format!("op=\"{op}\""))) else { continue };
        if labels.starts_with("_sum{") {
            found[n].0 = value.parse().unwrap_or(0.0);
        } else if labels.starts_with("_count{") {
            found[n].1 = value.parse().unwrap_or(0);
        } else {
            continue;
        }
        any = true;
    }
    any.then_some(Snapshot(found))
}

/// Each operation's mean wait between two reads, if any ran between them.
pub fn waits(before: &Snapshot, after: &Snapshot) -> Vec<StoreWait> {
    OPS.iter()
        .zip(before.0.iter().zip(&after.0))
        .filter_map(|(&op, (&(sum0, n0), &(sum1, n1)))| {
            let count = n1.checked_sub(n0).filter(|&n| n > 0)?;
            let mean = Duration::try_from_secs_f64((sum1 - sum0).max(0.0) / count as f64).ok()?;
            Some(StoreWait { op, mean, count })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# TYPE switchboard_store_operation_seconds histogram\n\
        switchboard_store_operation_seconds_bucket{op=\"begin_turn\",le=\"0.001\"} 5\n\
        switchboard_store_operation_seconds_sum{op=\"begin_turn\"} 0.5\n\
        switchboard_store_operation_seconds_count{op=\"begin_turn\"} 1000\n\
        switchboard_store_operation_seconds_sum{op=\"lease_deliveries\"} 9\n\
        switchboard_store_operation_seconds_count{op=\"lease_deliveries\"} 9\n";

    const AFTER: &str = "switchboard_store_operation_seconds_sum{op=\"begin_turn\"} 2.5\n\
        switchboard_store_operation_seconds_count{op=\"begin_turn\"} 2000\n\
        switchboard_store_operation_seconds_sum{op=\"finish_message\"} 3\n\
        switchboard_store_operation_seconds_count{op=\"finish_message\"} 1000\n";

    #[test]
    fn the_mean_wait_of_each_turn_operation_over_a_window() {
        let (before, after) = (parse(BEFORE).unwrap(), parse(AFTER).unwrap());
        let waits = waits(&before, &after);
        assert_eq!(
            waits,
            [
                StoreWait { op: "begin_turn", mean: Duration::from_millis(2), count: 1000 },
                StoreWait { op: "finish_message", mean: Duration::from_millis(3), count: 1000 },
            ]
        );
    }

    #[test]
    fn a_server_without_the_series_has_no_snapshot() {
        assert_eq!(parse("relay_turns_total 5\n"), None);
        assert_eq!(parse(""), None);
        let idle = parse(BEFORE).unwrap();
        assert!(waits(&idle, &idle).is_empty(), "nothing ran in between");
    }
}
