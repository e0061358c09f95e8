//! The `anthropic` provider: Messages API streaming. It reports the vendor's
//! own usage (cached prompt tokens included) and never estimates; timeouts
//! past connecting are the turn engine's, applied around the stream.

mod request;
pub(crate) mod wire;

use crate::upstream::{KeyHeader, Upstream};
use crate::{answer, BuildError};
use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::SecretString;
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderStream};
use switchboard_core::tenant::ProviderSettings;

/// The vendor SDK's default base URL; requests go to `{base_url}/v1/messages`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The API version we speak (the `anthropic-version` header).
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when the settings name none: the API requires a value.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

const VERSION: HeaderName = HeaderName::from_static("anthropic-version");

#[derive(Debug)]
pub struct AnthropicProvider {
    upstream: Upstream,
    model: String,
    max_tokens: u32,
    temperature: Option<f32>,
}

impl AnthropicProvider {
    /// Builds the client; the key is passed in (see [`crate::build`] for
    /// reading it from the environment). Without a key no `x-api-key` is
    /// sent (a gateway in front that adds its own).
    pub fn new(settings: &ProviderSettings, api_key: Option<SecretString>) -> Result<Self, BuildError> {
        let key = KeyHeader::Named("x-api-key");
        Ok(Self {
            upstream: Upstream::new(settings, DEFAULT_BASE_URL, "v1/messages", api_key, key)?,
            model: settings.model.clone(),
            max_tokens: settings.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            temperature: settings.temperature,
        })
    }

    /// Where requests go: `{base_url}/v1/messages`.
    pub fn url(&self) -> &str {
        self.upstream.url().as_str()
    }
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
        let body = request::RequestBody::new(&self.model, self.max_tokens, self.temperature, &request);
        let response = self
            .upstream
            .open(&body, &[(VERSION, HeaderValue::from_static(API_VERSION))], &request.trace_id)
            .await?;
        Ok(answer::stream(response.bytes_stream(), wire::MessagesWire::default()))
    }
}
