//! Log lines on stderr, as text for people or, with `log_format = "json"`,
//! one JSON object per line for a log pipeline: the event's fields at the
//! top level beside `timestamp`, `level`, `target` and `message`, and the
//! fields of the span it happened in (a turn's tenant, session and turn id)
//! under `span`.
//!
//! Each HTTP request is logged once when it is answered, at `info` under the
//! target `access` ([`ACCESS`]): trace id, method, route, status, latency and
//! tenant. Text logs leave those lines out unless `RUST_LOG` asks for them
//! (`RUST_LOG=info,access=info`); JSON logs carry them. `RUST_LOG`, when
//! set, is the whole filter (`EnvFilter`); without it the filter is a static
//! list of targets, which costs a turn's span nothing each time its task is
//! polled (`EnvFilter` takes a lock on every span entered and left).
//!
//! Spans made only to be exported (target `spans`, see `otlp.rs`) are off in
//! either filter: without `otlp_endpoint` they are never made, and with it
//! the filter above becomes the log's own (a per-layer filter) beside the
//! exporter's, so log lines look the same either way.

use crate::config::{LogFormat, OtlpSettings};
use switchboard_core::trace::SPANS;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{Directive, EnvFilter, Targets};
use tracing_subscriber::layer::{Filter, Layered, SubscriberExt};
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The target of the one line per request.
pub const ACCESS: &str = "access";

/// The log's layer, text or JSON.
type Lines = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the process's logger and, with `otlp` (which needs the tokio
/// runtime entered), the export of spans; `Err` when the exporter cannot be
/// set up.
pub fn init(format: LogFormat, otlp: Option<&OtlpSettings>) -> Result<(), String> {
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Lines = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => {
            fmt.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed()
        }
    };
    let tracer = otlp.map(crate::otlp::start).transpose()?;
    if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() {
        let spans_off: Directive = format!("{SPANS}=off").parse().map_err(|e| format!("{SPANS}: {e}"))?;
        let filter = EnvFilter::from_default_env().add_directive(spans_off);
        install(fmt, filter, tracer);
    } else {
        let access = if format == LogFormat::Json { LevelFilter::INFO } else { LevelFilter::WARN };
        let filter = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target(ACCESS, access)
            .with_target(SPANS, LevelFilter::OFF);
        install(fmt, filter, tracer);
    }
    Ok(())
}

/// Without a tracer the filter is global, as it always was: what it turns
/// off is never made. With one, the log and the exporter each have theirs.
fn install<F>(fmt: Lines, filter: F, tracer: Option<opentelemetry_sdk::trace::SdkTracer>)
where
    F: Layer<Layered<Lines, Registry>> + Filter<Registry> + Send + Sync + 'static,
{
    match tracer {
        None => tracing_subscriber::registry().with(fmt).with(filter).init(),
        Some(tracer) => {
            let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
            registry.with(crate::otlp::layer(tracer)).init();
        }
    }
}
