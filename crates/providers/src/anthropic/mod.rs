//! The `anthropic` provider: Messages API streaming. It reports the vendor's
//! own usage (cached prompt tokens included) and never estimates; timeouts
//! past connecting are the turn engine's, applied around the stream.

mod wire;

use crate::{answer, http, BuildError};
use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderStream};
use switchboard_core::tenant::ProviderSettings;

/// The vendor SDK's default base URL; requests go to `{base_url}/v1/messages`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The API version we speak (the `anthropic-version` header).
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when the settings name none: the API requires a value.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const VERSION: HeaderName = HeaderName::from_static("anthropic-version");

pub struct AnthropicProvider {
    client: reqwest::Client,
    url: Url,
    /// Made once, marked sensitive so the HTTP stack never logs it.
    api_key: Option<HeaderValue>,
    model: String,
    max_tokens: u32,
    temperature: Option<f32>,
    /// Bounds reading an error response, which nothing else times.
    error_read_timeout: Duration,
}

impl std::fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("url", &self.url.as_str())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl AnthropicProvider {
    /// Builds the client; the key is passed in (see [`crate::build`] for
    /// reading it from the environment). Without a key no `x-api-key` is
    /// sent (a gateway in front that adds its own).
    pub fn new(settings: &ProviderSettings, api_key: Option<SecretString>) -> Result<Self, BuildError> {
        let url = http::endpoint(settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL), "v1/messages")?;
        let api_key = api_key.as_ref().map(key_header).transpose()?;
        Ok(Self {
            client: http::client(settings)?,
            url,
            api_key,
            model: settings.model.clone(),
            max_tokens: settings.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            temperature: settings.temperature,
            error_read_timeout: settings.timeouts.idle,
        })
    }

    /// Where requests go: `{base_url}/v1/messages`.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

/// The `x-api-key` header of a key, checked at build time so a bad key
/// fails at startup rather than on every turn.
fn key_header(key: &SecretString) -> Result<HeaderValue, BuildError> {
    http::check_header_key("", key.expose_secret())?;
    // Cannot fail after the check; mapped all the same, never shown.
    let mut value =
        HeaderValue::from_str(key.expose_secret()).map_err(|e| BuildError::InvalidApiKey(e.to_string()))?;
    value.set_sensitive(true);
    Ok(value)
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> &str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn stream(&self, request: ChatRequest) -> Result<ProviderStream, ProviderError> {
        let body = wire::RequestBody {
            model: &self.model,
            max_tokens: self.max_tokens,
            stream: true,
            system: wire::system(request.system_prompt.as_deref()),
            temperature: self.temperature,
            messages: wire::messages(&request.history),
        };
        let mut builder = self
            .client
            .post(self.url.clone())
            .header(VERSION, HeaderValue::from_static(API_VERSION))
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .json(&body);
        if let Some(key) = &self.api_key {
            builder = builder.header(API_KEY, key.clone());
        }
        let response = builder.send().await.map_err(|e| http::send_error(&e))?;
        if !response.status().is_success() {
            return Err(http::refusal(response, self.error_read_timeout).await);
        }
        Ok(answer::stream(response.bytes_stream(), wire::MessagesWire::default()))
    }
}
