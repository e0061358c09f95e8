//! What the vendor suites share: serving a fake vendor on a free port and
//! keeping the requests it got, its JSON refusals and piecewise event
//! streams, the chat request a test sends, and a turn read to its end. The transcripts and
//! failure modes of each vendor stay in its own suite.

// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use futures_util::stream::{self, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use switchboard_core::model::Role;
use switchboard_core::provider::{ChatRequest, HistoryMessage, Provider, ProviderError, ProviderEvent};
use switchboard_core::tenant::{ProviderKind, ProviderSettings};
use switchboard_core::tools::{ToolCall, ToolContext, ToolResult, ToolRound, ToolSpec};

/// Every item of a provider's stream, in order.
pub type Items = Vec<Result<ProviderEvent, ProviderError>>;

/// Serves a fake vendor on a free local port: every POST to `path` is kept,
/// in order, in the requests returned, and answered by `answer` from `state`.
/// The address it listens on.
pub async fn spawn<S>(path: &str, state: S, answer: fn(&S, &Captured) -> Response) -> (SocketAddr, Requests)
where
    S: Clone + Send + Sync + 'static,
{
    let captured = Requests::default();
    let kept = captured.clone();
    let handler = move |ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes| {
        let request = Captured::new(peer, headers, &body);
        let response = answer(&state, &request);
        kept.lock().unwrap().push(request);
        std::future::ready(response)
    };
    let app = Router::new().route(path, post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Without it a body sent in two small pieces waits for a delayed ACK.
    let listener = listener.tap_io(|tcp| tcp.set_nodelay(true).unwrap());
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, captured)
}

/// An address nothing listens on.
pub fn closed_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// One request a fake received.
#[derive(Debug)]
pub struct Captured {
    pub peer: SocketAddr,
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: serde_json::Value,
}

impl Captured {
    pub fn new(peer: SocketAddr, headers: HeaderMap, body: &[u8]) -> Self {
        let body = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        Self { peer, headers, body }
    }
}

/// The requests a fake received, in order; its handler adds to it.
pub type Requests = Arc<Mutex<Vec<Captured>>>;

/// The distinct connections the requests came over, by peer address.
pub fn peers(requests: &Requests) -> Vec<SocketAddr> {
    let mut peers: Vec<SocketAddr> = requests.lock().unwrap().iter().map(|c| c.peer).collect();
    peers.sort_unstable();
    peers.dedup();
    peers
}

/// A response with `status`, these headers and `body`.
fn respond(status: u16, headers: &[(&str, &str)], body: Body) -> Response {
    let response = Response::builder().status(status);
    let response = headers.iter().fold(response, |r, (name, value)| r.header(*name, *value));
    response.body(body).unwrap()
}

/// A refusal with a JSON body and these headers besides its content type.
pub fn json_error(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let headers = [&[("content-type", "application/json")], headers].concat();
    respond(status, &headers, body.into())
}

/// A 200 body with these headers sent in `pieces`, each its own write;
/// `None` breaks the connection.
pub fn stream_response(headers: &[(&str, &str)], pieces: Vec<Option<Vec<u8>>>) -> Response {
    // Yielding before every piece makes the server flush it on its own.
    let body = stream::iter(pieces).then(|piece| async move {
        tokio::task::yield_now().await;
        piece.map(Bytes::from).ok_or_else(|| std::io::Error::other("upstream went away"))
    });
    respond(200, headers, Body::from_stream(body))
}

/// Frames as the pieces of a body: one a frame, or one a byte when
/// `by_byte`; `None` stays a broken connection.
pub fn pieces(frames: Vec<Option<String>>, by_byte: bool) -> Vec<Option<Vec<u8>>> {
    let split = |frame: String| frame.into_bytes().into_iter().map(|b| Some(vec![b])).collect();
    frames
        .into_iter()
        .flat_map(|f| match f {
            Some(f) if by_byte => split(f),
            f => vec![f.map(String::into_bytes)],
        })
        .collect()
}

/// The settings of a `kind` provider for `model` at `base_url`.
pub fn settings(kind: ProviderKind, model: &str, base_url: &str) -> ProviderSettings {
    ProviderSettings { base_url: Some(base_url.into()), ..ProviderSettings::new(kind, model) }
}

/// A first turn of `visitor:test` with the shop's system prompt and this
/// history (oldest first).
pub fn request(history: &[(Role, &str)]) -> ChatRequest {
    let history: Vec<_> = history
        .iter()
        .map(|(role, content)| HistoryMessage { role: *role, content: (*content).into() })
        .collect();
    ChatRequest {
        system_prompt: Some("You are Acme's shop assistant.".into()),
        history: history.into(),
        session_id: uuid::Uuid::nil(),
        subject: "visitor:test".into(),
        conversation_id: None,
        trace_id: String::new(),
        tools: Default::default(),
    }
}

/// Runs one turn that must start; every item of its stream.
pub async fn collect(provider: &impl Provider, request: ChatRequest) -> Items {
    provider.stream(request).await.unwrap().collect().await
}

/// The error of a turn that must not start.
pub async fn start_error(provider: &impl Provider, request: ChatRequest) -> ProviderError {
    provider.stream(request).await.map(|_| ()).unwrap_err()
}

/// The text of the deltas among `items`.
pub fn text_of(items: &[Result<ProviderEvent, ProviderError>]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(ProviderEvent::Delta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// The pieces a replaying fake sends as its next answer body.
pub type Pieces = Arc<Mutex<Vec<Option<Vec<u8>>>>>;

/// Serves a fake vendor at `path` that answers every request with a 200
/// event stream of the pieces currently in the returned handle (set them
/// between turns), and keeps the requests.
pub async fn spawn_replay(path: &str) -> (SocketAddr, Pieces, Requests) {
    fn answer(pieces: &Pieces, _: &Captured) -> Response {
        let pieces = pieces.lock().unwrap().clone();
        stream_response(&[("content-type", "text/event-stream")], pieces)
    }
    let pieces = Pieces::default();
    let (addr, requests) = spawn(path, pieces.clone(), answer).await;
    (addr, pieces, requests)
}

/// A body in two pieces, split at byte `at` (which may fall inside a
/// character or between a CR and its LF).
pub fn split_at(body: &str, at: usize) -> Vec<Option<Vec<u8>>> {
    let (a, b) = body.as_bytes().split_at(at);
    vec![Some(a.to_vec()), Some(b.to_vec())]
}

/// A body one byte a piece.
pub fn by_byte(body: &str) -> Vec<Option<Vec<u8>>> {
    body.bytes().map(|b| Some(vec![b])).collect()
}

/// The tool the tool suites offer.
pub fn search_products() -> ToolSpec {
    ToolSpec {
        name: "search_products".into(),
        description: "Search the shop's catalog.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        }),
    }
}

/// Two rounds of a turn: two calls (the second with arguments that are not
/// JSON, answered with an error) without text, then one call after some
/// text, answered with a plain string.
pub fn rounds() -> Arc<[ToolRound]> {
    let call = |id: &str, name: &str, arguments: &str| ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    };
    let result = |call_id: &str, content: &str, is_error: bool| ToolResult {
        call_id: call_id.into(),
        content: content.into(),
        is_error,
    };
    vec![
        ToolRound {
            text: String::new(),
            calls: vec![
                call("call_1", "search_products", r#"{"query": "running shoes"}"#),
                call("call_2", "view_cart", "{\"cart"),
            ],
            results: vec![
                result("call_1", r#"{"items":[{"id":"p1","title":"Trail runner"}]}"#, false),
                result("call_2", "arguments are not valid JSON: \"{\\\"cart\"", true),
            ],
        },
        ToolRound {
            text: "Found one. ".into(),
            calls: vec![call("call_3", "get_product", r#"{"id":"p1"}"#)],
            results: vec![result("call_3", "Only 2 left", false)],
        },
    ]
    .into()
}

/// A chat request of `history` with these tools.
pub fn with_tools(history: &[(Role, &str)], tools: ToolContext) -> ChatRequest {
    ChatRequest { tools, ..request(history) }
}

/// "Do you have running shoes?" with `search_products` offered.
pub fn shoe_request() -> ChatRequest {
    let tools = ToolContext { offered: vec![search_products()].into(), ..ToolContext::default() };
    with_tools(&[(Role::User, "Do you have running shoes?")], tools)
}

/// The body of the one request a turn with `tools` sent, the upstream
/// answering with `body`.
pub async fn sent(
    provider: &impl Provider,
    pieces: &Pieces,
    requests: &Requests,
    body: &str,
    tools: ToolContext,
) -> serde_json::Value {
    *pieces.lock().unwrap() = vec![Some(body.as_bytes().to_vec())];
    let request = with_tools(&[(Role::User, "Do you have running shoes?")], tools);
    let _ = collect(provider, request).await;
    let requests = requests.lock().unwrap();
    let [Captured { body, .. }] = requests.as_slice() else { panic!("{requests:?}") };
    body.clone()
}

/// The answer `body` gives to [`shoe_request`] is `expected` whole, a byte
/// a piece, with CRLF line endings, and cut in two at every byte.
pub async fn same_whatever_the_cut(provider: &impl Provider, pieces: &Pieces, body: &str, expected: &Items) {
    let crlf = body.replace('\n', "\r\n");
    let whole = |body: &str| vec![Some(body.as_bytes().to_vec())];
    for (way, cut) in [("whole", whole(body)), ("by byte", by_byte(body)), ("crlf", whole(&crlf))] {
        *pieces.lock().unwrap() = cut;
        assert_eq!(&collect(provider, shoe_request()).await, expected, "{way}");
    }
    for at in 1..body.len() {
        *pieces.lock().unwrap() = split_at(body, at);
        assert_eq!(&collect(provider, shoe_request()).await, expected, "split at byte {at}");
    }
}
