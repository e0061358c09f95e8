//! Prometheus metrics (SPEC §4 `GET /metrics`): the recorder, installed without
//! a listener of its own and rendered on request; the middleware counting HTTP
//! requests; the observer the turn engine reports turn outcomes to (the
//! core knows nothing of metrics, `turns`); and the list of every series
//! (`series`). Recording costs a few atomic adds.

mod series;
mod turns;

pub use turns::TurnMetrics;

use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use switchboard_core::ErrorCode;
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds, from a fast local model's first token to a long answer.
const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Seconds, for what takes well under a millisecond when healthy (a store
/// operation, an event crossing the bus) and seconds when not.
const FAST_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Installs the process-wide recorder (once; later calls do nothing).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(switchboard_store::OPERATION_SECONDS.into()),
                &FAST_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("switchboard_bus_lag_seconds".into()), &FAST_BUCKETS)
        })
        .map_err(|e| format!("metrics: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics: {e}"))?;
    series::describe();
    series::register_fixed();
    switchboard_store::register_metrics();
    let _ = HANDLE.set(handle);
    Ok(())
}

/// Keeps histogram storage small between scrapes; runs until `stop`.
pub fn spawn_upkeep(stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Some(handle) = HANDLE.get() {
                handle.run_upkeep();
            }
        }
    })
}

/// `GET /metrics`: Prometheus text, only to peers in `metrics_allow`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::openapi::tag::SERVICE,
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 403, description = "The peer is not in `metrics_allow`")
    )
)]
pub async fn render(State(state): State<AppState>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    if !peer.is_some_and(|ip| state.config.metrics_allow.iter().any(|net| net.contains(&ip))) {
        tracing::info!(peer = ?peer, "metrics refused to a peer outside metrics_allow");
        return ApiError::new(ErrorCode::AuthForbidden).into_response();
    }
    let Some(handle) = HANDLE.get() else {
        return ApiError::internal("the metrics recorder is not installed").into_response();
    };
    series::at_scrape(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

/// Counts every answered request by route template (never the raw path, so
/// the series stay few), method and status class.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => "unmatched".to_owned(),
    };
    let method = method_label(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    // Until the response's headers: a stream's own length is the turn's.
    histogram!("switchboard_http_request_duration_seconds", "route" => route.clone(), "method" => method)
        .record(started.elapsed().as_secs_f64());
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("switchboard_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// A refusal sent some other way than an HTTP response (a WebSocket's
/// error frame): counted with the HTTP ones, by code.
pub fn refused(code: ErrorCode) {
    if (400..500).contains(&code.http_status()) {
        counter!("switchboard_refusals_total", "code" => code.as_str()).increment(1);
    }
}
