//! A fake Dify chat app (`POST /v1/chat-messages`) that streams the recorded
//! wire format: answers under one conversation id per conversation it was
//! asked to start, optionally a moderation `message_replace` mid-answer,
//! paced answers, an in-stream error chunk before any text, a 404
//! "Conversation Not Exists." for ids it was told to forget, a record of
//! every request, and whether each response body was read to its end or
//! dropped by the client.

use super::fake_upstream::{serve, Step, Upstream};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The conversation id the fake hands out for the `n`th new conversation.
pub fn conversation(n: usize) -> String {
    format!("45701982-8118-4bc5-8e9b-64562b4526{n:02}")
}

/// The recorded answer of [`DifyMode::Answer`].
pub const ANSWER: &str = "Sunny, 21°C.";

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum DifyMode {
    /// The recorded answer "Sunny", a ping, ", 21°C." (or the moderation
    /// replacement set by [`FakeDify::replace_with`]), then `message_end`.
    Answer,
    /// One `message` chunk per piece, one every `interval`, then `message_end`.
    Paced { pieces: Vec<String>, interval: Duration },
    /// An `error` chunk (500 `internal_server_error`) before any text; the
    /// stream ends there.
    StreamError,
}

struct Shared {
    /// Its modes, calls and bodies; the requests it keeps are their JSON bodies.
    upstream: Upstream<DifyMode, Value>,
    authorizations: Mutex<Vec<Option<String>>>,
    started: Mutex<usize>,
    replace: Mutex<Option<String>>,
    forgotten: Mutex<HashSet<String>>,
}

/// The running fake; it stops with the test's runtime. Its calls, request
/// bodies and response bodies are those of its [`Upstream`].
#[derive(Clone)]
pub struct FakeDify {
    shared: Arc<Shared>,
    port: u16,
}

impl FakeDify {
    /// Starts the fake answering every call with [`DifyMode::Answer`].
    pub async fn start() -> Self {
        Self::start_with(DifyMode::Answer).await
    }

    /// Starts the fake with `default` as the mode of every call.
    pub async fn start_with(default: DifyMode) -> Self {
        let shared = Arc::new(Shared {
            upstream: Upstream::new(default),
            authorizations: Mutex::new(Vec::new()),
            started: Mutex::new(0),
            replace: Mutex::new(None),
            forgotten: Mutex::new(HashSet::new()),
        });
        let app = Router::new().route("/v1/chat-messages", post(chat)).with_state(shared.clone());
        Self { shared, port: serve(app).await }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Later answers are replaced by `text` after their first piece, as
    /// Dify's output moderation does.
    pub fn replace_with(&self, text: &str) {
        *self.shared.replace.lock().expect("lock") = Some(text.to_owned());
    }

    /// From now on a request sending `conversation_id` is answered 404
    /// "Conversation Not Exists.", as when the app's conversations were
    /// deleted; no queued mode is used up by it.
    pub fn forget(&self, conversation_id: &str) {
        self.shared.forgotten.lock().expect("lock").insert(conversation_id.to_owned());
    }

    /// The `Authorization` header of every request, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.shared.authorizations.lock().expect("lock").clone()
    }
}

impl Deref for FakeDify {
    type Target = Upstream<DifyMode, Value>;

    fn deref(&self) -> &Self::Target {
        &self.shared.upstream
    }
}

fn data(v: Value) -> Step {
    Step::Bytes(Bytes::from(format!("data: {v}\n\n")))
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let upstream = &shared.upstream;
    upstream.record(body.clone());
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.authorizations.lock().expect("lock").push(authorization);
    let conversation_id = match body["conversation_id"].as_str() {
        Some(id) if shared.forgotten.lock().expect("lock").contains(id) => {
            let error = json!({"code": "not_found", "message": "Conversation Not Exists.", "status": 404});
            return (StatusCode::NOT_FOUND, [("content-type", "application/json")], error.to_string())
                .into_response();
        }
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let mut n = shared.started.lock().expect("lock");
            *n += 1;
            conversation(*n)
        }
    };
    let mode = upstream.next_mode();
    let head = |event: &str| {
        json!({"event": event, "conversation_id": conversation_id, "message_id": "5ad4cb98",
               "created_at": 1705398420, "task_id": "900bbd43", "id": "5ad4cb98"})
    };
    let message = |answer: &str| {
        let mut m = head("message");
        m["answer"] = json!(answer);
        data(m)
    };
    let mut steps = Vec::new();
    match mode {
        DifyMode::StreamError => {
            steps.push(Step::Bytes(Bytes::from_static(b"event: ping\n\n")));
            let mut e = head("error");
            e["code"] = json!("internal_server_error");
            e["message"] = json!("Internal Server Error, please contact support.");
            e["status"] = json!(500);
            steps.push(data(e));
            return upstream.stream(&[("content-type", "text/event-stream")], steps);
        }
        DifyMode::Paced { pieces, interval } => {
            for piece in &pieces {
                steps.push(Step::Sleep(interval));
                steps.push(message(piece));
            }
        }
        DifyMode::Answer => {
            steps.push(message("Sunny"));
            steps.push(Step::Bytes(Bytes::from_static(b"event: ping\n\n")));
            match shared.replace.lock().expect("lock").clone() {
                Some(text) => {
                    let mut r = head("message_replace");
                    r["answer"] = json!(text);
                    steps.push(data(r));
                    steps.push(message(" (checked)"));
                }
                None => steps.push(message(", 21°C.")),
            }
        }
    }
    let mut end = head("message_end");
    end["metadata"] = json!({"usage": {"prompt_tokens": 1033, "prompt_unit_price": "0.001",
        "prompt_price_unit": "0.001", "prompt_price": "0.0010330", "completion_tokens": 135,
        "completion_unit_price": "0.002", "completion_price_unit": "0.001", "completion_price": "0.0002700",
        "total_tokens": 1168, "total_price": "0.0013030", "currency": "USD", "latency": 1.38},
        "retriever_resources": []});
    end["files"] = json!([]);
    steps.push(data(end));
    upstream.stream(&[("content-type", "text/event-stream")], steps)
}
