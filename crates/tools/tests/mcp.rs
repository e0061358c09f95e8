//! MCP servers as a tool source against a real MCP server: rmcp's own server
//! side, served over Streamable HTTP by axum on 127.0.0.1 (allow-listed
//! explicitly). Listing (prefixed names, `allow`), calls (structured content
//! first, else text; `isError`; the turn's `traceparent` in `_meta`), the
//! bearer token, a server that is down at
//! start, a slow one, refreshes, and the private-address guard. Intervals
//! and timeouts are shortened so each test takes well under 2 s.

// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData, ListToolsResult,
    PaginatedRequestParams, RequestParamsMeta, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServerHandler;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_core::tools::{Invocation, Outcome, ToolCall, Toolbox};
use switchboard_tools::{
    ListingIntervals, McpClient, McpServer, McpServerConfig, PrivateAllowList, ToolSet, WebhookClient,
    WebhookToolbox,
};

const TOKEN: &str = "s3cret-token";

/// What the test server lists and how it behaves; tests change it live.
#[derive(Default)]
struct Shop {
    tools: Mutex<Vec<Tool>>,
    ttl_ms: Mutex<Option<u64>>,
    list_delay: Mutex<Duration>,
    /// Every request is answered 503 while set.
    down: AtomicBool,
    lists: AtomicUsize,
    /// The `Authorization` headers seen, when a token is required.
    authorizations: Mutex<Vec<String>>,
    /// The `_meta.traceparent` of each call.
    traceparents: Mutex<Vec<Option<String>>>,
}

impl Shop {
    fn new() -> Arc<Self> {
        let shop = Self::default();
        *shop.tools.lock().unwrap() = ["structured", "text", "broken", "slow", "hidden"].map(tool).to_vec();
        Arc::new(shop)
    }

    fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }
}

fn tool(name: &str) -> Tool {
    let schema = json!({"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]});
    let Value::Object(schema) = schema else { unreachable!() };
    Tool::new(name.to_owned(), format!("The {name} tool"), Arc::new(schema))
}

#[derive(Clone)]
struct Handler(Arc<Shop>);

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.0.lists.fetch_add(1, Ordering::SeqCst);
        let delay = *self.0.list_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let mut result = ListToolsResult::with_all_items(self.0.tools.lock().unwrap().clone());
        result.ttl_ms = *self.0.ttl_ms.lock().unwrap();
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // rmcp's server hands the request's `_meta` over in the context.
        let traceparent = context.meta.get_traceparent().or(request.traceparent()).map(str::to_owned);
        self.0.traceparents.lock().unwrap().push(traceparent);
        let sku = request.arguments.as_ref().and_then(|a| a.get("sku")).cloned().unwrap_or(Value::Null);
        let result = match request.name.as_ref() {
            "structured" => CallToolResult::structured(json!({"sku": sku, "price": 42})),
            "text" => {
                CallToolResult::success(vec![ContentBlock::text("two pairs"), ContentBlock::text("in stock")])
            }
            "broken" => CallToolResult::error(vec![ContentBlock::text("order not found")]),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                CallToolResult::success(vec![ContentBlock::text("late")])
            }
            other => return Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(result.into())
    }
}

/// Serves `shop` on `addr` at `/mcp`; with `token`, only requests bearing it.
async fn serve_on(addr: SocketAddr, shop: Arc<Shop>, token: Option<&'static str>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Handler(Arc::clone(&shop));
    let service: StreamableHttpService<Handler, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Default::default(),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None),
    );
    let app = axum::Router::new().nest_service("/mcp", service).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let shop = Arc::clone(&shop);
            async move { authorize(&shop, token, request, next).await }
        },
    ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn authorize(shop: &Shop, token: Option<&str>, request: Request, next: Next) -> Response {
    if shop.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(token) = token else { return next.run(request).await };
    let seen = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    shop.authorizations.lock().unwrap().push(seen.to_owned());
    if seen != format!("Bearer {token}") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(request).await
}

async fn serve(shop: Arc<Shop>) -> SocketAddr {
    serve_on("127.0.0.1:0".parse().unwrap(), shop, None).await
}

fn client() -> McpClient {
    McpClient::new(PrivateAllowList::parse(["127.0.0.1"]).unwrap())
}

fn config(addr: SocketAddr) -> McpServerConfig {
    McpServerConfig {
        tenant_id: "acme".into(),
        name: "shop".into(),
        url: format!("http://{addr}/mcp"),
        bearer_token: None,
        allow: None,
        timeout: Duration::from_secs(1),
        intervals: ListingIntervals { refresh: Duration::from_secs(60), retry: Duration::from_secs(60) },
    }
}

fn toolset(servers: Vec<McpServer>) -> ToolSet {
    let webhooks =
        WebhookToolbox::new("acme".into(), Arc::new(WebhookClient::new(Default::default())), vec![]);
    ToolSet::new(webhooks, servers).unwrap()
}

async fn names(tools: &dyn Toolbox) -> Vec<String> {
    tools.offered().await.iter().map(|t| t.name.clone()).collect()
}

fn call(name: &str, arguments: &str) -> ToolCall {
    ToolCall { id: "call_1".into(), name: name.into(), arguments: arguments.into() }
}

fn invocation(name: &str, arguments: Value) -> Invocation {
    Invocation {
        tenant_id: "acme".into(),
        session_id: uuid::Uuid::now_v7(),
        turn_id: uuid::Uuid::now_v7(),
        call_id: "call_1".into(),
        name: name.into(),
        arguments,
        subject: json!({"kind": "visitor", "id": "v1"}),
        context: None,
        trace_id: String::new(),
    }
}

/// Checks the call, then runs it, like a turn does.
async fn run(tools: &dyn Toolbox, name: &str, arguments: &str) -> Outcome {
    let arguments = tools.check(&call(name, arguments)).unwrap();
    tools.run(invocation(name, arguments)).await
}

#[tokio::test]
async fn tools_are_offered_prefixed_and_allow_filters_them() {
    let addr = serve(Shop::new()).await;
    let all = McpServer::new(config(addr), &client()).unwrap();
    assert_eq!(
        names(&all).await,
        ["shop__structured", "shop__text", "shop__broken", "shop__slow", "shop__hidden"]
    );
    let offered = all.offered().await;
    assert_eq!(offered[0].description, "The structured tool");
    assert_eq!(offered[0].parameters["required"], json!(["sku"]));

    let allow = Some(vec!["text".to_owned(), "broken".to_owned(), "absent".to_owned()]);
    let some = McpServer::new(McpServerConfig { allow, ..config(addr) }, &client()).unwrap();
    assert_eq!(names(&some).await, ["shop__text", "shop__broken"]);
    let hidden = some.check(&call("shop__hidden", r#"{"sku":"p1"}"#)).unwrap_err();
    assert!(hidden.contains("unknown tool"), "{hidden}");
}

#[tokio::test]
async fn calls_give_structured_content_first_else_the_text() {
    let addr = serve(Shop::new()).await;
    let tools = toolset(vec![McpServer::new(config(addr), &client()).unwrap()]);
    assert_eq!(names(&tools).await.len(), 5);

    let structured = run(&tools, "shop__structured", r#"{"sku":"p1"}"#).await;
    assert_eq!(structured, Outcome { result: Ok(json!({"sku": "p1", "price": 42})), display: None });
    let text = run(&tools, "shop__text", r#"{"sku":"p1"}"#).await;
    assert_eq!(text.result, Ok(json!("two pairs\nin stock")));

    // Arguments are checked against the listed inputSchema before any call.
    let missing = tools.check(&call("shop__text", "{}")).unwrap_err();
    assert!(missing.contains("schema") && missing.contains("sku"), "{missing}");
    let unknown = tools.check(&call("other__text", "{}")).unwrap_err();
    assert!(unknown.contains("unknown tool"), "{unknown}");
}

/// A call carries the turn's trace context where MCP carries it: the
/// params' `_meta` (SEP-414), with the turn's trace id; without one, none.
#[tokio::test]
async fn a_call_carries_the_turns_traceparent_in_its_meta() {
    let shop = Shop::new();
    let addr = serve(Arc::clone(&shop)).await;
    let tools = toolset(vec![McpServer::new(config(addr), &client()).unwrap()]);
    assert_eq!(names(&tools).await.len(), 5);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let arguments = tools.check(&call("shop__structured", r#"{"sku":"p1"}"#)).unwrap();
    let traced = Invocation { trace_id: trace_id.into(), ..invocation("shop__structured", arguments) };
    assert!(tools.run(traced).await.result.is_ok());
    run(&tools, "shop__structured", r#"{"sku":"p1"}"#).await;

    let seen = shop.traceparents.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let parts: Vec<&str> = seen[0].as_deref().unwrap_or_default().split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", trace_id, "01"), "{seen:?}");
    assert_eq!(seen[1], None, "no trace id, no traceparent");
}

#[tokio::test]
async fn is_error_is_an_error_result_with_the_text_as_reason() {
    let addr = serve(Shop::new()).await;
    let tools = toolset(vec![McpServer::new(config(addr), &client()).unwrap()]);
    tools.offered().await;
    let broken = run(&tools, "shop__broken", r#"{"sku":"p1"}"#).await;
    assert_eq!(broken.result, Err("order not found".to_owned()));
}

#[tokio::test]
async fn the_bearer_token_is_sent_and_a_wrong_one_lists_nothing() {
    let shop = Shop::new();
    let addr = serve_on("127.0.0.1:0".parse().unwrap(), Arc::clone(&shop), Some(TOKEN)).await;
    let with = |token: Option<&str>| McpServerConfig { bearer_token: token.map(Into::into), ..config(addr) };

    let right = toolset(vec![McpServer::new(with(Some(TOKEN)), &client()).unwrap()]);
    assert_eq!(names(&right).await.len(), 5);
    assert_eq!(run(&right, "shop__text", r#"{"sku":"p1"}"#).await.result, Ok(json!("two pairs\nin stock")));
    assert!(shop.authorizations.lock().unwrap().iter().all(|seen| *seen == format!("Bearer {TOKEN}")));

    let wrong = McpServer::new(with(Some("guess")), &client()).unwrap();
    assert!(wrong.offered().await.is_empty());
    let none = McpServer::new(with(None), &client()).unwrap();
    assert!(none.offered().await.is_empty());
    let seen = shop.authorizations.lock().unwrap().clone();
    assert!(seen.contains(&"Bearer guess".to_owned()) && seen.contains(&String::new()), "{seen:?}");
    // Refused at the handshake: the listing itself was never reached.
    assert_eq!(shop.lists(), 1);
}

#[tokio::test]
async fn a_server_down_at_start_is_offered_once_it_answers_after_the_retry_interval() {
    // A port nothing listens on, until the server comes up on it.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let retry = Duration::from_millis(300);
    let intervals = ListingIntervals { refresh: Duration::from_secs(60), retry };
    let server = McpServer::new(McpServerConfig { intervals, ..config(addr) }, &client()).unwrap();
    let tools = toolset(vec![server]);

    let started = Instant::now();
    assert!(tools.offered().await.is_empty());
    let failed_call = tools.check(&call("shop__text", r#"{"sku":"p1"}"#)).unwrap_err();
    assert!(failed_call.contains("unknown tool"), "{failed_call}");

    let shop = Shop::new();
    serve_on(addr, Arc::clone(&shop), None).await;
    // Within the retry interval the failed listing is not tried again.
    assert!(tools.offered().await.is_empty());
    assert_eq!(shop.lists(), 0);
    assert!(started.elapsed() < retry, "the test machine is too slow for this interval");

    tokio::time::sleep(retry).await;
    assert_eq!(names(&tools).await.len(), 5);
    assert_eq!(shop.lists(), 1);
}

#[tokio::test]
async fn a_server_that_fails_later_is_withdrawn_then_offered_again() {
    let shop = Shop::new();
    let addr = serve(Arc::clone(&shop)).await;
    let every = Duration::from_millis(200);
    let intervals = ListingIntervals { refresh: every, retry: every };
    let server = McpServer::new(McpServerConfig { intervals, ..config(addr) }, &client()).unwrap();
    let tools = toolset(vec![server]);
    assert_eq!(names(&tools).await.len(), 5);

    // The open session fails at the next refresh, and so does a new one.
    shop.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(every).await;
    assert!(tools.offered().await.is_empty());
    let failing = tools.run(invocation("shop__text", json!({"sku": "p1"}))).await;
    assert_eq!(failing.result, Err("connection failed".to_owned()));

    shop.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(every).await;
    assert_eq!(names(&tools).await.len(), 5);
    assert_eq!(run(&tools, "shop__text", r#"{"sku":"p1"}"#).await.result, Ok(json!("two pairs\nin stock")));
}

#[tokio::test]
async fn a_slow_server_is_a_timeout_and_never_holds_a_turn_longer() {
    let shop = Shop::new();
    let addr = serve(Arc::clone(&shop)).await;
    let timeout = Duration::from_millis(300);
    let tools =
        toolset(vec![McpServer::new(McpServerConfig { timeout, ..config(addr) }, &client()).unwrap()]);
    assert_eq!(names(&tools).await.len(), 5);

    let started = Instant::now();
    let slow = run(&tools, "shop__slow", r#"{"sku":"p1"}"#).await;
    assert_eq!(slow.result, Err("timeout".to_owned()));
    assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());

    // A slow listing: the turn goes on without the server's tools.
    let slow_lister = Shop::new();
    *slow_lister.list_delay.lock().unwrap() = Duration::from_secs(10);
    let addr = serve(slow_lister).await;
    let server = McpServer::new(McpServerConfig { timeout, ..config(addr) }, &client()).unwrap();
    let started = Instant::now();
    assert!(server.offered().await.is_empty());
    assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_refresh_picks_up_a_changed_tool_list() {
    let shop = Shop::new();
    let addr = serve(Arc::clone(&shop)).await;
    let every = Duration::from_millis(300);
    let intervals = ListingIntervals { refresh: every, retry: every };
    let server = McpServer::new(McpServerConfig { intervals, ..config(addr) }, &client()).unwrap();
    let started = Instant::now();
    assert_eq!(server.offered().await.len(), 5);

    *shop.tools.lock().unwrap() = vec![tool("text"), tool("new_arrivals")];
    // Cached until the interval is over.
    assert_eq!(server.offered().await.len(), 5);
    assert_eq!(shop.lists(), 1);
    assert!(started.elapsed() < every, "the test machine is too slow for this interval");

    tokio::time::sleep(every).await;
    assert_eq!(names(&server).await, ["shop__text", "shop__new_arrivals"]);
    assert_eq!(shop.lists(), 2);
    assert!(server.check(&call("shop__new_arrivals", r#"{"sku":"p1"}"#)).is_ok());
    assert!(server.check(&call("shop__structured", r#"{"sku":"p1"}"#)).is_err());
}

#[tokio::test]
async fn the_servers_cache_hint_makes_the_refresh_sooner() {
    let shop = Shop::new();
    *shop.ttl_ms.lock().unwrap() = Some(200);
    let addr = serve(Arc::clone(&shop)).await;
    let intervals =
        ListingIntervals { refresh: Duration::from_secs(3600), retry: Duration::from_millis(100) };
    let server = McpServer::new(McpServerConfig { intervals, ..config(addr) }, &client()).unwrap();
    assert_eq!(server.offered().await.len(), 5);

    *shop.tools.lock().unwrap() = vec![tool("text")];
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(names(&server).await, ["shop__text"]);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let shop = Shop::new();
    let addr = serve(Arc::clone(&shop)).await;
    let nothing_private = McpClient::new(PrivateAllowList::default());

    // A literal address: refused at start, with a reason for the operator.
    let literal = McpServer::new(config(addr), &nothing_private).err().unwrap();
    assert!(literal.contains("tool_allow_private"), "{literal}");

    // A name that resolves to loopback: refused when the connection is made.
    let by_name = McpServerConfig { url: format!("http://localhost:{}/mcp", addr.port()), ..config(addr) };
    let server = McpServer::new(by_name.clone(), &nothing_private).unwrap();
    assert!(server.offered().await.is_empty());
    let refused = server.run(invocation("shop__text", json!({"sku": "p1"}))).await;
    assert_eq!(refused.result, Err("address not allowed".to_owned()));
    assert_eq!(shop.lists(), 0);

    let allowed = McpClient::new(PrivateAllowList::parse(["localhost"]).unwrap());
    let server = McpServer::new(by_name, &allowed).unwrap();
    assert_eq!(server.offered().await.len(), 5);
}
