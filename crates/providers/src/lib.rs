//! Switchboard's model vendor clients (`demo`, `openai`, `anthropic`, `dify`) behind core's
//! `Provider` port, and the SSE decoder they share. Clients stream what the
//! vendor sends; timeouts past connecting, retries and usage estimates are
//! the turn engine's.

mod answer;
pub mod anthropic;
pub mod demo;
pub mod dify;
mod http;
pub mod openai;
pub mod replay;
pub mod sse;
mod upstream;

use secrecy::SecretString;
use std::sync::Arc;
use switchboard_core::model::Role;
use switchboard_core::provider::Provider;
use switchboard_core::tenant::{ProviderKind, ProviderSettings};

pub use anthropic::AnthropicProvider;
pub use demo::DemoProvider;
pub use dify::DifyProvider;
pub use openai::OpenAiProvider;

/// Why a provider could not be built from its settings: a configuration
/// error to report at startup, naming what is wrong but never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("environment variable {var} (named by api_key_env) is not set")]
    MissingApiKey { var: String },
    #[error("environment variable {var} (named by api_key_env) is empty or not UTF-8")]
    UnreadableApiKey { var: String },
    #[error("the API key is unusable: {0}")]
    InvalidApiKey(String),
    #[error("invalid base_url {url:?}: {reason}")]
    InvalidBaseUrl { url: String, reason: String },
    #[error("building the HTTP client failed: {0}")]
    Client(String),
}

/// Builds the client for a tenant's provider settings.
///
/// The API key is read from the environment variable that `api_key_env`
/// names; a named variable that is unset or empty is an error. Without
/// `api_key_env` no key header is sent (local compatible servers, gateways
/// that add the key themselves).
pub fn build(settings: &ProviderSettings) -> Result<Arc<dyn Provider>, BuildError> {
    match settings.kind {
        ProviderKind::Demo => {
            Ok(Arc::new(DemoProvider::new(settings.model.clone(), demo::DEFAULT_WORD_DELAY)))
        }
        ProviderKind::Openai => Ok(Arc::new(OpenAiProvider::new(settings, key(settings)?)?)),
        ProviderKind::Dify => Ok(Arc::new(DifyProvider::new(settings, key(settings)?)?)),
        ProviderKind::Anthropic => Ok(Arc::new(AnthropicProvider::new(settings, key(settings)?)?)),
    }
}

/// The chat role a stored message speaks in to a model: agents' messages on
/// the assistant's side (the visitor saw them there); system notes are not
/// the model's to read.
pub(crate) fn chat_role(role: Role) -> Option<&'static str> {
    match role {
        Role::User => Some("user"),
        Role::Assistant | Role::Agent => Some("assistant"),
        Role::System => None,
    }
}

/// An id for a tool call the vendor gave none (SPEC §16): shaped like
/// OpenAI's own, unique, so results still find their call.
pub(crate) fn new_call_id() -> String {
    format!("call_{}", uuid::Uuid::new_v4().simple())
}

/// The API key that `api_key_env` names, if it names one.
fn key(settings: &ProviderSettings) -> Result<Option<SecretString>, BuildError> {
    settings.api_key_env.as_deref().map(read_key).transpose()
}

fn read_key(var: &str) -> Result<SecretString, BuildError> {
    match std::env::var(var) {
        Ok(key) if !key.trim().is_empty() => Ok(SecretString::from(key)),
        Ok(_) | Err(std::env::VarError::NotUnicode(_)) => {
            Err(BuildError::UnreadableApiKey { var: var.to_owned() })
        }
        Err(std::env::VarError::NotPresent) => Err(BuildError::MissingApiKey { var: var.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: ProviderKind, api_key_env: Option<&str>) -> ProviderSettings {
        ProviderSettings { api_key_env: api_key_env.map(str::to_owned), ..ProviderSettings::new(kind, "m") }
    }

    #[test]
    fn builds_each_kind() {
        let demo = build(&settings(ProviderKind::Demo, None)).unwrap();
        assert_eq!((demo.kind(), demo.model()), ("demo", "m"));
        let openai = build(&settings(ProviderKind::Openai, None)).unwrap();
        assert_eq!((openai.kind(), openai.model()), ("openai", "m"));
        let anthropic = build(&settings(ProviderKind::Anthropic, None)).unwrap();
        assert_eq!((anthropic.kind(), anthropic.model()), ("anthropic", "m"));
        let dify = build(&settings(ProviderKind::Dify, None)).unwrap();
        assert_eq!((dify.kind(), dify.model()), ("dify", "m"));
        assert!(dify.conversation_key().is_some());
    }

    #[test]
    fn a_named_but_unset_key_is_a_config_error() {
        let var = "SWITCHBOARD_PROVIDERS_TEST_SURELY_UNSET_KEY";
        let err = build(&settings(ProviderKind::Openai, Some(var))).err().unwrap();
        assert_eq!(err, BuildError::MissingApiKey { var: var.into() });
        assert!(err.to_string().contains(var));
    }

    #[test]
    fn a_bad_base_url_is_a_config_error() {
        let mut s = settings(ProviderKind::Openai, None);
        s.base_url = Some("localhost:8000".into());
        assert!(matches!(build(&s), Err(BuildError::InvalidBaseUrl { .. })));
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let p = OpenAiProvider::new(
            &settings(ProviderKind::Openai, None),
            Some(SecretString::from("sk-very-secret")),
        )
        .unwrap();
        assert!(!format!("{p:?}").contains("sk-very-secret"));
    }
}
