//! The `dify` provider: a Dify chat app (chat, agent or chatflow) through
//! its chat-messages streaming API. Dify keeps the conversation itself: each
//! request sends only the visitor's latest message and the conversation id
//! learned on the session's first turn, and the app's own configuration in
//! Dify supplies the prompt, model and parameters (the tenant's
//! `system_prompt`, `temperature` and `max_tokens` do not apply). It reports
//! Dify's own usage and never estimates; timeouts past connecting are the
//! turn engine's, applied around the stream.

pub(crate) mod wire;

use crate::upstream::{KeyHeader, Upstream};
use crate::{answer, BuildError};
use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::SecretString;
use switchboard_core::model::Role;
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderStream};
use switchboard_core::tenant::ProviderSettings;

/// The vendor SDK's default base URL (Dify Cloud; self-hosted Dify serves
/// the same API under `{its URL}/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.dify.ai/v1";

#[derive(Debug)]
pub struct DifyProvider {
    /// The key is an app key (`app-…`): in Dify the key chooses the app.
    upstream: Upstream,
    model: String,
    /// Names the Dify app without a secret; see [`Provider::conversation_key`].
    conversation_key: String,
}

impl DifyProvider {
    /// Builds the client; the key is passed in (see [`crate::build`] for
    /// reading it from the environment).
    pub fn new(settings: &ProviderSettings, api_key: Option<SecretString>) -> Result<Self, BuildError> {
        let upstream =
            Upstream::new(settings, DEFAULT_BASE_URL, "chat-messages", api_key, KeyHeader::Bearer)?;
        // Conversation ids belong to one app, and the key alone chooses the
        // app, so the key's variable name stands in for the key: a tenant that
        // moves to another app (or Dify server) under another name starts new
        // conversations rather than sending ids the app does not know. Same
        // name, new app: the stale id is refused and `stream` starts afresh.
        let url = upstream.shown_url();
        let conversation_key = match settings.api_key_env.as_deref() {
            Some(var) => format!("dify {url} {var}"),
            None => format!("dify {url}"),
        };
        Ok(Self { upstream, model: settings.model.clone(), conversation_key })
    }

    /// Where requests go: `{base_url}/chat-messages`.
    pub fn url(&self) -> &str {
        self.upstream.url().as_str()
    }

    /// Sends one chat-messages request; any status comes back.
    async fn send(
        &self,
        query: &str,
        conversation_id: &str,
        user: &str,
        trace_id: &str,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = wire::RequestBody {
            inputs: wire::Inputs {},
            query,
            response_mode: "streaming",
            conversation_id,
            user,
        };
        self.upstream.post(&body, &[], trace_id).await
    }
}

#[async_trait]
impl Provider for DifyProvider {
    fn kind(&self) -> &str {
        "dify"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn conversation_key(&self) -> Option<&str> {
        Some(&self.conversation_key)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ProviderStream, ProviderError> {
        // Dify has the earlier turns already; agents' messages and system
        // notes never reach it, only what the visitor said.
        let Some(query) = request.history.iter().rev().find(|m| m.role == Role::User) else {
            return Err(ProviderError::Unavailable(
                "no user message in the turn's history to send as the Dify query".into(),
            ));
        };
        let mut sent = request.conversation_id.as_deref().unwrap_or("");
        let mut response = self.send(&query.content, sent, &request.subject, &request.trace_id).await?;
        // A stored id the app no longer knows (the app was switched or its
        // conversations deleted, or the same session now has another user) is
        // a 404 "Conversation Not Exists.". Starting a new Dify conversation
        // answers the visitor at the cost of Dify's memory of earlier turns;
        // the new id replaces the stale one through the stream.
        if response.status() == StatusCode::NOT_FOUND && !sent.is_empty() {
            let stale = self.upstream.refusal(response).await;
            tracing::info!(
                session_id = %request.session_id,
                error = %stale,
                "the stored Dify conversation is gone; starting a new one"
            );
            sent = "";
            response = self.send(&query.content, sent, &request.subject, &request.trace_id).await?;
        }
        if !response.status().is_success() {
            return Err(self.upstream.refusal(response).await);
        }
        Ok(answer::stream(response.bytes_stream(), wire::DifyWire::new(sent)))
    }
}
