//! Wiring: keys, store, tenants, providers, the turn engine and the HTTP
//! server, and the order they start and stop in.

use crate::config::Config;
use crate::realtime::connections::{Caps, CloseReason, Connections};
use crate::routes;
use crate::state::{AppState, Tenants};
use crate::tenancy::catalog::Catalog;
use crate::tokens::Signer;
use crate::{telemetry, tenancy};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::retention;
use switchboard_core::store::Store;
use switchboard_core::time::{Clock, SystemClock};
use switchboard_core::turn::{EngineConfig, TurnEngine};
use switchboard_store::{Durability, Keyring, StoreOptions};
use tokio_util::sync::CancellationToken;

/// Why the server could not start (printed, then exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn fail(context: &str) -> impl FnOnce(String) -> StartError + '_ {
    move |e| StartError(format!("{context}: {e}"))
}

/// Opens the database with the configured keys (creating the data directory
/// and generating missing keys), optionally migrating it first.
pub async fn open_store(config: &Config, migrate: bool) -> Result<Arc<dyn Store>, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| fail("cannot create data_dir")(e.to_string()))?;
    let keyring = load_keys(&config.data_dir, &config.encryption_keys_env, "encryption.keys", "content")?;
    let durability = if config.full_durability { Durability::Full } else { Durability::Normal };
    let options = StoreOptions { keyring, durability };
    if migrate {
        switchboard_store::migrate(&config.database_url, &options)
            .await
            .map_err(|e| fail("database")(e.to_string()))?;
    }
    switchboard_store::connect(&config.database_url, options)
        .await
        .map_err(|e| fail("database")(e.to_string()))
}

/// Keys from the environment variable, else from the data directory's file,
/// generated once (with a warning: losing the file loses what it protects).
pub(crate) fn load_keys(
    data_dir: &Path,
    env_var: &str,
    file: &str,
    what: &str,
) -> Result<Keyring, StartError> {
    let env_value = std::env::var(env_var).ok();
    let path = data_dir.join(file);
    let (keys, generated) = switchboard_store::load_or_generate(env_value.as_deref(), &path, "k1")
        .map_err(|e| fail(env_var)(e.to_string()))?;
    if generated {
        tracing::warn!(
            path = %path.display(),
            "no {env_var} given: generated a {what} key into the data directory; back it up (losing it loses what it protects) and give every node the same key"
        );
    }
    Ok(keys)
}

/// This node's id: configured, or generated once into the data directory.
fn node_id(config: &Config) -> Result<String, StartError> {
    if !config.node_id.is_empty() {
        return Ok(config.node_id.clone());
    }
    let path = config.data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = format!("node-{}", uuid::Uuid::new_v4().simple());
            std::fs::write(&path, &id).map_err(|e| fail("cannot write node_id")(e.to_string()))?;
            Ok(id)
        }
    }
}

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(mut config: Config) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| fail(&format!("cannot listen on {}", config.listen))(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| fail("listener")(e.to_string()))?;
    config.bound_to(addr).map_err(|e| StartError(e.to_string()))?;
    // Before the store and the bus: they register their series when opened.
    telemetry::install().map_err(StartError)?;
    tenancy::tools::init(config.tool_allow_private.clone());
    crate::demo_shop::init(addr).map_err(fail("demo shop"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open_store(&config, true).await?;
    tenancy::records::sync_config_tenants(store.as_ref(), &config.tenants, clock.now())
        .await
        .map_err(fail("database"))?;
    let records = store.list_tenants().await.map_err(|e| fail("database")(e.to_string()))?;
    let (catalog, tenants) = Catalog::start(&config.tenants, &records).map_err(StartError)?;
    let signing = load_keys(&config.data_dir, "SWITCHBOARD_SIGNING_KEY", "signing.key", "token signing")?;
    let audit_keys = load_keys(&config.data_dir, "SWITCHBOARD_AUDIT_KEY", "audit.key", "audit log")?;
    let node = node_id(&config)?;
    let tenants = Arc::new(Tenants::from_map(tenants));
    let mut engine_config = EngineConfig::new(&node);
    engine_config.outbound_of = Some(tenants.clone());
    engine_config.observer = Some(Arc::new(telemetry::TurnMetrics::new()));
    engine_config.prices = Arc::new(config.prices.clone());
    let bus =
        switchboard_bus::connect(&config.bus_url, &node).await.map_err(|e| fail("bus")(e.to_string()))?;
    let limiter = switchboard_bus::connect_limiter(&config.bus_url, clock.clone())
        .await
        .map_err(|e| fail("bus")(e.to_string()))?;
    let engine = TurnEngine::new(store.clone(), bus, clock.clone(), engine_config);
    let reaped = engine.reap_own_leases().await.map_err(|e| fail("database")(e.to_string()))?;
    if reaped > 0 {
        tracing::warn!(reaped, "answers left streaming by this node's last run are now marked interrupted");
    }
    engine.spawn_background();
    let identity = Arc::new(crate::identity::start(&config, &store, &clock).await.map_err(StartError)?);
    let config = Arc::new(config);
    let state = AppState {
        config: config.clone(),
        tenants,
        store,
        engine: engine.clone(),
        signer: Arc::new(Signer::new(signing)),
        audit_keys: Arc::new(audit_keys),
        limiter,
        kill_switch: Arc::new(AtomicBool::new(config.kill_switch)),
        identity,
        clock,
        connections: Connections::new(Caps {
            total: config.connections.max_total,
            per_ip: config.connections.max_per_ip,
            pending_per_ip: config.connections.max_pending_per_ip,
        }),
        web: Arc::new(crate::web::Assets::load()),
    };
    // The global kill switch set through the admin API outlives restarts.
    crate::admin::kill_switch::refresh_global(&state).await;
    // Retention (SPEC §11.6): each node sweeps the tenants it serves.
    let served = state.tenants.clone();
    engine.spawn_sweeper(retention::SWEEP_EVERY, move || {
        served.snapshot().values().map(|t| retention::Policy::of(t)).collect()
    });
    let connections = state.connections.clone();
    tracing::info!(
        %addr,
        node = %node,
        database = %redact_url(&config.database_url),
        bus = %redact_url(&config.bus_url),
        "switchboard started"
    );
    let signalled = shutdown_signal()?;
    println!("switchboard listening on http://{addr}");
    let stop = CancellationToken::new();
    let background = [
        tenancy::reload::spawn(state.clone(), catalog, stop.clone()),
        telemetry::spawn_upkeep(stop.clone()),
        crate::outbound::spawn(state.clone(), node.clone(), stop.clone()),
    ];
    let timeouts = crate::http::listen::RequestTimeouts {
        head: config.connections.request_head_timeout,
        body: config.connections.request_body_timeout,
    };
    let router = routes::router(state);
    let server = tokio::spawn(crate::http::listen::serve(listener, router, timeouts, stop.clone()));
    signalled.await;
    tracing::info!(grace = ?config.shutdown_grace, "shutting down: no new connections; letting turns finish");
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    engine.shutdown(config.shutdown_grace).await;
    // Turns are saved: subscribers end cleanly and resume on another node.
    connections.close_all(CloseReason::Shutdown);
    // Upgraded sockets are not the HTTP server's to wait for: let each send
    // its close frame (1001) before the process exits.
    if !connections.drained(Duration::from_secs(5)).await {
        tracing::warn!(open = connections.count(), "connections still open after shutdown; dropping them");
    }
    // Streams end with their turns; give the last bytes a moment to go out.
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("connections still open after shutdown; closing them"),
    }
    // The spans of the last turns and requests, when spans are exported.
    crate::otlp::flush().await;
    tracing::info!("stopped");
    Ok(())
}

/// Registers the SIGTERM/SIGINT handlers at once (before the server says it
/// is listening, so an early signal is never the default "die at once") and
/// returns a future that ends on the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| fail("signals")(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| fail("signals")(e.to_string()))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// A database URL without its password, for the log.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}
