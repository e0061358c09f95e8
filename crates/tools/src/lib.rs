//! Switchboard's outbound adapters for tool calls (SPEC §16) and outbound
//! events (SPEC §19), and what they share:
//!
//! - [`signature`]: Standard Webhooks signing and verification, with
//!   space-separated secret lists for rotation;
//! - [`guard`]: the private-address (SSRF) guard, enforced by the resolver
//!   the HTTP client connects through;
//! - [`client`]: the signed webhook `POST`, one pooled client per tenant, no
//!   redirects, a deadline and a capped, JSON-parsed answer;
//! - [`webhook_tools`]: a tenant's webhook tools as core's `Toolbox`;
//! - [`mcp`]: a tenant's MCP servers as tool sources (rmcp, Streamable
//!   HTTP), through the same guard;
//! - [`toolset`]: every source of a tenant as one `Toolbox`;
//! - [`verifier`]: live product verification (`verify_url`) as core's
//!   `Verifier`.
//!
//! Why our own signer rather than the `standardwebhooks` crate: that crate
//! (1.0.1, March 2024, its only release) signs and verifies with a single
//! secret, so a rotation (each secret signs, all signatures in one header)
//! would be built around it anyway, and it brings an older `base64`, `time`
//! and a second HMAC implementation. The scheme is a few lines over the
//! `hmac`, `sha2` and `base64` crates the workspace already has, and it is
//! checked against the specification's published test vector and, in
//! `tests/python_interop.rs`, against the official Python library.

mod arguments;
pub mod client;
pub mod guard;
pub mod mcp;
pub mod signature;
pub mod toolset;
pub mod verifier;
pub mod webhook_tools;

pub use client::{CallError, WebhookClient, WebhookRequest, MAX_RESPONSE_BYTES};
pub use guard::{AllowListError, PrivateAllowList};
pub use mcp::{ListingIntervals, McpClient, McpError, McpServer, McpServerConfig};
/// URLs as the client and the guard read them.
pub use reqwest::Url;
pub use signature::{message_id, SecretError, SigningKeys, VerifyError};
pub use toolset::ToolSet;
pub use verifier::WebhookVerifier;
pub use webhook_tools::{WebhookTool, WebhookToolbox};
