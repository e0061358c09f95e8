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

use crate::config::LogFormat;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The target of the one line per request.
pub const ACCESS: &str = "access";

/// Installs the process's logger.
pub fn init(format: LogFormat) {
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => {
            fmt.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed()
        }
    };
    let registry = tracing_subscriber::registry().with(fmt);
    if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() {
        registry.with(EnvFilter::from_default_env()).init();
    } else {
        let access = if format == LogFormat::Json { LevelFilter::INFO } else { LevelFilter::WARN };
        registry.with(Targets::new().with_default(LevelFilter::INFO).with_target(ACCESS, access)).init();
    }
}
