//! What the server log must never hold: tickets travel in URLs, so the
//! access log redacts them; refused credentials are never echoed.

mod common;

use common::{AppConfig, TenantSpec, TestApp};
use std::time::{Duration, Instant};

#[tokio::test]
async fn tickets_and_tokens_never_reach_the_log() {
    let config = AppConfig::new().env("RUST_LOG", "debug").tenant(TenantSpec::demo("acme"));
    let app = TestApp::start(config).await;
    let (_sid, visitor) = app.create_session("acme").await;
    let marker = "TICKETMARKER0123456789";
    let reply = app
        .send(app.client.get(app.url(&format!("/v1/sessions?tenant=acme&ticket={marker}&token={marker}"))))
        .await;
    assert_eq!(reply.status.as_u16(), 401, "{}", reply.text);
    let bad = app
        .send(
            app.request(reqwest::Method::GET, "/v1/sessions", None)
                .header("x-tenant-id", "acme")
                .bearer_auth(marker),
        )
        .await;
    bad.assert_error(401, "auth.invalid");
    assert!(!bad.text.contains(marker));

    // The access line of the last request shows up once the log is flushed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !app.log().contains("ticket=REDACTED") {
        assert!(Instant::now() < deadline, "no redacted access line in the log:\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = app.log();
    assert!(!log.contains(marker), "a credential reached the log");
    assert!(!log.contains(&visitor.token), "a visitor token reached the log");
}

/// `log_format = "json"`: every line is a JSON object; a request's access
/// line carries the trace id its response names, its route, tenant, status
/// and latency; what a turn logs carries the turn's span (the same trace
/// id, the tenant, the session).
#[tokio::test]
async fn json_lines_carry_the_trace_id_of_the_response_and_the_turn_span() {
    // Nothing listens on port 9: the provider fails, and the turn says so.
    let dead = TenantSpec::upstream("acme", "openai", "http://127.0.0.1:9/v1", "m");
    let app = TestApp::start(AppConfig::new().raw(r#"log_format = "json""#).tenant(dead)).await;
    let (sid, visitor) = app.create_session("acme").await;
    let reply = app.chat_stream(&visitor, &sid, "hello").await;
    let trace_id =
        reply.headers.get("x-trace-id").and_then(|v| v.to_str().ok()).expect("x-trace-id").to_owned();
    assert!(reply.events.iter().any(|e| e.event == "error"), "the turn should fail: {:?}", reply.events);

    let deadline = Instant::now() + Duration::from_secs(5);
    let (access, in_turn) = loop {
        let lines: Vec<serde_json::Value> = app
            .log()
            .lines()
            // The harness marks each start of the server in the log file.
            .filter(|line| !line.starts_with("===== test harness"))
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect();
        let access =
            lines.iter().find(|l| l["target"] == "access" && l["trace_id"] == trace_id.as_str()).cloned();
        let in_turn = lines.iter().find(|l| l["span"]["name"] == "turn").cloned();
        if let (Some(access), Some(in_turn)) = (access, in_turn) {
            break (access, in_turn);
        }
        assert!(Instant::now() < deadline, "no access line or turn line for {trace_id}:\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(access["method"], "POST");
    assert_eq!(access["route"], "/v1/chat");
    assert_eq!(access["tenant"], "acme");
    assert_eq!(access["status"], 200);
    assert!(access["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{access}");
    assert!(access["timestamp"].is_string() && access["level"] == "INFO", "{access}");
    let span = &in_turn["span"];
    assert_eq!(span["trace_id"], trace_id.as_str(), "{in_turn}");
    assert_eq!(span["tenant"], "acme");
    assert_eq!(span["session"], sid.as_str());
    assert!(span["turn"].as_str().is_some_and(|t| !t.is_empty()), "{in_turn}");
}
