//! `switchboard-bench tools`: what the runtime adds to a turn with one tool
//! round (target: at most 1 ms over the upstream's and the webhook's own
//! times at concurrency 1, read at the median; p99 is reported beside it).
//! The zero-delay fake upstream answers a turn's first request with a
//! streamed call of `search_products` and the request that carries its
//! result with text; a zero-delay webhook answers the call. Both run on a
//! thread of their own (`apart.rs`), as a real upstream and backend are
//! other processes. Turns through Switchboard (`POST /v1/chat`
//! to the arrival of `stream_end`) alternate with the same sequence done here
//! without it (first completion streamed to its end, the webhook called, the
//! second completion streamed to its end, over pooled connections as the
//! runtime's), so the difference is the runtime's own share: the turn's work,
//! assembling and checking the call, signing it, and the extra hops. Nothing
//! here asserts timings.

use crate::apart::Apart;
use crate::api::{self, snippet, Visitor};
use crate::error::{Context, Result};
use crate::fake::{FakeUpstream, TOOL_ARGUMENTS, TOOL_NAME};
use crate::harness::{self, Node, ServerArgs};
use crate::server::{Setup, TENANT};
use crate::sse::{contains, Scanner, Wire};
use crate::stats::{self, Ms};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const TARGET_ADDED_MS: f64 = 1.0;
/// Unmeasured turns of each kind first: connections, caches and lazy state warm.
const WARMUP: u32 = 20;
const MESSAGE: &str = "Do you have running shoes?";
const DESCRIPTION: &str = "Search the shop's catalog by words";
/// The tool's JSON Schema as the config writes it; `parameters()` is the same as JSON.
const PARAMETERS_TOML: &str =
    r#"{ type = "object", properties = { query = { type = "string" } }, required = ["query"] }"#;
/// The variable naming the tool's secret, and a valid `whsec_` secret for it.
const SECRET_ENV: &str = "BENCH_TOOL_SECRET";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The webhook's answer: a result for the model, a product card for the visitor.
const ANSWER: &str = r#"{"result":{"products":[{"id":"p1","title":"Trail Runner","price":"129.00","currency":"EUR","availability":"in_stock"}]},"display":{"type":"products","items":[{"id":"p1","title":"Trail Runner","price":"129.00","currency":"EUR","availability":"in_stock","url":"https://shop.example/p/p1","image":"https://shop.example/p/p1.png"}]}}"#;

#[derive(clap::Args, Debug, Clone)]
pub struct ToolsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Measured turns each direct and through Switchboard (after 20 unmeasured).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub turns: u32,
    /// Content chunks of the answer after the tool round.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub chunks: u32,
}

/// Milliseconds per turn of each kind, and the fakes' own times, measured turns only.
struct Measured {
    direct: Vec<f64>,
    through: Vec<f64>,
    upstream_own: Vec<f64>,
    webhook_own: Vec<f64>,
}

pub async fn run(args: ToolsArgs) -> Result<()> {
    let listen: SocketAddr = "127.0.0.1:0".parse().context("loopback")?;
    let chunks = args.chunks;
    let (_fakes, (upstream, webhook)) = Apart::start("fakes", move || async move {
        Ok((FakeUpstream::start_with_tool_call(listen, chunks).await?, Webhook::start().await?))
    })?;
    eprintln!("fake upstream on http://{}/v1, on a thread of its own", upstream.addr());
    eprintln!("webhook on {}, on that thread too", webhook.url());
    let mut servers = Vec::new();
    let node = harness::start(&args.server, &upstream, &setup(&args, &webhook.url()), &mut servers).await?;
    let limit = Duration::from_secs(120) + Duration::from_millis(200) * (WARMUP + args.turns);
    let measured =
        harness::finish(&mut servers, limit, measure(&node, &upstream, &webhook, args.turns)).await?;
    println!("{}", render(&args, &measured, &upstream, &webhook));
    Ok(())
}

/// The operator's loopback allowance and the tenant's one webhook tool (the
/// `[[tenants.tools]]` entry, written inline: `Setup` lines are `key = value`).
fn setup(args: &ToolsArgs, webhook_url: &str) -> Setup {
    let tool = format!(
        r#"tools = [{{ name = "{TOOL_NAME}", description = "{DESCRIPTION}", parameters = {PARAMETERS_TOML}, url = "{webhook_url}", secret_env = "{SECRET_ENV}", timeout_ms = 5000 }}]"#
    );
    Setup {
        top: vec![r#"tool_allow_private = ["127.0.0.1"]"#.to_owned()],
        tenant: vec![tool],
        env: vec![(SECRET_ENV.to_owned(), SECRET.to_owned())],
        keep_data: args.server.keep_data,
        ..Setup::default()
    }
}

fn parameters() -> Value {
    json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})
}

async fn measure(node: &Node, upstream: &FakeUpstream, webhook: &Webhook, turns: u32) -> Result<Measured> {
    let client = api::client(4)?;
    let direct = Direct::new(upstream, webhook)?;
    let visitor = Visitor::create(&client, &node.base).await?;
    eprintln!("{WARMUP} warm-up + {turns} measured turns each, direct and through Switchboard, alternating");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mut d, mut s) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + turns {
        if i == WARMUP {
            upstream.take_served();
            webhook.take_served();
        }
        let a = direct.turn(&client).await.map_err(|e| format!("direct turn {i}: {e}"))?;
        let b = through(&client, &node.base, &visitor)
            .await
            .map_err(|e| format!("turn {i} through Switchboard: {e}"))?;
        if i >= WARMUP {
            d.push(ms(a));
            s.push(ms(b));
        }
    }
    let own = |v: Vec<Duration>| v.into_iter().map(ms).collect();
    Ok(Measured {
        direct: d,
        through: s,
        upstream_own: own(upstream.take_served()),
        webhook_own: own(webhook.take_served()),
    })
}

/// One turn through Switchboard, to the arrival of its `stream_end`; it must
/// have run the tool (a `tool` event with status `done`).
async fn through(client: &reqwest::Client, base: &str, visitor: &Visitor) -> Result<Duration> {
    let start = Instant::now();
    let events = api::chat(client, base, visitor, MESSAGE).await?;
    let end = events.iter().find(|e| e.name == "stream_end").context("no stream_end")?;
    if !events.iter().any(|e| e.name == "tool" && contains(&e.data, br#""status":"done""#)) {
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        return Err(format!("no `tool` event with status done among {names:?}").into());
    }
    Ok(end.at - start)
}

/// The direct sequence's three requests, rendered once; their shapes are the
/// runtime's (SPEC §16), the ids fixed.
struct Direct {
    completions: String,
    webhook: String,
    first: Bytes,
    call: Bytes,
    second: Bytes,
}

impl Direct {
    fn new(upstream: &FakeUpstream, webhook: &Webhook) -> Result<Self> {
        let tools = json!([{"type": "function", "function": {"name": TOOL_NAME, "description": DESCRIPTION, "parameters": parameters()}}]);
        let request = |messages: Value| {
            let body = json!({"model": "bench", "stream": true, "stream_options": {"include_usage": true}, "messages": messages, "tools": tools});
            Bytes::from(body.to_string())
        };
        let user = json!({"role": "user", "content": MESSAGE});
        let (id, arguments) = ("call_bench", TOOL_ARGUMENTS);
        let asked = json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": TOOL_NAME, "arguments": arguments}}]});
        let answer: Value = serde_json::from_str(ANSWER).context("the webhook's answer")?;
        let result = json!({"role": "tool", "tool_call_id": id, "content": answer["result"].to_string()});
        let call = json!({
            "type": "tool.call", "tenant_id": TENANT, "session_id": "00000000-0000-0000-0000-000000000000",
            "turn_id": "00000000-0000-0000-0000-000000000000", "call_id": id, "tool": TOOL_NAME,
            "arguments": serde_json::from_str::<Value>(arguments).context("the tool's arguments")?,
            "subject": {"kind": "visitor", "id": "bench"}, "context": null,
        });
        Ok(Self {
            completions: format!("http://{}/v1/chat/completions", upstream.addr()),
            webhook: webhook.url(),
            first: request(json!([user])),
            call: Bytes::from(call.to_string()),
            second: request(json!([user, asked, result])),
        })
    }

    /// First completion to `[DONE]`, the webhook's whole answer, second completion to `[DONE]`.
    async fn turn(&self, client: &reqwest::Client) -> Result<Duration, String> {
        let start = Instant::now();
        stream_to_end(client, &self.completions, &self.first).await?;
        let response = send(client, &self.webhook, &self.call).await?;
        response.bytes().await.map_err(|e| format!("reading the webhook's answer: {e}"))?;
        stream_to_end(client, &self.completions, &self.second).await?;
        Ok(start.elapsed())
    }
}

/// A POST answered 2xx.
async fn send(client: &reqwest::Client, url: &str, body: &Bytes) -> Result<reqwest::Response, String> {
    let response = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Err(format!("HTTP {status}: {}", snippet(&body)));
    }
    Ok(response)
}

/// A streamed completion read to its `[DONE]` and the end of the response.
async fn stream_to_end(client: &reqwest::Client, url: &str, body: &Bytes) -> Result<(), String> {
    let mut response = send(client, url, body).await?;
    let mut scanner = Scanner::new(Wire::Upstream);
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the stream: {e}"))? {
        if let Some(error) = &scanner.feed(&chunk).error {
            return Err(format!("error chunk: {}", snippet(error.as_bytes())));
        }
    }
    if scanner.progress().end {
        Ok(())
    } else {
        Err("the stream ended without [DONE]".to_owned())
    }
}

/// A zero-delay webhook tool: every POST is answered 200 with `ANSWER`. It
/// does not verify the Standard Webhooks signature the runtime sends: it
/// stands for the tenant's server, and what is measured is the runtime.
struct Webhook {
    addr: SocketAddr,
    state: Arc<WebhookState>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct WebhookState {
    calls: AtomicU64,
    /// Each call's time in the handler (since the last `take_served`).
    served: Mutex<Vec<Duration>>,
}

impl Webhook {
    async fn start() -> Result<Self> {
        let state = Arc::new(WebhookState::default());
        let app = Router::new().route("/tools", post(answer)).with_state(state.clone());
        let listen = "127.0.0.1:0".parse().context("loopback")?;
        let (addr, task) = crate::harness::serve("webhook", listen, app, || {}).await?;
        Ok(Self { addr, state, task })
    }

    fn url(&self) -> String {
        format!("http://{}/tools", self.addr)
    }

    fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::Relaxed)
    }

    fn take_served(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.state.served.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The call's body is taken (so the connection stays usable) and not read.
async fn answer(State(state): State<Arc<WebhookState>>, _call: Bytes) -> Response {
    let start = Instant::now();
    state.calls.fetch_add(1, Ordering::Relaxed);
    let response = ([(CONTENT_TYPE, "application/json")], ANSWER).into_response();
    state.served.lock().unwrap_or_else(PoisonError::into_inner).push(start.elapsed());
    response
}

fn render(args: &ToolsArgs, m: &Measured, upstream: &FakeUpstream, webhook: &Webhook) -> String {
    let (direct, through) = (Ms::of(&m.direct), Ms::of(&m.through));
    let minus = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    let added = Ms {
        n: m.through.len(),
        p50: minus(through.p50, direct.p50),
        p90: minus(through.p90, direct.p90),
        p99: minus(through.p99, direct.p99),
        max: None,
    };
    let mut text = stats::header("turn with one tool round, c=1");
    text.push_str(&stats::row("direct: completion → webhook → completion", &direct));
    text.push_str(&stats::row("through Switchboard: POST /v1/chat → stream_end", &through));
    text.push_str(&stats::row("added by Switchboard (through − direct, per percentile)", &added));
    text.push_str(&stats::row(
        "fake upstream's own time per completion (handler → end of body)",
        &Ms::of(&m.upstream_own),
    ));
    text.push_str(&stats::row("webhook's own time per call (handler)", &Ms::of(&m.webhook_own)));
    text.push('\n');
    let turns = u64::from(WARMUP + args.turns);
    text.push_str(&format!(
        "- {} measured turns of each kind after {WARMUP} warm-up ones, alternating, one visitor session; every turn through Switchboard had a `tool` event `done`; {} content chunks after the round\n",
        m.through.len(), args.chunks
    ));
    text.push_str(&format!(
        "- fake upstream: {} completions, {} of them tool calls (expected {} and {}), over {} TCP connections (the load generator's and the server's); webhook calls: {} (expected {})\n",
        upstream.calls(), upstream.tool_calls(), 4 * turns, 2 * turns, upstream.connections(), webhook.calls(), 2 * turns
    ));
    if let (Some(p50), Some(p99)) = (added.p50, added.p99) {
        text.push_str(&format!(
            "- target: at most {TARGET_ADDED_MS} ms added to a turn with one tool round at c=1, at the median; measured {p50:+.3} ms (p50; p99 {p99:+.3} ms): {}\n",
            stats::verdict(p50 <= TARGET_ADDED_MS)
        ));
    }
    text.push_str(&crate::report::provenance());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_declares_one_webhook_tool_and_allows_loopback() {
        let args = ToolsArgs {
            server: ServerArgs { server_bin: "x".into(), keep_data: false },
            turns: 1,
            chunks: 1,
        };
        let setup = setup(&args, "http://127.0.0.1:4000/tools");
        let top: toml::Table = setup.top[0].parse().unwrap();
        assert_eq!(top["tool_allow_private"].as_array().unwrap()[0].as_str(), Some("127.0.0.1"));
        let tenant: toml::Table = setup.tenant[0].parse().unwrap();
        let tool = &tenant["tools"].as_array().unwrap()[0];
        assert_eq!(tool["name"].as_str(), Some(TOOL_NAME));
        assert_eq!(tool["url"].as_str(), Some("http://127.0.0.1:4000/tools"));
        assert_eq!(tool["secret_env"].as_str(), Some(SECRET_ENV));
        let schema = serde_json::to_value(&tool["parameters"]).unwrap();
        assert_eq!(schema, parameters());
        assert!(setup.env.iter().any(|(k, v)| k == SECRET_ENV && v.starts_with("whsec_")));
    }

    #[test]
    fn the_answer_has_a_result_and_a_product_display() {
        let answer: Value = serde_json::from_str(ANSWER).unwrap();
        assert!(answer["result"].is_object());
        assert_eq!(answer["display"]["type"], "products");
        assert_eq!(answer["display"]["items"].as_array().map(Vec::len), Some(1));
    }
}
