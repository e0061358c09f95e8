//! Percentiles and the Markdown rows of the realtime benchmarks. Samples are
//! milliseconds as `f64`, since some figures are differences that can be
//! negative (a subscriber served before the sender's own stream).

/// Nearest-rank percentile of sorted samples; `p` in 0..=100.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The median (nearest rank) of unsorted values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    percentile(&sorted, 50.0)
}

/// p50, p90, p99 and max of a set of milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ms {
    pub n: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Ms {
    pub fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        Self {
            n: sorted.len(),
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied(),
        }
    }
}

/// The header of a table of `Ms` rows.
pub fn header(first: &str) -> String {
    format!("| {first} | samples | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
}

/// One row of such a table.
pub fn row(name: &str, ms: &Ms) -> String {
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.3}"));
    format!(
        "| {name} | {} | {} | {} | {} | {} |\n",
        ms.n,
        cell(ms.p50),
        cell(ms.p90),
        cell(ms.p99),
        cell(ms.max)
    )
}

/// Milliseconds between two instants, negative when `to` is earlier.
pub fn ms_between(from: std::time::Instant, to: std::time::Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64() * 1000.0
    } else {
        -((from - to).as_secs_f64() * 1000.0)
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn summary_of_milliseconds() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let ms = Ms::of(&samples);
        assert_eq!((ms.n, ms.p50, ms.p99, ms.max), (100, Some(50.0), Some(99.0), Some(100.0)));
        assert_eq!(Ms::of(&[]).p50, None);
        assert!(row("x", &ms).starts_with("| x | 100 | 50.000 | 90.000 | 99.000 | 100.000 |"));
    }

    #[test]
    fn median_of_unsorted_values() {
        assert_eq!(median(&[0.9, 0.7, 1.1]), Some(0.9));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn signed_differences() {
        let a = Instant::now();
        let b = a + Duration::from_micros(1500);
        assert!((ms_between(a, b) - 1.5).abs() < 1e-9);
        assert!((ms_between(b, a) + 1.5).abs() < 1e-9);
    }
}
