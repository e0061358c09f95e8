//! The report of `switchboard-bench events`: the throughput windows (turns/s,
//! the server's CPU per turn, each round's on/off ratio) and the drains.

use super::{Drain, EventsArgs, Window, Windows, CATCH_UP, DRAIN_TARGET};
use crate::error::Result;
use crate::stats;
use std::time::Duration;

pub(super) fn render(
    args: &EventsArgs,
    throughput: Option<&Result<Windows>>,
    drains: &[(&str, Result<Drain>)],
) -> String {
    let mut text = String::new();
    match throughput {
        Some(Ok(w)) => text.push_str(&render_windows(args, w)),
        Some(Err(e)) => text.push_str(&format!("Throughput phase failed: {e}\n\n")),
        None => {}
    }
    if !drains.is_empty() {
        text.push_str(&render_drains(args, drains));
    }
    text.push_str(&crate::report::provenance());
    text
}

/// The window's server CPU time per completed turn, in µs.
fn cpu_per_turn(window: &Window) -> Option<f64> {
    per_turn(window, window.server_cpu?)
}

/// The receiver's, likewise.
fn receiver_per_turn(window: &Window) -> Option<f64> {
    per_turn(window, window.receiver_cpu?)
}

/// What the receiver alone leaves of the on/off ratio: at saturation the
/// machine's cores are spent on the off windows' turns, so each turn's
/// share is cores / (turns/s); the receiver's work for its event comes on
/// top of it, on the same cores, however cheap the server's part is.
fn receiver_cap(cores: usize, off_rate: f64, receiver_us: f64) -> String {
    if off_rate <= 0.0 {
        return String::new();
    }
    let machine_us = cores as f64 * 1e6 / off_rate;
    format!(
        "- the machine's CPU per turn with events off: {cores} cores / {off_rate:.0} turns/s = {machine_us:.0} µs; the receiver's {receiver_us:.0} µs on top of it alone caps on/off at {:.3} on this machine, before any of the server's work for the event\n",
        machine_us / (machine_us + receiver_us)
    )
}

fn per_turn(window: &Window, cpu: Duration) -> Option<f64> {
    let turns = window.throughput.completed;
    (turns > 0).then_some(cpu.as_secs_f64() * 1e6 / turns as f64)
}

fn render_windows(args: &EventsArgs, w: &Windows) -> String {
    let ms = |v: Option<Duration>| {
        v.map_or_else(|| "–".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
    };
    let pct = |samples: &[Duration], p: f64| {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        ms(stats::percentile(&sorted, p))
    };
    let mut text = String::from(
        "| window | events | streamed turns/s | completed / errors | turn p50 (ms) | turn p99 (ms) | server CPU per turn (µs) | events in when the workers stopped / turns by then | all events in, after the window |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    );
    for (i, win) in w.windows.iter().enumerate() {
        let t = &win.throughput;
        let (received, catch_up) = if win.events_on {
            (
                format!("{} / {}", win.received_at_end, win.turns_at_end),
                win.catch_up.map_or_else(
                    || format!("not within {} s", CATCH_UP.as_secs()),
                    |d| format!("{:.2} s", d.as_secs_f64()),
                ),
            )
        } else {
            ("–".to_owned(), "–".to_owned())
        };
        text.push_str(&format!(
            "| {} | {} | {:.0} | {} / {} | {} | {} | {} | {received} | {catch_up} |\n",
            i + 1,
            if win.events_on { "on" } else { "off" },
            t.turns_per_sec(),
            t.completed,
            t.errors,
            pct(&t.samples.total, 50.0),
            pct(&t.samples.total, 99.0),
            cpu_per_turn(win).map_or_else(|| "–".to_owned(), |us| format!("{us:.0}")),
        ));
    }
    let sum = |on: bool| -> (u64, f64) {
        let ws = w.windows.iter().filter(|x| x.events_on == on);
        ws.fold((0, 0.0), |(n, s), x| (n + x.throughput.completed, s + x.throughput.window.as_secs_f64()))
    };
    let ((off_n, off_s), (on_n, on_s)) = (sum(false), sum(true));
    let (off_rate, on_rate) = (off_n as f64 / off_s, on_n as f64 / on_s);
    text.push('\n');
    text.push_str(&format!(
        "- streamed turns/s at c={}: events off {off_rate:.0}, events on {on_rate:.0} (all windows of each); on/off = {:.3} ({:+.1} %)\n",
        args.concurrency,
        on_rate / off_rate,
        100.0 * (on_rate / off_rate - 1.0)
    ));
    let ratios: Vec<f64> = w
        .windows
        .chunks(2)
        .filter_map(|pair| match pair {
            [off, on] => Some(on.throughput.turns_per_sec() / off.throughput.turns_per_sec()),
            _ => None,
        })
        .collect();
    if let Some(median) = stats::median(&ratios) {
        text.push_str(&format!(
            "- on/off of each round (off window, then on): {}; median {median:.3}\n",
            ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let median = |on: bool, of: fn(&Window) -> Option<f64>| {
        let per_turn: Vec<f64> = w.windows.iter().filter(|x| x.events_on == on).filter_map(of).collect();
        stats::median(&per_turn)
    };
    if let (Some(off), Some(on)) = (median(false, cpu_per_turn), median(true, cpu_per_turn)) {
        text.push_str(&format!(
            "- the server's CPU per turn (median of windows; the on windows' until their events were in): events off {off:.0} µs, on {on:.0} µs ({:+.1} %)\n",
            100.0 * (on / off - 1.0)
        ));
    }
    if let Some(on) = median(true, receiver_per_turn) {
        text.push_str(&format!(
            "- the receiver's CPU per turn of the on windows (median; over the same span): {on:.0} µs — the tenant's backend's work, on this machine's cores too\n"
        ));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        text.push_str(&receiver_cap(cores, off_rate, on));
    }
    for (label, on) in [("off", false), ("on", true)] {
        let rates: Vec<String> = w
            .windows
            .iter()
            .filter(|x| x.events_on == on)
            .map(|x| format!("{:.0}", x.throughput.turns_per_sec()))
            .collect();
        text.push_str(&format!("- events {label}, per window: {}\n", rates.join(", ")));
    }
    let errors: u64 = w.windows.iter().map(|x| x.throughput.errors).sum();
    if let Some(e) = w.windows.iter().find_map(|x| x.throughput.first_error.as_ref()) {
        text.push_str(&format!("- first error ({errors} in all): {e}\n"));
    }
    text.push_str(&format!(
        "- `turn.completed` events: the receiver got {} distinct of {} turns the server completed (warm-up and late turns included), in {} requests ({} duplicates), {} without webhook-id or signature: {}\n",
        w.received,
        w.on_turns,
        w.requests,
        w.requests.saturating_sub(w.received as u64),
        w.unsigned,
        if w.received as u64 == w.on_turns { "all there" } else { "MISMATCH" }
    ));
    let sessions = match args.turns_per_session {
        Some(n) => format!("a new session after every {n} turns"),
        None => "a new session each per window".to_owned(),
    };
    text.push_str(&format!(
        "- {} rounds of {} s windows (off, then on), {} workers with {sessions}, {} content chunks per answer; both servers up throughout, on SQLite, with the same config but the events\n\n",
        args.rounds, args.seconds, args.concurrency, args.chunks
    ));
    text
}

fn render_drains(args: &EventsArgs, drains: &[(&str, Result<Drain>)]) -> String {
    let secs = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.3}"));
    let mut text = format!(
        "| backend | sessions created (s, per s) | held, resumed | resume's answer (ms) | resume's answer → first event (s) | → half (s) | → all {} (s) | resume sent → all (s) | events/s | received / requests |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        args.pending
    );
    let mut notes = String::new();
    for (backend, drain) in drains {
        let d = match drain {
            Ok(d) => d,
            Err(e) => {
                text.push_str(&format!("| {backend} | failed | | | | | | | | |\n"));
                notes.push_str(&format!("- {backend}: {e}\n"));
                continue;
            }
        };
        let rate = d.all.map_or_else(|| "–".to_owned(), |s| format!("{:.0}", d.created as f64 / s));
        text.push_str(&format!(
            "| {backend} | {:.1} s, {:.0} | {} | {:.1} | {} | {} | {} | {} | {rate} | {} / {} |\n",
            d.create_time.as_secs_f64(),
            f64::from(d.created) / d.create_time.as_secs_f64(),
            d.resumed.map_or_else(|| "?".to_owned(), |r| r.to_string()),
            d.resume_rtt.as_secs_f64() * 1000.0,
            secs(d.first),
            secs(d.half),
            secs(d.all),
            secs(d.all_from_sent),
            d.received,
            d.requests,
        ));
        let met =
            d.all.is_some_and(|s| s < DRAIN_TARGET.as_secs_f64()) && d.resumed == Some(u64::from(d.created));
        notes.push_str(&format!(
            "- target on {backend}: {} pending events delivered within {} s of the resume's answer; measured {}: {}\n",
            d.created,
            DRAIN_TARGET.as_secs(),
            d.all.map_or_else(|| format!("{} of them within {} s", d.received, args.drain_timeout), |s| format!("{s:.3} s")),
            stats::verdict(met)
        ));
        if d.sent_while_held > 0 || d.unsigned > 0 || d.resumed != Some(u64::from(d.created)) {
            notes.push_str(&format!(
                "- {backend}: {} requests while the endpoint was disabled, {} without webhook-id or signature, resumed {:?} of {} held\n",
                d.sent_while_held, d.unsigned, d.resumed, d.created
            ));
        }
    }
    text.push('\n');
    text.push_str(&notes);
    text.push_str(&format!(
        "- drain: `session.created` only; the receiver answered the first event 410, then {} sessions were created {} at a time, then it answered 204 and the operator resumed; timed to the first arrival of each distinct webhook-id\n",
        args.pending, args.create_concurrency
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::receiver_cap;

    #[test]
    fn the_receivers_share_of_the_machine_caps_the_ratio() {
        // 2 cores at 4,000 turns/s: 500 µs a turn; 25 µs more is 500/525.
        let line = receiver_cap(2, 4000.0, 25.0);
        assert!(line.contains("2 cores / 4000 turns/s = 500 µs"), "{line}");
        assert!(line.contains("caps on/off at 0.952"), "{line}");
        assert_eq!(receiver_cap(2, 0.0, 25.0), "");
    }
}
