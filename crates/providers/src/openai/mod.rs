//! The `openai` provider: Chat Completions streaming, against OpenAI or any
//! compatible server (vLLM, Ollama, llama.cpp, LiteLLM) chosen by `base_url`.
//! It reports the vendor's own usage and never estimates; timeouts past
//! connecting are the turn engine's, applied around the stream.

mod wire;

use crate::{answer, http, BuildError};
use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderStream};
use switchboard_core::tenant::ProviderSettings;

/// The vendor SDK's default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

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
        let url =
            http::endpoint(settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL), "chat/completions")?;
        if let Some(key) = &api_key {
            http::check_header_key("Bearer ", key.expose_secret())?;
        }
        Ok(Self {
            client: http::client(settings)?,
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
        let response = builder.send().await.map_err(|e| http::send_error(&e))?;
        if !response.status().is_success() {
            let mut refusal = http::refusal(response, self.error_read_timeout).await;
            // A spent quota answers 429 but no later attempt will succeed.
            if let ProviderError::Refused { should_retry: should_retry @ None, message, .. } = &mut refusal {
                if message.contains("insufficient_quota") {
                    *should_retry = Some(false);
                }
            }
            return Err(refusal);
        }
        Ok(answer::stream(response.bytes_stream(), wire::ChatWire::default()))
    }
}
