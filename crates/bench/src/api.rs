//! Switchboard's HTTP API as the benchmarks use it: one HTTP client, visitor
//! sessions, streamed turns with the arrival time of each event, WebSockets
//! opened with `hello` (SSE subscriptions: `rawsse`). Shared by every
//! subcommand; what is timed is left to the callers.

use crate::error::{Context, Result};
use crate::events::{Decoder, Item};
use crate::server::{ORIGIN, TENANT};
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, ORIGIN as ORIGIN_HEADER};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound on any one request, stream included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// An error body is cut to this many bytes in reports.
const ERROR_SNIPPET: usize = 300;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One client for a whole run: HTTP/1.1 as browsers stream SSE, no Nagle, no
/// proxy from the environment, a pool that holds a connection per worker.
pub fn client(concurrency: usize) -> Result<reqwest::Client> {
    builder(concurrency).timeout(REQUEST_TIMEOUT).build().context("building the HTTP client")
}

/// Like `client`, without the per-request bound: for subscriptions held open
/// longer than any one request (the callers bound their own phases).
pub fn streaming_client(concurrency: usize) -> Result<reqwest::Client> {
    builder(concurrency).build().context("building the HTTP client")
}

fn builder(concurrency: usize) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .no_proxy()
        .pool_max_idle_per_host(concurrency + 8)
        .connect_timeout(Duration::from_secs(5))
}

/// A visitor and the session it made.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub session_id: String,
    pub token: String,
}

impl Visitor {
    /// Makes a new visitor session on the node at `base`.
    pub async fn create(client: &reqwest::Client, base: &str) -> Result<Self> {
        let (session_id, token) = create_session(client, base, &tenant_headers()).await?;
        Ok(Self { session_id, token })
    }

    /// The headers of a widget acting as this visitor.
    pub fn headers(&self) -> Result<HeaderMap> {
        let mut headers = tenant_headers();
        let bearer = HeaderValue::try_from(format!("Bearer {}", self.token)).context("token as a header")?;
        headers.insert(AUTHORIZATION, bearer);
        Ok(headers)
    }
}

/// JSON, the bench tenant, the widget's Origin.
pub fn tenant_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-tenant-id", HeaderValue::from_static(TENANT));
    headers.insert(ORIGIN_HEADER, HeaderValue::from_static(ORIGIN));
    headers
}

/// `POST /v1/sessions` as a new visitor: 201 `{session: {id, …}, token, …}`.
pub async fn create_session(
    client: &reqwest::Client,
    base: &str,
    headers: &HeaderMap,
) -> Result<(String, String)> {
    let response = client
        .post(format!("{base}/v1/sessions"))
        .headers(headers.clone())
        .body("{}")
        .send()
        .await
        .context("POST /v1/sessions")?;
    let status = response.status();
    let text = response.text().await.context("reading the session response")?;
    if status.as_u16() != 201 {
        return Err(format!("POST /v1/sessions: HTTP {status}: {}", snippet(text.as_bytes())).into());
    }
    let json: serde_json::Value = serde_json::from_str(&text).context("session response JSON")?;
    let id = json["session"]["id"].as_str().context("no session.id in the session response")?;
    let token = json["token"].as_str().context("no token in the session response")?;
    Ok((id.to_owned(), token.to_owned()))
}

/// An event of a stream and when its bytes arrived.
#[derive(Debug, Clone)]
pub struct Timed {
    pub at: Instant,
    pub name: String,
    pub data: Vec<u8>,
}

/// A turn through `POST /v1/chat`, read to its end: every event with the time
/// its bytes arrived.
pub async fn chat(
    client: &reqwest::Client,
    base: &str,
    visitor: &Visitor,
    message: &str,
) -> Result<Vec<Timed>> {
    let body = serde_json::json!({"session_id": visitor.session_id, "message": message}).to_string();
    let mut response = client
        .post(format!("{base}/v1/chat"))
        .headers(visitor.headers()?)
        .body(body)
        .send()
        .await
        .context("POST /v1/chat")?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Err(format!("POST /v1/chat: HTTP {status}: {}", snippet(&body)).into());
    }
    let (mut decoder, mut events) = (Decoder::new(), Vec::new());
    while let Some(chunk) = response.chunk().await.context("reading the chat stream")? {
        let at = Instant::now();
        decoder.feed(&chunk, |item| {
            if let Item::Event { name, data } = item {
                events.push(Timed { at, name: name.to_owned(), data: data.to_vec() });
            }
        });
    }
    if let Some(e) = events.iter().find(|e| e.name == "error") {
        return Err(format!("the turn failed: {}", snippet(&e.data)).into());
    }
    if !events.iter().any(|e| e.name == "stream_end") {
        return Err("the chat stream ended without stream_end".into());
    }
    Ok(events)
}

/// Small buffers, as the server's: thousands of idle client sockets must not
/// cost the load generator 128 KiB each either.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

/// `GET /v1/ws?tenant=…` and the `hello` for the visitor's session (from
/// `cursor` if given). The `welcome` and what follows are left to the caller.
pub async fn open_ws(base: &str, visitor: &Visitor, cursor: Option<u64>) -> Result<Ws> {
    let url = format!("{}/v1/ws?tenant={TENANT}", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().context("the WebSocket URL")?;
    request.headers_mut().insert(ORIGIN_HEADER, HeaderValue::from_static(ORIGIN));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true)
        .await
        .context("opening /v1/ws")?;
    let mut hello = serde_json::json!({
        "type": "hello",
        "token": visitor.token,
        "session_id": visitor.session_id,
        "context": {"tenant_id": TENANT},
    });
    if let Some(cursor) = cursor {
        hello["last_event_id"] = serde_json::Value::String(cursor.to_string());
    }
    ws.send(Message::text(hello.to_string())).await.context("sending hello")?;
    Ok(ws)
}

/// Reads frames up to the `welcome` (answering nothing else); an error
/// envelope or a close before it is the refusal.
pub async fn welcome(ws: &mut Ws) -> Result<()> {
    while let Some(frame) = ws.next().await {
        match frame.context("reading the WebSocket")? {
            Message::Text(text) if text.starts_with(r#"{"type":"welcome""#) => return Ok(()),
            Message::Text(text) if text.starts_with(r#"{"type":"error""#) => {
                return Err(format!("hello refused: {}", snippet(text.as_bytes())).into())
            }
            Message::Close(frame) => return Err(format!("closed before welcome: {frame:?}").into()),
            _ => {}
        }
    }
    Err("the WebSocket ended before welcome".into())
}

pub fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_SNIPPET)]);
    text.replace('\n', " ")
}
