//! A tenant's events endpoint for the outbound events tests (SPEC §19): it
//! checks each delivery's Standard Webhooks signature, keeps what came
//! (headers, body, when) and answers from a script (`200` once the script
//! is used up). It can be down at first: its port is taken but nothing
//! listens until [`Receiver::listen`].

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_tools::SigningKeys;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub json: Value,
    pub at: Instant,
    /// The status it was answered with.
    pub answered: u16,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<(u16, Option<u64>)>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub port: u16,
}

impl Receiver {
    /// Listening at once.
    pub async fn start() -> Self {
        let receiver = Self::down().await;
        receiver.listen().await;
        receiver
    }

    /// A port nothing listens on yet (connections are refused).
    pub async fn down() -> Self {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        Self { inner: Arc::default(), port }
    }

    pub async fn listen(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let app = Router::new().route("/hooks", post(hook)).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    /// The next answers: a status, and a `Retry-After` in seconds.
    pub fn script(&self, answers: &[(u16, Option<u64>)]) {
        self.inner.lock().unwrap().script.extend(answers.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until `n` deliveries came (at most `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `[tenants.events]` table pointing at this receiver.
    pub fn table(&self, extra: &str) -> String {
        format!(
            "[tenants.events]\nurl = \"http://127.0.0.1:{}/hooks\"\nsecret_env = \"EVENTS_SECRET\"\n{extra}",
            self.port
        )
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let keys = SigningKeys::parse(SECRET).unwrap();
    if keys.verify(&headers, &body, chrono::Utc::now().timestamp(), Duration::from_secs(300)).is_err() {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let (status, retry_after) = {
        let mut inner = r.inner.lock().unwrap();
        let (status, retry_after) = inner.script.pop_front().unwrap_or((200, None));
        inner.received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            body: text,
            at: Instant::now(),
            answered: status,
        });
        (status, retry_after)
    };
    // 0: no answer at all (the try hangs until its timeout).
    if status == 0 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let mut response = StatusCode::from_u16(status.max(200)).unwrap().into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert("retry-after", HeaderValue::from(secs));
    }
    response
}
