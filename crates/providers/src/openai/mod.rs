//! The `openai` provider: Chat Completions streaming, against OpenAI or any
//! compatible server (vLLM, Ollama, llama.cpp, LiteLLM) chosen by `base_url`.
//! It reports the vendor's own usage and never estimates; timeouts past
//! connecting are the turn engine's, applied around the stream.

mod wire;

use crate::BuildError;
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderStream};
use switchboard_core::tenant::ProviderSettings;

/// The vendor SDK's default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// How much of an error response body is read for the log.
const ERROR_BODY_MAX_BYTES: usize = 4096;

pub struct OpenAiProvider {
    client: reqwest::Client,
    url: Url,
    api_key: Option<SecretString>,
    model: String,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    /// Bounds reading an error response, which nothing else times.
    error_read_timeout: Duration,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("url", &self.url.as_str())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// Builds the client; the key is passed in (see [`crate::build`] for
    /// reading it from the environment).
    pub fn new(settings: &ProviderSettings, api_key: Option<SecretString>) -> Result<Self, BuildError> {
        let base = settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let url = chat_url(base)?;
        if let Some(key) = &api_key {
            // Checked now so a bad key fails at startup, not on every turn.
            if HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).is_err() {
                return Err(BuildError::InvalidApiKey("it holds characters not allowed in a header".into()));
            }
        }
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeouts.connect)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        Ok(Self {
            client,
            url,
            api_key,
            model: settings.model.clone(),
            max_tokens: settings.max_tokens,
            temperature: settings.temperature,
            error_read_timeout: settings.timeouts.idle,
        })
    }

    /// Where requests go: `{base_url}/chat/completions`.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Reads a refusal's status, retry hint and (truncated) body into one
    /// log message. 429 and 5xx are marked retryable.
    async fn refusal(&self, response: reqwest::Response) -> ProviderError {
        let status = response.status();
        let retry_after = retry_hint(response.headers());
        let body = read_prefix(response, ERROR_BODY_MAX_BYTES, self.error_read_timeout).await;
        let class = if status == StatusCode::TOO_MANY_REQUESTS {
            "rate limited, retryable"
        } else if status.is_server_error() {
            "server error, retryable"
        } else {
            "not retryable"
        };
        let mut message = format!("upstream returned HTTP {} ({class}", status.as_u16());
        if let Some(hint) = retry_after {
            message.push_str(&format!(", retry-after {hint}"));
        }
        message.push_str(&format!("): {}", wire::snippet(body.trim())));
        ProviderError::Unavailable(message)
    }
}

fn chat_url(base: &str) -> Result<Url, BuildError> {
    let invalid = |reason: String| BuildError::InvalidBaseUrl { url: base.to_owned(), reason };
    let url = Url::parse(&format!("{}/chat/completions", base.trim_end_matches('/')))
        .map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    Ok(url)
}

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds or an HTTP date)
/// as sent, for the log and for retry logic that parses the message.
fn retry_hint(headers: &HeaderMap) -> Option<String> {
    let value = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(ms) = value("retry-after-ms") {
        return Some(format!("{ms}ms"));
    }
    value(RETRY_AFTER.as_str()).map(|s| match s.parse::<u64>() {
        Ok(secs) => format!("{secs}s"),
        Err(_) => s.to_owned(),
    })
}

/// The first bytes of a response body, lossily decoded; whatever was read
/// when the time runs out or the body fails.
async fn read_prefix(mut response: reqwest::Response, max: usize, within: Duration) -> String {
    let mut buf = Vec::new();
    let read = async {
        while buf.len() < max {
            match response.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    buf.truncate(max);
    String::from_utf8_lossy(&buf).into_owned()
}

fn send_error(e: &reqwest::Error) -> ProviderError {
    // Only connecting is timed by the client, so a timeout here is that.
    if e.is_timeout() {
        ProviderError::Timeout(format!("connecting to the provider: {e}"))
    } else {
        ProviderError::Unavailable(format!("request failed: {}", crate::error_chain(e)))
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn kind(&self) -> &str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn stream(&self, request: ChatRequest) -> Result<ProviderStream, ProviderError> {
        let body = wire::RequestBody {
            model: &self.model,
            stream: true,
            stream_options: wire::StreamOptions { include_usage: true },
            messages: wire::messages(&request),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
        };
        let mut builder = self
            .client
            .post(self.url.clone())
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .json(&body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose_secret());
        }
        let response = builder.send().await.map_err(|e| send_error(&e))?;
        if !response.status().is_success() {
            return Err(self.refusal(response).await);
        }
        Ok(wire::answer_stream(response.bytes_stream()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn chat_url_follows_the_sdk_convention() {
        assert_eq!(
            chat_url(DEFAULT_BASE_URL).unwrap().as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            chat_url("http://127.0.0.1:11434/v1/").unwrap().as_str(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert!(matches!(chat_url("not a url"), Err(BuildError::InvalidBaseUrl { .. })));
        assert!(matches!(chat_url("ftp://example.com"), Err(BuildError::InvalidBaseUrl { .. })));
    }

    #[test]
    fn retry_hints() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_hint(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_hint(&h).as_deref(), Some("7s"));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_hint(&h).as_deref(), Some("250ms"));
    }
}
