//! One vendor endpoint as every HTTP client uses it: the tuned HTTP client,
//! the URL requests go to, the API key in the header the vendor wants, and a
//! streaming POST whose failures come back as [`ProviderError`]s. Its
//! `Debug` shows neither the key nor any credentials in the URL, so clients
//! holding one can derive theirs.

use crate::{http, BuildError};
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::time::Duration;
use switchboard_core::provider::ProviderError;
use switchboard_core::tenant::ProviderSettings;
use switchboard_core::trace::{traceparent, TRACEPARENT};

/// How a vendor takes its API key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI, Dify).
    Bearer,
    /// The key alone in a header of its own (Anthropic's `x-api-key`).
    Named(&'static str),
}

pub(crate) struct Upstream {
    client: reqwest::Client,
    url: Url,
    /// The key's header, made once and marked sensitive so the HTTP stack
    /// never logs it; `None` sends no key (local servers, gateways).
    auth: Option<(HeaderName, HeaderValue)>,
    /// Bounds reading an error response, which nothing else times.
    error_read_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &shown(&self.url))
            .field("api_key", &self.auth.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The endpoint `{base_url}/{path}` (`default_base` when the settings
    /// name none), with the key checked now so a bad one fails at startup.
    pub fn new(
        settings: &ProviderSettings,
        default_base: &str,
        path: &str,
        key: Option<SecretString>,
        header: KeyHeader,
    ) -> Result<Self, BuildError> {
        let url = http::endpoint(settings.base_url.as_deref().unwrap_or(default_base), path)?;
        let auth = key.map(|key| auth_header(&key, header)).transpose()?;
        Ok(Self { client: http::client(settings)?, url, auth, error_read_timeout: settings.timeouts.idle })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL without credentials or query, fit for logs and stored keys.
    pub fn shown_url(&self) -> String {
        shown(&self.url)
    }

    /// POSTs `body` as JSON asking for an event stream, with a `traceparent`
    /// of `trace_id` when it is one; any HTTP status comes back, only a
    /// request that got no response is an error.
    pub async fn post(
        &self,
        body: &impl Serialize,
        headers: &[(HeaderName, HeaderValue)],
        trace_id: &str,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut builder =
            self.client.post(self.url.clone()).header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        for (name, value) in headers.iter().chain(&self.auth) {
            builder = builder.header(name, value);
        }
        if let Some(parent) = traceparent(trace_id) {
            builder = builder.header(TRACEPARENT, parent);
        }
        builder.json(body).send().await.map_err(|e| http::send_error(&e))
    }

    /// A refusal's status, retry hint and the start of its body.
    pub async fn refusal(&self, response: reqwest::Response) -> ProviderError {
        http::refusal(response, self.error_read_timeout).await
    }

    /// [`Self::post`], with anything but a success as its refusal.
    pub async fn open(
        &self,
        body: &impl Serialize,
        headers: &[(HeaderName, HeaderValue)],
        trace_id: &str,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = self.post(body, headers, trace_id).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.refusal(response).await)
        }
    }
}

fn auth_header(key: &SecretString, header: KeyHeader) -> Result<(HeaderName, HeaderValue), BuildError> {
    let (name, text) = match header {
        KeyHeader::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose_secret())),
        KeyHeader::Named(name) => (HeaderName::from_static(name), key.expose_secret().to_owned()),
    };
    let mut value = HeaderValue::from_str(&text)
        .map_err(|_| BuildError::InvalidApiKey("it holds characters not allowed in a header".into()))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// `scheme://host[:port]/path`: no userinfo, query or fragment, which a
/// gateway's URL may carry credentials in.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::tenant::ProviderKind;

    fn upstream(base: &str, key: Option<&str>) -> Result<Upstream, BuildError> {
        let settings = ProviderSettings {
            base_url: Some(base.into()),
            ..ProviderSettings::new(ProviderKind::Openai, "m")
        };
        Upstream::new(
            &settings,
            "https://unused.example",
            "chat/completions",
            key.map(SecretString::from),
            KeyHeader::Bearer,
        )
    }

    #[test]
    fn credentials_never_show() {
        let u = upstream("https://user:pa55@gw.example/v1", Some("sk-very-secret")).unwrap();
        let text = format!("{u:?} {}", u.shown_url());
        for secret in ["pa55", "user", "sk-very-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(u.shown_url(), "https://gw.example/v1/chat/completions");
        let with_query = Url::parse("https://gw.example/v1/x?token=t0k#frag").unwrap();
        assert_eq!(shown(&with_query), "https://gw.example/v1/x");
    }

    #[test]
    fn a_key_unfit_for_a_header_fails_at_build() {
        assert!(matches!(upstream("https://a.example", Some("bad\nkey")), Err(BuildError::InvalidApiKey(_))));
    }
}
