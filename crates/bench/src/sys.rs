//! What the benchmarks read from `/proc` (Linux): a process's resident memory
//! and open-files limit. No libc: the limits are raised by the shell that
//! starts the server, and the load generator only checks its own.

/// Resident memory of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rss {
    /// `VmRSS`: everything resident.
    pub total_kib: u64,
    /// `RssAnon`: heap and stacks (`VmRSS` less mapped files and shared memory).
    pub anon_kib: u64,
}

pub fn rss(pid: u32) -> Option<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&text)
}

fn parse_rss(status: &str) -> Option<Rss> {
    let kib = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Rss { total_kib: kib("VmRSS:")?, anon_kib: kib("RssAnon:").unwrap_or(0) })
}

/// CPU time a process's threads have run so far, in nanoseconds (the sum of
/// `/proc/<pid>/task/*/schedstat`; threads that already exited are not
/// counted). `pid` None: this process.
pub fn cpu_ns(pid: Option<u32>) -> Option<u64> {
    let dir = pid.map_or_else(|| "/proc/self/task".to_owned(), |p| format!("/proc/{p}/task"));
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        total += thread_ns(&entry.path()).unwrap_or(0);
    }
    Some(total)
}

/// CPU time (ns) of this process's thread named `name`, if it has one.
pub fn thread_cpu_ns(name: &str) -> Option<u64> {
    std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|entry| {
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim_end() == name).then(|| thread_ns(&entry.path())).flatten()
    })
}

/// The first field of a thread's `schedstat`: time spent on a CPU, in ns.
fn thread_ns(task: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(task.join("schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Soft and hard open-files limits of a process (`None` for unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// `pid` None: this process.
pub fn open_files(pid: Option<u32>) -> Option<OpenFiles> {
    let path = pid.map_or_else(|| "/proc/self/limits".to_owned(), |p| format!("/proc/{p}/limits"));
    parse_limits(&std::fs::read_to_string(path).ok()?)
}

fn parse_limits(text: &str) -> Option<OpenFiles> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let value = |v: Option<&str>| match v? {
        "unlimited" => Some(None),
        n => n.parse().ok().map(Some),
    };
    Some(OpenFiles { soft: value(fields.next())?, hard: value(fields.next())? })
}

/// Checks that this process may open `needed` files, with a message that says
/// how to fix it when it may not.
pub fn ensure_open_files(needed: u64) -> crate::error::Result<()> {
    let Some(limits) = open_files(None) else { return Ok(()) };
    match limits.soft {
        Some(soft) if soft < needed => Err(format!(
            "this run opens about {needed} sockets but the open-files limit is {soft} (hard limit {}): \
             raise it first, e.g. `ulimit -n {}`, or ask for fewer connections",
            limits.hard.map_or_else(|| "unlimited".to_owned(), |h| h.to_string()),
            limits.hard.map_or(needed, |h| h.max(needed)),
        )
        .into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_from_a_status_file() {
        let status = "Name:\tswitchboard\nVmRSS:\t   12345 kB\nRssAnon:\t    9000 kB\nRssFile:\t3345 kB\n";
        assert_eq!(parse_rss(status), Some(Rss { total_kib: 12345, anon_kib: 9000 }));
        assert_eq!(parse_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_the_open_files_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max processes             unlimited            unlimited            processes\n\
                    Max open files            1024                 20000                files\n";
        assert_eq!(parse_limits(text), Some(OpenFiles { soft: Some(1024), hard: Some(20000) }));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_limits(text), Some(OpenFiles { soft: None, hard: None }));
    }

    #[test]
    fn this_process_has_a_status_and_limits() {
        assert!(rss(std::process::id()).unwrap().total_kib > 0);
        assert!(open_files(None).is_some());
        assert!(cpu_ns(None).unwrap() > 0);
    }

    #[test]
    fn a_named_thread_has_its_own_cpu_time() {
        let (ready, wait) = std::sync::mpsc::channel();
        let (done, stop) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::Builder::new()
            .name("sys-test-busy".to_owned())
            .spawn(move || {
                let until = std::time::Instant::now() + std::time::Duration::from_millis(5);
                while std::time::Instant::now() < until {}
                ready.send(()).unwrap();
                stop.recv().unwrap();
            })
            .unwrap();
        wait.recv().unwrap();
        assert!(thread_cpu_ns("sys-test-busy").unwrap() > 0);
        assert_eq!(thread_cpu_ns("no-such-thread"), None);
        done.send(()).unwrap();
        busy.join().unwrap();
    }
}
