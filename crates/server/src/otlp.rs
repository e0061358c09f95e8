//! Spans exported over OpenTelemetry's OTLP/HTTP when `otlp_endpoint` is
//! set: each request's span (`request`, opened by the trace middleware), the
//! turn's span (`turn`, its child), and the spans of the calls a turn makes
//! (`provider`, `tool`, `verify`: target [`SPANS`]), sent as protobuf to
//! `<otlp_endpoint>/v1/traces` in batches by a task of the runtime, never on
//! the request's path.
//!
//! Without `otlp_endpoint` nothing here runs: the log filter turns the
//! [`SPANS`] target off (`logging.rs`), so those spans are never even made.

use crate::config::OtlpSettings;
use crate::http::trace::TraceParent;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::{runtime, Resource};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use switchboard_core::trace::SPANS;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// How long one export may take (OTLP's usual default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for the last batch.
const FLUSH_WITHIN: Duration = Duration::from_secs(5);

/// The provider of the process's exported spans, kept for the flush at
/// shutdown.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Starts the exporter and returns the tracer of the `tracing` layer. Runs
/// inside the tokio runtime: the batches are sent by a task of it. The
/// batch's timing follows the OpenTelemetry variables (`OTEL_BSP_SCHEDULE_DELAY`,
/// 5 s by default; `OTEL_BSP_MAX_QUEUE_SIZE`, …), extra headers
/// `OTEL_EXPORTER_OTLP_HEADERS`.
pub fn start(settings: &OtlpSettings) -> Result<SdkTracer, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http_client()?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.traces_url.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("`otlp_endpoint`: {e}"))?;
    let batches = BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder().with_span_processor(batches).with_resource(resource).build();
    let tracer = provider.tracer("switchboard");
    let _ = PROVIDER.set(provider);
    switchboard_core::trace::set_current_span(current_traceparent);
    Ok(tracer)
}

/// The `tracing` layer that exports: our spans ([`SPANS`] and the turn's)
/// and, as events of the span they happen in, warnings and errors and what
/// a turn logs. Parents are found through `tracing`'s own span tree (no
/// OpenTelemetry context is switched on each poll), and per-poll timings
/// are not kept: a turn's span is entered on every token.
pub fn layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let exported = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target(SPANS, LevelFilter::INFO)
        .with_target("switchboard_core::turn", LevelFilter::INFO);
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_filter(exported)
}

/// The request's span and the trace id it gives the request, when spans are
/// exported (`None` otherwise, at the cost of one disabled callsite): a
/// child of the client's span when it sent a `traceparent`, so the trace id
/// stays the client's.
pub fn request_span(request: &Request, parent: Option<&TraceParent<'_>>) -> Option<(tracing::Span, String)> {
    let method = request.method();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        target: SPANS,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        tenant = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return None;
    }
    if let Some(remote) = parent.and_then(remote_parent) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    // Starts the span: its trace id is fixed from here on.
    let trace_id = span.context().span().span_context().trace_id().to_string();
    Some((span, trace_id))
}

/// Notes the answer on the request's span.
pub fn answered(span: &tracing::Span, status: StatusCode, tenant: Option<&str>) {
    span.record("http.response.status_code", status.as_u16());
    if let Some(tenant) = tenant {
        span.record("tenant", tenant);
    }
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// Sends the spans still queued, at shutdown (bounded: a collector that is
/// down does not hold the exit up).
pub async fn flush() {
    let Some(provider) = PROVIDER.get().cloned() else { return };
    // The processor's shutdown blocks until its task, on this runtime, has
    // sent the last batch.
    let shutdown = tokio::task::spawn_blocking(move || provider.shutdown());
    match tokio::time::timeout(FLUSH_WITHIN, shutdown).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the last spans could not be exported"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the last spans could not be exported"),
        Err(_) => tracing::warn!(within = ?FLUSH_WITHIN, "the last spans were not exported in time"),
    }
}

/// The client's span as a remote parent (only its sampled flag is kept).
fn remote_parent(parent: &TraceParent<'_>) -> Option<SpanContext> {
    let flags = u8::from_str_radix(parent.flags, 16).ok()?;
    Some(SpanContext::new(
        TraceId::from_hex(parent.trace_id).ok()?,
        SpanId::from_hex(parent.parent_id).ok()?,
        TraceFlags::default().with_sampled(flags & 1 == 1),
        true,
        TraceState::default(),
    ))
}

/// `00-<trace id>-<span id>-<flags>` of the exported span the caller runs in
/// (a provider call, a tool call, a product check), so the vendor's side of
/// the call is that span's child.
fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let current = span.span_context();
    current.is_valid().then(|| {
        format!("00-{}-{}-{:02x}", current.trace_id(), current.span_id(), current.trace_flags().to_u8())
    })
}

/// The exporter's HTTP client: ring and the Mozilla roots for an https://
/// collector, like the MCP client's, so no second crypto provider comes in.
fn http_client() -> Result<otlp_reqwest::Client, String> {
    let refused =
        |e: &dyn std::fmt::Display| format!("`otlp_endpoint`: the HTTP client cannot be built: {e}");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    otlp_reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| refused(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_parent_keeps_only_its_sampled_flag() {
        let parent = TraceParent {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
            parent_id: "00f067aa0ba902b7",
            flags: "03",
        };
        let remote = remote_parent(&parent).unwrap();
        assert_eq!(remote.trace_id().to_string(), parent.trace_id);
        assert_eq!(remote.span_id().to_string(), parent.parent_id);
        assert!(remote.is_sampled() && remote.is_remote());
        assert_eq!(remote.trace_flags().to_u8(), 1);
        let unsampled = TraceParent { flags: "00", ..parent };
        assert!(!remote_parent(&unsampled).unwrap().is_sampled());
    }
}
