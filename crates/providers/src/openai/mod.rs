//! The `openai` provider: Chat Completions streaming, against OpenAI or any
//! compatible server (vLLM, Ollama, llama.cpp, LiteLLM) chosen by `base_url`.
//! It reports the vendor's own usage and never estimates; timeouts past
//! connecting are the turn engine's, applied around the stream.

mod request;
mod tool_calls;
pub(crate) mod wire;

use crate::upstream::{KeyHeader, Upstream};
use crate::{answer, BuildError};
use async_trait::async_trait;
use secrecy::SecretString;
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderStream};
use switchboard_core::tenant::ProviderSettings;

/// The vendor SDK's default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Debug)]
pub struct OpenAiProvider {
    upstream: Upstream,
    model: String,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
}

impl OpenAiProvider {
    /// Builds the client; the key is passed in (see [`crate::build`] for
    /// reading it from the environment).
    pub fn new(settings: &ProviderSettings, api_key: Option<SecretString>) -> Result<Self, BuildError> {
        Ok(Self {
            upstream: Upstream::new(
                settings,
                DEFAULT_BASE_URL,
                "chat/completions",
                api_key,
                KeyHeader::Bearer,
            )?,
            model: settings.model.clone(),
            max_tokens: settings.max_tokens,
            temperature: settings.temperature,
        })
    }

    /// Where requests go: `{base_url}/chat/completions`.
    pub fn url(&self) -> &str {
        self.upstream.url().as_str()
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
        let body = request::RequestBody::new(&self.model, self.max_tokens, self.temperature, &request);
        let response = match self.upstream.open(&body, &[], &request.trace_id).await {
            Ok(response) => response,
            // A spent quota answers 429 but no later attempt will succeed.
            Err(ProviderError::Refused { status, retry_after, should_retry: None, message })
                if message.contains("insufficient_quota") =>
            {
                return Err(ProviderError::Refused {
                    status,
                    retry_after,
                    should_retry: Some(false),
                    message,
                })
            }
            Err(e) => return Err(e),
        };
        Ok(answer::stream(response.bytes_stream(), wire::ChatWire::default()))
    }
}
