//! Shared helpers of the black-box suite: the server under test and its
//! config, typed HTTP calls, an SSE reader, the SSE subscription and
//! WebSocket clients, a transcript that checks resumed streams, fake OpenAI,
//! Anthropic and Dify upstreams (on the machinery of `fake_upstream`),
//! throwaway PostgreSQL databases, raw HTTP over TCP for what no client
//! library sends, and the assertions every turn test makes.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code, unused_imports)]

pub mod app;
pub mod checks;
pub mod cli;
pub mod client;
pub mod config;
pub mod fake_anthropic;
pub mod fake_dify;
pub mod fake_openai;
pub mod fake_upstream;
pub mod jwt;
pub mod postgres;
pub mod raw_http;
pub mod scenarios;
pub mod sse;
pub mod subscribe;
pub mod transcript;
pub mod wait;
pub mod ws;

pub use app::TestApp;
pub use client::{chat_body, LiveStream, Reply, SseReply, Visitor, TURN_TIMEOUT};
pub use config::{AppConfig, TenantSpec, Timeouts};
pub use fake_openai::{joined, pieces, unicode_pieces, FakeOpenAi, Mode};
pub use sse::{deltas_text, kinds, SseEvent};
pub use wait::eventually;
