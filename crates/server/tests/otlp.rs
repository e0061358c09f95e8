//! Spans exported over OTLP/HTTP (`otlp_endpoint`): a collector in the test
//! takes `POST /v1/traces` (protobuf, as the exporter sends by default) and
//! keeps the spans; a turn's request, turn and provider spans must arrive
//! with the trace id the response names in `X-Trace-Id`, each the child of
//! the one before, and the vendor must be told the provider span as its
//! parent.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use common::fake_anthropic::{AnthropicMode, FakeAnthropic};
use common::{chat_body, pieces, AppConfig, TenantSpec, TestApp};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A span as the collector got it, ids in hex.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
    attributes: Vec<(String, String)>,
    service: String,
}

impl Got {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An OTLP/HTTP collector on a free local port.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Got>>>,
    port: u16,
}

impl Collector {
    async fn start() -> Self {
        let mut collector = Self::default();
        let app = Router::new().route("/v1/traces", post(take)).with_state(collector.clone());
        collector.port = common::fake_upstream::serve(app).await;
        collector
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (at most `within`) until spans named `names` of trace `trace_id` came.
    async fn wait_for(&self, trace_id: &str, names: &[&str], within: Duration) -> Vec<Got> {
        let deadline = Instant::now() + within;
        loop {
            let spans: Vec<Got> = self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();
            if names.iter().all(|n| spans.iter().any(|s| s.name == *n)) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "spans {names:?} of {trace_id} did not arrive; got {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn take(
    State(collector): State<Collector>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let protobuf = headers.get(header::CONTENT_TYPE).is_some_and(|v| v == "application/x-protobuf");
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    if !protobuf {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let mut spans = collector.spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| attributes(&r.attributes))
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v)
            .unwrap_or_default();
        for scope in resource.scope_spans {
            spans.extend(scope.spans.iter().map(|s| got(s, &service)));
        }
    }
    (StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
}

fn got(span: &Span, service: &str) -> Got {
    Got {
        name: span.name.clone(),
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_id: hex(&span.parent_span_id),
        attributes: attributes(&span.attributes),
        service: service.to_owned(),
    }
}

fn attributes(list: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<(String, String)> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn named<'a>(spans: &'a [Got], name: &str) -> &'a Got {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

/// A client's trace goes on through the runtime: its request span is the
/// client span's child, the turn's span the request's, the provider call's
/// the turn's, and the vendor hears the provider span as its parent. The
/// batch waits a minute here, so only the flush at shutdown can send them.
#[tokio::test]
async fn a_turns_spans_arrive_linked_and_are_flushed_at_shutdown() {
    let collector = Collector::start().await;
    let fake = FakeAnthropic::start(AnthropicMode::Normal(pieces(2))).await;
    let tenant = TenantSpec::upstream("acme", "anthropic", &fake.base_url(), "sonnet-fake");
    let config = AppConfig::new()
        .raw(&format!("otlp_endpoint = \"{}\"", collector.endpoint()))
        .raw("otlp_service_name = \"switchboard-test\"")
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .tenant(tenant);
    let mut app = TestApp::start(config).await;
    let (sid, visitor) = app.create_session("acme").await;

    let (client_trace, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let request = app
        .request(reqwest::Method::POST, "/v1/chat", Some(&visitor))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .json(&chat_body(&sid, "Hello"));
    let reply = app.send(request).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.header("x-trace-id").as_deref(), Some(client_trace));
    let upstream = fake.last_request().header("traceparent").unwrap_or_default().to_owned();

    let (status, _) = app.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    // The process has exited: what it flushed is all there is.
    let spans =
        collector.wait_for(client_trace, &["POST /v1/chat", "turn", "provider"], Duration::ZERO).await;
    let request = named(&spans, "POST /v1/chat");
    let turn = named(&spans, "turn");
    let provider = named(&spans, "provider");
    assert_eq!(request.parent_id, client_span, "the request span is the client span's child");
    assert_eq!(turn.parent_id, request.span_id, "the turn span is the request's child");
    assert_eq!(provider.parent_id, turn.span_id, "the provider call is the turn's child");
    assert_eq!(upstream, format!("00-{client_trace}-{}-01", provider.span_id), "the vendor's parent");

    assert_eq!(request.service, "switchboard-test");
    assert_eq!(request.attribute("http.route"), Some("/v1/chat"));
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    assert_eq!(request.attribute("tenant"), Some("acme"));
    assert_eq!(turn.attribute("tenant"), Some("acme"));
    assert_eq!(turn.attribute("session"), Some(sid.as_str()));
    assert_eq!(provider.attribute("provider"), Some("anthropic"));
    assert_eq!(provider.attribute("model"), Some("sonnet-fake"));
}

/// Without a client trace the request starts one, named in `X-Trace-Id`;
/// the spans arrive while the server runs, in batches.
#[tokio::test]
async fn spans_arrive_in_batches_while_serving() {
    let collector = Collector::start().await;
    let config = AppConfig::new()
        .raw(&format!("otlp_endpoint = \"{}/\"", collector.endpoint()))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .tenant(TenantSpec::demo("acme"));
    let app = TestApp::start(config).await;
    let (sid, visitor) = app.create_session("acme").await;
    let reply = app.chat_stream(&visitor, &sid, "Hello").await;
    let trace_id =
        reply.headers.get("x-trace-id").and_then(|v| v.to_str().ok()).expect("x-trace-id").to_owned();

    let spans = collector.wait_for(&trace_id, &["POST /v1/chat", "turn"], Duration::from_secs(15)).await;
    let request = named(&spans, "POST /v1/chat");
    let turn = named(&spans, "turn");
    assert_eq!(request.parent_id, "", "a request without a traceparent starts the trace");
    assert_eq!(turn.parent_id, request.span_id);
    assert_eq!(request.service, "switchboard");
    // The session's creation was a trace of its own.
    assert!(collector.spans().iter().any(|s| s.name == "POST /v1/sessions" && s.trace_id != trace_id));
}

/// A turn started by a WebSocket message is the child of the socket's
/// request span, which lasts as long as the socket.
#[tokio::test]
async fn a_websocket_turn_is_the_child_of_the_sockets_request() {
    let collector = Collector::start().await;
    let config = AppConfig::new()
        .raw(&format!("otlp_endpoint = \"{}\"", collector.endpoint()))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .tenant(TenantSpec::demo("acme"));
    let app = TestApp::start(config).await;
    let (sid, visitor) = app.create_session("acme").await;
    let (mut ws, _) = app.ws_hello("acme", &visitor.token, &sid, None).await;
    ws.send_json(&serde_json::json!({"type": "message", "content": "Hello"})).await;
    ws.until("stream_end", Duration::from_secs(20)).await;
    ws.close().await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let socket = loop {
        if let Some(socket) = collector.spans().into_iter().find(|s| s.name == "GET /v1/ws") {
            break socket;
        }
        assert!(Instant::now() < deadline, "no span of the socket's request: {:#?}", collector.spans());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let spans = collector.wait_for(&socket.trace_id, &["turn"], Duration::from_secs(5)).await;
    assert_eq!(named(&spans, "turn").parent_id, socket.span_id);
    assert_eq!(socket.attribute("http.response.status_code"), Some("101"));
}
