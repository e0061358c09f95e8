//! The fuzz targets of every parser that reads what the outside sends: one
//! function per target, run by libFuzzer through `fuzz/` (`scripts/fuzz`)
//! and, over each target's seed corpus, by the normal test suite. A target
//! drives the real parser and checks a property of its answer, not only that
//! it returns: a failed check panics, which is how libFuzzer learns of it.
//! No parsing logic lives here; the checks restate rules, not code.

// A violated property is reported the way libFuzzer hears of it: a panic.
#![allow(clippy::panic)]

mod bodies;
mod config;
mod cursor;
mod jwt;
mod layout;
mod origin;
mod sse;
mod streams;
mod ws;

pub use bodies::{chat_body, json_bodies};
pub use config::config;
pub use cursor::cursor;
pub use jwt::jwt;
pub use origin::origin;
pub use sse::sse;
pub use streams::{anthropic_stream, dify_stream, openai_stream};
pub use ws::ws_frame;

/// A target: raw input in, a panic when the property fails.
pub type Target = fn(&[u8]);

/// Every target by name: the name is its `fuzz/fuzz_targets/<name>.rs` and
/// its `fuzz/corpus/<name>/` seed directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("sse", sse),
    ("openai_stream", openai_stream),
    ("anthropic_stream", anthropic_stream),
    ("dify_stream", dify_stream),
    ("origin", origin),
    ("chat_body", chat_body),
    ("json_bodies", json_bodies),
    ("ws_frame", ws_frame),
    ("cursor", cursor),
    ("jwt", jwt),
    ("config", config),
];
