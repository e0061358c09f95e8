//! Self-checks of the test harness, independent of the server: the SSE reader
//! and the fake OpenAI upstream's wire format and bookkeeping.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::sse::SseParser;
use common::{joined, pieces, unicode_pieces, FakeOpenAi, Mode, SseEvent};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn sse_reader_handles_split_crlf_comments_and_multibyte() {
    let text =
        "retry: 2000\r\n\r\nevent: a\r\ndata: {\"t\":\"é🎉\"}\r\nid: 3\r\n\r\n: hb\n\ndata:x\rdata: y\r\r";
    let mut p = SseParser::new();
    let mut events = Vec::new();
    for b in text.as_bytes() {
        events.extend(p.push(std::slice::from_ref(b)));
    }
    assert_eq!(p.first_line.as_deref(), Some("retry: 2000"));
    assert_eq!(p.retries, vec!["2000"]);
    assert_eq!(p.comments, vec!["hb"]);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event, "a");
    assert_eq!(events[0].json()["t"], "é🎉");
    assert_eq!(events[0].id.as_deref(), Some("3"));
    assert_eq!(events[1].event, "message");
    assert_eq!(events[1].data, "x\ny");
}

/// Reads one fake response; returns its status and the upstream SSE events.
async fn call(fake: &FakeOpenAi) -> (u16, Vec<SseEvent>, Option<String>) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client
        .post(format!("{}/chat/completions", fake.base_url()))
        .bearer_auth("sk-x")
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut body = resp.bytes_stream();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), body.next()).await {
        events.extend(parser.push(&chunk));
    }
    (status, events, retry_after)
}

fn content(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn fake_openai_replays_the_chat_completions_stream() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let (status, events, _) = call(&fake).await;
    assert_eq!(status, 200);
    assert_eq!(content(&events), "w0 w1 w2");
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2].data).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 17);
    assert_eq!(fake.calls(), 1);
    assert_eq!(fake.last_request().body["messages"][0]["content"], "hi");
    assert_eq!(fake.last_request().authorization.as_deref(), Some("Bearer sk-x"));
    assert_eq!(fake.completed(), 1);

    for mode in [Mode::SplitBytes(unicode_pieces()), Mode::KeepAlive(unicode_pieces())] {
        fake.push_mode(mode);
        let (_, events, _) = call(&fake).await;
        assert_eq!(content(&events), joined(&unicode_pieces()));
    }
}

#[tokio::test]
async fn fake_openai_failure_modes() {
    let fake = FakeOpenAi::start(Mode::RateLimited { retry_after_secs: 1 }).await;
    let (status, _, retry_after) = call(&fake).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("1")));

    fake.set_mode(Mode::ServerError);
    assert_eq!(call(&fake).await.0, 500);

    fake.set_mode(Mode::MidStreamError(pieces(2)));
    let (_, events, _) = call(&fake).await;
    assert!(events.last().unwrap().data.contains("\"error\""));

    fake.set_mode(Mode::DropConnection(pieces(2)));
    let (status, events, _) = call(&fake).await;
    assert_eq!(status, 200);
    assert_eq!(content(&events), "w0 w1");
    assert!(events.iter().all(|e| e.data != "[DONE]"));

    fake.set_mode(Mode::NoUsage(pieces(2)));
    let (_, events, _) = call(&fake).await;
    assert!(events.iter().all(|e| !e.data.contains("\"usage\"")));
}

#[tokio::test]
async fn fake_openai_notices_a_dropped_body_and_gates() {
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: pieces(100), interval: Duration::from_millis(20) }).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client.post(format!("{}/chat/completions", fake.base_url())).body("{}").send().await.unwrap();
    let mut body = resp.bytes_stream();
    let _ = body.next().await;
    drop(body);
    common::eventually("the fake to see the drop", Duration::from_secs(5), || async {
        (fake.dropped() == 1).then_some(())
    })
    .await;
    assert_eq!(fake.completed(), 0);

    fake.set_mode(Mode::Gated { before: pieces(1), after: vec![" after".into()] });
    let f2 = fake.clone();
    let reader = tokio::spawn(async move { content(&call(&f2).await.1) });
    common::eventually("the gated call", Duration::from_secs(5), || async {
        (fake.calls() == 2).then_some(())
    })
    .await;
    fake.release();
    assert_eq!(reader.await.unwrap(), "w0 after");
}
