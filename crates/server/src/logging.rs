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
//! set, is the whole filter.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// The target of the one line per request.
pub const ACCESS: &str = "access";

/// Installs the process's logger.
pub fn init(format: LogFormat) {
    let default = match format {
        LogFormat::Text => "info,access=warn",
        LogFormat::Json => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init()
        }
    }
}
