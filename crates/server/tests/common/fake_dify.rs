//! A fake Dify chat app (`POST /v1/chat-messages`) that streams the recorded
//! wire format: answers under one conversation id per conversation it was
//! asked to start, optionally a moderation `message_replace` mid-answer, and a
//! record of every request body.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// The conversation id the fake hands out for the `n`th new conversation.
pub fn conversation(n: usize) -> String {
    format!("45701982-8118-4bc5-8e9b-64562b4526{n:02}")
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Value>>,
    started: Mutex<usize>,
    replace: Mutex<Option<String>>,
}

#[derive(Clone)]
pub struct FakeDify {
    shared: Arc<Shared>,
    port: u16,
}

impl FakeDify {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().route("/v1/chat-messages", post(chat)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake dify");
        let port = listener.local_addr().expect("fake addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, port }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Later answers are replaced by `text` after their first piece, as
    /// Dify's output moderation does.
    pub fn replace_with(&self, text: &str) {
        *self.shared.replace.lock().expect("lock") = Some(text.to_owned());
    }

    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().expect("lock").clone()
    }
}

fn data(v: Value) -> String {
    format!("data: {v}\n\n")
}

async fn chat(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    shared.requests.lock().expect("lock").push(body.clone());
    let conversation_id = match body["conversation_id"].as_str() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let mut n = shared.started.lock().expect("lock");
            *n += 1;
            conversation(*n)
        }
    };
    let head = |event: &str| {
        json!({"event": event, "conversation_id": conversation_id, "message_id": "5ad4cb98",
               "created_at": 1705398420, "task_id": "900bbd43", "id": "5ad4cb98"})
    };
    let message = |answer: &str| {
        let mut m = head("message");
        m["answer"] = json!(answer);
        data(m)
    };
    let mut frames = vec![message("Sunny"), "event: ping\n\n".to_owned()];
    match shared.replace.lock().expect("lock").clone() {
        Some(text) => {
            let mut r = head("message_replace");
            r["answer"] = json!(text);
            frames.push(data(r));
            frames.push(message(" (checked)"));
        }
        None => frames.push(message(", 21°C.")),
    }
    let mut end = head("message_end");
    end["metadata"] = json!({"usage": {"prompt_tokens": 1033, "prompt_unit_price": "0.001",
        "prompt_price_unit": "0.001", "prompt_price": "0.0010330", "completion_tokens": 135,
        "completion_unit_price": "0.002", "completion_price_unit": "0.001", "completion_price": "0.0002700",
        "total_tokens": 1168, "total_price": "0.0013030", "currency": "USD", "latency": 1.38},
        "retriever_resources": []});
    end["files"] = json!([]);
    frames.push(data(end));
    let stream = futures_util::stream::iter(frames.into_iter().map(Ok::<String, std::io::Error>));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("fake dify response")
}
