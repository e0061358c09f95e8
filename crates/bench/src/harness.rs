//! What every realtime subcommand does around its measurement: the options
//! that locate the server, the fake upstream and the server(s) started with
//! the subcommand's additions, Ctrl-C, and the shutdown (with the end of the
//! server's log when something failed) whatever happened in between.

use crate::error::{Context, Result};
use crate::fake::FakeUpstream;
use crate::server::{Server, Setup};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Path to the `switchboard` binary (e.g. target/release/switchboard).
    #[arg(long)]
    pub server_bin: PathBuf,
    /// Keep the server's temporary data directory and log instead of deleting them.
    #[arg(long)]
    pub keep_data: bool,
}

/// A started node as the measurement sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub base: String,
    pub pid: Option<u32>,
}

/// Caps that would refuse the benchmark's own connections, raised for all of
/// them: every connection comes from one address and few subjects.
pub fn realtime_setup(args: &ServerArgs, connections: u32) -> Setup {
    let cap = connections.saturating_add(100);
    Setup {
        connections: vec![
            format!("max_total = {cap}"),
            format!("max_per_ip = {cap}"),
            format!("max_pending_per_ip = {}", cap.min(1000)),
        ],
        tenant: vec![format!("max_connections_per_subject = {cap}")],
        keep_data: args.keep_data,
        ..Setup::default()
    }
}

/// A zero-delay or paced fake upstream on loopback.
pub async fn upstream(chunks: u32, gap: Duration) -> Result<FakeUpstream> {
    let upstream = FakeUpstream::start_paced("127.0.0.1:0".parse().context("loopback")?, chunks, gap).await?;
    eprintln!("fake upstream on http://{}/v1", upstream.addr());
    Ok(upstream)
}

/// Starts a server; if that fails, the ones already started are stopped.
pub async fn start(
    args: &ServerArgs,
    upstream: &FakeUpstream,
    setup: &Setup,
    started: &mut Vec<Server>,
) -> Result<Node> {
    match Server::spawn_with(&args.server_bin, upstream.addr(), setup).await {
        Ok(server) => {
            eprintln!("switchboard on {} (data in {})", server.base_url(), server.data_dir().display());
            if let (Some(pid), Some(limits)) =
                (server.pid(), server.pid().and_then(|p| crate::sys::open_files(Some(p))))
            {
                eprintln!("  pid {pid}, open-files limit {:?}", limits.soft);
            }
            let node = Node { base: server.base_url().to_owned(), pid: server.pid() };
            started.push(server);
            Ok(node)
        }
        Err(e) => {
            for server in started.iter_mut() {
                let _ = server.stop().await;
            }
            Err(e)
        }
    }
}

/// Runs `work` (bounded by `limit` and Ctrl-C), then stops every server.
pub async fn finish<T>(
    servers: &mut [Server],
    limit: Duration,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let outcome = tokio::select! {
        r = tokio::time::timeout(limit, work) => r.unwrap_or_else(|_| Err(format!("did not finish within {limit:?}").into())),
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    let mut stopped = Ok(());
    for server in servers.iter_mut() {
        let r = server.stop().await;
        if stopped.is_ok() {
            stopped = r;
        }
        if outcome.is_err() {
            server.print_log_tail(30);
        }
        for caveat in server.caveats() {
            eprintln!("server log: {caveat}");
        }
    }
    let value = outcome?;
    stopped.map(|()| value)
}

/// Serves `app` on `listen` in a task of the current runtime, without
/// Nagle's algorithm (small SSE writes and small answers would otherwise
/// wait on it plus delayed ACK, tens of ms); `accepted` runs for each new
/// connection. `what` names the server in errors.
pub async fn serve(
    what: &str,
    listen: std::net::SocketAddr,
    app: axum::Router,
    accepted: impl Fn() + Clone + Send + Sync + 'static,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(listen).await.context(&format!("binding the {what}"))?;
    let addr = listener.local_addr().context(&format!("reading the {what}'s address"))?;
    let listener = listener.tap_io(move |tcp| {
        accepted();
        let _ = tcp.set_nodelay(true);
    });
    let what = what.to_owned();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("{what} stopped: {e}");
        }
    });
    Ok((addr, task))
}
