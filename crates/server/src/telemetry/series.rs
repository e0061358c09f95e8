//! Every series the server exports: described once at start (so `# HELP`
//! says what each is), and the ones whose label values are known from the
//! configuration (tenants, their providers, models and fallbacks; fixed
//! outcome sets) registered at zero, so dashboards and alerts see them
//! before their first event. `docs/operations.md` lists the same series.
//!
//! Label values come only from bounded sets: configured tenants, provider
//! kinds, models and tools, route templates, error codes and fixed
//! outcomes; never a session, subject, message or turn id.

use crate::realtime::connections::Transport;
use crate::state::AppState;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use std::collections::BTreeMap;
use switchboard_core::turn::AfterFailure;

/// How a turn may end, as `switchboard_turns_finished_total` labels it.
const TURN_STATUSES: [&str; 4] = ["complete", "aborted", "error", "interrupted"];
/// `switchboard_outbound_deliveries_total{outcome}`.
const DELIVERY_OUTCOMES: [&str; 5] = ["delivered", "failed", "dead", "gone", "postponed"];

pub(super) fn describe() {
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
        "Requests refused with an error envelope (4xx, also as a WebSocket error frame), by error code"
    );
    describe_counter!(
        "switchboard_tokens_total",
        "Tokens of finished turns, by tenant and kind (prompt, completion)"
    );
    describe_counter!("switchboard_turns_started_total", "Turns started (user message committed), by tenant");
    describe_counter!("switchboard_turns_finished_total", "Turns ended, by tenant and final status");
    describe_gauge!("switchboard_turns_in_flight", "Turns running on this node");
    describe_gauge!("switchboard_tenants", "Tenants this node serves");
    describe_gauge!(
        "switchboard_connections_open",
        "Open long-lived connections on this node, by transport (sse, websocket)"
    );
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
        "switchboard_provider_failures_total",
        "Provider calls that failed before their first token (or were not made: circuit open), by provider and what the turn did next"
    );
    describe_counter!(
        "switchboard_provider_retries_total",
        "Provider calls made again after a failure before their first token, by provider"
    );
    describe_counter!(
        "switchboard_provider_fallbacks_total",
        "Turns that went on to a fallback provider, by the provider that failed and the one tried next"
    );
    describe_gauge!(
        "switchboard_provider_breaker_state",
        "Circuit breaker of each tenant's provider on this node: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        "switchboard_checkpoint_writes_total",
        "Checkpoints of streaming answers, by outcome (written, stale, failed)"
    );
    describe_histogram!(
        switchboard_store::OPERATION_SECONDS,
        Unit::Seconds,
        "Store operations on the turn, subscription and outbox paths, by operation"
    );
    describe_histogram!(
        "switchboard_bus_lag_seconds",
        Unit::Seconds,
        "From an event's publication on another node to its delivery here, by bus (cross-node clocks: approximate)"
    );
    describe_counter!(
        "switchboard_bus_reconnects_total",
        "Links to the cluster bus restored after an outage, by bus"
    );
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
        "Tries of outbound events, by outcome (delivered, failed, dead, gone, postponed)"
    );
    describe_histogram!(
        "switchboard_outbound_delivery_seconds",
        Unit::Seconds,
        "From an event's commit to its delivery"
    );
    describe_gauge!("switchboard_outbox_deliveries", "The outbox's deliveries (every tenant's), by status");
}

/// The series with fixed label sets, at zero (at start).
pub(super) fn register_fixed() {
    for outcome in DELIVERY_OUTCOMES {
        counter!("switchboard_outbound_deliveries_total", "outcome" => outcome).increment(0);
    }
    let _ = histogram!("switchboard_outbound_delivery_seconds");
}

/// Gauges read at each scrape, and the series of what the configuration
/// names (tenants come and go at run time, so this runs at each scrape: a
/// few registry lookups per tenant and provider).
pub(super) fn at_scrape(state: &AppState) {
    gauge!("switchboard_turns_in_flight").set(state.engine.running() as f64);
    let open = state.connections.count_by_transport();
    for transport in Transport::ALL {
        gauge!("switchboard_connections_open", "transport" => transport.as_str())
            .set(f64::from(open[transport as usize]));
    }
    let tenants = state.tenants.snapshot();
    gauge!("switchboard_tenants").set(tenants.len() as f64);
    let now = state.clock.now();
    for tenant in tenants.values() {
        let id = || tenant.id.clone();
        counter!("switchboard_turns_started_total", "tenant" => id()).increment(0);
        for status in TURN_STATUSES {
            counter!("switchboard_turns_finished_total", "tenant" => id(), "status" => status).increment(0);
        }
        for kind in ["prompt", "completion"] {
            counter!("switchboard_tokens_total", "tenant" => id(), "kind" => kind).increment(0);
        }
        // Two routes of one provider and model (other base URLs, keys)
        // share a series: it shows the worse of their breakers.
        let mut breakers: BTreeMap<(&str, &str), u8> = BTreeMap::new();
        let mut previous: Option<&str> = None;
        for route in tenant.routes() {
            let (kind, model) = (route.provider.kind(), route.provider.model());
            provider_series(kind, model);
            let level = breakers.entry((kind, model)).or_default();
            *level = (*level).max(route.breaker.circuit(now).level());
            if let Some(from) = previous {
                counter!("switchboard_provider_fallbacks_total", "from" => from.to_owned(), "to" => kind.to_owned())
                    .increment(0);
            }
            previous = Some(kind);
        }
        for ((kind, model), level) in breakers {
            let (provider, model) = (kind.to_owned(), model.to_owned());
            gauge!("switchboard_provider_breaker_state", "tenant" => id(), "provider" => provider, "model" => model)
                .set(f64::from(level));
        }
    }
}

/// A configured provider's counters at zero and its histograms registered.
fn provider_series(kind: &str, model: &str) {
    let provider = || kind.to_owned();
    counter!("switchboard_provider_retries_total", "provider" => provider()).increment(0);
    for then in AfterFailure::ALL {
        counter!("switchboard_provider_failures_total", "provider" => provider(), "then" => then.as_str())
            .increment(0);
    }
    for error in ["timeout", "unavailable"] {
        counter!("switchboard_provider_errors_total", "provider" => provider(), "kind" => error).increment(0);
    }
    let _ = histogram!("switchboard_turn_first_token_seconds", "provider" => provider(), "model" => model.to_owned());
    let _ = histogram!("switchboard_turn_duration_seconds", "provider" => provider(), "model" => model.to_owned());
}
