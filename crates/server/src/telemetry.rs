//! Prometheus metrics (SPEC §4 `GET /metrics`): the recorder, installed without
//! a listener of its own and rendered on request; the middleware counting HTTP
//! requests; and the observer the turn engine reports turn outcomes to (the
//! core knows nothing of metrics). Recording costs a few atomic adds.

use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use switchboard_core::turn::{AfterFailure, TurnObserver, TurnReport};
use switchboard_core::{ErrorCode, MessageStatus};
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds, from a fast local model's first token to a long answer.
const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Installs the process-wide recorder (once; later calls do nothing).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .map_err(|e| format!("metrics: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics: {e}"))?;
    describe();
    let _ = HANDLE.set(handle);
    Ok(())
}

fn describe() {
    describe_counter!(
        "switchboard_http_requests_total",
        "HTTP requests answered, by route, method and status class"
    );
    describe_histogram!(
        "switchboard_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP requests until the response's headers, by route and method"
    );
    describe_counter!(
        "switchboard_refusals_total",
        "Requests refused with an error envelope (4xx), by error code"
    );
    describe_counter!(
        "switchboard_tokens_total",
        "Tokens of finished turns, by tenant and kind (prompt, completion)"
    );
    describe_counter!("switchboard_turns_started_total", "Turns started (user message committed), by tenant");
    describe_counter!("switchboard_turns_finished_total", "Turns ended, by tenant and final status");
    describe_gauge!("switchboard_turns_in_flight", "Turns running on this node");
    describe_gauge!("switchboard_tenants", "Tenants this node serves");
    describe_gauge!("switchboard_connections_open", "Open SSE subscriptions and WebSockets on this node");
    describe_histogram!(
        "switchboard_turn_first_token_seconds",
        Unit::Seconds,
        "From the start of a turn to the provider's first text, by provider and model"
    );
    describe_histogram!(
        "switchboard_turn_duration_seconds",
        Unit::Seconds,
        "Whole turns, by provider and model"
    );
    describe_counter!("switchboard_provider_errors_total", "Turns a provider failed, by provider and kind");
    describe_counter!(
        "switchboard_tool_calls_total",
        "Tool calls, by tool and outcome (done, error, refused)"
    );
    describe_histogram!(
        "switchboard_tool_call_duration_seconds",
        Unit::Seconds,
        "Tool calls that ran, by tool"
    );
    describe_counter!(
        "switchboard_outbound_deliveries_total",
        "Tries of outbound events, by outcome (delivered, failed, dead, gone)"
    );
    describe_histogram!(
        "switchboard_outbound_delivery_seconds",
        Unit::Seconds,
        "From an event's commit to its delivery"
    );
    describe_gauge!("switchboard_outbox_deliveries", "The outbox's deliveries (every tenant's), by status");
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
pub async fn render(State(state): State<AppState>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    if !peer.is_some_and(|ip| state.config.metrics_allow.iter().any(|net| net.contains(&ip))) {
        tracing::info!(peer = ?peer, "metrics refused to a peer outside metrics_allow");
        return ApiError::new(ErrorCode::AuthForbidden).into_response();
    }
    let Some(handle) = HANDLE.get() else {
        return ApiError::internal("the metrics recorder is not installed").into_response();
    };
    gauge!("switchboard_turns_in_flight").set(state.engine.running() as f64);
    gauge!("switchboard_connections_open").set(f64::from(state.connections.count()));
    gauge!("switchboard_tenants").set(state.tenants.snapshot().len() as f64);
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

/// What the turn engine reports, as metrics.
#[derive(Debug, Default)]
pub struct TurnMetrics;

impl TurnObserver for TurnMetrics {
    fn started(&self, tenant_id: &str) {
        counter!("switchboard_turns_started_total", "tenant" => tenant_id.to_owned()).increment(1);
    }

    fn finished(&self, r: &TurnReport<'_>) {
        let status = r.status.as_str();
        counter!("switchboard_turns_finished_total", "tenant" => r.tenant_id.to_owned(), "status" => status)
            .increment(1);
        let provider = r.provider.to_owned();
        let model = r.model.to_owned();
        histogram!("switchboard_turn_duration_seconds", "provider" => provider.clone(), "model" => model.clone())
            .record(r.total.as_secs_f64());
        if let Some(first) = r.first_token {
            histogram!("switchboard_turn_first_token_seconds", "provider" => provider.clone(), "model" => model)
                .record(first.as_secs_f64());
        }
        for (kind, n) in [("prompt", r.usage.prompt_tokens), ("completion", r.usage.completion_tokens)] {
            counter!("switchboard_tokens_total", "tenant" => r.tenant_id.to_owned(), "kind" => kind)
                .increment(u64::from(n));
        }
        if r.status == MessageStatus::Error {
            let kind = match r.error {
                Some(ErrorCode::LlmTimeout) => "timeout",
                _ => "unavailable",
            };
            counter!("switchboard_provider_errors_total", "provider" => provider, "kind" => kind)
                .increment(1);
        }
    }

    fn provider_failed(&self, provider: &str, then: AfterFailure) {
        counter!("switchboard_provider_failures_total", "provider" => provider.to_owned(), "then" => then.as_str())
            .increment(1);
    }

    /// Tool names come from the tenants' configuration, so the label set
    /// stays bounded.
    fn tool_finished(&self, tool: &str, outcome: &'static str, took: Option<std::time::Duration>) {
        counter!("switchboard_tool_calls_total", "tool" => tool.to_owned(), "outcome" => outcome)
            .increment(1);
        if let Some(took) = took {
            histogram!("switchboard_tool_call_duration_seconds", "tool" => tool.to_owned())
                .record(took.as_secs_f64());
        }
    }
}
